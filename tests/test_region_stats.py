"""region_stats: equality with skimage.measure.regionprops and numpy statements of sums / votes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from skimage.measure import label as sk_label
from skimage.measure import regionprops

import dwd_fast
from tests.conftest import assert_unchanged
from tests.strategies import blob_maps


@given(a=blob_maps(max_side=30, levels=3), conn=st.sampled_from([1, 2]),
       dtype=st.sampled_from([np.int32, np.uint16, np.int64, np.uint8]), seed=st.integers(0, 2**31))
def test_equals_regionprops(a, conn, dtype, seed):
    lab = sk_label(a, connectivity=conn).astype(dtype)
    rng = np.random.default_rng(seed)
    img = rng.integers(-5, 100, lab.shape).astype(np.int16)
    fimg = rng.random(lab.shape)
    cls = rng.integers(0, 4, lab.shape).astype(np.uint8)
    before = lab.copy()
    s = dwd_fast.region_stats(lab, image=img, classes=cls)
    fs = dwd_fast.region_stats(lab, image=fimg)
    assert_unchanged(before, lab)
    n = int(lab.max())
    assert s.area.shape == (n,)
    for r in regionprops(lab.astype(np.int64)):
        i = r.label - 1
        assert s.area[i] == r.num_pixels
        assert tuple(s.bbox[i]) == r.bbox
        assert tuple(s.centroid[i]) == r.centroid  # exact
        rr, cc = r.coords.T
        assert s.image_sum[i] == img[rr, cc].sum()
        assert s.image_max[i] == img[rr, cc].max()
        np.testing.assert_allclose(fs.image_sum[i], fimg[rr, cc].sum(), rtol=1e-12)
        assert fs.image_max[i] == fimg[rr, cc].max()
        counts = np.bincount(cls[rr, cc])
        assert s.vote[i] == np.argmax(counts) and s.vote_count[i] == counts.max()


def test_absent_and_negative_labels():
    lab = np.array([[0, 3, 3], [-1, -1, 0]], np.int32)
    s = dwd_fast.region_stats(lab, classes=np.zeros((2, 3), np.int32))
    np.testing.assert_array_equal(s.area, [0, 0, 2])
    assert np.isnan(s.centroid[0]).all()
    np.testing.assert_array_equal(s.vote, [-1, -1, 0])
    assert s.image_sum is None


def test_reference_page(page250):
    lab = dwd_fast.label(page250.energy >= 8)
    s = dwd_fast.region_stats(lab, image=page250.energy, classes=page250.classes)
    props = regionprops(lab)
    assert len(props) == s.area.shape[0]
    np.testing.assert_array_equal(s.bbox, [p.bbox for p in props])
    np.testing.assert_array_equal(s.centroid, [p.centroid for p in props])


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(labels=np.zeros((3, 3), np.float32)), TypeError, "labels must be an integer or bool array"),
    (dict(labels=np.zeros((3, 3), bool)), TypeError, "labels must be an integer label image"),
    (dict(labels=np.zeros((3, 3, 3), np.int32)), ValueError, r"labels must be 2-D"),
    (dict(labels=np.ones((3, 3), np.int32), image=np.ones((3, 4))), ValueError, "image must have the shape of labels"),
    (dict(labels=np.ones((3, 3), np.int32), classes=np.ones((3, 3), np.float32)), TypeError, "classes must be an integer"),
    (dict(labels=np.ones((3, 3), np.int32), classes=np.full((3, 3), -1)), ValueError, "non-negative"),
    (dict(labels=np.ones((3, 3), np.int32), classes=np.full((3, 3), 5), num_classes=5), ValueError, ">= num_classes"),
    (dict(labels=np.ones((3, 3), np.int32), image=np.full((3, 3), np.nan)), ValueError, "image contains NaN"),
    (dict(labels=np.full((2, 2), 2**40, np.int64)), ValueError, "larger than 2"),
    (dict(labels=np.ones((3, 3), np.int32), num_classes=0), ValueError, "num_classes must be a positive integer"),
])
def test_bad_input(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        dwd_fast.region_stats(**kwargs)


def test_empty_labels():
    s = dwd_fast.region_stats(np.zeros((0, 4), np.int32), image=np.zeros((0, 4)), classes=np.zeros((0, 4), int))
    assert s.area.shape == (0,) and s.bbox.shape == (0, 4) and s.vote.shape == (0,)


ORDERS = ["forward", "reversed", "shuffled"]


def _assert_stats_equal(a, b):
    for f in a._fields:
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None) == (y is None), f
        if x is not None:
            assert x.dtype == y.dtype, f
            np.testing.assert_array_equal(x, y, err_msg=f)


@given(a=blob_maps(max_side=30, levels=4), conn=st.sampled_from([1, 2]),
       dtype=st.sampled_from([np.int32, np.uint16, np.int64, np.uint8]),
       img_dtype=st.sampled_from([np.int16, np.uint8, np.float32, np.float64]), seed=st.integers(0, 2**31))
def test_host_executor_equals_cpu(a, conn, dtype, img_dtype, seed):
    """The data-parallel (GPU) algorithm, run by HostExec in three element orders, equals the CPU one."""
    lab = sk_label(a, connectivity=conn).astype(dtype)
    rng = np.random.default_rng(seed)
    img = (rng.random(lab.shape) * 200 - 50).astype(img_dtype)
    cls = rng.integers(0, 5, lab.shape).astype(np.uint8)
    cpu = dwd_fast.region_stats(lab, image=img, classes=cls)
    for order in ORDERS:
        _assert_stats_equal(dwd_fast.region_stats(lab, image=img, classes=cls, backend="host", order=order,
                                                  seed=seed), cpu)
    _assert_stats_equal(dwd_fast.region_stats(lab, backend="host", order="shuffled"), dwd_fast.region_stats(lab))


def test_host_executor_reference_page(page250):
    lab = dwd_fast.label(page250.energy >= 8)
    fimg = page250.sizes[0]
    cpu = dwd_fast.region_stats(lab, image=fimg, classes=page250.classes)
    for order in ORDERS:
        _assert_stats_equal(dwd_fast.region_stats(lab, image=fimg, classes=page250.classes, backend="host",
                                                  order=order, seed=3), cpu)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(labels=np.ones((3, 3), np.int32), classes=np.full((3, 3), -1)), "non-negative"),
    (dict(labels=np.ones((3, 3), np.int32), classes=np.full((3, 3), 5), num_classes=5), ">= num_classes"),
    (dict(labels=np.ones((3, 3), np.int32), image=np.full((3, 3), np.nan)), "image contains NaN"),
    (dict(labels=np.full((2, 2), 2**40, np.int64)), "larger than 2"),
])
def test_host_executor_bad_input(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        dwd_fast.region_stats(**kwargs, backend="host")


def test_host_executor_absent_labels_and_empty():
    lab = np.array([[0, 3, 3], [-1, -1, 0]], np.int32)
    _assert_stats_equal(dwd_fast.region_stats(lab, image=np.ones((2, 3)), classes=np.zeros((2, 3), np.int32),
                                              backend="host"),
                        dwd_fast.region_stats(lab, image=np.ones((2, 3)), classes=np.zeros((2, 3), np.int32)))
    s = dwd_fast.region_stats(np.zeros((0, 4), np.int32), backend="host")
    assert s.area.shape == (0,)
