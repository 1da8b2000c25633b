"""dwd_fast.skimage against scikit-image 0.26 itself: equal outputs (values and dtypes) on random inputs for
every parameter, the same exception types, and scikit-image's error and warning texts."""

import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import skimage.feature
import skimage.measure
import skimage.segmentation

from dwd_fast.skimage import feature, measure, segmentation
from dwd_fast.skimage.measure import SUPPORTED_PROPERTIES

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _call(f, *a, **k):
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            return f(*a, **k), [(x.category, str(x.message)) for x in w]
    except Exception as e:  # noqa: BLE001 - compared below
        return e, None


def assert_same(ref, ours):
    (a, wa), (b, wb) = ref, ours
    if isinstance(a, Exception) or isinstance(b, Exception):
        assert type(a) is type(b), (repr(a), repr(b))
        return
    assert wa == wb
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert np.asarray(x).dtype == np.asarray(y).dtype
            np.testing.assert_array_equal(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert a[k].dtype == b[k].dtype, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    else:
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@st.composite
def images(draw, max_side=24, dtypes=(np.uint8, np.int16, np.int64, np.float32, np.float64), levels=None):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    dt = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = levels if levels is not None else draw(st.sampled_from([2, 4, 50]))
    img = rng.integers(0, n, (h, w)).astype(np.float64)
    if np.dtype(dt).kind == "f" and draw(st.booleans()):
        img = img + rng.random((h, w)) * 0.01  # fine noise: nearly every value distinct
    if np.dtype(dt).kind == "i" and draw(st.booleans()):
        img = img - n // 2
    return img.astype(dt), rng


def _markers(rng, shape, k):
    mk = np.zeros(shape, np.int32)
    mk[rng.integers(0, shape[0], k), rng.integers(0, shape[1], k)] = rng.integers(-3, 6, k)
    return mk


# ---- watershed ------------------------------------------------------------------------------------------


@SETTINGS
@given(images(), st.integers(0, 12), st.sampled_from(["array", "array", "none", "int"]), st.booleans(),
       st.sampled_from([1, 2, "fp"]), st.sampled_from([0, 0, 1e-3, 0.5, 4.0]), st.booleans(),
       st.sampled_from([np.int32, np.uint8, np.int64, np.uint16]))
def test_watershed_matches_skimage(data, k, kind, masked, conn, compactness, line, mdtype):
    img, rng = data
    if kind == "array":
        markers = np.abs(_markers(rng, img.shape, k)).astype(mdtype) if mdtype != np.int32 else _markers(rng, img.shape, k)
    elif kind == "int":
        markers = k + 1
    else:
        markers = None
    mask = rng.random(img.shape) < 0.8 if masked else None
    if conn == "fp":
        conn = rng.random((3, 3)) < 0.6
        assume(kind != "none")  # scikit-image fails there (a footprint for local_minima's connectivity)
    kw = dict(connectivity=conn, mask=mask, compactness=compactness, watershed_line=line)
    assert_same(_call(skimage.segmentation.watershed, img, markers, **kw),
                _call(segmentation.watershed, img, markers, **kw))


@SETTINGS
@given(images(max_side=16), st.integers(1, 10), st.sampled_from([(3, 3), (5, 5), (3, 5), (1, 3), (5, 1)]),
       st.booleans(), st.sampled_from([0, 0.3]), st.booleans())
def test_watershed_footprint_and_offset(data, k, shape, give_offset, compactness, line):
    img, rng = data
    fp = rng.random(shape) < 0.7
    offset = None
    if give_offset:
        offset = (int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1])))
        # scikit-image pads by the offset only: a footprint reaching further than that reads outside its
        # arrays (undefined there), so only offsets that keep every neighbour inside are compared
        reach_r = max(shape[0] - 1 - offset[0], offset[0])
        reach_c = max(shape[1] - 1 - offset[1], offset[1])
        assume(reach_r <= offset[0] and reach_c <= offset[1] or (reach_r == offset[0] and reach_c == offset[1]))
    markers = _markers(rng, img.shape, k)
    kw = dict(connectivity=fp, offset=offset, compactness=compactness, watershed_line=line)
    assert_same(_call(skimage.segmentation.watershed, img, markers, **kw),
                _call(segmentation.watershed, img, markers, **kw))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 3]), st.sampled_from([0, 0.5]), st.booleans())
def test_watershed_3d(seed, conn, compactness, line):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 4, (5, 6, 7)).astype(np.float64)
    markers = np.zeros(img.shape, np.int64)
    markers[tuple(rng.integers(0, s, 6) for s in img.shape)] = rng.integers(1, 5, 6)
    kw = dict(connectivity=conn, compactness=compactness, watershed_line=line)
    assert_same(_call(skimage.segmentation.watershed, img, markers, **kw),
                _call(segmentation.watershed, img, markers, **kw))


def test_watershed_large_tied_seeds_compact():
    """A plateau-rich page-sized relief with many seeds at one value: the binary-heap phase decides ties."""
    rng = np.random.default_rng(7)
    img = (rng.random((300, 300)) < 0.3).astype(np.uint8)
    markers = np.zeros(img.shape, np.int32)
    markers[rng.integers(0, 300, 400), rng.integers(0, 300, 400)] = rng.integers(1, 50, 400)
    # a mask of many components: seeds tie inside components and across them (only the former need the
    # binary heap's layout)
    blobs = rng.random((300, 300)) < 0.62
    for kw in (dict(compactness=0.01), dict(watershed_line=True), dict(compactness=2.0, connectivity=2),
               dict(mask=blobs), dict(mask=blobs, connectivity=2), dict(mask=blobs, compactness=0.05),
               dict(mask=blobs, watershed_line=True, connectivity=2)):
        assert_same(_call(skimage.segmentation.watershed, img, markers, **kw),
                    _call(segmentation.watershed, img, markers, **kw))


def test_watershed_errors():
    img = np.zeros((4, 5))
    with pytest.raises(ValueError, match=re.escape("`mask` (shape (4, 4)) must have same shape as `image` (shape (4, 5))")):
        segmentation.watershed(img, np.ones((4, 5), int), mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="Connectivity dimension must be same as image"):
        segmentation.watershed(img, np.ones((4, 5), int), connectivity=np.ones((3, 3, 3)))
    with pytest.raises(ValueError, match="Connectivity array must have an unambiguous center"):
        segmentation.watershed(img, np.ones((4, 5), int), connectivity=np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        segmentation.watershed(np.full((4, 5), np.nan), np.ones((4, 5), int))


# ---- label ----------------------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(1, 30),
       st.sampled_from([bool, np.uint8, np.int32, np.int64, np.uint64, np.float64]),
       st.sampled_from([None, 0, 1, 2, -1]), st.sampled_from([None, 1, 2, 3, 0]), st.booleans(),
       st.booleans())
def test_label_matches_skimage(seed, h, w, dt, background, connectivity, return_num, one_d):
    rng = np.random.default_rng(seed)
    img = rng.integers(-1, 3, (h, w)).astype(dt)
    if one_d:
        img = img.ravel()
    kw = dict(background=background, return_num=return_num, connectivity=connectivity)
    assert_same(_call(skimage.measure.label, img, **kw), _call(measure.label, img, **kw))


def test_label_connectivity_error_text():
    with pytest.raises(ValueError, match=re.escape("Connectivity for 2D image should be in [1, ..., 2]. Got 3.")):
        measure.label(np.ones((3, 3), int), connectivity=3)
    with pytest.raises(ValueError, match="supports 1-D and 2-D images only"):
        measure.label(np.ones((3, 3, 3), int))


# ---- peak_local_max -------------------------------------------------------------------------------------


@SETTINGS
@given(images(max_side=30, levels=None), st.integers(0, 4), st.sampled_from([None, "random", "square", 1]),
       st.sampled_from([np.inf, 1, 2, 3.5]),
       st.sampled_from([True, False, 0, 1, 3, (0, 2), (2, 1)]), st.sampled_from([np.inf, 1, 4]),
       st.booleans(), st.sampled_from([np.inf, 1, 2]), st.sampled_from([None, 0.5, 2.0]),
       st.sampled_from([None, 0.3]))
def test_peak_local_max_matches_skimage(data, min_distance, fp_kind, p_norm, exclude_border, num_peaks, use_labels,
                                        num_peaks_per_label, threshold_abs, threshold_rel):
    img, rng = data
    if fp_kind == "random":
        s = int(rng.integers(1, 4)) * 2 - 1
        footprint = rng.random((s, s)) < 0.7
        assume(footprint.any())
    elif fp_kind == "square":
        footprint = np.ones((2 * min_distance + 1,) * 2, bool)
    elif fp_kind == 1:
        footprint = np.ones((1, 1), bool)
    else:
        footprint = None
    labels = None
    if use_labels:
        labels = skimage.measure.label(rng.random(img.shape) < 0.6).astype(rng.choice([np.int32, np.uint8, np.int64]))
    kw = dict(min_distance=min_distance, threshold_abs=threshold_abs, threshold_rel=threshold_rel,
              exclude_border=exclude_border, num_peaks=num_peaks, footprint=footprint, labels=labels,
              num_peaks_per_label=num_peaks_per_label, p_norm=p_norm)
    assert_same(_call(skimage.feature.peak_local_max, img, **kw), _call(feature.peak_local_max, img, **kw))


def test_peak_local_max_messages():
    img = np.zeros((5, 5))
    img[2, 2] = 1
    for eb, exc, text in ((-1, ValueError, "`exclude_border` cannot be a negative value"),
                          ((1,), ValueError, "`exclude_border` should have the same length as the dimensionality of the image."),
                          ((1, 1.5), ValueError, "`exclude_border`, when expressed as a tuple, must only contain ints."),
                          ((1, -1), ValueError, "`exclude_border` can not be a negative value"),
                          (1.5, TypeError, "`exclude_border` must be bool, int, or tuple")):
        with pytest.raises(exc, match=re.escape(text)):
            feature.peak_local_max(img, exclude_border=eb)
    with pytest.warns(RuntimeWarning, match=re.escape("When min_distance < 1, peak_local_max acts as finding")):
        feature.peak_local_max(img, min_distance=0)


# ---- regionprops_table ----------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 40),
       st.sampled_from([np.float32, np.float64, np.uint8, np.int32, np.uint16, np.int64, bool]),
       st.sampled_from([np.int32, np.int64, np.uint8, np.uint16]),
       st.lists(st.sampled_from(SUPPORTED_PROPERTIES), min_size=1, max_size=6, unique=True),
       st.sampled_from(["-", "_"]), st.sampled_from([None, (2.0, 0.5)]), st.booleans())
def test_regionprops_table_matches_skimage(seed, h, w, idt, ldt, props, sep, spacing, big):
    rng = np.random.default_rng(seed)
    labels = skimage.measure.label(rng.random((h, w)) < 0.55).astype(ldt)
    if big:  # relabel sparsely: absent labels have no row
        labels = (labels * 3).astype(ldt)
    scale = 1000.0 if np.dtype(idt).kind == "f" else 100.0
    inten = (rng.standard_normal((h, w)) * scale).astype(idt) if np.dtype(idt).kind in "fi" else \
        (rng.random((h, w)) * scale).astype(idt)
    if spacing is not None and "centroid" in props:
        props = [p for p in props if p != "centroid"] or ["label"]
    kw = dict(properties=props, separator=sep, spacing=spacing)
    assert_same(_call(skimage.measure.regionprops_table, labels, inten, **kw),
                _call(measure.regionprops_table, labels, inten, **kw))


def test_regionprops_table_large_regions_intensity_mean():
    """Regions of thousands of pixels: numpy's pairwise summation order matters for float means."""
    rng = np.random.default_rng(3)
    labels = np.zeros((200, 300), np.int32)
    labels[:, :100], labels[:, 100:250], labels[5:50, 260:290] = 1, 2, 4
    for dt in (np.float32, np.float64):
        inten = (rng.standard_normal(labels.shape) * 1e3).astype(dt)
        props = ("label", "intensity_mean", "intensity_min", "intensity_max", "centroid")
        assert_same(_call(skimage.measure.regionprops_table, labels, inten, props),
                    _call(measure.regionprops_table, labels, inten, props))


def test_regionprops_table_rejections():
    lab = np.ones((3, 3), np.int32)
    with pytest.raises(ValueError, match="'perimeter' is not supported"):
        measure.regionprops_table(lab, properties=("perimeter",))
    with pytest.raises(TypeError, match="Non-integer image types are ambiguous"):
        measure.regionprops_table(lab.astype(bool))
    with pytest.raises(AttributeError, match="No intensity image specified"):
        measure.regionprops_table(lab, properties=("intensity_mean",))
    empty = measure.regionprops_table(np.zeros((3, 3), np.int32), properties=("label", "bbox", "area"))
    ref = skimage.measure.regionprops_table(np.zeros((3, 3), np.int32), properties=("label", "bbox", "area"))
    assert list(empty) == list(ref) and all(empty[k].dtype == ref[k].dtype and len(empty[k]) == 0 for k in ref)


# ---- distance transform (scipy.ndimage's, the pipeline's step before peak_local_max) ---------------------


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 60), st.sampled_from([0.0, 0.02, 0.3, 0.9, 1.0]),
       st.sampled_from([bool, np.uint8, np.float64, np.int32]))
def test_distance_transform_edt_matches_scipy(seed, h, w, density, dt):
    from scipy import ndimage as ndi

    from dwd_fast.skimage.ndimage import distance_transform_edt

    rng = np.random.default_rng(seed)
    img = (rng.random((h, w)) >= density).astype(dt)  # density: the share of background (zero) pixels
    ref, ours = ndi.distance_transform_edt(img), distance_transform_edt(img)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_distance_transform_edt_rejects():
    from dwd_fast.skimage.ndimage import distance_transform_edt

    with pytest.raises(ValueError, match="2-D images only"):
        distance_transform_edt(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="defaults only"):
        distance_transform_edt(np.ones((2, 2)), sampling=(1, 2))
