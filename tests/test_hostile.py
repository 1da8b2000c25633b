"""Regression tests of issue 18 (hostile inputs): each case failed before its fix."""

import numpy as np
import pytest

import dwd_fast
from dwd_fast import compat
from dwd_fast.data import reference_page
from tests.reference import dwd_original as orig

skfeature = pytest.importorskip("skimage.feature")


# ---- 2. non-native byte order -----------------------------------------------------------------------

def _peak_image():
    img = np.zeros((9, 9))
    img[4, 4] = 0.1
    return img


@pytest.mark.parametrize("dtype", [">f8", ">f4", ">i4", ">u2", ">i8"])
def test_peaks_big_endian_threshold(dtype):
    img = (_peak_image() * (1 if dtype[1] == "f" else 100)).astype(dtype)
    for thr in (0.5, 50, None):
        got = dwd_fast.peak_local_max(img, threshold_abs=thr)
        want = skfeature.peak_local_max(img.astype(img.dtype.newbyteorder("=")), threshold_abs=thr)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, dwd_fast.peak_local_max(img.astype(img.dtype.newbyteorder("=")),
                                                                   threshold_abs=thr))


def test_big_endian_every_op_equals_native():
    page = reference_page(30, shape=(96, 80))
    e = page.energy.astype(np.int32)
    be = lambda a: a.astype(a.dtype.newbyteorder(">"))  # noqa: E731
    lab = dwd_fast.label(e > 3)
    np.testing.assert_array_equal(dwd_fast.label(be(e)), dwd_fast.label(e))
    rs, rb = dwd_fast.region_stats(lab, image=e), dwd_fast.region_stats(be(lab), image=be(e.astype(float)))
    np.testing.assert_array_equal(rs.image_sum, rb.image_sum)
    np.testing.assert_array_equal(dwd_fast.watershed(be(-e.astype(float)), be(lab)),
                                  dwd_fast.watershed(-e.astype(float), lab))
    d0 = dwd_fast.decode(e, page.classes, page.sizes)
    d1 = dwd_fast.decode(be(e), be(page.classes), be(page.sizes))
    np.testing.assert_array_equal(d0.boxes, d1.boxes)
    np.testing.assert_array_equal(d0.labels, d1.labels)


# ---- 3. exact 64-bit sums -------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["cpu", "host"])
def test_region_stats_int64_sums_exact(backend):
    lab = np.ones((4, 4), np.int32)
    img = np.full((4, 4), 2**62, np.int64)
    r = dwd_fast.region_stats(lab, image=img, backend=backend)
    assert r.image_sum[0] == float(16 * 2**62)
    assert r.image_max[0] == float(2**62)
    img = np.full((4, 4), -(2**63), np.int64)
    r = dwd_fast.region_stats(lab, image=img, backend=backend)
    assert r.image_sum[0] == float(-16 * 2**63)


@pytest.mark.parametrize("backend", ["cpu", "host"])
def test_region_stats_uint64_exact(backend):
    lab = np.array([[1, 1, 2], [0, 2, 2]], np.int32)
    img = np.array([[2**63 + 5, 3, 2**64 - 1], [7, 2**64 - 1, 1]], np.uint64)
    r = dwd_fast.region_stats(lab, image=img, backend=backend)
    assert r.image_sum.tolist() == [float(2**63 + 8), float(2 * (2**64 - 1) + 1)]
    assert r.image_max.tolist() == [float(2**63 + 5), float(2**64 - 1)]


@pytest.mark.parametrize("backend", ["cpu", "host"])
@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_region_stats_64bit_random_vs_python_ints(backend, dtype):
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    lab = rng.integers(0, 6, (23, 17)).astype(np.int32)
    img = rng.integers(info.min, info.max, (23, 17), dtype=dtype, endpoint=True)
    img[0, :5] = info.max
    r = dwd_fast.region_stats(lab, image=img, backend=backend)
    for k in range(1, 6):
        vals = [int(v) for v in img[lab == k]]
        assert r.image_sum[k - 1] == float(sum(vals))  # Python's int -> float rounds once, correctly
        assert r.image_max[k - 1] == float(max(vals))


# ---- 4. float16 logits from simulate_outputs -------------------------------------------------------------

def test_simulated_float16_logits_decode():
    page = reference_page(20, shape=(64, 72))
    t = dwd_fast.encode(page.boxes, page.labels, page.energy.shape, levels=8)
    sim = dwd_fast.data.simulate_outputs(t, seed=1, logits=True, num_classes=130)
    assert sim.energy_logits.dtype == np.float16
    d16 = dwd_fast.decode(sim.energy_logits, sim.class_logits, cutoff=3)
    d32 = dwd_fast.decode(sim.energy_logits.astype(np.float32), sim.class_logits.astype(np.float32), cutoff=3)
    assert len(d16) > 0
    for f in ("boxes", "labels", "scores", "class_scores"):
        np.testing.assert_array_equal(getattr(d16, f), getattr(d32, f))
    dh = dwd_fast.decode(sim.energy_logits, sim.class_logits, cutoff=3, backend="host")
    np.testing.assert_array_equal(dh.boxes, d32.boxes)


# ---- 6. non-finite decode inputs ---------------------------------------------------------------------------

def _logit_page():
    e = np.zeros((4, 12, 12), np.float32)
    e[0] = 1
    e[3, 3:8, 3:8] = 5
    c = np.zeros((3, 12, 12), np.float32)
    s = np.full((2, 12, 12), 4, np.float32)
    return e, c, s


@pytest.mark.parametrize("backend", ["cpu", "host"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_decode_nonfinite_logits_rejected(backend, bad):
    e, c, s = _logit_page()
    assert len(dwd_fast.decode(e, c, s, cutoff=2, backend=backend)) == 1
    c2 = c.copy()
    c2[:, 5, 5] = bad  # a pixel -inf (or +inf, NaN) in every class
    with pytest.raises(ValueError, match="classes"):
        dwd_fast.decode(e, c2, s, cutoff=2, backend=backend)
    c2 = c.copy()
    c2[1, 5, 5] = bad
    with pytest.raises(ValueError, match="classes"):
        dwd_fast.decode(e, c2, s, cutoff=2, backend=backend)
    e2 = e.copy()
    e2[2, 0, 0] = bad
    with pytest.raises(ValueError, match="energy"):
        dwd_fast.decode(e2, c, s, cutoff=2, backend=backend)
    s2 = s.copy()
    s2[1, 4, 4] = bad
    with pytest.raises(ValueError, match="sizes"):
        dwd_fast.decode(e, c, s2, cutoff=2, backend=backend)


@pytest.mark.parametrize("backend", ["cpu", "host"])
def test_decode_boxes_overflowing_float32_rejected(backend):
    e, c, s = _logit_page()
    s2 = s.astype(np.float64)
    s2[0, 4, 4] = 1e300
    with pytest.raises(ValueError, match="sizes"):
        dwd_fast.decode(e, c, s2, cutoff=2, backend=backend)
    table = np.array([[3.0, 4.0], [1e300, 2.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match="class_sizes"):
        dwd_fast.decode(e, c, s, cutoff=2, size_mode="class", class_sizes=table, backend=backend)


# ---- 7. encode with huge coordinates ---------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1e5, 1e16, 4e16, 1e17, 1e300])
def test_encode_huge_boxes_raise_consistently(scale):
    boxes = np.array([[0.0, 0.0, scale, scale]])
    with pytest.raises(ValueError, match="boxes.*1024 px"):
        dwd_fast.encode(boxes, None, (32, 32))


def test_encode_box_beyond_float32_sizes_rejected():
    with pytest.raises(ValueError, match="boxes.*float32"):
        dwd_fast.encode(np.array([[-1e300, 0.0, 1e300, 10.0]]), None, (32, 32), size=(4, 4))


def test_encode_far_centre_fixed_size_draws_nothing_or_same():
    # a box overlapping the canvas whose centre is far away: with a fixed marker size nothing is drawn
    for x0 in (-1e6, -1e17, -1e38):
        t = dwd_fast.encode(np.array([[x0, 0.0, 10.0, 10.0]]), None, (32, 32), size=(4, 4))
        assert int(np.asarray(t.energy).max()) == 0


# ---- 8. compat with NaN sizes --------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["2018", "2020"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e30])
def test_compat_nan_bbox_matches_original(variant, bad):
    e = np.zeros((1, 12, 12), np.int64)
    e[0, 2:6, 2:6] = 9
    e[0, 7:11, 7:11] = 9
    cls = np.ones_like(e)
    bb = np.full((1, 12, 12, 2), 3.0)
    bb[0, 3, 3, 0] = bad
    bb[0, 8, 8, 1] = bad
    with np.errstate(invalid="ignore"), _quiet():
        want = (orig.perform_dws_2018(e, cls, bb, 7, 0) if variant == "2018"
                else orig.perform_dws_2020(e, cls, bb, [7, 1], 0))
    got = compat.perform_dws(e, cls, bb, 7 if variant == "2018" else [7, 1], 0, variant=variant)
    assert got == want


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


# ---- 9. reference_page(levels) ------------------------------------------------------------------------------

@pytest.mark.parametrize("levels", [0, 1, -3, 257, 300])
def test_reference_page_levels_validated(levels):
    with pytest.raises(ValueError, match="levels"):
        reference_page(5, levels=levels, shape=(48, 48))


def test_reference_page_levels_edges():
    assert int(reference_page(5, levels=256, shape=(48, 48)).energy.max()) == 255
    assert int(reference_page(5, levels=2, shape=(48, 48)).energy.max()) == 1
    with pytest.raises(TypeError, match="levels"):
        reference_page(5, levels=16.0, shape=(48, 48))


# ---- 10. out-of-range and wrong-type scalars name the argument --------------------------------------------

BIG = 2**63


@pytest.mark.parametrize("call, name", [
    (lambda: dwd_fast.decode(np.zeros((8, 8), np.uint8), min_size=BIG), "min_size"),
    (lambda: dwd_fast.decode(np.zeros((8, 8), np.uint8), levels=BIG), "levels"),
    (lambda: dwd_fast.decode(np.zeros((8, 8), np.uint8), seeds="peaks", min_distance=BIG), "min_distance"),
    (lambda: dwd_fast.peak_local_max(np.eye(5), num_peaks=BIG), "num_peaks"),
    (lambda: dwd_fast.peak_local_max(np.eye(5), min_distance=BIG), "min_distance"),
    (lambda: dwd_fast.peak_local_max(np.eye(5), exclude_border=BIG), "exclude_border"),
    (lambda: dwd_fast.peak_local_max(np.eye(5), num_peaks_per_label=BIG), "num_peaks_per_label"),
    (lambda: dwd_fast.peak_local_max(np.eye(5), threshold_abs="0.5"), "threshold_abs"),
    (lambda: dwd_fast.peak_local_max(np.eye(5), threshold_rel="0.5"), "threshold_rel"),
    (lambda: dwd_fast.label(np.eye(5, dtype=bool), connectivity=1.0), "connectivity"),
    (lambda: dwd_fast.watershed(np.eye(5), np.eye(5, dtype=np.int32), connectivity=2.0), "connectivity"),
    (lambda: dwd_fast.decode(np.zeros((8, 8), np.uint8), connectivity=1.0), "connectivity"),
    (lambda: compat.perform_dws(np.zeros((1, 8, 8)), np.zeros((1, 8, 8), np.int64), np.zeros((1, 8, 8, 2)),
                                [7, 1], "3"), "min_ccoponent_size"),
])
def test_out_of_range_scalars_name_the_argument(call, name):
    with pytest.raises((TypeError, ValueError)) as e:
        call()
    msg = str(e.value)
    assert name in msg and "incompatible function arguments" not in msg


def test_large_but_valid_spacing_equals_image_size():
    rng = np.random.default_rng(0)
    img = rng.random((13, 11))
    for md in (20, 2**40, 2**62):
        got = dwd_fast.peak_local_max(img, min_distance=md, exclude_border=False)
        want = skfeature.peak_local_max(img, min_distance=min(md, 100), exclude_border=False)
        np.testing.assert_array_equal(got, want)
    assert dwd_fast.peak_local_max(img, num_peaks=2**62).shape == skfeature.peak_local_max(img).shape
    big = compat.perform_dws(np.full((1, 8, 8), 9), np.ones((1, 8, 8), np.int64), np.ones((1, 8, 8, 2)), [7, 1], 1e30)
    assert big == []


# ---- found by the fuzz harness -------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["2018", "2020"])
@pytest.mark.parametrize("min_size", [0.5, 1.5, 2.0, 3.7, -1.5])
def test_compat_float_min_component_size_as_original(variant, min_size):
    e = np.zeros((1, 12, 12), np.int64)
    e[0, 1, 1] = 9                 # 1 px
    e[0, 4, 4:6] = 9               # 2 px
    e[0, 8:10, 8:10] = 9           # 4 px
    cls = np.ones_like(e)
    bb = np.full((1, 12, 12, 2), 3.0)
    cut = 7 if variant == "2018" else [7, 1]
    ref = orig.perform_dws_2018 if variant == "2018" else orig.perform_dws_2020
    assert compat.perform_dws(e, cls, bb, cut, min_size, variant=variant) == ref(e, cls, bb, cut, min_size)


def test_simulate_outputs_size_noise_bounded():
    page = reference_page(5, shape=(48, 50))
    t = dwd_fast.encode(page.boxes, page.labels, (48, 50), levels=8)
    with pytest.raises(ValueError, match="size_noise"):
        dwd_fast.data.simulate_outputs(t, seed=0, size_noise=2**31)



# ---- compat.get_markers with enormous or far-away boxes (issue 18 item 4) ------------------------------

_GM_SETTINGS = {"ds_factors": [1], "downsample_marker": True, "overlap_solution": "max",
                "stamp_func": "stamp_energy",
                "stamp_args": {"marker_dim": None, "size_percentage": 0.8, "loss": "softmax",
                               "energy_shape": "linear", "shape": "oval"}}


@pytest.mark.parametrize("era", ["2018", "2019", "2020"])
@pytest.mark.parametrize("box", [
    [0, 0, 1e12, 1e12, 1],          # the stamp alone: terabytes (numpy: "array is too big" / MemoryError)
    [0, 0, 1e6, 1e6, 1],
    [5, 5, 5 + 3e4, 5 + 3e4, 1],    # 24000^2 px marker on a 30 x 30 canvas: gigabytes
    [-1e30, 0, 1e30, 10, 1],        # int64 would wrap
    [0, 0, np.inf, 10, 1],
    [0, -np.inf, 10, 10, 1],
])
def test_get_markers_enormous_box_names_gt(era, box):
    gt = [np.array([1, 1, 9, 9, 1], np.float32), np.array(box, np.float64)]
    with pytest.raises(ValueError, match=r"gt: box 1"):
        compat.get_markers((1, 30, 30, 3), gt, 2, _GM_SETTINGS, era=era)


@pytest.mark.parametrize("era", ["2018", "2019", "2020"])
def test_get_markers_far_away_box_draws_nothing(era):
    """A small box far outside the canvas is skipped (clipped away), as in the original."""
    near = [np.array([1, 1, 9, 9, 1], np.float32)]
    far = near + [np.array([1e15, 1e15, 1e15 + 10, 1e15 + 10, 1], np.float64),
                  np.array([-1e15, -1e15, -1e15 + 10, -1e15 + 10, 1], np.float64)]
    (a,) = compat.get_markers((1, 30, 30, 3), near, 2, _GM_SETTINGS, era=era)
    (b,) = compat.get_markers((1, 30, 30, 3), far, 2, _GM_SETTINGS, era=era)
    np.testing.assert_array_equal(a, b)
