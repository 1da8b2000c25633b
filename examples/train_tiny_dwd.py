"""Train a tiny Deep Watershed Detector on synthetic sheet-music-like crops, on the CPU.

The objects are the boxes of :func:`dwd_fast.data.reference_page` on small crops, drawn as symbols of three
classes (filled ellipse, hollow ellipse, filled rectangle) with noise. A small dilated convolutional network
with :class:`dwd_fast.torch.DeepWatershedDetector` learns energy, class and size maps from targets built
inside the training step; the script prints the losses as they fall, then the detection quality of the
decoded output on held-out crops (precision and recall at IoU 0.5, class accuracy of the matches, and
torchmetrics' mean average precision when torchmetrics is installed).

    python examples/train_tiny_dwd.py --steps 300

The printed ``loss`` is the sum of the three task losses (energy and class cross-entropy with the
original's masks, L1 size regression); training uses the original's running-mean task balancing, whose
weighted total stays near the sum of the factors by construction.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import dwd_fast
from dwd_fast.torch import DeepWatershedDetector

SIZE = 96          # crop side
OBJECTS = 8        # objects per crop
NUM_CLASSES = 4    # background + 3 symbol classes
LEVELS = 10


def make_crop(seed):
    """(image (1, H, W) float32, target dict) of one synthetic crop."""
    page = dwd_fast.data.reference_page(OBJECTS, seed=seed, shape=(SIZE, SIZE), levels=LEVELS)
    rng = np.random.default_rng(seed + 1_000_003)
    labels = 1 + page.labels % 3
    img = np.zeros((SIZE, SIZE), np.float32)
    rr, cc = np.mgrid[:SIZE, :SIZE] + 0.5
    for (x1, y1, x2, y2), k in zip(page.boxes, labels):
        cx, cy, a, b = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        d = np.sqrt(((cc - cx) / a) ** 2 + ((rr - cy) / b) ** 2)
        if k == 1:
            m = d <= 1
        elif k == 2:
            m = (d <= 1) & (d >= 1 - 2.5 / min(a, b))
        else:
            m = (np.abs(cc - cx) <= a * 0.8) & (np.abs(rr - cy) <= b * 0.8)
        img[m] = 1.0
    img += rng.normal(0, 0.15, img.shape).astype(np.float32)
    return torch.from_numpy(img[None]), {"boxes": torch.from_numpy(page.boxes),
                                         "labels": torch.from_numpy(labels.astype(np.int64))}


def make_batch(seeds):
    crops = [make_crop(int(s)) for s in seeds]
    return torch.stack([c[0] for c in crops]), [c[1] for c in crops]


class TinyNet(nn.Module):
    """Dilated 3x3 convolutions at full resolution (receptive field 63 px)."""

    def __init__(self, width=24):
        super().__init__()
        layers, c = [], 1
        for d in (1, 2, 4, 8, 16):
            layers += [nn.Conv2d(c, width, 3, padding=d, dilation=d), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


def box_iou(a, b):
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def match(pred, gt, iou=0.5):
    """Greedy matching by score: (true positives, class-correct matches, predictions, ground truths)."""
    if len(pred["boxes"]) == 0 or len(gt["boxes"]) == 0:
        return 0, 0, len(pred["boxes"]), len(gt["boxes"])
    ious = box_iou(pred["boxes"], gt["boxes"])
    used = torch.zeros(len(gt["boxes"]), dtype=torch.bool)
    tp = correct = 0
    for i in torch.argsort(pred["scores"], descending=True).tolist():
        j = int(torch.argmax(torch.where(used, -1.0, ious[i])))
        if ious[i, j] >= iou and not used[j]:
            used[j] = True
            tp += 1
            correct += int(pred["labels"][i] == gt["labels"][j])
    return tp, correct, len(pred["boxes"]), len(gt["boxes"])


def evaluate(model, seeds):
    model.eval()
    images, targets = make_batch(seeds)
    with torch.no_grad():
        dets = model(images)
    tp = correct = n_pred = n_gt = 0
    for d, t in zip(dets, targets):
        a, b, c, e = match(d, t)
        tp, correct, n_pred, n_gt = tp + a, correct + b, n_pred + c, n_gt + e
    result = {"precision": tp / max(n_pred, 1), "recall": tp / max(n_gt, 1), "class_accuracy": correct / max(tp, 1),
              "detections": n_pred, "objects": n_gt}
    try:  # mAP when torchmetrics can compute it (it needs torchvision and pycocotools or faster-coco-eval)
        import torchvision  # noqa: F401  (MeanAveragePrecision imports it when it first updates)
        from torchmetrics.detection import MeanAveragePrecision

        metric = MeanAveragePrecision(iou_type="bbox", backend="faster_coco_eval") if _has("faster_coco_eval") \
            else MeanAveragePrecision(iou_type="bbox")
    except (ImportError, RuntimeError):  # RuntimeError: a torchvision built for another PyTorch (its ops missing)
        pass
    else:
        metric.update(dets, targets)
        result["map_50"] = float(metric.compute()["map_50"])
    model.train()
    return result


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main(steps=300, seed=0, batch_size=4, lr=3e-3, threads=1, log_every=25, evaluate_at_end=True, verbose=True):
    """Train for ``steps`` steps; returns ``{"losses": [...], "eval": {...}}``. Deterministic for a given
    seed and thread count."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model = DeepWatershedDetector(TinyNet(), 24, NUM_CLASSES, levels=LEVELS, upsample=False,
                                  loss={"size_loss": "l1", "running_mean": 5},
                                  decoder={"cutoff": 4, "min_size": 3, "size_reduce": "mean"})
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    start = time.perf_counter()
    for step in range(steps):
        images, targets = make_batch(rng.integers(0, 2**31, batch_size))
        out = model(images, targets)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        parts = [float(out[k].detach()) for k in ("loss_energy", "loss_class", "loss_size")]
        losses.append(sum(parts))
        if verbose and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:4d}  loss {losses[-1]:7.4f}  (energy {parts[0]:.4f}, class {parts[1]:.4f}, "
                  f"size {parts[2]:.5f})  {time.perf_counter() - start:5.1f} s", flush=True)
    result = {"losses": losses}
    if evaluate_at_end:
        result["eval"] = evaluate(model, range(10**6, 10**6 + 16))
        if verbose:
            print("held-out crops: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in result["eval"].items()))
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    main(steps=a.steps, seed=a.seed, threads=a.threads)
