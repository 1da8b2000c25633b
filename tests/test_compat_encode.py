"""compat.get_markers / compat.loss_mask: identical output (values, dtypes, list lengths) to the numpy
re-statement of the original target code (tests/reference/dwd_targets.py, verified against the
original), and an error wherever the original crashes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dwd_fast.compat import get_markers, loss_mask
from tests.reference import dwd_targets as orig


def _run(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except (IndexError, ValueError) as e:
        return e


def assert_same_maps(got, want):
    if isinstance(want, Exception):
        assert isinstance(got, Exception), f"the original fails ({want!r}), compat returned maps"
        return
    assert not isinstance(got, Exception), f"compat failed: {got!r}"
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@given(seed=st.integers(0, 2**31), era=st.sampled_from(orig.ERAS))
def test_get_markers_equals_original(seed, era):
    settings, size, gt, ncls = orig.random_scene(np.random.default_rng(seed), era)
    want = _run(orig.get_markers, size, gt, ncls, settings, 0, [], era=era)
    got = _run(get_markers, size, gt, ncls, settings, 0, [], era=era)
    assert_same_maps(got, want)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("era", orig.ERAS)
@pytest.mark.parametrize("task, loss, overlap, extra", [
    ("stamp_energy", "softmax", "max", {"energy_shape": "quadratic", "marker_dim": None}),  # B/C default
    ("stamp_class", "softmax", "nearest", {"marker_dim": [16, 16], "class_resolution": "class"}),
    ("stamp_bbox", "reg", "nearest", {"marker_dim": [16, 16]}),
    ("stamp_energy", "reg", "max", {"marker_dim": None}),
    ("stamp_class", "softmax", "no", {"marker_dim": (9, 9), "class_resolution": "class"}),  # era A default
])
def test_training_configurations_on_a_crop(era, task, loss, overlap, extra):
    """The shipped configurations on a 200-box 240 x 200 crop with boxes over every border."""
    rng = np.random.default_rng(7)
    n, H, W = 200, 240, 200
    x1 = rng.uniform(-20, W, n).astype(np.float32)
    y1 = rng.uniform(-20, H, n).astype(np.float32)
    w = rng.integers(4, 40, n).astype(np.float32)
    h = rng.integers(4, 40, n).astype(np.float32)
    gt = [np.array([a, b, min(a + c, W), min(b + d, H), k], np.float32)
          for a, b, c, d, k in zip(np.maximum(x1, 0), np.maximum(y1, 0), w, h, rng.integers(1, 30, n))]
    args = {"size_percentage": 0.8, "shape": "oval", "loss": loss, "energy_shape": "linear",
            "class_resolution": "class", **extra}
    settings = {"ds_factors": [1], "downsample_marker": True, "overlap_solution": overlap,
                "stamp_func": [task, None], "stamp_args": args}
    want = _run(orig.get_markers, (1, H, W, 3), gt, 30, dict(settings, stamp_func=task), 0, [], era=era)
    got = _run(get_markers, (1, H, W, 3), gt, 30, settings, 0, [], era=era)
    assert_same_maps(got, want)


def test_examples_of_the_research_note():
    """Golden values (research §2.2, §2.3): 9x9 apex position and levels."""
    s = {"ds_factors": [1], "downsample_marker": True, "overlap_solution": "max", "stamp_func": "stamp_energy",
         "stamp_args": {"marker_dim": (9, 9), "loss": "softmax", "energy_shape": "linear", "shape": "oval"}}
    (m,) = get_markers((1, 30, 30, 3), [np.array([10, 5, 21, 14, 1], np.float32)], 2, s, era="2019")
    lv = m[0].argmax(-1)
    assert np.unravel_index(lv.argmax(), lv.shape) == (9, 15)
    np.testing.assert_array_equal(lv[5:14, 11:20][4], [0, 5, 10, 14, 19, 14, 10, 5, 0])
    np.testing.assert_array_equal(lv[5:14, 11:20][1], [0, 0, 2, 4, 5, 4, 2, 0, 0])
    assert (lv > 0).sum() == 45
    (m,) = get_markers((1, 30, 30, 3), [np.array([10, 5, 21, 14, 1], np.float32)], 2, s, era="2020")
    assert (m[0].argmax(-1) > 0).sum() == 37


def test_stamp_func_pair_and_ds_factors_and_maps_list():
    s = {"ds_factors": [1, 2], "downsample_marker": True, "overlap_solution": "max",
         "stamp_func": ["stamp_energy", lambda *a: None],
         "stamp_args": {"marker_dim": None, "size_percentage": 0.8, "loss": "softmax", "energy_shape": "linear",
                        "shape": "oval"}}
    gt = [np.array([3, 4, 20, 19, 1], np.float32)]
    mine = []
    out = get_markers((1, 25, 31, 3), gt, 2, s, 0, mine)
    assert out is mine and len(out) == 2
    assert out[0].shape == (1, 25, 31, 20) and out[1].shape == (1, 13, 16, 20) and out[0].dtype == np.float64
    want = orig.get_markers((1, 25, 31, 3), gt, 2, dict(s, stamp_func="stamp_energy"), 0, [])
    assert_same_maps(out, want)
    assert get_markers((1, 25, 31, 3), gt, 2, dict(s, downsample_marker=False)) == []


@pytest.mark.parametrize("mode", [None, "mask_bg", "fg_bg_balanced", "by_class", "by_class_no_bg", "mask_zeros"])
@pytest.mark.parametrize("task, loss", [("stamp_energy", "softmax"), ("stamp_class", "softmax"),
                                        ("stamp_bbox", "reg"), ("stamp_energy", "reg")])
def test_loss_mask_equals_original(mode, task, loss):
    rng = np.random.default_rng(3)
    gt = [np.array([x, y, x + w, y + h, c], np.float32) for x, y, w, h, c in
          zip(rng.integers(0, 50, 20), rng.integers(0, 40, 20), rng.integers(3, 20, 20), rng.integers(3, 20, 20),
              rng.integers(1, 5, 20))]
    s = {"ds_factors": [1], "downsample_marker": True, "overlap_solution": "max", "stamp_func": task,
         "stamp_args": {"marker_dim": None, "size_percentage": 0.8, "loss": loss, "energy_shape": "linear",
                        "shape": "oval", "class_resolution": "class"}}
    (m,) = get_markers((1, 48, 64, 3), gt, 5, s)
    got = loss_mask(m, mode, loss)
    want = orig.loss_mask(m, mode, loss)
    assert got.dtype == want.dtype == np.float64 and got.shape == want.shape == (48, 64, 1)
    np.testing.assert_array_equal(got, want)


def test_loss_mask_no_background():
    m = np.zeros((1, 3, 3, 4))
    m[..., 2] = 1
    m[0, 0, 0] = [0, 0, 0, 1]
    np.testing.assert_array_equal(loss_mask(m, "by_class_no_bg"), orig.loss_mask(m, "by_class_no_bg"))
    assert loss_mask(m, "by_class_no_bg")[1, 1, 0] == 2.0


@pytest.mark.parametrize("kw, exc, msg", [
    ({"era": "2017"}, ValueError, "era must be one of"),
    ({"stamp_func": "stamp_directions"}, ValueError, "stamp_func must be one of"),
    ({"loss": "l2"}, ValueError, "loss"),
    ({"shape": "square"}, ValueError, "only oval markers"),
    ({"overlap_solution": "closest"}, NotImplementedError, "overlap solution"),
])
def test_bad_settings(kw, exc, msg):
    s = {"ds_factors": [1], "downsample_marker": True, "overlap_solution": kw.get("overlap_solution", "max"),
         "stamp_func": kw.get("stamp_func", "stamp_energy"),
         "stamp_args": {"marker_dim": None, "size_percentage": 0.8, "loss": kw.get("loss", "softmax"),
                        "energy_shape": "linear", "shape": kw.get("shape", "oval")}}
    with pytest.raises(exc, match=msg):
        get_markers((1, 10, 10, 3), [np.array([1, 1, 8, 8, 1], np.float32)], 2, s, era=kw.get("era", "2020"))


def test_crashes_of_the_original_raise_value_error():
    s = {"ds_factors": [1], "downsample_marker": True, "overlap_solution": "max", "stamp_func": "stamp_class",
         "stamp_args": {"marker_dim": None, "size_percentage": 0.8, "loss": "softmax", "shape": "oval",
                        "class_resolution": "class"}}
    with pytest.raises(ValueError, match="empty 0 x 4 marker"):  # int(0.8 * 1) == 0
        get_markers((1, 10, 10, 3), [np.array([1, 1, 6, 2, 1], np.float32)], 2, s)
    with pytest.raises(ValueError, match="class 7"):
        get_markers((1, 10, 10, 3), [np.array([1, 1, 8, 8, 7], np.float32)], 2, s)
    with pytest.raises(ValueError, match="NaN"):
        get_markers((1, 10, 10, 3), [np.array([1, np.nan, 8, 8, 1], np.float32)], 2, s)
    with pytest.raises(NotImplementedError):
        loss_mask(np.zeros((1, 2, 2, 2)), "by_object")
