"""examples/train_tiny_dwd.py: a short deterministic run whose loss falls by at least 30%; and the decoder's
output fed to torchmetrics' MeanAveragePrecision (when torchmetrics can compute it here)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_tiny_dwd.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_tiny_dwd", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    yield mod
    torch.set_num_threads(threads)


def test_example_is_deterministic(example):
    a = example.main(steps=3, seed=1, evaluate_at_end=False, verbose=False)["losses"]
    b = example.main(steps=3, seed=1, evaluate_at_end=False, verbose=False)["losses"]
    assert a == b
    c = example.main(steps=3, seed=2, evaluate_at_end=False, verbose=False)["losses"]
    assert c != a


def test_example_loss_falls_by_30_percent(example):
    result = example.main(steps=45, seed=0, verbose=False)
    losses = result["losses"]
    assert len(losses) == 45 and all(np.isfinite(losses))
    first, last = np.mean(losses[:3]), np.mean(losses[-5:])
    assert last <= 0.7 * first, f"loss fell from {first:.3f} to {last:.3f} only"
    ev = result["eval"]
    assert ev["objects"] > 0 and 0 <= ev["precision"] <= 1 and 0 <= ev["recall"] <= 1


def test_decoder_output_feeds_torchmetrics_map(example):
    try:  # (a torchvision built for another PyTorch breaks the import of torchmetrics itself)
        import torchvision  # noqa: F401  (MeanAveragePrecision imports it when it first updates)
        from torchmetrics.detection import MeanAveragePrecision

        metric = MeanAveragePrecision(iou_type="bbox")
    except (ImportError, RuntimeError) as e:  # needs torchvision (built for this PyTorch) and pycocotools / faster-coco-eval
        pytest.skip(f"torchmetrics' MeanAveragePrecision is not usable here: {e}")
    from dwd_fast.torch import Decoder

    # outputs whose argmax reproduces the targets exactly: every object is found with its class
    images, targets = example.make_batch([11, 12])
    from dwd_fast.torch import TargetEncoder

    t = TargetEncoder(example.LEVELS, example.NUM_CLASSES)(targets, images.shape[-2:])
    F = torch.nn.functional
    outputs = {"energy": F.one_hot(t["energy"].long(), example.LEVELS).permute(0, 3, 1, 2).float() * 8,
               "classes": F.one_hot(t["classes"].long(), example.NUM_CLASSES).permute(0, 3, 1, 2).float() * 8,
               "sizes": t["sizes"]}
    dets = Decoder(cutoff=2, min_size=1)(outputs)
    metric.update(dets, targets)
    perfect = metric.compute()
    metric.reset()
    metric.update([dict(d, labels=(d["labels"] % 3) + 1) for d in dets], targets)  # every class wrong
    wrong = metric.compute()
    assert float(perfect["map_50"]) > 0.5 and float(wrong["map_50"]) < float(perfect["map_50"])
