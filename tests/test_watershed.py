"""watershed: canonical == its slow oracle == the host-executed GPU algorithm; skimage == scikit-image."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from skimage.segmentation import watershed as sk_watershed

import dwd_fast
from tests.conftest import assert_unchanged, torch_or_skip
from tests.reference.watershed_oracle import canonical_watershed

pytestmark = pytest.mark.usefixtures("page_threads")

ORDERS = ["forward", "reversed", "shuffled"]


@st.composite
def scenes(draw, max_side=18, wide=False):
    """Tie-heavy floods: few image levels (plateaus), many markers with repeated labels, masks; ``wide``:
    a few rows of 60 to 200 columns (mask runs found 64 columns at a time, across block boundaries)."""
    H = draw(st.integers(1, 5 if wide else max_side))
    W = draw(st.integers(60, 200) if wide else st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    kind = draw(st.sampled_from(["int", "float", "float32", "int64", "uint8", "cones"]))
    if kind == "cones":  # DWD-like: -energy of overlapping cones
        E = np.zeros((H, W), np.int16)
        for _ in range(rng.integers(1, 5)):
            y, x = rng.integers(0, H), rng.integers(0, W)
            yy, xx = np.ogrid[:H, :W]
            E = np.maximum(E, np.clip(6 - np.abs(yy - y) - np.abs(xx - x), 0, 6).astype(np.int16))
        img = -E
    elif kind == "float":
        img = rng.integers(0, 3, (H, W)) * 0.5 - 0.25
    elif kind == "float32":  # with both zeros: -0.0 and 0.0 are one value
        img = (rng.integers(-1, 2, (H, W)) * 0.5).astype(np.float32)
        img[rng.random((H, W)) < 0.3] = -0.0
    elif kind == "int64":  # values beyond 32 bits
        img = rng.integers(-2, 2, (H, W)) * (2**40 + 1)
    elif kind == "uint8":
        img = rng.integers(0, 3, (H, W)).astype(np.uint8)
    else:
        img = rng.integers(-2, 2, (H, W)).astype(np.int32)
    density = draw(st.sampled_from([0.05, 0.2, 0.5]))
    labels = draw(st.sampled_from([[1], [1, 2], [-3, 2, 7], list(range(1, 9))]))
    markers = (rng.choice(labels, (H, W)) * (rng.random((H, W)) < density))
    markers = markers.astype(draw(st.sampled_from([np.int32, np.int64, np.int16, np.uint8])) if min(labels) > 0
                             else np.int32)
    mask = None if draw(st.booleans()) else rng.random((H, W)) < draw(st.sampled_from([0.1, 0.3, 0.6, 0.9]))  # sparse masks are packed
    return img, markers, mask


@given(sc=scenes(), conn=st.sampled_from([1, 2]))
def test_canonical_equals_oracle(sc, conn):
    img, markers, mask = sc
    before = [img.copy(), markers.copy()]
    out = dwd_fast.watershed(img, markers, mask=mask, connectivity=conn)
    assert out.dtype == markers.dtype
    np.testing.assert_array_equal(out, canonical_watershed(img, markers, mask, conn))
    assert_unchanged(before[0], img)
    assert_unchanged(before[1], markers)


@given(sc=scenes(), conn=st.sampled_from([1, 2]), seed=st.integers(0, 100))
def test_host_algorithm_equals_cpu_in_every_order(sc, conn, seed):
    img, markers, mask = sc
    cpu = dwd_fast.watershed(img, markers, mask=mask, connectivity=conn)
    for order in ORDERS:
        host = dwd_fast.watershed(img, markers, mask=mask, connectivity=conn, backend="host", order=order, seed=seed)
        np.testing.assert_array_equal(host, cpu, err_msg=order)


@st.composite
def wide_scenes(draw, max_side=14):
    """Values whose order keys span 2^31 or more (the sorting rank paths of the data-parallel op), bool
    and unsigned 64-bit markers, integer masks, non-contiguous views."""
    H = draw(st.integers(1, max_side))
    W = draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    img = draw(st.sampled_from([
        lambda: rng.integers(-2, 3, (H, W)) * (2**40 + 3),
        lambda: rng.integers(0, 3, (H, W)).astype(np.float64) * 1e300 - 1e300,
        lambda: (rng.integers(0, 3, (H, W)) * 2**62).astype(np.uint64) + np.uint64(2**63 - 2**62),
        lambda: rng.integers(0, 4, (H, W)).astype(np.uint16)]))()
    labels = draw(st.sampled_from(["u64", "i64", "bool", "small"]))
    on = rng.random((H, W)) < draw(st.sampled_from([0.05, 0.3]))
    if labels == "u64":
        markers = np.array([1, 2**63 + 5, 2**64 - 1, 2**40], np.uint64)[rng.integers(0, 4, (H, W))] * on
    elif labels == "i64":
        markers = rng.choice([-2**62, 7, 2**62, -1], (H, W)) * on
    elif labels == "bool":
        markers = on
    else:
        markers = (rng.integers(1, 4, (H, W)) * on).astype(np.int8)
    mask = None if draw(st.booleans()) else (rng.random((H, W)) < 0.7).astype(draw(st.sampled_from([bool, np.uint8,
                                                                                                     np.int32])))
    if draw(st.booleans()):  # strided views
        img, markers = np.repeat(img, 2, axis=1)[:, ::2], np.repeat(markers, 2, axis=0)[::2]
    return img, markers, mask


@given(sc=wide_scenes(), conn=st.sampled_from([1, 2]), seed=st.integers(0, 100))
def test_host_algorithm_wide_values_equal_cpu(sc, conn, seed):
    img, markers, mask = sc
    cpu = dwd_fast.watershed(img, markers, mask=mask, connectivity=conn)
    assert cpu.dtype == markers.dtype
    for order in ORDERS:
        stats = {}
        host = dwd_fast.watershed(img, markers, mask=mask, connectivity=conn, backend="host", order=order, seed=seed,
                                  _stats=stats)
        assert host.dtype == markers.dtype
        np.testing.assert_array_equal(host, cpu, err_msg=order)


def test_host_algorithm_rank_paths():
    """The data-parallel op ranks by offset when the keys span less than 2^31, else by sorting."""
    img = np.array([[0, 1, 2, 3]], np.int64)
    mk = np.array([[1, 0, 0, 2]], np.int64)
    for scale, msort, want in ((1, False, [[1, 1, 1, 2]]), (2**40, True, [[2**40, 2**40, 2**40, 2**41]])):
        st_ = {}
        out = dwd_fast.watershed(img * scale, mk * scale, backend="host", _stats=st_)
        np.testing.assert_array_equal(out, want)
        assert st_["level_sort"] == msort and st_["marker_sort"] == msort


def test_host_op_rejects_nan_in_the_kernel():
    from dwd_fast import _arrays
    from dwd_fast._ext import cpu_ext

    img = np.zeros((3, 3))
    img[1, 1] = np.nan
    mk = np.zeros((3, 3), np.int32)
    out = np.empty((3, 3), np.int32)
    with pytest.raises(ValueError, match="image contains NaN"):
        cpu_ext().watershed_exec_host(_arrays.view(img, "image"), _arrays.view(mk, "markers"), None, 1,
                                      _arrays.view(out, "out"), 0, 0)
    # outside the mask NaN is never read
    mask = np.ones((3, 3), np.uint8)
    mask[1, 1] = 0
    mk[0, 0] = 5
    cpu_ext().watershed_exec_host(_arrays.view(img, "image"), _arrays.view(mk, "markers"), _arrays.view(mask, "mask"),
                                  1, _arrays.view(out, "out"), 0, 0)
    assert out[1, 1] == 0 and (out[mask == 1] == 5).all()


@given(sc=scenes(wide=True), conn=st.sampled_from([1, 2]))
def test_wide_rows(sc, conn):
    img, markers, mask = sc
    np.testing.assert_array_equal(dwd_fast.watershed(img, markers, mask=mask, connectivity=conn),
                                  canonical_watershed(img, markers, mask, conn))
    np.testing.assert_array_equal(dwd_fast.watershed(img, markers, mask=mask, connectivity=conn, method="skimage"),
                                  sk_watershed(img, markers, mask=mask, connectivity=conn))


@given(sc=scenes(), conn=st.sampled_from([1, 2]))
def test_skimage_method_is_bit_identical(sc, conn):
    img, markers, mask = sc
    out = dwd_fast.watershed(img, markers, mask=mask, connectivity=conn, method="skimage")
    ref = sk_watershed(img, markers, mask=mask, connectivity=conn)
    assert out.dtype == ref.dtype
    np.testing.assert_array_equal(out, ref)


# Lower bounds on the share of masked pixels where the canonical watershed agrees with scikit-image,
# per page and connectivity (measured 2026-12-02, benchmarks/measure_agreement.py: n=250 99.961% and
# 99.939%, n=2000 99.901% and 99.886%; n=7664 99.649% and 99.585%), with a margin of a few in 10^4.
AGREEMENT_BOUND = {250: {1: 0.9993, 2: 0.9990}, 2000: {1: 0.9985, 2: 0.9983}}


def _page_case(page):
    E = page.energy.astype(np.int16)
    return -E, dwd_fast.label(E >= 8), E >= 2


@pytest.mark.parametrize("conn", [1, 2])
def test_reference_page(page250, conn, record_property):
    img, markers, mask = _page_case(page250)
    ref = sk_watershed(img, markers, mask=mask, connectivity=conn)
    np.testing.assert_array_equal(dwd_fast.watershed(img, markers, mask=mask, connectivity=conn,
                                                     method="skimage"), ref)
    canon = dwd_fast.watershed(img, markers, mask=mask, connectivity=conn)
    agree = float((canon == ref)[mask].mean())
    record_property("canonical_vs_skimage_agreement", agree)
    print(f"\ncanonical vs scikit-image, n=250, connectivity {conn}: {100 * agree:.3f}% of masked pixels agree")
    assert agree > AGREEMENT_BOUND[250][conn]
    # the canonical answer equals its oracle on a crop, and the GPU algorithm on the host
    crop = (slice(0, 400), slice(0, 600))
    c_img, c_mk, c_mask = img[crop], markers[crop], mask[crop]
    c_out = dwd_fast.watershed(c_img, c_mk, mask=c_mask, connectivity=conn)
    np.testing.assert_array_equal(c_out, canonical_watershed(c_img, c_mk, c_mask, conn))
    np.testing.assert_array_equal(
        dwd_fast.watershed(c_img, c_mk, mask=c_mask, connectivity=conn, backend="host", order="shuffled"), c_out)


@pytest.mark.parametrize("conn", [1, 2])
def test_page_2000_agreement(page2000, conn):
    img, markers, mask = _page_case(page2000)
    ref = sk_watershed(img, markers, mask=mask, connectivity=conn)
    np.testing.assert_array_equal(dwd_fast.watershed(img, markers, mask=mask, connectivity=conn, method="skimage"),
                                  ref)
    agree = float((dwd_fast.watershed(img, markers, mask=mask, connectivity=conn) == ref)[mask].mean())
    print(f"\ncanonical vs scikit-image, n=2000, connectivity {conn}: {100 * agree:.3f}% of masked pixels agree")
    assert agree > AGREEMENT_BOUND[2000][conn]


def test_documented_ties():
    flat = np.zeros((1, 7))
    mk = np.array([[1, 0, 0, 0, 0, 0, 2]])
    np.testing.assert_array_equal(dwd_fast.watershed(flat, mk), [[1, 1, 1, 1, 2, 2, 2]])  # smallest label
    np.testing.assert_array_equal(dwd_fast.watershed(flat, mk[:, ::-1]), [[2, 2, 2, 1, 1, 1, 1]])
    np.testing.assert_array_equal(dwd_fast.watershed(flat, mk, method="skimage"), [[1, 1, 1, 1, 2, 2, 2]])
    # a marker on a higher value floods later
    np.testing.assert_array_equal(dwd_fast.watershed(np.array([[1, 0, 0, 0, 0, 0, 0]]), mk), [[1, 2, 2, 2, 2, 2, 2]])


def test_unreached_and_outside_mask_are_zero():
    img = np.zeros((3, 5))
    mk = np.zeros((3, 5), np.int32)
    mk[0, 0] = 4
    mask = np.ones((3, 5), bool)
    mask[:, 2] = False
    out = dwd_fast.watershed(img, mk, mask=mask)
    assert (out[:, :2] == 4).all() and (out[:, 2:] == 0).all()
    mk[1, 2] = 9  # a marker outside the mask is ignored
    np.testing.assert_array_equal(dwd_fast.watershed(img, mk, mask=mask), out)


def test_torch_in_torch_out():
    torch = torch_or_skip()
    img = torch.zeros(3, 3)
    mk = torch.zeros(3, 3, dtype=torch.int64)
    mk[0, 0] = 1
    out = dwd_fast.watershed(img, mk)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64 and bool((out == 1).all())


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(image=np.zeros((3, 3, 3)), markers=np.zeros((3, 3, 3), int)), ValueError, r"image must be 2-D"),
    (dict(image=np.zeros((3, 3)), markers=np.zeros((3, 4), int)), ValueError, "markers must have the shape of image"),
    (dict(image=np.zeros((3, 3)), markers=np.zeros((3, 3))), TypeError, "markers must be an integer"),
    (dict(image=np.full((3, 3), np.nan), markers=np.zeros((3, 3), int)), ValueError, "image contains NaN"),
    (dict(image=np.zeros((3, 3)), markers=np.zeros((3, 3), int), mask=np.zeros((2, 3), bool)), ValueError,
     "mask must have the shape of image"),
    (dict(image=np.zeros((3, 3)), markers=np.zeros((3, 3), int), mask=np.zeros((3, 3), np.float32)), TypeError,
     "mask must be a bool array"),
    (dict(image=np.zeros((3, 3)), markers=np.zeros((3, 3), int), connectivity=3), ValueError, "connectivity"),
    (dict(image=np.zeros((3, 3)), markers=np.zeros((3, 3), int), method="fast"), ValueError, "method must be"),
    (dict(image=np.zeros((3, 3)), markers=np.zeros((3, 3), int), method="skimage", backend="host"), ValueError,
     "cpu backend only"),
    (dict(image=np.zeros((3, 3)), markers=np.zeros((3, 3), int), backend="host", order="sideways"), ValueError,
     "order must be one of"),
])
def test_bad_input(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        dwd_fast.watershed(**kwargs)


@st.composite
def sparse_scenes(draw):
    """A few blobs (some wider than 64 columns) on a larger canvas: the mask is sparse, so its components
    are flooded in a packed page (bit planes for narrow integer values), as on engraved pages."""
    H, W = draw(st.integers(20, 50)), draw(st.integers(80, 220))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    mask = np.zeros((H, W), bool)
    for _ in range(rng.integers(1, 4)):
        h, w = rng.integers(1, 12), rng.integers(1, min(W, 150))
        y, x = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
        mask[y:y + h, x:x + w] |= rng.random((h, w)) < draw(st.sampled_from([0.7, 0.95, 1.0]))
    kind = draw(st.sampled_from(["cones", "uint8", "int8", "uint16"]))
    if kind == "cones":
        E = np.zeros((H, W), np.int16)
        yy, xx = np.ogrid[:H, :W]
        for _ in range(rng.integers(1, 8)):
            y, x = rng.integers(0, H), rng.integers(0, W)
            E = np.maximum(E, np.clip(9 - np.abs(yy - y) - np.abs(xx - x) // 4, 0, 9).astype(np.int16))
        img = -E
    elif kind == "uint16":  # a wide range of values: many levels in a component
        img = rng.integers(0, 60000, (H, W)).astype(np.uint16)
    else:
        img = rng.integers(0, draw(st.sampled_from([2, 4, 16])), (H, W)).astype(kind)
    labels = draw(st.sampled_from([[1, 2], [3, 1, 7], list(range(1, 12))]))
    markers = (rng.choice(labels, (H, W)) * (rng.random((H, W)) < draw(st.sampled_from([0.005, 0.02, 0.1]))))
    return img, markers.astype(np.int32), mask


@given(sc=sparse_scenes(), conn=st.sampled_from([1, 2]))
def test_sparse_mask_equals_oracle(sc, conn):
    img, markers, mask = sc
    np.testing.assert_array_equal(dwd_fast.watershed(img, markers, mask=mask, connectivity=conn),
                                  canonical_watershed(img, markers, mask, conn))


@st.composite
def noisy_scenes(draw, max_side=20):
    """Reliefs where nearly every pixel has a value of its own, in every wide dtype (the canonical flood's
    radix-heap level queue: values spread over all bytes of the key, signs, -0.0 / +0.0, subnormals)."""
    H = draw(st.integers(1, max_side))
    W = draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    kind = draw(st.sampled_from(["f64", "f32", "int64", "uint64", "int32", "uint32", "tiny", "levels+noise"]))
    if kind == "f64":
        img = rng.uniform(0, 0.01, (H, W))
    elif kind == "f32":
        img = rng.normal(0, 1e3, (H, W)).astype(np.float32)
    elif kind == "int64":
        img = rng.integers(-2**62, 2**62, (H, W))
    elif kind == "uint64":
        img = rng.integers(0, 2**64 - 1, (H, W), dtype=np.uint64)
    elif kind == "int32":
        img = rng.integers(-2**31, 2**31 - 1, (H, W)).astype(np.int32)
    elif kind == "uint32":
        img = rng.integers(0, 2**32 - 1, (H, W), dtype=np.uint32)
    elif kind == "tiny":  # subnormals and both zeros
        img = rng.choice(np.array([0.0, -0.0, 5e-324, -5e-324, 1e-310, 1.0]), (H, W))
    else:
        img = -rng.integers(0, 4, (H, W)) + rng.uniform(0, 0.01, (H, W))
    markers = (rng.choice([1, 2, 3], (H, W)) * (rng.random((H, W)) < draw(st.sampled_from([0.01, 0.1])))).astype(np.int32)
    mask = None if draw(st.booleans()) else rng.random((H, W)) < draw(st.sampled_from([0.3, 0.9]))
    return img, markers, mask


@given(sc=noisy_scenes(), conn=st.sampled_from([1, 2]))
def test_canonical_noisy_equals_oracle(sc, conn):
    img, markers, mask = sc
    np.testing.assert_array_equal(dwd_fast.watershed(img, markers, mask=mask, connectivity=conn),
                                  canonical_watershed(img, markers, mask, conn))
