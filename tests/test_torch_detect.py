"""Whole pages through a detector (dwd_fast.torch.infer) and `dwd-fast detect`.

Tiled inference is checked against the untiled model: the stitched level map / sizes against
``forward_outputs`` on the whole page, and the detections against ``model(images)`` in eval mode (the torch
Decoder on the full logits), on random models and pages, for the component path (default seeds) and the
per-pixel path (grow_to, peak seeds), with strides 1 and 2. The CLI's files are read back with
``read_detections`` and scored by ``dwd-fast eval``; a 2-process torchrun run equals the 1-process run.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import dwd_fast  # noqa: E402
from dwd_fast import cli  # noqa: E402
from dwd_fast.torch import DeepWatershedDetector, UNet, image_to_tensor  # noqa: E402
from dwd_fast.torch.infer import (backbone_grid, decode_outputs, detect_image, predict_outputs,  # noqa: E402
                                  receptive_radius, tile_layout)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"backbone": {"name": "unet", "widths": [4, 8, 8], "dilations": [1, 1, 2]}, "num_classes": 5, "levels": 8,
         "decoder": {"cutoff": 3, "min_size": 2}}


def small_model(seed=0, config=SMALL, class_names=None, img=None):
    """A random detector; with ``img``, its energy levels spread on that page (:func:`spread_energy`), so that
    it finds objects of many sizes there."""
    torch.manual_seed(seed)
    m = DeepWatershedDetector.from_config(config, class_names=class_names).eval()
    return spread_energy(m, img) if img is not None else m


def spread_energy(m, img):
    """Sets ``m``'s energy head so that its levels spread over 0..K-1 on ``img``: ``logit_k = -(k - mu)^2``
    with ``mu`` a random linear function of the features (mean 2.5, deviation 2), and its sizes around
    6 x 8 px. Returns ``m``."""
    with torch.no_grad():
        f = m.backbone(image_to_tensor(img)[None])[0].flatten(1)
        v = torch.randn(f.shape[0])
        v = v * 2.0 / (v @ f).std()
        b = 2.5 - (v @ f).mean()
        k = torch.arange(m.head.energy.out_channels, dtype=torch.float32)
        m.head.energy.weight.copy_((2 * k[:, None] * v[None])[:, :, None, None])
        m.head.energy.bias.copy_(2 * k * b - k ** 2)
        m.head.sizes.weight.mul_(0.5)  # box sides of a few pixels
        m.head.sizes.bias.copy_(torch.tensor([6.0, 8.0]))
    return m


def page(seed, h, w):
    """A page-like picture: paper with dark strokes and blobs, and noise."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 235.0)
    for _ in range(max(1, h * w // 2000)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        img[y:y + rng.integers(1, 12), x:x + rng.integers(1, 12)] = rng.uniform(0, 60)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def untiled(model, img, **decoder):
    x = image_to_tensor(img)[None]
    with torch.inference_mode():
        if decoder:
            out, stride = model.forward_outputs(x)
            from dwd_fast.torch import Decoder

            return Decoder(**decoder)(out, stride=stride)[0], out
        return model(x)[0], model.forward_outputs(x)[0]


def assert_same(det, ref):
    """Same objects and classes; boxes and scores equal to float rounding (the head runs on crops of the
    features, whose sums may round differently in the last bit)."""
    assert det.boxes.shape == tuple(ref["boxes"].shape)
    np.testing.assert_allclose(det.boxes, ref["boxes"].numpy(), rtol=1e-6, atol=1e-4)
    assert np.array_equal(det.labels, ref["labels"].numpy())
    np.testing.assert_allclose(det.scores, ref["scores"].numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# tile layout
# --------------------------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(h=st.integers(1, 700), w=st.integers(1, 700), overlap=st.integers(0, 60), grid=st.sampled_from([1, 2, 4, 16]),
       stride=st.sampled_from([1, 2, 4]), extra=st.integers(0, 300), square=st.booleans())
def test_tile_layout_partitions_the_output_and_keeps_the_margin(h, w, overlap, grid, stride, extra, square):
    g = int(np.lcm(grid, stride))
    tile = 2 * (-(-overlap // stride) * stride) + 2 * g + extra  # the context is whole output pixels
    tiles = tile_layout(h, w, tile=tile if square else (tile, tile + 7), overlap=overlap, grid=grid, stride=stride)
    ho, wo = -(-h // stride), -(-w // stride)
    count = np.zeros((ho, wo), int)
    for y0, y1, x0, x1, oy0, oy1, ox0, ox1 in tiles:
        assert 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w
        assert y0 % g == 0 and x0 % g == 0  # origins on the backbone's grid and the stride
        assert y1 - y0 <= max(tile, 1) + g - 1 or y1 - y0 == h
        count[oy0:oy1, ox0:ox1] += 1
        ty0, ty1, tx0, tx1 = y0 // stride, -(-y1 // stride), x0 // stride, -(-x1 // stride)
        assert ty0 <= oy0 and oy1 <= ty1 and tx0 <= ox0 and ox1 <= tx1
        m = -(-overlap // stride)
        # owned pixels lie at least `overlap` from every cut edge (edges at the page border are no cuts)
        if ty0 > 0:
            assert oy0 - ty0 >= m
        if ty1 < ho:
            assert ty1 - oy1 >= m
        if tx0 > 0:
            assert ox0 - tx0 >= m
        if tx1 < wo:
            assert tx1 - ox1 >= m
    assert (count == 1).all()


def test_tile_layout_of_a_deepscores_page_and_bad_arguments():
    tiles = tile_layout(2668, 1894, tile=(1664, 2048), overlap=208, grid=16)
    assert len(tiles) == 2 and all(t[3] - t[2] == 1894 for t in tiles)
    assert tiles[0][1] - tiles[0][0] <= 1664
    with pytest.raises(ValueError, match="tile"):
        tile_layout(500, 500, tile=100, overlap=40, grid=16)
    with pytest.raises(ValueError, match="overlap"):
        tile_layout(500, 500, tile=100, overlap=-1)
    with pytest.raises(ValueError, match="tile"):
        tile_layout(500, 500, tile=0)


# --------------------------------------------------------------------------------------------------
# receptive radius: the bound holds (a one-pixel change moves no output farther away)
# --------------------------------------------------------------------------------------------------

def changed_radius(backbone, size, y, x):
    torch.manual_seed(3)
    img = torch.rand(1, backbone.in_channels, size, size)
    img2 = img.clone()
    img2[..., y, x] = 1 - img2[..., y, x]
    with torch.inference_mode():
        d = (backbone(img2) - backbone(img)).abs().amax(1)[0]
    rows, cols = torch.nonzero(d > 0, as_tuple=True)
    return int(torch.maximum((rows - y).abs(), (cols - x).abs()).max())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(widths=st.lists(st.sampled_from([2, 3, 4]), min_size=1, max_size=4),
       dil=st.lists(st.integers(1, 3), min_size=4, max_size=4), dy=st.integers(0, 15), dx=st.integers(0, 15))
def test_receptive_radius_bounds_the_measured_one(widths, dil, dy, dx):
    torch.manual_seed(0)
    bb = UNet(1, widths, dilations=dil[:len(widths)]).eval()
    r = receptive_radius(bb)
    size = 2 * r + 48
    c = size // 2 - 8
    measured = changed_radius(bb, size, c + dy, c + dx)
    assert 0 < measured <= r


def test_receptive_radius_of_the_default_unet():
    bb = UNet().eval()
    r = receptive_radius(bb)
    assert r == 195 and backbone_grid(bb) == 16
    measured = changed_radius(bb, 448, 224 + 5, 224 + 11)
    assert 150 < measured <= r


def test_receptive_radius_unknown_backbone():
    with pytest.raises(ValueError, match="overlap"):
        receptive_radius(torch.nn.Conv2d(1, 4, 3))


# --------------------------------------------------------------------------------------------------
# tiled == untiled
# --------------------------------------------------------------------------------------------------

def test_tiled_equals_untiled_on_a_page():
    img = page(0, 300, 400)
    m = small_model(img=img)
    ref, full = untiled(m, img)
    out = predict_outputs(m, img, tile=128)
    assert out.mode == "components"
    assert np.array_equal(out.level, full["energy"][0].argmax(0).numpy())
    np.testing.assert_allclose(out.sizes, full["sizes"][0].numpy(), rtol=1e-5, atol=1e-5)
    det = decode_outputs(out, min_size=2)
    assert len(det) > 5
    assert_same(det, ref)
    # the tiles really were cut (several tiles), and one tile gives the same
    assert len(tile_layout(300, 400, tile=128, overlap=36, grid=4)) > 4
    assert_same(detect_image(m, img, tile=1024), ref)
    # Detections-like: torchvision dict and COCO records
    assert set(det.as_dict()) == {"boxes", "labels", "scores"}
    assert len(det.to_coco(7)) == len(det)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])  # each example runs networks: no slow shrinking
@given(seed=st.integers(0, 1000), h=st.integers(20, 260), w=st.integers(20, 260), tile=st.integers(104, 180),
       batch=st.integers(1, 3), cutoff=st.integers(1, 5))
@example(seed=3, h=260, w=213, tile=168, batch=1, cutoff=3)  # a level tie that rounds differently on a tile
def test_tiled_equals_untiled_random(seed, h, w, tile, batch, cutoff):
    img = page(seed, h, w)
    m = small_model(seed % 7, img=img)
    ref, full = untiled(m, img, cutoff=cutoff, min_size=2)
    out = predict_outputs(m, img, tile=tile, batch=batch, cutoff=cutoff)
    # the stitched levels are the whole page's, but where two levels' logits tie to rounding (the backbone's
    # sums may round differently on a tile): such a pixel may take either
    e = full["energy"][0]
    top2 = e.topk(2, 0).values
    tie = (top2[0] - top2[1] < 1e-4).numpy()
    differ = out.level != e.argmax(0).numpy()
    assert not (differ & ~tie).any()
    if not differ.any():
        assert_same(decode_outputs(out, min_size=2), ref)


@pytest.mark.parametrize("options", [{"grow_to": 1.0}, {"seeds": "peaks"}, {"seeds": "peaks", "grow_to": 2.0},
                                     {"size_reduce": "median"}])
def test_tiled_equals_untiled_grown_and_peaks(options):
    img = page(5, 230, 250)
    m = small_model(1, img=img)
    ref, _ = untiled(m, img, cutoff=3, min_size=2, **options)
    det = detect_image(m, img, tile=112, cutoff=3, min_size=2, **options)
    assert len(det) > 3
    assert_same(det, ref)


@pytest.mark.parametrize("mode", ["blend", "class"])
def test_tiled_equals_untiled_with_class_sizes(mode):
    # the detector's own class-size table, as its Decoder applies it on the whole page
    img = page(6, 230, 250)
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 20, (200, 2))
    boxes = np.concatenate([boxes, boxes + rng.uniform(2, 12, (200, 2))], 1).astype(np.float32)
    table = dwd_fast.class_size_table(boxes, rng.integers(1, 4, 200), 5)  # class 4 never seen
    cfg = dict(SMALL, decoder={"cutoff": 3, "min_size": 2, "size_mode": mode, "class_confidence": 0.2,
                               "class_spread": 10.0})  # random sizes spread widely: trust them anyway
    torch.manual_seed(1)
    m = spread_energy(DeepWatershedDetector.from_config(cfg, class_sizes=table).eval(), img)
    ref, _ = untiled(m, img)
    det = detect_image(m, img, tile=112)
    assert len(det) > 3
    assert_same(det, ref)
    plain = detect_image(m, img, tile=112, size_mode="regress")
    assert not np.allclose(plain.boxes, det.boxes)  # the table changed some boxes


class Strided(torch.nn.Module):
    """A backbone at stride 2 (a strided convolution), receptive radius 3 px."""

    receptive_radius = 3
    grid = 2
    in_channels = 1

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(1, 6, 3, stride=2, padding=1)
        self.b = torch.nn.Conv2d(6, 6, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.b(torch.relu(self.a(x))))


def test_tiled_equals_untiled_at_stride_2():
    torch.manual_seed(2)
    m = DeepWatershedDetector(Strided(), 6, 4, levels=6, upsample=False, decoder={"cutoff": 3, "min_size": 1}).eval()
    img = page(9, 97, 131)
    spread_energy(m, img)
    ref, full = untiled(m, img)
    out = predict_outputs(m, img, tile=40)
    assert out.stride == 2 and out.level.shape == (49, 66)
    assert np.array_equal(out.level, full["energy"][0].argmax(0).numpy())
    det = decode_outputs(out, min_size=1)
    assert len(det) > 3
    assert_same(det, ref)


def test_bad_inputs():
    m = small_model()
    with pytest.raises(TypeError, match="image"):
        predict_outputs(m, "page.png")
    with pytest.raises(ValueError, match="batch"):
        predict_outputs(m, page(0, 40, 40), batch=0)
    with pytest.raises(ValueError, match="tile"):
        predict_outputs(m, page(0, 400, 400), tile=50)
    with pytest.raises(TypeError, match="unexpected"):
        detect_image(m, page(0, 40, 40), colour=1)
    with pytest.raises(ValueError, match="overlap"):
        predict_outputs(DeepWatershedDetector(torch.nn.Conv2d(1, 4, 3, padding=1), 4, 3).eval(), page(0, 40, 40))
    with pytest.raises(TypeError, match="PageOutputs"):
        decode_outputs({"energy": 1})
    out = predict_outputs(m, page(0, 40, 40))  # kept per component: grown decoding needs per-pixel outputs
    with pytest.raises(ValueError, match="predict_outputs"):
        decode_outputs(out, grow_to=1.0)
    with torch.no_grad():
        m.head.sizes.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        predict_outputs(m, page(0, 40, 40))


# --------------------------------------------------------------------------------------------------
# dwd-fast detect
# --------------------------------------------------------------------------------------------------

NAMES = ["background", "noteheadBlackOnLine", "stem", "beam", "clefG"]


@pytest.fixture(scope="module")
def pages_and_model(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("detect")
    m = small_model(0, class_names=NAMES, img=page(0, 150, 170))
    m.save(d / "tiny.pt", note="test")
    paths = []
    for i, (h, w) in enumerate([(150, 170), (120, 90), (140, 200)]):
        p = d / f"page{i}.png"
        img = page(i, h, w)
        Image.fromarray(np.stack([img] * 3, -1) if i == 1 else img).save(p)  # one colour page
        paths.append(str(p))
    return d, m, paths


def test_detect_writes_files_that_evaluate_reads(pages_and_model, capsys):
    d, m, paths = pages_and_model
    out = d / "out"
    assert cli.main(["detect", *paths, "--model", str(d / "tiny.pt"), "--out", str(out), "--tile", "112",
                     "--threads", "1", "--quiet"]) == 0
    assert "3 pages" in capsys.readouterr().out
    for f in ("detections_coco.json", "detections_deepscores.json", "detect_index.json",
              "page0_overlay.png", "page1_overlay.png", "page2_overlay.png"):
        assert (out / f).is_file(), f
    index = json.loads((out / "detect_index.json").read_text())
    assert index["category_ids"] == "deepscores"
    from dwd_fast.data.deepscores import deepscores_categories

    by_name = {n: i for i, n, _ in deepscores_categories()}
    lut = np.array([-1] + [by_name[n] for n in NAMES[1:]])
    coco = dwd_fast.read_detections(out / "detections_coco.json", category_ids=lut)
    ds = dwd_fast.read_detections(out / "detections_deepscores.json", category_ids=lut)
    from dwd_fast.torch.infer import detect_image as di
    from dwd_fast._detect import read_image

    gt_pages = []
    for i, p in enumerate(paths):
        det = di(m, read_image(p), tile=112)
        keep = det.labels > 0
        for got in (coco[i + 1], ds[i + 1]):
            assert np.allclose(got["boxes"], det.boxes[keep], atol=1e-4)
            assert np.array_equal(got["labels"], det.labels[keep])
            assert np.allclose(got["scores"], det.scores[keep], atol=1e-6)
        # ground truth: the detections themselves minus the last one, in COCO form
        gt_pages.append((i + 1, det.boxes[keep][:-1], lut[det.labels[keep][:-1]]))
    gt = {"images": [{"id": i, "file_name": os.path.basename(paths[i - 1])} for i, _, _ in gt_pages],
          "categories": [{"id": int(c), "name": n} for c, n in zip(lut[1:], NAMES[1:])],
          "annotations": [{"id": k, "image_id": i, "category_id": int(c), "iscrowd": 0, "area": 1.0,
                           "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
                          for i, boxes, cats in gt_pages for k, (b, c) in enumerate(zip(boxes, cats), 1000 * i)]}
    (d / "gt.json").write_text(json.dumps(gt))
    assert cli.main(["eval", str(out / "detections_coco.json"), str(d / "gt.json")]) == 0
    table = capsys.readouterr().out
    # every ground-truth box is a detection: recall 100 on every line of the table
    rows = [line.split() for line in table.splitlines() if line.split() and line.split()[0] in NAMES[1:] + ["all"]]
    assert rows and all(float(r[4]) == 100.0 for r in rows if int(r[5]) > 0), table
    # --dataset: image ids from the ground truth's images, by file name
    (d / "gt2.json").write_text(json.dumps({**gt, "images": [{"id": 40 + k, "file_name": os.path.basename(p)}
                                                             for k, p in enumerate(paths)]}))
    assert cli.main(["detect", paths[2], "--model", str(d / "tiny.pt"), "--out", str(d / "out2"), "--tile", "112",
                     "--dataset", str(d / "gt2.json"), "--quiet", "--no-overlay"]) == 0
    recs = json.loads((d / "out2" / "detections_coco.json").read_text())
    assert recs and {r["image_id"] for r in recs} == {42}
    assert not (d / "out2" / "page2_overlay.png").exists()


def test_detect_without_a_model(pages_and_model, monkeypatch, capsys):
    d, _, paths = pages_and_model
    from dwd_fast import _detect

    monkeypatch.setattr(_detect, "DEFAULT_MODEL", str(d / "no-such-default.pt"))
    assert cli.main(["detect", paths[0], "--out", str(d / "o3"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "default model" in err and "--model" in err
    assert cli.main(["detect", str(d / "missing.png"), "--model", str(d / "tiny.pt"), "--quiet"]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert cli.main(["detect", paths[0], "--model", str(d / "page0.png"), "--quiet", "--out", str(d / "o4")]) == 2
    assert "not a dwd-fast model file" in capsys.readouterr().err


def test_detect_default_model_is_used_without_flags(pages_and_model, monkeypatch, capsys):
    d, _, paths = pages_and_model
    from dwd_fast import _detect

    monkeypatch.setattr(_detect, "DEFAULT_MODEL", str(d / "tiny.pt"))
    monkeypatch.chdir(d)
    assert cli.main(["detect", paths[1], "--quiet", "--tile", "112"]) == 0
    assert (d / "detections" / "detections_coco.json").is_file()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_detect_sharded_by_torchrun_equals_one_process(pages_and_model):
    d, _, paths = pages_and_model
    base = ["detect", *paths, "--model", str(d / "tiny.pt"), "--tile", "112", "--threads", "1", "--quiet",
            "--no-overlay"]
    assert cli.main([*base, "--out", str(d / "one")]) == 0
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "dwd_fast.cli",
                        *base, "--out", str(d / "two")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ("detections_coco.json", "detections_deepscores.json"):
        assert json.loads((d / "one" / f).read_text()) == json.loads((d / "two" / f).read_text())
    assert not (d / "two" / ".detect-parts").exists()
    index = json.loads((d / "two" / "detect_index.json").read_text())
    assert [im["id"] for im in index["images"]] == [1, 2, 3]


# --------------------------------------------------------------------------------------------------
# dwd-fast demo --model
# --------------------------------------------------------------------------------------------------

def test_demo_runs_a_model(tmp_path, capsys):
    pytest.importorskip("verovio")
    pytest.importorskip("resvg_py")
    # the smallest UNet (the demo runs a whole page), its classes DeepScoresV2 categories
    cfg = {**SMALL, "backbone": {"name": "unet", "widths": [2, 2]}}
    small_model(0, cfg, class_names=NAMES, img=page(0, 64, 64)).save(tmp_path / "m.pt")
    assert cli.main(["demo", "--model", str(tmp_path / "m.pt"), "--music", "chorale", "--out", str(tmp_path),
                     "--scale", "0.25"]) == 0
    text = capsys.readouterr().out
    assert "network" in text and "DeepScoresV2 categories" in text and "precision" in text
    assert (tmp_path / "dwd_fast_demo.png").is_file()
