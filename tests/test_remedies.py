"""DWD's own remedies: cached class sizes (class_size_table, decode size_mode), the smoothing bias of
simulated size maps, and rare symbols pasted into the page margins."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dwd_fast
from dwd_fast.data import RareSymbolBank, paste_rare_symbols, reference_page
from tests.conftest import torch_or_skip
from tests.strategies import blob_maps


# ------------------------------------------------------------------------------------------------
# class_size_table
# ------------------------------------------------------------------------------------------------

@st.composite
def annotations(draw, max_pages=3, max_boxes=12, num_classes=6):
    pages = draw(st.integers(1, max_pages))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bl, ll = [], []
    for _ in range(pages):
        n = int(rng.integers(0, max_boxes + 1))
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.integers(0, 30, (n, 2)).astype(np.float64) + rng.choice([0.0, 0.5], (n, 2))
        bl.append(np.concatenate([xy, xy + wh], 1).astype(draw(st.sampled_from([np.float32, np.float64]))))
        ll.append(rng.integers(0, num_classes, n).astype(draw(st.sampled_from([np.int32, np.int64, np.uint8]))))
    return bl, ll


@given(annotations(), st.sampled_from(["median", "mean"]))
def test_class_size_table_matches_numpy(ann, stat):
    bl, ll = ann
    C = 7  # one more than the labels drawn: class 6 is never seen
    t = dwd_fast.class_size_table(bl, ll, C, stat=stat)
    b = np.concatenate(bl).astype(np.float64)
    lab = np.concatenate(ll).astype(np.int64)
    assert t.sizes.shape == (C, 2) and t.spread.shape == (C, 2) and t.counts.shape == (C,)
    for c in range(C):
        m = lab == c
        assert t.counts[c] == m.sum()
        assert t.seen[c] == m.any()
        if not m.any():
            assert np.isnan(t.sizes[c]).all() and np.isnan(t.spread[c]).all()
            continue
        h = b[m, 3] - b[m, 1]
        w = b[m, 2] - b[m, 0]
        f = np.median if stat == "median" else np.mean
        np.testing.assert_allclose(t.sizes[c], [f(h), f(w)], rtol=1e-12)
        for k, v in enumerate((h, w)):
            d = np.median(np.abs(v - f(v))) if stat == "median" else np.std(v)
            if f(v) > 0:
                np.testing.assert_allclose(t.spread[c, k], d / f(v), rtol=1e-12, atol=1e-15)
    # batched = concatenated, and numpy.asarray gives the sizes
    one = dwd_fast.class_size_table(b, lab, C, stat=stat)
    np.testing.assert_array_equal(one.sizes, t.sizes)
    np.testing.assert_array_equal(np.asarray(t), t.sizes)


def test_class_size_table_bad_input():
    b = np.array([[0, 0, 4, 10]], np.float32)
    lab = np.array([1])
    with pytest.raises(ValueError, match="stat"):
        dwd_fast.class_size_table(b, lab, 3, stat="mode")
    with pytest.raises(ValueError, match="labels"):
        dwd_fast.class_size_table(b, np.array([3]), 3)
    with pytest.raises(ValueError, match="labels"):
        dwd_fast.class_size_table(b, np.array([-1]), 3)
    with pytest.raises(ValueError, match="labels"):
        dwd_fast.class_size_table(b, np.array([1.0]), 3)
    with pytest.raises(ValueError, match="boxes"):
        dwd_fast.class_size_table(b[:, :3], lab, 3)
    with pytest.raises(ValueError, match="boxes"):
        dwd_fast.class_size_table(np.array([[4, 0, 0, 10]], np.float32), lab, 3)
    with pytest.raises(ValueError, match="boxes"):
        dwd_fast.class_size_table(np.array([[0, 0, np.nan, 10]]), lab, 3)
    with pytest.raises(ValueError, match="both"):
        dwd_fast.class_size_table([b], lab, 3)
    with pytest.raises(TypeError, match="num_classes"):
        dwd_fast.class_size_table(b, lab, 3.0)
    with pytest.raises(ValueError, match="num_classes"):
        dwd_fast.class_size_table(b, lab, 0)


# ------------------------------------------------------------------------------------------------
# decode(size_mode=...)
# ------------------------------------------------------------------------------------------------

def restate_size_mode(reg, size_mode, table, spread, class_confidence=0.5, class_spread=0.15):
    """Object by object, in plain Python: the boxes ``decode`` should return with a size mode, from the
    ``size_mode="regress"`` detections."""
    out = []
    for i in range(len(reg)):
        x1, y1, x2, y2 = (float(v) for v in reg.boxes[i])
        row, col = (float(v) for v in reg.centers[i])
        c = int(reg.labels[i])
        hw = [None, None]
        if 0 <= c < len(table) and not np.isnan(table[c][0]):
            for k in range(2):
                if size_mode == "class":
                    hw[k] = table[c][k]
                elif (float(reg.class_scores[i]) >= class_confidence
                      and (spread is None or spread[c][k] <= class_spread)):
                    hw[k] = table[c][k]
        if hw[0] is not None:
            y1, y2 = row + 0.5 - hw[0] / 2, row + 0.5 + hw[0] / 2
        if hw[1] is not None:
            x1, x2 = col + 0.5 - hw[1] / 2, col + 0.5 + hw[1] / 2
        out.append([x1, y1, x2, y2])
    return np.asarray(out, np.float32).reshape(-1, 4)


@given(blob_maps(max_side=30, levels=12), st.integers(0, 2**31), st.sampled_from(["class", "blend"]),
       st.booleans(), st.sampled_from([0.0, 0.5, 0.9]), st.sampled_from([0.0, 0.15, 1.0]))
def test_decode_size_mode_matches_restatement(e, seed, mode, as_table, conf, spread_max):
    H, W = e.shape
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 6, (H, W)).astype(np.int32)  # id 5 is beyond the table (falls back)
    sizes = (rng.random((2, H, W)) * 20).astype(np.float32)
    if as_table:
        boxes = rng.uniform(0, 20, (30, 2))
        boxes = np.concatenate([boxes, boxes + rng.uniform(0.5, 15, (30, 2))], 1)
        tab = dwd_fast.class_size_table(boxes, rng.integers(0, 4, 30), 5)  # class 4 never seen
        table, spread = tab.sizes, tab.spread
        arg = tab
    else:
        table = rng.uniform(1, 20, (5, 2))
        table[2] = np.nan
        spread, arg = None, table
    reg = dwd_fast.decode(e, classes, sizes, cutoff=3, min_size=1)
    det = dwd_fast.decode(e, classes, sizes, cutoff=3, min_size=1, size_mode=mode, class_sizes=arg,
                          class_confidence=conf, class_spread=spread_max)
    for f in ("labels", "scores", "centers", "areas", "class_scores"):
        np.testing.assert_array_equal(getattr(det, f), getattr(reg, f))
    want = restate_size_mode(reg, mode, table, spread, conf, spread_max)
    np.testing.assert_allclose(det.boxes, want, rtol=0, atol=1e-4)
    assert det.boxes.dtype == np.float32


def _constant_size_page():
    """Objects whose class fixes their size exactly, and a size map that is 40% too large."""
    rng = np.random.default_rng(3)
    sizes_of = {1: (9, 5), 2: (15, 11), 3: (5, 21)}
    boxes, labels = [], []
    for i in range(60):
        c = int(rng.integers(1, 4))
        h, w = sizes_of[c]
        y, x = 20 + 40 * (i // 10), 20 + 40 * (i % 10)
        boxes.append([x - w / 2, y - h / 2, x + w / 2, y + h / 2])
        labels.append(c)
    boxes = np.asarray(boxes, np.float32)
    labels = np.asarray(labels, np.int32)
    t = dwd_fast.encode(boxes, labels, (260, 420), levels=10)
    return boxes, labels, t


def test_decode_class_sizes_recover_constant_sizes():
    boxes, labels, t = _constant_size_page()
    table = dwd_fast.class_size_table(boxes, labels, 4)
    biased = np.asarray(t.sizes) * 1.4
    reg = dwd_fast.decode(t.energy, t.classes, biased, cutoff=2, min_size=1)
    det = dwd_fast.decode(t.energy, t.classes, biased, cutoff=2, min_size=1, size_mode="class", class_sizes=table)
    assert len(det) == len(boxes)
    hw = np.stack([det.boxes[:, 3] - det.boxes[:, 1], det.boxes[:, 2] - det.boxes[:, 0]], 1)
    np.testing.assert_allclose(hw, table.sizes[det.labels], rtol=0, atol=1e-4)
    reg_hw = np.stack([reg.boxes[:, 3] - reg.boxes[:, 1], reg.boxes[:, 2] - reg.boxes[:, 0]], 1)
    assert np.all(reg_hw > hw + 1)  # the regressed sizes were wrong; the cached ones are not
    # class scores are all 1 and the sizes per class constant (spread 0): blend = class
    blend = dwd_fast.decode(t.energy, t.classes, biased, cutoff=2, min_size=1, size_mode="blend", class_sizes=table)
    np.testing.assert_array_equal(blend.boxes, det.boxes)


@pytest.mark.parametrize("mode", ["regress", "class", "blend"])
def test_decode_size_mode_same_on_host_backend(page250, mode):
    p = page250
    table = dwd_fast.class_size_table(p.boxes, p.labels, 120)
    kw = dict(cutoff=7, size_mode=mode, class_sizes=table, class_spread=0.3)
    cpu = dwd_fast.decode(p.energy, p.classes, p.sizes, backend="cpu", **kw)
    host = dwd_fast.decode(p.energy, p.classes, p.sizes, backend="host", **kw)
    np.testing.assert_array_equal(cpu.boxes, host.boxes)
    batched = dwd_fast.decode(np.stack([p.energy] * 2), np.stack([p.classes] * 2), np.stack([p.sizes] * 2), **kw)
    for d in batched:
        np.testing.assert_array_equal(d.boxes, cpu.boxes)


def test_decode_size_mode_torch_tensors():
    torch = torch_or_skip()
    p = reference_page(50, seed=1, shape=(300, 300))
    table = dwd_fast.class_size_table(p.boxes, p.labels, 120)
    a = dwd_fast.decode(p.energy, p.classes, p.sizes, size_mode="class", class_sizes=table)
    b = dwd_fast.decode(torch.from_numpy(p.energy), torch.from_numpy(p.classes), torch.from_numpy(p.sizes),
                        size_mode="class", class_sizes=torch.from_numpy(table.sizes))
    assert isinstance(b.boxes, torch.Tensor)
    np.testing.assert_array_equal(b.boxes.numpy(), a.boxes)


def test_decode_size_mode_bad_input(page250):
    p = page250
    table = dwd_fast.class_size_table(p.boxes, p.labels, 120)
    args = (p.energy, p.classes, p.sizes)
    with pytest.raises(ValueError, match="size_mode"):
        dwd_fast.decode(*args, size_mode="cached", class_sizes=table)
    with pytest.raises(ValueError, match="class_sizes"):
        dwd_fast.decode(*args, size_mode="class")
    with pytest.raises(ValueError, match="class_sizes"):
        dwd_fast.decode(*args, size_mode="class", class_sizes=np.ones((120, 3)))
    with pytest.raises(ValueError, match="class_sizes"):
        dwd_fast.decode(*args, size_mode="class", class_sizes=-np.ones((120, 2)))
    half = np.ones((120, 2))
    half[3, 0] = np.nan
    with pytest.raises(ValueError, match="class_sizes"):
        dwd_fast.decode(*args, size_mode="class", class_sizes=half)
    with pytest.raises(ValueError, match="classes"):
        dwd_fast.decode(p.energy, None, p.sizes, size_mode="class", class_sizes=table)
    with pytest.raises(ValueError, match="class_confidence"):
        dwd_fast.decode(*args, size_mode="blend", class_sizes=table, class_confidence=1.5)
    with pytest.raises(TypeError, match="class_spread"):
        dwd_fast.decode(*args, size_mode="blend", class_sizes=table, class_spread="x")
    logits = np.zeros((4, 20, 20), np.float32)
    with pytest.raises(ValueError, match="rows"):
        dwd_fast.decode(np.zeros((20, 20), np.uint8), logits, size_mode="class", class_sizes=np.ones((3, 2)))


# ------------------------------------------------------------------------------------------------
# simulate_outputs(size_bias=...)
# ------------------------------------------------------------------------------------------------

def test_simulate_size_bias_pulls_sizes_to_the_page_mean():
    p = reference_page(40, seed=2, shape=(400, 400))
    t, objects = dwd_fast.data.box_targets(p.boxes, p.labels, (400, 400), levels=16)
    kw = dict(seed=5, objects=objects, size_noise=0.0, miss=0.0, merge=0.0, class_error=0.0)
    base = dwd_fast.data.simulate_outputs(t, **kw)
    same = dwd_fast.data.simulate_outputs(t, size_bias=0.0, **kw)
    np.testing.assert_array_equal(base.sizes, same.sizes)
    half = dwd_fast.data.simulate_outputs(t, size_bias=0.5, **kw)
    full = dwd_fast.data.simulate_outputs(t, size_bias=1.0, **kw)
    for o in (half, full):  # only the sizes change
        np.testing.assert_array_equal(o.energy, base.energy)
        np.testing.assert_array_equal(o.classes, base.classes)
    fg = base.sizes[0] > 0  # pixels owned by an object
    hw = np.stack([p.boxes[:, 3] - p.boxes[:, 1], p.boxes[:, 2] - p.boxes[:, 0]])  # (2, n)
    present = np.bincount(objects.ravel(), minlength=hw.shape[1] + 1)[1:] > 0
    mean = hw[:, present].mean(1)
    for k in range(2):
        np.testing.assert_allclose(full.sizes[k][fg], mean[k], rtol=1e-5)
        # half-way: (s + mean) / 2 for the object owning each pixel
        own = base.sizes[k][fg]
        np.testing.assert_allclose(half.sizes[k][fg], (own + mean[k]) / 2, rtol=1e-5)
    # small sides grow, large sides shrink
    small = base.sizes[0][fg] < mean[0] - 1
    assert (half.sizes[0][fg][small] > base.sizes[0][fg][small]).all()
    large = base.sizes[0][fg] > mean[0] + 1
    assert small.any() and large.any()
    assert (half.sizes[0][fg][large] < base.sizes[0][fg][large]).all()
    with pytest.raises(ValueError, match="size_bias"):
        dwd_fast.data.simulate_outputs(t, size_bias=1.5, **kw)
    with pytest.raises(TypeError, match="size_bias"):
        dwd_fast.data.simulate_outputs(t, size_bias="a", **kw)


# ------------------------------------------------------------------------------------------------
# RareSymbolBank and paste_rare_symbols
# ------------------------------------------------------------------------------------------------

def _toy_page(seed, H=400, W=500, n=40, classes=6, top=120):
    """A grey page with dark rectangles as symbols below row ``top``; class c is ~c times rarer than 0."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W), 255, np.uint8)
    boxes, labels = [], []
    for _ in range(n):
        h, w = rng.integers(3, 30, 2)
        y, x = rng.integers(top, H - h), rng.integers(0, W - w)
        c = int(min(classes - 1, rng.geometric(0.5) - 1))
        img[y:y + h, x:x + w] = 40 * c
        boxes.append([x, y, x + w, y + h])
        labels.append(c)
    return img, np.asarray(boxes, np.float32), np.asarray(labels, np.int64)


@pytest.fixture(scope="module")
def bank():
    return RareSymbolBank.from_pages([_toy_page(s) for s in range(4)], num_classes=8)


def test_bank_counts_and_probabilities(bank):
    pages = [_toy_page(s) for s in range(4)]
    lab = np.concatenate([p[2] for p in pages])
    np.testing.assert_array_equal(bank.counts, np.bincount(lab, minlength=8))
    assert len(bank) == len(bank.labels) == bank.boxes.shape[0]
    for patch, b in zip(bank.patches, bank.boxes):  # each box lies in its patch
        assert 0 <= b[0] <= b[2] <= patch.shape[1] and 0 <= b[1] <= b[3] <= patch.shape[0]
    p = bank.probabilities((130, 80))
    drawable = np.zeros(8, bool)
    drawable[bank.labels] = True
    want = np.where(drawable, 1 / np.maximum(bank.counts, 1), 0)
    np.testing.assert_allclose(p, want / want.sum())
    assert p[bank.counts == 0].sum() == 0
    # a crop too small for any patch of a class leaves it out
    small = bank.probabilities((6, 6))
    assert small.sum() == 0 or np.isclose(small.sum(), 1)


@given(st.integers(0, 1000), st.integers(0, 30), st.sampled_from(["top", "page", (0, 0, 300, 200)]))
def test_paste_keeps_boxes_and_adds_exactly_the_pasted(bank, seed, n, region):
    img, boxes, labels = _toy_page(100 + seed % 7)
    r = paste_rare_symbols(img, boxes, labels, bank, n=n, crop=(40, 30), region=region, seed=seed)
    N = boxes.shape[0]
    assert r.pasted + r.skipped == n
    assert r.boxes.shape == (N + r.pasted, 4) and r.labels.shape == (N + r.pasted,)
    np.testing.assert_array_equal(r.boxes[:N], boxes)
    np.testing.assert_array_equal(r.labels[:N], labels)
    assert r.image.shape == img.shape and r.image.dtype == img.dtype
    new = r.boxes[N:]
    # pasted boxes overlap no original box (nor each other)
    for b in new:
        ix = np.minimum(b[2], boxes[:, 2]) - np.maximum(b[0], boxes[:, 0])
        iy = np.minimum(b[3], boxes[:, 3]) - np.maximum(b[1], boxes[:, 1])
        assert not ((ix > 0) & (iy > 0)).any()
    if region == "top":
        assert (new[:, 3] <= boxes[:, 1].min()).all()
    elif region != "page":
        assert (new[:, 2] <= 300).all() and (new[:, 3] <= 200).all()
    # the page only changed near pasted symbols, and only got darker; pixels of original boxes never change
    changed = r.image != img
    assert (r.image <= img).all()
    inside = np.zeros(img.shape, bool)
    for x1, y1, x2, y2 in new:
        inside[max(0, int(y1) - 3):int(np.ceil(y2)) + 3, max(0, int(x1) - 3):int(np.ceil(x2)) + 3] = True
    assert not (changed & ~inside).any()
    for x1, y1, x2, y2 in boxes.astype(int):
        assert not changed[y1:y2, x1:x2].any()
    # determinism
    r2 = paste_rare_symbols(img, boxes, labels, bank, n=n, crop=(40, 30), region=region, seed=seed)
    np.testing.assert_array_equal(r2.image, r.image)
    np.testing.assert_array_equal(r2.boxes, r.boxes)


def test_paste_skips_when_full_and_seeds_differ(bank):
    img, boxes, labels = _toy_page(9)
    # top margin: rows [0, min y1 - 2), 500 wide: a grid of 40 x 30 slots, 2 px apart
    top = int(np.floor(boxes[:, 1].min())) - 2
    rows = sum(1 for k in range(100) if k * 32 + 30 <= top)
    cols = sum(1 for k in range(100) if k * 42 + 40 <= 500)
    r = paste_rare_symbols(img, boxes, labels, bank, n=60, crop=(40, 30), seed=0)
    assert rows * cols < 60
    assert r.pasted == rows * cols and r.skipped == 60 - r.pasted
    a = paste_rare_symbols(img, boxes, labels, bank, n=12, crop=(40, 30), seed=1)
    b = paste_rare_symbols(img, boxes, labels, bank, n=12, crop=(40, 30), seed=2)
    assert not np.array_equal(a.labels, b.labels) or not np.array_equal(a.image, b.image)
    none = paste_rare_symbols(img, boxes, labels, bank, n=5, crop=(40, 30), region=(0, 0, 30, 30), seed=0)
    assert none.pasted == 0 and none.skipped == 5 and np.array_equal(none.image, img)


def test_paste_samples_inversely_to_frequency(bank):
    img = np.full((3000, 3000), 255, np.uint8)
    empty = np.zeros((0, 4), np.float32)
    r = paste_rare_symbols(img, empty, np.zeros(0, np.int64), bank, n=2000, crop=(40, 30), region="page", seed=0,
                           gap=0)
    assert r.skipped == 0
    got = np.bincount(r.labels, minlength=8) / 2000
    p = bank.probabilities((40, 30))
    assert (np.abs(got - p) <= 4 * np.sqrt(p * (1 - p) / 2000) + 1e-9).all(), (got, p)
    assert got[np.argmin(np.where(bank.counts > 0, bank.counts, 10**9))] > got[np.argmax(bank.counts)]


def test_paste_float_and_color_images(bank):
    img, boxes, labels = _toy_page(3)
    u8 = paste_rare_symbols(img, boxes, labels, bank, n=6, crop=(40, 30), seed=4)
    f = paste_rare_symbols(img.astype(np.float32) / 255, boxes, labels, bank, n=6, crop=(40, 30), seed=4)
    np.testing.assert_allclose(f.image * 255, u8.image, atol=1e-3)
    rgb = paste_rare_symbols(np.repeat(img[:, :, None], 3, 2), boxes, labels, bank, n=6, crop=(40, 30), seed=4)
    for ch in range(3):
        np.testing.assert_array_equal(rgb.image[:, :, ch], u8.image)


def test_paste_bad_input(bank):
    img, boxes, labels = _toy_page(3)
    with pytest.raises(TypeError, match="bank"):
        paste_rare_symbols(img, boxes, labels, object(), seed=0)
    with pytest.raises(ValueError, match="image"):
        paste_rare_symbols(img.astype(np.int32), boxes, labels, bank, seed=0)
    with pytest.raises(ValueError, match="labels"):
        paste_rare_symbols(img, boxes, labels[:-1], bank, seed=0)
    with pytest.raises(ValueError, match="n must"):
        paste_rare_symbols(img, boxes, labels, bank, n=-1, seed=0)
    with pytest.raises(TypeError, match="crop"):
        paste_rare_symbols(img, boxes, labels, bank, crop=5, seed=0)
    with pytest.raises(ValueError, match="region"):
        paste_rare_symbols(img, boxes, labels, bank, region="bottom", seed=0)
    with pytest.raises(TypeError, match="pages"):
        RareSymbolBank.from_pages([img])
    with pytest.raises(ValueError, match="image"):
        RareSymbolBank.from_pages([(img.astype(np.float32), boxes, labels)])


def test_torch_transform_in_a_dataloader(bank):
    torch = torch_or_skip()
    from dwd_fast.torch import PasteRareSymbols

    pages = [_toy_page(s) for s in range(10, 14)]

    class Pages(torch.utils.data.Dataset):
        def __init__(self, transform):
            self.transform = transform

        def __len__(self):
            return len(pages)

        def __getitem__(self, i):
            img, b, lab = pages[i]
            x = torch.from_numpy(img).float()[None] / 255
            return self.transform(x, {"boxes": torch.from_numpy(b), "labels": torch.from_numpy(lab)})

    def run():
        torch.manual_seed(0)
        dl = torch.utils.data.DataLoader(Pages(PasteRareSymbols(bank, n=8, crop=(40, 30))), batch_size=2,
                                         collate_fn=lambda items: items)
        return [item for batch in dl for item in batch]

    a, b = run(), run()
    for (xa, ta), (xb, tb), (img, boxes, labels) in zip(a, b, pages):
        assert xa.shape == (1,) + img.shape and xa.dtype == torch.float32
        torch.testing.assert_close(xa, xb)
        assert torch.equal(ta["labels"], tb["labels"])
        N = boxes.shape[0]
        assert torch.equal(ta["boxes"][:N], torch.from_numpy(boxes))
        assert ta["boxes"].shape[0] == N + 8
        r = paste_rare_symbols(img.astype(np.float32) / 255, boxes, labels, bank, n=8, crop=(40, 30),
                               seed=np.random.default_rng(0))
        assert r.pasted == 8
    # an integer seed: reproducible across objects
    t1, t2 = PasteRareSymbols(bank, n=4, crop=(40, 30), seed=3), PasteRareSymbols(bank, n=4, crop=(40, 30), seed=3)
    img, boxes, labels = pages[0]
    x = torch.from_numpy(img)
    tg = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}
    (ya, sa), (yb, sb) = t1(x, tg), t2(x, tg)
    assert ya.dtype == torch.uint8 and torch.equal(ya, yb) and torch.equal(sa["boxes"], sb["boxes"])
    with pytest.raises(TypeError, match="bank"):
        PasteRareSymbols(None)
