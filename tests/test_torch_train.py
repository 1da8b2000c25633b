"""Training: LabelMap, CropDataset, ScanDegradation, and dwd_fast.torch.train / `dwd-fast train` on a tiny
DeepScores-format dataset (a few steps of a tiny model): runs, checkpoints, resumes bit for bit, evaluates,
is deterministic per seed, and 2 torchrun (gloo) processes equal 1 process on the same global batch."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings, strategies as st  # noqa: E402

from dwd_fast.data.deepscores import DeepScoresPage, read_deepscores, write_deepscores  # noqa: E402
from dwd_fast.torch import DeepWatershedDetector  # noqa: E402
from dwd_fast.torch.augment import ScanDegradation  # noqa: E402
from dwd_fast.torch.data import CropDataset, LabelMap, PageCache, collate  # noqa: E402
from dwd_fast.torch.train import read_run_metrics, train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATS = {2: "legerLine", 3: "repeatDot", 6: "clefG"}  # DeepScoresV2 category ids (= labels) and names
TINY = dict(steps=4, batch=2, crop=48, widths=[4, 8], levels=6, threads=1, eval_every=2, eval_pages=1,
            eval_crop=0, checkpoint_every=2, log_every=1, warmup=2, paste_rare=0, degrade=0.8)


def _page(rng, iid, H=96, W=128):
    """A page with ink shapes of three classes: a filled box (2), a disc (3), a hollow box (6)."""
    img = np.full((H, W), 255, np.uint8)
    boxes, cats = [], []
    rr, cc = np.mgrid[:H, :W] + 0.5
    for _ in range(int(rng.integers(6, 10))):
        w, h = rng.uniform(6, 16, 2)
        x, y = rng.uniform(2, W - w - 2), rng.uniform(2, H - h - 2)
        cat = int(rng.choice(list(CATS)))
        inside = (cc >= x) & (cc <= x + w) & (rr >= y) & (rr <= y + h)
        if cat == 3:
            inside &= ((cc - x - w / 2) / (w / 2)) ** 2 + ((rr - y - h / 2) / (h / 2)) ** 2 <= 1
        elif cat == 6:
            inside &= ~((cc >= x + 2) & (cc <= x + w - 2) & (rr >= y + 2) & (rr <= y + h - 2))
        img[inside] = 0
        boxes.append([x, y, x + w, y + h])
        cats.append(cat)
    n = len(cats)
    b = np.asarray(boxes, np.float32)
    oriented = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], 1)
    cats = np.asarray(cats, np.int64)
    return DeepScoresPage(iid, f"p{iid}.png", "", W, H, b, oriented, cats.copy(), cats,
                          ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).astype(np.float64), np.arange(n), [{}] * n, img)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("tinyds")
    rng = np.random.default_rng(0)
    write_deepscores([_page(rng, i + 1) for i in range(4)], d, "train", segmentation=False)
    write_deepscores([_page(rng, i + 11) for i in range(2)], d, "test", segmentation=False, first_image_id=11)
    return str(d)


# --------------------------------------------------------------------------------------------- LabelMap

def test_label_map(tiny_dataset):
    ds = read_deepscores(os.path.join(tiny_dataset, "deepscores_train.json"))
    lm = LabelMap.from_dataset(ds)
    assert lm.names == ["background"] + [CATS[k] for k in sorted(CATS)] and lm.num_classes == 4
    assert lm.source_labels.tolist() == sorted(CATS)
    labels = np.array([6, 2, 3, 0, 5, 999])
    assert lm.map(labels).tolist() == [3, 1, 2, 0, 0, 0]
    assert lm.unmap(lm.map(labels[:3])).tolist() == [6, 2, 3]
    assert LabelMap.from_json(json.loads(json.dumps(lm.to_json()))) == lm
    with pytest.raises(ValueError, match="distinct"):
        LabelMap([2, 2], ["bg", "a", "b"])
    with pytest.raises(ValueError, match="names"):
        LabelMap([2], ["bg"])
    with pytest.raises(ValueError, match="ids"):
        lm.unmap([4])


# --------------------------------------------------------------------------------------------- CropDataset

def test_crop_dataset(tiny_dataset):
    ds = read_deepscores(os.path.join(tiny_dataset, "deepscores_train.json"))
    lm = LabelMap.from_dataset(ds)
    cd = CropDataset(ds, lm, crop=40, length=50, seed=3)
    again = CropDataset(ds, lm, crop=40, length=50, seed=3)
    for i in range(0, 50, 3):
        img, t = cd[i]
        img2, t2 = again[i]
        assert torch.equal(img, img2) and torch.equal(t["boxes"], t2["boxes"])
        assert torch.equal(t["labels"], t2["labels"])
        pi, x0, y0, _ = cd.window(i)
        page = ds.pages[pi]
        # the image is the page's window (numpy restatement), as image_to_tensor gives it
        want = page.load_image()[y0:y0 + 40, x0:x0 + 40].astype(np.float32) / 255
        assert img.shape == (1, 40, 40) and np.allclose(img[0].numpy(), want)
        # the boxes: each page box shifted and clipped, kept iff it keeps at least half its area
        b = page.boxes.astype(np.float64) - [x0, y0, x0, y0]
        c = b.copy()
        c[:, [0, 2]] = c[:, [0, 2]].clip(0, 40)
        c[:, [1, 3]] = c[:, [1, 3]].clip(0, 40)
        ca = (c[:, 2] - c[:, 0]).clip(0) * (c[:, 3] - c[:, 1]).clip(0)
        keep = ca >= 0.5 * (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        assert np.allclose(t["boxes"].numpy(), c[keep], atol=1e-4)
        assert t["labels"].tolist() == lm.map(page.labels[keep]).tolist()
        assert t["labels"].dtype == torch.int64 and (t["labels"] > 0).all()
    assert len(t["boxes"]) >= 0
    cd.set_epoch(1)
    assert any(not torch.equal(cd[i][0], again[i][0]) for i in range(5))  # a new epoch, other crops
    images, targets = collate([cd[0], cd[1]])
    assert images.shape == (2, 1, 40, 40) and len(targets) == 2
    with pytest.raises(ValueError, match="crop"):
        CropDataset(ds, lm, crop=3)
    with pytest.raises(IndexError):
        cd[50]


def test_crop_dataset_workers_and_page_cache(tiny_dataset):
    ds = read_deepscores(os.path.join(tiny_dataset, "deepscores_train.json"))
    cd = CropDataset(ds, crop=32, length=8, seed=1, transform=ScanDegradation())
    loader = torch.utils.data.DataLoader(cd, batch_size=2, num_workers=2, collate_fn=collate)
    got = torch.cat([images for images, _ in loader])
    assert torch.equal(got, torch.stack([cd[i][0] for i in range(8)]))  # workers give the items of the index
    one = ds.pages[0].load_image().nbytes
    cache = PageCache(2 * one)
    for p in (ds.pages[0], ds.pages[1], ds.pages[0], ds.pages[2], ds.pages[1]):
        assert np.array_equal(cache.get(p), p.load_image())
    assert (cache.hits, cache.misses) == (1, 4)  # page 1 was evicted by page 2 (least recently used)
    with pytest.raises(ValueError, match="max_bytes"):
        PageCache(-1)


def test_crop_dataset_centres_near_content(tiny_dataset):
    # with no jitter every crop holds the whole annotation it was centred on (boxes < the crop)
    ds = read_deepscores(os.path.join(tiny_dataset, "deepscores_train.json"))
    cd = CropDataset(ds, crop=40, length=30, jitter=0.0)
    assert all(len(cd[i][1]["boxes"]) >= 1 for i in range(30))


# --------------------------------------------------------------------------------------------- ScanDegradation

def _ink_page(boxes, H, W):
    img = np.ones((H, W), np.float32)
    for x1, y1, x2, y2 in boxes:
        img[int(np.ceil(y1)):int(np.floor(y2)), int(np.ceil(x1)):int(np.floor(x2))] = 0.0
    return img


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 6), angle=st.floats(0, 5), skew=st.floats(0, 0.1),
       blur=st.floats(0, 1.0), h=st.integers(24, 60), w=st.integers(24, 60))
def test_scan_degradation_keeps_ink_inside_moved_boxes(seed, n, angle, skew, blur, h, w):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, [w - 4, h - 4], (n, 2))
    wh = rng.uniform(2, 14, (n, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [w, h])], 1).astype(np.float32)
    img = _ink_page(boxes, h, w)
    aug = ScanDegradation(rotation=angle, skew=skew, blur=(0, blur), noise=0, contrast=1, paper=1, gamma=1,
                          min_keep=0, seed=seed)
    out, t = aug(torch.from_numpy(img)[None], {"boxes": torch.from_numpy(boxes), "labels": torch.arange(n)})
    assert out.shape == (1, h, w) and out.dtype == torch.float32
    moved = t["boxes"].numpy()
    assert len(moved) == len(t["labels"]) and (moved[:, 2:] > moved[:, :2]).all()
    assert (moved[:, [0, 2]] >= 0).all() and (moved[:, [0, 2]] <= w).all() and (moved[:, [1, 3]] <= h).all()
    # every pixel still mostly ink has its centre inside a moved box (grown by 1 px for the bilinear sampling)
    ink = out[0].numpy() < 0.5
    rr, cc = np.nonzero(ink)
    cx, cy = cc + 0.5, rr + 0.5
    inside = np.zeros(len(rr), bool)
    for x1, y1, x2, y2 in moved:
        inside |= (cx >= x1 - 1) & (cx <= x2 + 1) & (cy >= y1 - 1) & (cy <= y2 + 1)
    assert inside.all(), f"{(~inside).sum()} ink pixels outside the moved boxes"


def test_scan_degradation_boxes_follow_the_ink():
    # a single box: its moved box is (within 1.5 px) the bounding box of the transformed ink
    img = _ink_page([[20, 16, 40, 30]], 64, 64)
    aug = ScanDegradation(rotation=(4), skew=0.05, blur=0, noise=0, contrast=1, paper=1, gamma=1, seed=1)
    tgt = {"boxes": torch.tensor([[20.0, 16, 40, 30]]), "labels": torch.tensor([1])}
    out, t = aug(torch.from_numpy(img)[None], tgt)
    rr, cc = np.nonzero(out[0].numpy() < 0.5)
    got = np.array([cc.min(), rr.min(), cc.max() + 1, rr.max() + 1], np.float32)
    assert np.abs(got - t["boxes"][0].numpy()).max() <= 1.5


def test_scan_degradation_types_and_determinism():
    g = torch.full((1, 32, 40), 255, dtype=torch.uint8)
    g[0, 10:20, 10:30] = 0
    tgt = {"boxes": torch.tensor([[10.0, 10, 30, 20]]), "labels": torch.tensor([2]), "extra": 7}
    a, ta = ScanDegradation(seed=5)(g, tgt)
    b, tb = ScanDegradation(seed=5)(g, tgt)
    assert a.dtype == torch.uint8 and a.shape == g.shape and torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"])
    assert ta["extra"] == 7 and not torch.equal(a, g)
    torch.manual_seed(0)
    c, _ = ScanDegradation()(g.float() / 255, tgt)
    torch.manual_seed(0)
    d, _ = ScanDegradation()(g.float() / 255, tgt)
    assert torch.equal(c, d) and c.dtype == torch.float32 and 0 <= c.min() and c.max() <= 1
    same, ts = ScanDegradation(p=0.0)(g, tgt)
    assert torch.equal(same, g) and torch.equal(ts["boxes"], tgt["boxes"])
    with pytest.raises(ValueError, match="contrast"):
        ScanDegradation(contrast=(1.0, 0.5))
    with pytest.raises(ValueError, match="rotation"):
        ScanDegradation(rotation=90)
    with pytest.raises(TypeError, match="image"):
        ScanDegradation()(np.zeros((4, 4)), tgt)
    with pytest.raises(TypeError, match="target"):
        ScanDegradation()(g, {"boxes": tgt["boxes"]})


# --------------------------------------------------------------------------------------------- train

def _run(tiny_dataset, out, **kw):
    cfg = dict(TINY)
    cfg.update(kw)
    return train(tiny_dataset, out, progress=False, **cfg)


def _losses(out):
    return [(r["step"], r["loss_energy"], r["loss_class"], r["loss_size"]) for r in read_run_metrics(out)
            if "loss_energy" in r]


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_train_runs_checkpoints_and_evaluates(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    r = _run(tiny_dataset, out)
    assert {"map", "map50", "map75", "mar", "ap50_per_class", "pages", "gt"} <= set(r) and r["pages"] == 1
    assert r["gt"] > 0 and 0 <= r["map50"] <= 1
    assert {p.name for p in out.iterdir()} == {"last.pt", "best.pt", "metrics.jsonl", "curve.png", "config.json"}
    recs = read_run_metrics(out)
    steps = [r["step"] for r in recs if "loss_energy" in r]
    assert steps == [1, 2, 3, 4]
    assert all(np.isfinite([r["loss_energy"], r["loss_class"], r["loss_size"]]).all()
               for r in recs if "loss_energy" in r)
    assert [r["step"] for r in recs if "eval" in r] == [2, 4]
    m = DeepWatershedDetector.load(out / "last.pt")
    assert m.class_names == ["background", "legerLine", "repeatDot", "clefG"] and m.meta["step"] == 4
    sizes = np.asarray(getattr(m.class_sizes, "sizes", m.class_sizes))  # a table, or its (C, 2) sizes
    assert sizes.shape == (4, 2) and (sizes[1:] > 0).all()
    x = torch.rand(1, 1, 40, 52)
    with torch.no_grad():
        dets = m(x)
    assert set(dets[0]) == {"boxes", "labels", "scores"}
    DeepWatershedDetector.load(out / "best.pt")
    with pytest.raises(TypeError, match="unknown settings"):
        train(tiny_dataset, tmp_path / "x", bogus=1)
    with pytest.raises(FileNotFoundError):
        train(tmp_path / "nowhere", tmp_path / "x")


def test_resume_reproduces_the_uninterrupted_run(tiny_dataset, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _run(tiny_dataset, a, eval_every=0)
    _run(tiny_dataset, b, eval_every=0, stop_at=2)
    assert _state(b / "last.pt")["meta"]["step"] == 2
    train(tiny_dataset, b, resume=True, progress=False, stop_at=0)
    sa, sb = _state(a / "last.pt"), _state(b / "last.pt")
    assert sa["meta"]["step"] == sb["meta"]["step"] == 4
    for k, v in sa["state_dict"].items():
        assert torch.equal(v, sb["state_dict"][k]), k
    oa, ob = sa["train_state"]["optimizer"]["state"], sb["train_state"]["optimizer"]["state"]
    assert all(torch.equal(oa[i]["exp_avg"], ob[i]["exp_avg"]) for i in oa)
    assert _losses(a) == _losses(b)
    with pytest.raises(ValueError, match="differs"):
        train(tiny_dataset, b, resume=True, progress=False, lr=1.0)


def test_seed_determinism(tiny_dataset, tmp_path):
    _run(tiny_dataset, tmp_path / "a", steps=3, eval_every=0, eval_pages=0)
    _run(tiny_dataset, tmp_path / "b", steps=3, eval_every=0, eval_pages=0)
    _run(tiny_dataset, tmp_path / "c", steps=3, eval_every=0, eval_pages=0, seed=1)
    la, lb, lc = (_losses(tmp_path / n) for n in "abc")
    assert la == lb and la != lc


def test_cli_train(tiny_dataset, tmp_path):
    from dwd_fast.cli import main

    out = tmp_path / "run"
    rc = main(["train", tiny_dataset, "--out", str(out), "--steps", "2", "--batch", "2", "--crop", "40", "--widths",
               "4,8", "--levels", "6", "--threads", "1", "--eval-pages", "1", "--eval-crop", "0", "--quiet",
               "--paste-rare", "1"])
    assert rc == 0 and (out / "last.pt").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train_config"]["widths"] == [4, 8] and cfg["label_map"]["names"][0] == "background"
    assert main(["train", str(tmp_path / "missing"), "--out", str(out)]) == 2


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_torchrun_two_processes_equal_one(tiny_dataset, tmp_path):
    args = ["train", tiny_dataset, "--steps", "3", "--batch", "4", "--crop", "40", "--widths", "4,8", "--levels",
            "6", "--threads", "1", "--eval-pages", "0", "--warmup", "1", "--quiet", "--degrade", "0.8",
            "--paste-rare", "0", "--log-every", "1"]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "dwd_fast.cli", *args, "--out", str(two)]
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    one = tmp_path / "one"
    _run(tiny_dataset, one, steps=3, batch=4, crop=40, eval_pages=0, eval_every=0, warmup=1)
    s1, s2 = _state(one / "last.pt"), _state(two / "last.pt")
    assert s2["meta"]["train_config"]["batch"] == 4
    for k, v in s1["state_dict"].items():
        torch.testing.assert_close(s2["state_dict"][k], v, rtol=1e-4, atol=1e-5, msg=k)
    l1, l2 = _losses(one), _losses(two)
    assert [r[0] for r in l1] == [r[0] for r in l2]
    np.testing.assert_allclose([r[1:] for r in l1], [r[1:] for r in l2], rtol=1e-4)
    torch.manual_seed(0)
    init = DeepWatershedDetector.from_config(s1["config"], class_sizes=s1["class_sizes"]).state_dict()
    assert not torch.equal(s1["state_dict"]["head.energy.weight"], init["head.energy.weight"])  # it trained


def test_train_log_size_encoding(tiny_dataset, tmp_path):
    """--sizes log: the model regresses log pixels, its size head starting at the log of the median box."""
    out = tmp_path / "log"
    _run(tiny_dataset, out, sizes="log", steps=2, eval_every=0)
    m = DeepWatershedDetector.load(out / "last.pt")
    assert m.config["size_encoding"] == "log" and m.head.size_encoding == "log"
    ds = read_deepscores(os.path.join(tiny_dataset, "deepscores_train.json"))
    b = np.concatenate([np.asarray(p.boxes, np.float64).reshape(-1, 4) for p in ds.pages])
    med = np.log([np.median(b[:, 3] - b[:, 1]), np.median(b[:, 2] - b[:, 0])])
    # two steps move the bias by about 2 x size_lr x lr (0.04 at warm-up); linear pixels would be e^med away
    assert np.allclose(m.head.sizes.bias.detach().numpy(), med, atol=0.2)
    with torch.no_grad():
        o = m.forward_outputs(torch.rand(1, 1, 40, 52))[0]
    assert torch.isfinite(o["sizes"]).all() and (o["sizes"] > 0).all()
    with pytest.raises(ValueError, match="sizes"):
        _run(tiny_dataset, tmp_path / "bad", sizes="sqrt")
