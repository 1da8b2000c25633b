"""peak_local_max: equality with skimage.feature.peak_local_max 0.26 (coordinates and order) for every
option, the data-parallel candidate step through HostExec in three orders, validation."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from skimage.feature import peak_local_max as sk_peak_local_max

import dwd_fast
from tests.conftest import assert_unchanged, torch_or_skip
from tests.strategies import shapes

ORDERS = ["forward", "reversed", "shuffled"]
DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64, np.float32, np.float64]
LABEL_DTYPES = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64]


def _levels(dtype, rng, k):
    """k distinct-ish values of dtype, favouring extremes, zero and negatives."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        pool = [0.0, -0.0, 1.0, 2.0, 2.5, -1.0, -3.5, 100.0, float(np.finfo(dt).max), float(np.finfo(dt).min),
                np.inf, -np.inf]
    else:
        info = np.iinfo(dt)
        pool = [0, 1, 2, 3, 7, int(info.max), int(info.max) - 1, int(info.min)]
        if info.min < 0:
            pool += [-1, -2, int(info.min) + 1]
    return np.array(rng.choice(np.array(pool, dtype=object), size=k), dtype=dt)


def _layout(a, layout):
    if layout == "f":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
        big[:, ::2] = a
        return big[:, ::2]
    return np.ascontiguousarray(a)


@st.composite
def tie_images(draw, dtypes=DTYPES, max_side=20):
    """Few levels, plateaus (blocks), constant images, 1xN / Nx1, every dtype, C/F/strided layouts."""
    shape = draw(shapes(max_side))
    dtype = draw(st.sampled_from(dtypes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["blocks", "noise", "constant", "cones"]))
    H, W = shape
    if kind == "constant":
        a = np.full(shape, _levels(dtype, rng, 1)[0])
    elif kind == "cones":
        K = draw(st.integers(2, 6))
        a = np.zeros(shape, np.int64)
        for _ in range(draw(st.integers(1, 4))):
            y, x, r = rng.integers(0, H), rng.integers(0, W), rng.integers(1, 6)
            yy, xx = np.mgrid[:H, :W]
            d = np.maximum(abs(yy - y), abs(xx - x)) / r
            a = np.maximum(a, np.clip(np.round((1 - d) * (K - 1)), 0, K - 1).astype(np.int64))
        a = a.astype(dtype)
    else:
        levels = _levels(dtype, rng, draw(st.integers(1, 4)))
        block = 1 if kind == "noise" else draw(st.integers(1, 4))
        small = rng.integers(0, len(levels), (H // block + 1, W // block + 1))
        a = levels[np.repeat(np.repeat(small, block, 0), block, 1)[:H, :W]]
    a = a.astype(dtype)
    return _layout(a, draw(st.sampled_from(["c", "f", "strided"])))


def _thresholds(a):
    vals = np.unique(a)
    v = vals[len(vals) // 2]
    return st.sampled_from([None, None, v, v.item(), float(v) - 0.5, -1, -1.5, 0, 2**70, -(2**70),
                            float(v) + 0.25, np.float64(v), np.float32(0.5)])


@st.composite
def options(draw, a, with_labels=True):
    kw = {}
    kw["min_distance"] = draw(st.sampled_from([1, 1, 2, 3, 5, 0]))
    kw["threshold_abs"] = draw(_thresholds(a))
    kw["threshold_rel"] = draw(st.sampled_from([None, None, 0.0, 0.3, 0.5, 1.0]))
    kw["exclude_border"] = draw(st.sampled_from([True, False, 0, 1, 2, (0, 1), (2, 0), (1, 1)]))
    kw["num_peaks"] = draw(st.sampled_from([None, None, 0, 1, 3, 10]))
    if with_labels and draw(st.booleans()):
        H, W = a.shape
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        nl = draw(st.integers(1, 5))
        block = draw(st.integers(1, 5))
        small = rng.integers(0, nl + 1, (H // block + 1, W // block + 1))
        lab = np.repeat(np.repeat(small, block, 0), block, 1)[:H, :W]
        if draw(st.booleans()):
            lab = np.where(rng.random((H, W)) < 0.15, rng.integers(-1, nl + 1, (H, W)), lab)
        ldt = draw(st.sampled_from(LABEL_DTYPES))
        if ldt == np.bool_ or np.dtype(ldt).kind == "u":
            lab = np.maximum(lab, 0)
        kw["labels"] = _layout(lab.astype(ldt), draw(st.sampled_from(["c", "f", "strided"])))
        kw["num_peaks_per_label"] = draw(st.sampled_from([None, None, 1, 2]))
    return kw


def _skimage(a, kw):
    kw = dict(kw)
    for k in ("num_peaks", "num_peaks_per_label"):
        if kw.get(k, 0) is None:
            kw[k] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sk_peak_local_max(a, **kw)


def _ours(a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return dwd_fast.peak_local_max(a, **kw)


@given(data=st.data(), a=tie_images())
def test_equals_skimage(data, a):
    kw = data.draw(options(a))
    before = a.copy()
    lab_before = kw["labels"].copy() if kw.get("labels") is not None else None
    ref = _skimage(a, kw)
    out = _ours(a, **kw)
    assert out.dtype == np.int64 and out.shape == (len(ref), 2)
    np.testing.assert_array_equal(out, ref)
    assert_unchanged(before, a)
    if lab_before is not None:
        assert_unchanged(lab_before, kw["labels"])


@given(data=st.data(), a=tie_images(max_side=32), seed=st.integers(0, 1000))
def test_host_algorithm_equals_cpu_in_every_order(data, a, seed):
    kw = data.draw(options(a, with_labels=False))
    cpu = _ours(a, **kw, backend="cpu")
    for order in ORDERS:
        host = _ours(a, **kw, backend="host", order=order, seed=seed)
        np.testing.assert_array_equal(host, cpu, err_msg=order)


@given(a=tie_images(dtypes=[np.uint8, np.int16, np.float32]), md=st.sampled_from([2, 3, 4]))
def test_plateaus_of_equal_maxima_are_spaced(a, md):
    out = _ours(a, min_distance=md, exclude_border=False)
    np.testing.assert_array_equal(out, _skimage(a, dict(min_distance=md, exclude_border=False)))
    if len(out) > 1:
        d = np.abs(out[:, None, :] - out[None, :, :]).max(-1)
        assert d[~np.eye(len(out), dtype=bool)].min() >= md


def test_reference_page(page250):
    e = page250.energy
    ref = sk_peak_local_max(e, min_distance=3, threshold_abs=8)
    out = dwd_fast.peak_local_max(e, min_distance=3, threshold_abs=8)
    assert len(ref) > 100
    np.testing.assert_array_equal(out, ref)
    crop = e[:700, :600]
    ref_crop = sk_peak_local_max(crop, min_distance=3, threshold_abs=8)
    for order in ORDERS:
        np.testing.assert_array_equal(
            dwd_fast.peak_local_max(crop, min_distance=3, threshold_abs=8, backend="host", order=order), ref_crop)


def test_reference_page_with_labels(page250):
    e = page250.energy
    lab = dwd_fast.label(e > 3)
    kw = dict(min_distance=3, threshold_abs=8, labels=lab, num_peaks_per_label=2)
    np.testing.assert_array_equal(dwd_fast.peak_local_max(e, **kw), sk_peak_local_max(e, **kw))
    kw["num_peaks"] = 40
    np.testing.assert_array_equal(dwd_fast.peak_local_max(e, **kw), sk_peak_local_max(e, **kw))


def test_documented_cases():
    # three equal peaks 2 px apart: min_distance=2 keeps all, 3 keeps the outer two
    a = np.zeros((5, 9), np.uint8)
    a[2, [2, 4, 6]] = 5
    for md in (2, 3):
        np.testing.assert_array_equal(dwd_fast.peak_local_max(a, min_distance=md, exclude_border=False),
                                      sk_peak_local_max(a, min_distance=md, exclude_border=False))
    assert len(dwd_fast.peak_local_max(a, min_distance=2, exclude_border=False)) == 3
    assert len(dwd_fast.peak_local_max(a, min_distance=3, exclude_border=False)) == 2
    # constant image: no peak; with min_distance=0, every pixel above the threshold
    c = np.full((4, 4), 3, np.int32)
    assert dwd_fast.peak_local_max(c).shape == (0, 2)
    with pytest.warns(RuntimeWarning, match="min_distance < 1"):
        out = dwd_fast.peak_local_max(c, min_distance=0, threshold_abs=2)
    assert len(out) == 16
    # wrap-around of -v: with a negative threshold, 0-valued unsigned peaks sort first
    u = np.array([[0, 5, 0, 0, 3, 0]], np.uint8)
    kw = dict(threshold_abs=-1, exclude_border=False)
    np.testing.assert_array_equal(dwd_fast.peak_local_max(u, **kw), sk_peak_local_max(u, **kw))
    s = np.array([[-128, 5, -128, -128, 3]], np.int8)
    np.testing.assert_array_equal(dwd_fast.peak_local_max(s, **kw), sk_peak_local_max(s, threshold_abs=-129,
                                                                                         exclude_border=False))


def test_one_pixel_and_thin_images():
    for a in (np.array([[4]], np.uint8), np.arange(7, dtype=np.int16)[None], np.arange(7, dtype=np.int16)[:, None]):
        for eb in (True, False):
            np.testing.assert_array_equal(dwd_fast.peak_local_max(a, exclude_border=eb),
                                          sk_peak_local_max(a, exclude_border=eb))


def test_large_values_and_float_thresholds():
    # int64 beyond 2**53 with a float threshold: numpy compares in float64
    a = np.zeros((3, 5), np.int64)
    a[1, 1] = 2**53 + 1
    a[1, 3] = 2**53 + 2
    for t in (float(2**53), 2**53, np.int64(2**53 + 1), 2**53 + 1.0):
        kw = dict(threshold_abs=t, exclude_border=False)
        np.testing.assert_array_equal(dwd_fast.peak_local_max(a, **kw), sk_peak_local_max(a, **kw))
    # scipy's maximum_filter carries 64-bit integers as doubles (axis 0 pass, then axis 1; out-of-range
    # results wrap): skimage's candidates follow that rounding
    b = np.zeros((4, 6), np.int64)
    b[1, 1], b[0, 1], b[2, 4], b[3, 4], b[0, 5] = 2**63 - 1, 5, 2**53 + 1, 2**53, 2**62 + 3
    ub = np.zeros((4, 6), np.uint64)
    ub[1, 1], ub[0, 1], ub[2, 4], ub[3, 4], ub[0, 5] = 2**64 - 1, 5, 2**53 + 1, 2**53, 2**63 + 3
    for img in (b, ub, b.T, ub.T):
        for md in (1, 2):
            kw = dict(min_distance=md, exclude_border=False, threshold_abs=0)
            np.testing.assert_array_equal(dwd_fast.peak_local_max(img, **kw), sk_peak_local_max(img, **kw))
            for order in ORDERS:
                np.testing.assert_array_equal(dwd_fast.peak_local_max(img, **kw, backend="host", order=order),
                                              sk_peak_local_max(img, **kw))
            lab = np.ones(img.shape, np.int32)
            lab[:, :2] = 2
            np.testing.assert_array_equal(dwd_fast.peak_local_max(img, **kw, labels=lab),
                                          sk_peak_local_max(img, **kw, labels=lab))
    u = np.full((3, 3), 2**64 - 1, np.uint64)
    u[0, 0] = 0
    for t in (2**64 - 2, -1, 0.5, np.int64(3)):
        kw = dict(threshold_abs=t, exclude_border=False)
        np.testing.assert_array_equal(dwd_fast.peak_local_max(u, **kw), sk_peak_local_max(u, **kw))
    f = np.array([[0.1, 0.0, 0.30000001, 0.0, 0.2]], np.float32)
    for t in (0.1, np.float64(0.1), np.float32(0.1), 0.3, 0.30000001):
        kw = dict(threshold_abs=t, exclude_border=False)
        np.testing.assert_array_equal(dwd_fast.peak_local_max(f, **kw), sk_peak_local_max(f, **kw))


def test_torch_in_torch_out():
    torch = torch_or_skip()
    t = torch.zeros((5, 5), dtype=torch.float32)
    t[2, 2] = 1
    out = dwd_fast.peak_local_max(t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    assert out.tolist() == [[2, 2]]


@pytest.mark.parametrize("bad, kw, exc, msg", [
    (np.zeros((2, 2, 2), np.uint8), {}, ValueError, r"image must be 2-D \(H, W\), got shape \(2, 2, 2\)"),
    (np.zeros(3, np.uint8), {}, ValueError, "image must be 2-D"),
    (np.zeros((2, 2), bool), {}, TypeError, "image must be an integer or float array, got dtype bool"),
    (np.zeros((2, 2), np.complex64), {}, TypeError, "image has unsupported dtype complex64"),
    (np.zeros((0, 3), np.uint8), {}, ValueError, "image is empty"),
    (np.array([[1.0, np.nan]]), {}, ValueError, "image contains NaN"),
    (None, {}, TypeError, "image must be an array, got None"),
    (np.zeros((3, 3)), {"exclude_border": -1}, ValueError, "exclude_border must not be negative"),
    (np.zeros((3, 3)), {"exclude_border": (1, 1, 1)}, ValueError, "exclude_border as a tuple needs one width"),
    (np.zeros((3, 3)), {"exclude_border": (1, -1)}, ValueError, "exclude_border must not hold negative"),
    (np.zeros((3, 3)), {"exclude_border": (1, 1.5)}, ValueError, "exclude_border as a tuple must hold ints"),
    (np.zeros((3, 3)), {"exclude_border": 1.5}, TypeError, "exclude_border must be a bool, an int or a tuple"),
    (np.zeros((3, 3)), {"min_distance": -1}, ValueError, "min_distance must be >= 0, got -1"),
    (np.zeros((3, 3)), {"min_distance": 1.5}, TypeError, "min_distance must be an int"),
    (np.zeros((3, 3)), {"num_peaks": -2}, ValueError, "num_peaks must be >= 0"),
    (np.zeros((3, 3)), {"num_peaks_per_label": 2.5}, TypeError, "num_peaks_per_label must be an int"),
    (np.zeros((3, 3)), {"labels": np.zeros((3, 4), np.int32)}, ValueError,
     r"labels must have the shape of image \(3, 3\), got shape \(3, 4\)"),
    (np.zeros((3, 3)), {"labels": np.zeros((3, 3), np.float32)}, TypeError,
     "labels must be an integer or bool array, got dtype float32"),
    (np.zeros((3, 3)), {"labels": np.zeros((3, 3), np.uint64)}, TypeError, "labels has dtype uint64"),
    (np.zeros((3, 3)), {"backend": "gpu"}, ValueError, "backend must be"),
    (np.zeros((3, 3)), {"backend": "host", "order": "sideways"}, ValueError, "order must be one of"),
    (np.zeros((3, 3)), {"backend": "host", "labels": np.ones((3, 3), np.int32)}, ValueError,
     "does not take labels"),
    (np.zeros((3, 3)), {"backend": "cuda"}, RuntimeError, "CUDA"),
])
def test_bad_input(bad, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        dwd_fast.peak_local_max(bad, **kw)


def test_skimage_raises_the_same_exception_types_for_exclude_border():
    a = np.zeros((3, 3))
    for eb, exc in [(-1, ValueError), ((1, 1, 1), ValueError), ((1, -1), ValueError), ((1, 1.5), ValueError),
                    (1.5, TypeError)]:
        with pytest.raises(exc):
            sk_peak_local_max(a, exclude_border=eb)
        with pytest.raises(exc):
            dwd_fast.peak_local_max(a, exclude_border=eb)


def test_list_input():
    np.testing.assert_array_equal(dwd_fast.peak_local_max([[0, 1, 0], [0, 0, 0]], exclude_border=False), [[0, 1]])


@given(a=tie_images(dtypes=[np.uint8, np.int16], max_side=12), width=st.integers(17, 70),
       t=st.sampled_from([None, -1, 0, 1, 2]), md=st.sampled_from([1, 2, 3]), eb=st.sampled_from([True, False]))
def test_wide_rows(a, width, t, md, eb):
    # rows long enough for the 16-pixel vector paths of the CPU scan
    a = np.tile(a, (1, width // a.shape[1] + 1))[:, :width] if a.shape[1] < width else a
    a = a.copy()
    a[:, ::7] = a[:, ::7] // 2  # break the tiling's periodicity a little
    kw = dict(threshold_abs=t, min_distance=md, exclude_border=eb)
    np.testing.assert_array_equal(_ours(a, **kw), _skimage(a, kw))


def test_min_distance_zero_warns_as_skimage():
    """The warning for min_distance < 1 is scikit-image's, word for word (its own tests check the text)."""
    skfeature = pytest.importorskip("skimage.feature")
    image = np.zeros((9, 9), np.float64)
    image[4, 4] = 1.0
    with pytest.warns(RuntimeWarning) as ours:
        got = dwd_fast.peak_local_max(image, min_distance=0)
    with pytest.warns(RuntimeWarning) as theirs:
        want = skfeature.peak_local_max(image, min_distance=0)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    np.testing.assert_array_equal(got, want)
