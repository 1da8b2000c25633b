"""encode: against an independent numpy oracle of the documented definition, against skimage.draw
supports and the level formula, cpu == host in every order, and bad input."""

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from skimage import draw

import dwd_fast
from dwd_fast.encode import BINS, level_table
from tests.conftest import assert_unchanged, torch_or_skip

# The oracle below states the definition with explicit options; these tests call encode with its former
# defaults (oval markers, "max" overlaps, no minimum marker) unless they pass options themselves. The new
# defaults (box, "smallest", min_marker=6) are tested in tests/test_ceiling.py.
FORMER_DEFAULTS = {"marker": "oval", "overlap": "max", "min_marker": 0.0}
encode = functools.partial(dwd_fast.encode, **FORMER_DEFAULTS)

ORDERS = ["forward", "reversed", "shuffled"]
MARKERS = ["oval", "box", "hull"]
OVERLAPS = ["max", "nearest", "last"]


# --------------------------------------------------------------------------------------------------
# Oracle: the definition of dwd_fast.encode's docstring / csrc/dwd/encode.h, re-stated with numpy
# int64 over each box's whole canvas (no rectangles, no packed keys, no per-column tricks).
# --------------------------------------------------------------------------------------------------

def _frame(box, size, stride):
    """Marker frame in float64: centre, half-axis vectors U, V, and (height, width)."""
    b = np.asarray(box, np.float64) / stride
    if b.shape == (4,):
        x1, y1, x2, y2 = b
        c = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
        if isinstance(size, tuple):
            u, v = np.array([size[1] / 2, 0.0]), np.array([0.0, size[0] / 2])
        else:
            u, v = np.array([(x2 - x1) * (size / 2), 0.0]), np.array([0.0, (y2 - y1) * (size / 2)])
        return c, u, v, (y2 - y1, x2 - x1)
    c = b.mean(0)
    u = ((b[1] - b[0]) + (b[2] - b[3])) / 4
    v = ((b[3] - b[0]) + (b[2] - b[1])) / 4
    if isinstance(size, tuple):
        u = u / np.hypot(*u) * (size[1] / 2)
        v = v / np.hypot(*v) * (size[0] / 2)
    else:
        u, v = u * size, v * size
    return c, u, v, (b[:, 1].max() - b[:, 1].min(), b[:, 0].max() - b[:, 0].min())


def oracle_bins(box, size, stride, marker, H, W):
    """Distance bin of every pixel of the canvas (BINS = outside) and the squared centre distance."""
    c, u, v, hw = _frame(box, size, stride)
    q = lambda x: int(np.rint(x * 256))  # noqa: E731
    cx, cy, ux, uy, vx, vy = q(c[0]), q(c[1]), q(u[0]), q(u[1]), q(v[0]), q(v[1])
    a, bl = q(np.hypot(u[0], u[1])), q(np.hypot(v[0], v[1]))
    det = abs(ux * vy - uy * vx)
    rr, cc = np.mgrid[:H, :W].astype(np.int64)
    dx, dy = 256 * cc + 128 - cx, 256 * rr + 128 - cy
    if det == 0:
        return np.full((H, W), BINS, np.int64), dx * dx + dy * dy, hw
    s = (np.abs(dx * vy - dy * vx) << 12) // det
    t = (np.abs(ux * dy - uy * dx) << 12) // det
    inside = (s < BINS) & (t < BINS)
    if marker == "oval":
        r2 = s * s + t * t
        inside &= r2 < (1 << 24)
        b = np.floor(np.sqrt(r2.astype(np.float64))).astype(np.int64)
        b -= (b * b > r2)
        b += ((b + 1) * (b + 1) <= r2)
    elif marker == "box":
        b = np.maximum(s, t)
    else:
        b = BINS - np.minimum((BINS - s) * a, (BINS - t) * bl) // min(a, bl)
    return np.where(inside, b, BINS), dx * dx + dy * dy, hw


def oracle_encode(boxes, labels, shape, *, levels=20, marker="oval", size=0.8, profile="linear", overlap="max",
                  stride=1):
    H, W = -(-shape[0] // stride), -(-shape[1] // stride)
    table = level_table(profile, levels)
    energy = np.zeros((H, W), np.uint8)
    classes = np.zeros((H, W), np.int32)
    sizes = np.zeros((2, H, W), np.float32)
    best_d2 = np.full((H, W), np.iinfo(np.int64).max)
    for box, lab in zip(boxes, labels):
        b, d2, hw = oracle_bins(box, size, stride, marker, H, W)
        lvl = np.where(b < BINS, table[np.minimum(b, BINS - 1)], 0)
        if overlap == "max":
            win = lvl > energy
        elif overlap == "last":
            win = lvl > 0
        else:
            win = (lvl > 0) & (d2 < best_d2)
            best_d2[win] = d2[win]
        energy[win] = lvl[win]
        classes[win] = lab
        sizes[0][win] = np.float32(hw[0])
        sizes[1][win] = np.float32(hw[1])
    return energy, classes, sizes


def assert_targets_equal(t, e, c, s):
    np.testing.assert_array_equal(t.energy, e)
    np.testing.assert_array_equal(t.classes, c)
    np.testing.assert_array_equal(t.sizes, s)


# --------------------------------------------------------------------------------------------------
# Random scenes
# --------------------------------------------------------------------------------------------------

@st.composite
def scenes(draw_, oriented=None, max_side=48):
    H = draw_(st.integers(1, max_side))
    W = draw_(st.integers(1, max_side))
    rng = np.random.default_rng(draw_(st.integers(0, 2**31)))
    n = draw_(st.integers(0, 14))
    if oriented is None:
        oriented = draw_(st.booleans())
    boxes = []
    while len(boxes) < n:
        cx, cy = rng.uniform(-3, W + 3), rng.uniform(-3, H + 3)
        w, h = rng.uniform(0.2, 20), rng.uniform(0.2, 20)
        if rng.random() < 0.4:  # integer and half-integer geometry: exact ties and boundary pixels
            cx, cy, w, h = np.round(cx * 2) / 2, np.round(cy * 2) / 2, max(np.round(w), 1), max(np.round(h), 1)
        if oriented:
            th = rng.uniform(0, np.pi)
            R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
            corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2 @ R.T + [cx, cy]
            lo, hi = corners.min(0), corners.max(0)
            if hi[0] <= 0 or hi[1] <= 0 or lo[0] >= W or lo[1] >= H:
                continue
            boxes.append(corners)
        else:
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
            if x2 <= 0 or y2 <= 0 or x1 >= W or y1 >= H:
                continue
            boxes.append([x1, y1, x2, y2])
    boxes = np.asarray(boxes, np.float32).reshape((-1, 4, 2) if oriented else (-1, 4))
    labels = rng.integers(0, 6, len(boxes)).astype(np.int32)
    return boxes, labels, (H, W)


options = st.fixed_dictionaries({
    "levels": st.sampled_from([2, 5, 16, 20, 256]),
    "marker": st.sampled_from(MARKERS),
    "size": st.sampled_from([0.8, 1.0, 0.5, 1.7, (5.0, 3.0), (1.0, 1.0), (7.5, 12.0)]),
    "profile": st.sampled_from(["linear", "quadratic", "root"]),
    "overlap": st.sampled_from(OVERLAPS),
})


@given(scene=scenes(), opts=options)
def test_equals_oracle(scene, opts):
    boxes, labels, shape = scene
    before = boxes.copy()
    t = encode(boxes, labels, shape, **opts)
    assert t.energy.dtype == np.uint8 and t.classes.dtype == np.int32 and t.sizes.dtype == np.float32
    assert t.energy.shape == shape and t.sizes.shape == (2,) + shape
    assert_targets_equal(t, *oracle_encode(boxes, labels, shape, **opts))
    assert_unchanged(before, boxes)


@given(scene=scenes(), opts=options, seed=st.integers(0, 1000))
def test_host_algorithm_equals_cpu_in_every_order(scene, opts, seed):
    boxes, labels, shape = scene
    cpu = encode(boxes, labels, shape, **opts)
    for order in ORDERS:
        host = encode(boxes, labels, shape, backend="host", order=order, seed=seed, **opts)
        assert_targets_equal(host, cpu.energy, cpu.classes, cpu.sizes)


@given(scene=scenes(oriented=False), stride=st.sampled_from([2, 3, 4]))
def test_strides(scene, stride):
    boxes, labels, shape = scene
    t1, ts = encode(boxes, labels, shape, strides=(1, stride))
    assert t1.stride == 1 and ts.stride == stride
    assert ts.energy.shape == (-(-shape[0] // stride), -(-shape[1] // stride))
    assert_targets_equal(ts, *oracle_encode(boxes, labels, shape, stride=stride))
    assert_targets_equal(t1, *oracle_encode(boxes, labels, shape))


# --------------------------------------------------------------------------------------------------
# Against skimage.draw (independent geometry) and the level formula
# --------------------------------------------------------------------------------------------------

def _exact_d(box, size, marker, H, W):
    """Float normalized distance of every pixel centre (no fixed point): for the skimage checks."""
    c, u, v, _ = _frame(box, size, 1)
    rr, cc = np.mgrid[:H, :W]
    p = np.stack([cc + 0.5 - c[0], rr + 0.5 - c[1]], -1)
    M = np.array([u, v]).T  # p = s u + t v
    st_ = np.abs(p @ np.linalg.inv(M).T)
    s, t = st_[..., 0], st_[..., 1]
    return np.hypot(s, t) if marker == "oval" else np.maximum(s, t)


@pytest.mark.parametrize("seed", range(6))
def test_supports_equal_skimage_draw_and_levels_follow_the_formula(seed):
    rng = np.random.default_rng(seed)
    H, W = 60, 70
    for _ in range(40):
        # geometry on the 1/256 grid, so the fixed point is exact
        cx, cy = rng.integers(0, 2 * W) / 2, rng.integers(0, 2 * H) / 2
        w, h = rng.integers(2, 60) / 2, rng.integers(2, 60) / 2
        box = np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]])
        for marker in ("oval", "box"):
            t = encode(box, [1], (H, W), marker=marker, size=1.0, levels=20)
            d = _exact_d(box[0], 1.0, marker, H, W)
            if marker == "oval":  # skimage: pixel (r, c) sits at (r, c); ours at (r + 1/2, c + 1/2)
                rr, cc = draw.ellipse(cy - 0.5, cx - 0.5, h / 2, w / 2, shape=(H, W))
            else:
                y1, x1, y2, x2 = cy - h / 2 - 0.5, cx - w / 2 - 0.5, cy + h / 2 - 0.5, cx + w / 2 - 0.5
                rr, cc = draw.polygon([y1, y1, y2, y2], [x1, x2, x2, x1], shape=(H, W))
            sk = np.zeros((H, W), bool)
            sk[rr, cc] = True
            tab = level_table("linear", 20)
            lvl = lambda dd: tab[np.clip((dd * BINS).astype(int), 0, BINS - 1)] * (dd < 1)  # noqa: E731
            support = lvl(d) > 0
            # away from the boundary and from the last level's edge (the fixed point is a few bins off)
            sure = (np.abs(d - 1) > 1e-3) & ((lvl(d - 3 / BINS) > 0) == (lvl(d + 3 / BINS) > 0))
            np.testing.assert_array_equal((t.energy > 0)[sure], (sk & support)[sure])
            # levels: round-half-up of (1 - d) * 19 at the bin centre, where the fixed point's few bins
            # of quantization (per-axis floors) cannot matter
            def formula(dd):
                b = np.clip(np.floor(dd * BINS), 0, BINS - 1)
                return np.floor((1 - (b + 0.5) / BINS) * 19 + 0.5)
            want = formula(d)
            ok = sure & (d < 1) & (formula(d - 3 / BINS) == want) & (formula(d + 3 / BINS) == want)
            assert ok.any() or (d < 1).sum() < 40
            np.testing.assert_array_equal(t.energy[ok], want[ok])


def test_oriented_box_support_equals_skimage_polygon():
    H, W = 50, 50
    corners = np.array([[[10, 25], [25, 10], [40, 25], [25, 40]]], np.float64)  # a square at 45 degrees
    t = encode(corners, [2], (H, W), marker="box", size=1.0)
    rr, cc = draw.polygon(corners[0, :, 1] - 0.5, corners[0, :, 0] - 0.5, shape=(H, W))
    sk = np.zeros((H, W), bool)
    sk[rr, cc] = True
    d = _exact_d(corners[0], 1.0, "box", H, W)
    sure = np.abs(d - 1) > 1e-3
    inside = t.classes == 2
    np.testing.assert_array_equal(inside[sure], (sk & (level_table("linear", 20)[np.minimum(
        (d * BINS).astype(int), BINS - 1)] > 0))[sure])
    np.testing.assert_array_equal(t.sizes[:, 25, 25], [30, 30])


# --------------------------------------------------------------------------------------------------
# Conventions, examples, batches, profiles
# --------------------------------------------------------------------------------------------------

def test_docstring_example_and_symmetry():
    t = encode(np.array([[1, 1, 6, 6]]), np.array([3]), (7, 7), levels=5, size=1.0)
    e = t.energy
    np.testing.assert_array_equal(e, e[::-1])
    np.testing.assert_array_equal(e, e.T)
    assert e[3, 3] == 4 and e[0].sum() == 0
    assert set(np.unique(t.classes[e > 0])) == {3}
    assert not t.classes[e == 0].any() and not t.sizes[:, e == 0].any()


def test_ties_first_drawn_wins_under_max_and_last_wins_under_last():
    boxes = np.array([[2, 2, 8, 8], [2, 2, 8, 8]], np.float32)
    t = encode(boxes, [1, 2], (10, 10))
    assert set(np.unique(t.classes[t.energy > 0])) == {1}
    t = encode(boxes, [1, 2], (10, 10), overlap="last")
    assert set(np.unique(t.classes[t.energy > 0])) == {2}
    t = encode(boxes, [1, 2], (10, 10), overlap="nearest")
    assert set(np.unique(t.classes[t.energy > 0])) == {1}


def test_nearest_splits_between_centres():
    boxes = np.array([[0, 0, 20, 10], [10, 0, 30, 10]], np.float32)
    t = encode(boxes, [1, 2], (10, 30), overlap="nearest", size=1.0)
    cols1 = np.nonzero((t.classes == 1).any(0))[0]
    cols2 = np.nonzero((t.classes == 2).any(0))[0]
    assert cols1.max() < 15 <= cols2.min()  # column 14's centre 14.5 is nearer to 10 than to 20


def test_batch_equals_single_images():
    rng = np.random.default_rng(3)
    bl = []
    for k in (3, 0, 5):
        xy, wh = rng.uniform(0, 28, (k, 2)), rng.uniform(2, 12, (k, 2))
        bl.append(np.concatenate([xy, xy + wh], 1).astype(np.float32))
    ll = [np.arange(len(b), dtype=np.int32) + 1 for b in bl]
    t = encode(bl, ll, (32, 33), overlap="nearest")
    assert t.energy.shape == (3, 32, 33) and t.sizes.shape == (3, 2, 32, 33)
    for k in range(3):
        s = encode(bl[k], ll[k], (32, 33), overlap="nearest")
        assert_targets_equal(s, t.energy[k], t.classes[k], t.sizes[k])


def test_callable_and_table_profiles():
    box = np.array([[0, 0, 21, 21]], np.float32)
    lin = encode(box, [1], (21, 21), size=1.0)
    same = encode(box, [1], (21, 21), size=1.0, profile=lambda d: 1 - d)
    np.testing.assert_array_equal(lin.energy, same.energy)
    step = encode(box, [1], (21, 21), size=1.0, levels=3, profile=[1.0, 0.5])
    assert set(np.unique(step.energy)) == {0, 1, 2}
    np.testing.assert_array_equal(level_table([1.0, 0.5], 3)[:BINS // 2], 2)
    np.testing.assert_array_equal(level_table([1.0, 0.5], 3)[BINS // 2:], 1)
    q = encode(box, [1], (21, 21), size=1.0, profile="quadratic")
    assert (q.energy <= lin.energy).all() and q.energy.max() == 19


def test_level_table_rounding():
    tab = level_table("linear", 20)
    assert tab[0] == 19 and tab[-1] == 0
    d = (np.arange(BINS) + 0.5) / BINS
    np.testing.assert_array_equal(tab, np.floor((1 - d) * 19 + 0.5).astype(np.uint8))


def test_partly_outside_boxes_are_clipped_and_class_zero_allowed():
    t = encode(np.array([[-5, -5, 5, 5]], np.float32), [0], (8, 8))
    assert t.energy[0, 0] > 0 and t.energy[7, 7] == 0
    assert not t.classes.any()


def test_empty_inputs():
    t = encode(np.zeros((0, 4), np.float32), np.zeros(0, np.int32), (5, 6))
    assert t.energy.shape == (5, 6) and not t.energy.any()
    t = encode([], None, (5, 6))
    assert not t.energy.any()


def test_tiny_marker_draws_nothing_or_its_pixel():
    t = encode(np.array([[2, 2, 2.001, 2.001]]), [1], (5, 5))
    assert not t.energy.any()
    t = encode(np.array([[2, 2, 3, 3]]), [1], (5, 5))  # the centre pixel only
    assert t.energy[2, 2] == 19 and t.energy.sum() == 19


def test_torch_in_torch_out():
    torch = torch_or_skip()
    t = encode(torch.tensor([[1.0, 1.0, 6.0, 6.0]]), torch.tensor([2]), (7, 7))
    assert isinstance(t.energy, torch.Tensor) and t.classes.dtype == torch.int32


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("boxes, msg", [
    ([[1, 1, 1, 5]], "degenerate or has a negative size"),
    ([[5, 1, 2, 5]], "degenerate or has a negative size"),
    ([[1, np.nan, 3, 5]], "not finite"),
    ([[1, 1, np.inf, 5]], "not finite"),
    ([[20, 1, 25, 5]], "lies outside the image"),
    ([[-9, 1, 0, 5]], "lies outside the image"),
    ([[1, 1, 3]], r"must be \(N, 4\) boxes"),
    ([[[0, 0], [1, 1], [2, 2], [3, 3]]], "zero area"),
    ([[0, 0, 5000, 5]], "markers are limited"),
])
def test_bad_boxes(boxes, msg):
    with pytest.raises(ValueError, match=msg):
        encode(np.asarray(boxes, np.float64), None, (10, 10))


@pytest.mark.parametrize("kw, exc, msg", [
    ({"size": -0.5}, ValueError, "size must be a fraction > 0"),
    ({"size": (3, -1)}, ValueError, "positive sizes"),
    ({"size": (3, np.nan)}, ValueError, "positive sizes"),
    ({"levels": 1}, ValueError, "levels must be an integer"),
    ({"levels": 300}, ValueError, "levels must be an integer"),
    ({"marker": "star"}, ValueError, "marker must be one of"),
    ({"overlap": "min"}, ValueError, "overlap must be one of"),
    ({"profile": "cubic"}, ValueError, "profile must be one of"),
    ({"profile": lambda d: 2 * d}, ValueError, r"profile values must be finite and in \[0, 1\]"),
    ({"profile": [np.nan]}, ValueError, "profile values"),
    ({"strides": (0,)}, ValueError, "strides must be"),
    ({"backend": "tpu"}, ValueError, "backend must be"),
])
def test_bad_options(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        encode(np.array([[1, 1, 5, 5]]), [1], (10, 10), **kw)


@pytest.mark.parametrize("labels, shape, exc, msg", [
    ([-1], (10, 10), ValueError, "non-negative"),
    ([1, 2], (10, 10), ValueError, "one class id per box"),
    ([1.5], (10, 10), TypeError, "integer class ids"),
    ([1], (0, 10), ValueError, "shape must be"),
    ([1], (10,), ValueError, "shape must be"),
])
def test_bad_labels_and_shape(labels, shape, exc, msg):
    with pytest.raises(exc, match=msg):
        encode(np.array([[1, 1, 5, 5]]), labels, shape)


def test_bad_batch_labels():
    with pytest.raises(ValueError, match="one label array per box array"):
        encode([np.array([[1, 1, 5, 5]])] * 2, [[1]], (10, 10))
    with pytest.raises(ValueError, match=r"boxes\[1\]: box 0 is not finite"):
        encode([np.array([[1, 1, 5, 5]]), np.array([[1, 1, np.nan, 5]])], [[1], [1]], (10, 10))


@pytest.mark.parametrize("marker", MARKERS)
def test_large_and_thin_markers_equal_oracle_and_host(marker):
    """Markers up to the 2048 px limit and 1-px-thin ones: the fixed point stays exact."""
    rng = np.random.default_rng(11)
    H, W = 700, 2100
    boxes = np.array([[20.3, 10.7, 2067.9, 690.1], [5, 300, 2045, 301.5], [1000, 3.25, 1000.75, 697],
                      [-300.5, -200.25, 310.125, 260.5]], np.float32)
    labels = rng.integers(1, 9, len(boxes)).astype(np.int32)
    for overlap in OVERLAPS:
        t = encode(boxes, labels, (H, W), marker=marker, overlap=overlap, size=1.0, levels=256)
        assert_targets_equal(t, *oracle_encode(boxes, labels, (H, W), marker=marker, overlap=overlap, size=1.0,
                                               levels=256))
    h = encode(boxes, labels, (H, W), marker=marker, backend="host", order="shuffled", size=1.0, levels=256)
    assert_targets_equal(h, *oracle_encode(boxes, labels, (H, W), marker=marker, size=1.0, levels=256))



@given(scene=scenes(max_side=90), opts=options, fill=st.sampled_from([0, 7, 255]))
def test_out_buffers_are_fully_overwritten(scene, opts, fill):
    """encode(..., out=...) equals a fresh call whatever the buffers held (the CPU painter writes every
    pixel, band by band)."""
    boxes, labels, shape = scene
    buf = (np.full(shape, fill, np.uint8), np.full(shape, fill, np.int32), np.full((2,) + shape, fill, np.float32))
    t = encode(boxes, labels, shape, out=buf, **opts)
    assert t.energy is buf[0] and t.sizes is buf[2]
    f = encode(boxes, labels, shape, **opts)
    assert_targets_equal(t, f.energy, f.classes, f.sizes)
    again = encode(boxes[::-1], labels[::-1], shape, out=t, **opts)  # a Targets is accepted too
    g = encode(boxes[::-1], labels[::-1], shape, **opts)
    assert_targets_equal(again, g.energy, g.classes, g.sizes)


def test_out_batched_and_host():
    boxes = [np.array([[1, 1, 9, 7]], np.float32), np.array([[3, 2, 8, 9]], np.float32)]
    labels = [np.array([1]), np.array([2])]
    buf = (np.ones((2, 10, 10), np.uint8), np.ones((2, 10, 10), np.int32), np.ones((2, 2, 10, 10), np.float32))
    f = encode(boxes, labels, (10, 10))
    for backend in ("cpu", "host"):
        t = encode(boxes, labels, (10, 10), out=buf, backend=backend)
        assert_targets_equal(t, f.energy, f.classes, f.sizes)


@pytest.mark.parametrize("out, exc, msg", [
    ((np.zeros((5, 5), np.uint8),) * 2, TypeError, "out must be"),
    ((np.zeros((5, 5), np.int32), np.zeros((5, 5), np.int32), np.zeros((2, 5, 5), np.float32)), ValueError,
     "out.energy must be uint8"),
    ((np.zeros((5, 5), np.uint8), np.zeros((5, 4), np.int32), np.zeros((2, 5, 5), np.float32)), ValueError,
     "out.classes must be int32 of shape"),
    ((np.zeros((5, 5), np.uint8), np.zeros((5, 5), np.int32), np.zeros((2, 5, 5), np.float32)[:, :, ::-1]),
     ValueError, "C-contiguous"),
    ((np.zeros((5, 5), np.uint8), [[0] * 5] * 5, np.zeros((2, 5, 5), np.float32)), TypeError, "numpy array"),
])
def test_bad_out(out, exc, msg):
    with pytest.raises(exc, match=msg):
        encode(np.array([[1, 1, 3, 3]], np.float32), np.array([1]), (5, 5), out=out)
    with pytest.raises(ValueError, match="one stride"):
        encode(np.array([[1, 1, 3, 3]], np.float32), np.array([1]), (5, 5), strides=(1, 2),
                        out=(np.zeros((5, 5), np.uint8), np.zeros((5, 5), np.int32), np.zeros((2, 5, 5), np.float32)))


def test_out_views_are_returned_as_given():
    big = np.zeros((3, 6, 6), np.uint8)
    cls, sz = np.zeros((6, 6), np.int32), np.zeros((2, 6, 6), np.float32)
    t = encode(np.array([[1, 1, 5, 5]], np.float32), np.array([4]), (6, 6), out=(big[1], cls, sz))
    assert t.energy.base is big and np.shares_memory(t.energy, big[1]) and big[1].max() > 0 and big[0].max() == 0
