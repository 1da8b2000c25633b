"""decode: against the numpy/scikit-image statement of the decoder, batches, bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dwd_fast
from tests.conftest import assert_unchanged, torch_or_skip
from tests.reference.decode_numpy import decode_reference
from tests.strategies import blob_maps

pytestmark = pytest.mark.usefixtures("page_threads")

FIELDS = ("boxes", "labels", "scores", "class_scores", "centers", "areas")


def assert_matches(det, ref, exact_scores=True):
    assert len(det) == len(ref["areas"])
    np.testing.assert_array_equal(det.areas, ref["areas"])
    np.testing.assert_array_equal(det.labels, ref["labels"])
    np.testing.assert_array_equal(det.centers, ref["centers"])  # exact: integer sums / area
    np.testing.assert_allclose(det.boxes, ref["boxes"], rtol=0, atol=1e-4)
    if exact_scores:
        np.testing.assert_array_equal(det.scores, ref["scores"])
    else:
        np.testing.assert_allclose(det.scores, ref["scores"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(det.class_scores, ref["class_scores"], rtol=1e-5, atol=1e-6)


@st.composite
def pages(draw, logits=False, wide=False):
    e = draw(blob_maps(max_side=30, levels=12, wide=wide))
    H, W = e.shape
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    classes = rng.integers(0, 5, (H, W)).astype(draw(st.sampled_from([np.uint8, np.int32, np.int64])))
    sizes = (rng.random((2, H, W)) * 20 - 1).astype(draw(st.sampled_from([np.float32, np.float64])))
    if logits:
        K = 12
        el = rng.normal(size=(K, H, W)).astype(np.float32)
        el[e, np.arange(H)[:, None], np.arange(W)[None]] += 3  # argmax mostly = e
        cl = rng.normal(size=(4, H, W)).astype(np.float64)
        return el, cl, sizes
    return e, classes, sizes


@given(p=pages(), cutoff=st.integers(-1, 11), min_size=st.integers(0, 6), conn=st.sampled_from([1, 2]),
       reduce=st.sampled_from(["max", "mean", "median"]))
def test_level_map_equals_reference(p, cutoff, min_size, conn, reduce):
    e, c, s = p
    before = [x.copy() for x in p]
    det = dwd_fast.decode(e, c, s, cutoff=cutoff, min_size=min_size, connectivity=conn, size_reduce=reduce,
                          levels=12)
    ref = decode_reference(e, c, s, cutoff=cutoff, min_size=min_size, connectivity=conn, size_reduce=reduce,
                           levels=12)
    assert_matches(det, ref)
    for b, a in zip(before, p):
        assert_unchanged(b, a)


@given(p=pages(wide=True), cutoff=st.integers(-1, 11), conn=st.sampled_from([1, 2]))
def test_wide_rows_equal_reference(p, cutoff, conn):
    """Rows of 60 to 200 columns: runs of energy > cutoff found 64 columns at a time, across block
    boundaries and up to the row's end."""
    e, c, s = p
    det = dwd_fast.decode(e, c, s, cutoff=cutoff, connectivity=conn, levels=12)
    assert_matches(det, decode_reference(e, c, s, cutoff=cutoff, connectivity=conn, levels=12))


@given(p=pages(), cutoff=st.integers(0, 8))
def test_without_classes_and_sizes_boxes_are_extents(p, cutoff):
    e = p[0]
    det = dwd_fast.decode(e, cutoff=cutoff, min_size=1, return_label_map=True)
    ref = decode_reference(e, cutoff=cutoff, min_size=1)
    assert_matches(det, ref)
    assert (det.labels == -1).all()
    # the label map is the labelling of the kept objects, ids in the order of the detections
    from skimage.measure import label as sk_label
    np.testing.assert_array_equal(det.label_map, sk_label(e > cutoff, connectivity=2))


@given(p=pages(logits=True), cutoff=st.integers(0, 10))
def test_logits_equal_reference(p, cutoff):
    el, cl, s = p
    det = dwd_fast.decode(el, cl, s, cutoff=cutoff, min_size=1)
    ref = decode_reference(el, cl, s, cutoff=cutoff, min_size=1)
    assert_matches(det, ref, exact_scores=False)
    assert ((det.scores >= 0) & (det.scores <= 1)).all()


def test_reference_page(page250):
    p = page250
    det = dwd_fast.decode(p.energy, p.classes, p.sizes, cutoff=7, min_size=4, levels=16)
    ref = decode_reference(p.energy, p.classes, p.sizes, cutoff=7, min_size=4, levels=16)
    assert_matches(det, ref)
    assert 200 < len(det) <= 250
    # sizes come back exactly: every box height (width) is one of the drawn objects' heights (widths)
    gt_h = set(np.round(p.boxes[:, 3] - p.boxes[:, 1], 3))
    gt_w = set(np.round(p.boxes[:, 2] - p.boxes[:, 0], 3))
    assert set(np.round(det.boxes[:, 3] - det.boxes[:, 1], 3)) <= gt_h
    assert set(np.round(det.boxes[:, 2] - det.boxes[:, 0], 3)) <= gt_w


def test_batch_equals_pages(page250):
    p = page250
    e = np.stack([p.energy[:500, :400], p.energy[500:1000, :400], p.energy[1000:1500, :400]])
    c = np.stack([p.classes[:500, :400], p.classes[500:1000, :400], p.classes[1000:1500, :400]])
    s = np.stack([p.sizes[:, :500, :400], p.sizes[:, 500:1000, :400], p.sizes[:, 1000:1500, :400]])
    dets = dwd_fast.decode(e, c, s, return_label_map=True)
    assert isinstance(dets, list) and len(dets) == 3
    for b in range(3):
        one = dwd_fast.decode(e[b], c[b], s[b], return_label_map=True)
        for f in FIELDS + ("label_map",):
            np.testing.assert_array_equal(getattr(dets[b], f), getattr(one, f))


def test_as_dict_is_torchvision_format(page250):
    det = dwd_fast.decode(page250.energy, page250.classes, page250.sizes)
    d = det.as_dict()
    assert set(d) == {"boxes", "labels", "scores"}
    assert d["boxes"].dtype == np.float32 and d["boxes"].shape == (len(det), 4)
    assert d["labels"].dtype == np.int64 and d["scores"].dtype == np.float32


def test_torch_in_torch_out(page250):
    torch = torch_or_skip()
    p = page250
    det = dwd_fast.decode(torch.from_numpy(p.energy), torch.from_numpy(p.classes), torch.from_numpy(p.sizes))
    ref = dwd_fast.decode(p.energy, p.classes, p.sizes)
    assert isinstance(det.boxes, torch.Tensor)
    np.testing.assert_array_equal(det.boxes.numpy(), ref.boxes)
    np.testing.assert_array_equal(det.labels.numpy(), ref.labels)


def test_strided_and_fortran_inputs(page250):
    p = page250
    e = np.asfortranarray(p.energy[:300, :300])
    c = p.classes[:300, :300]
    s = np.ascontiguousarray(np.moveaxis(p.sizes[:, :300, :300], 0, -1))  # (H, W, 2) ...
    s = np.moveaxis(s, -1, 0)                                              # ... viewed as (2, H, W)
    det = dwd_fast.decode(e, c, s)
    ref = decode_reference(np.ascontiguousarray(e), c, np.ascontiguousarray(s))
    assert_matches(det, ref)


def test_negative_sizes_clamp_to_zero():
    e = np.zeros((5, 5), np.uint8)
    e[2, 2] = 9
    s = np.full((2, 5, 5), -3.0, np.float32)
    det = dwd_fast.decode(e, sizes=s, min_size=1)
    np.testing.assert_array_equal(det.boxes, [[2.5, 2.5, 2.5, 2.5]])


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(energy=np.zeros((2, 2, 2, 2, 2), np.float32)), ValueError, "energy must be"),
    (dict(energy=np.zeros((4, 5, 6), np.complex64)), TypeError, "energy has unsupported dtype"),
    (dict(energy=np.zeros((0, 5), np.uint8)), ValueError, "energy is empty"),
    (dict(energy=np.full((3, 3), np.nan, np.float32)), ValueError, "energy contains NaN"),
    (dict(energy=np.zeros((3, 4, 4), np.float32) + np.where(np.eye(4) > 0, np.nan, 0)), ValueError,
     "energy contains NaN"),
    (dict(energy=np.zeros((4, 4), np.uint8), classes=np.zeros((4, 5), np.int32)), ValueError,
     r"classes must be class ids of shape \(H, W\) matching energy \(4, 4\), got shape \(4, 5\)"),
    (dict(energy=np.zeros((4, 4), np.uint8), sizes=np.zeros((4, 4), np.float32)), ValueError,
     r"sizes must be \(2, H, W\)"),
    (dict(energy=np.full((4, 4), 9, np.uint8), classes=np.full((4, 4), -2, np.int32)), ValueError,
     "classes must be non-negative class ids, got -2"),
    (dict(energy=np.full((4, 4), 9, np.uint8), sizes=np.full((2, 4, 4), np.nan, np.float32)), ValueError,
     "sizes contains NaN"),
    (dict(energy=np.full((4, 4), 9, np.uint8), classes=np.full((3, 4, 4), np.nan)), ValueError,
     "classes contains NaN"),
    (dict(energy=np.zeros((4, 4), np.uint8), cutoff=float("nan")), ValueError, "cutoff must be finite"),
    (dict(energy=np.zeros((4, 4), np.uint8), cutoff="7"), TypeError, "cutoff must be a number"),
    (dict(energy=np.zeros((4, 4), np.uint8), min_size=-1), ValueError, "min_size must be"),
    (dict(energy=np.zeros((4, 4), np.uint8), size_reduce="sum"), ValueError, "size_reduce must be one of"),
    (dict(energy=np.zeros((4, 4), np.uint8), levels=1), ValueError, "levels must be"),
    (dict(energy=np.zeros((4, 4), np.uint8), connectivity=0), ValueError, "connectivity must be"),
])
def test_bad_input(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        dwd_fast.decode(**kwargs)


def test_cutoffs_outside_dtype_range():
    e = np.array([[0, 3], [255, 0]], np.uint8)
    assert len(dwd_fast.decode(e, cutoff=255, min_size=1)) == 0
    assert len(dwd_fast.decode(e, cutoff=-1, min_size=1)) == 1     # every pixel is above -1
    assert len(dwd_fast.decode(e, cutoff=2.5, min_size=1, connectivity=1)) == 2
    assert len(dwd_fast.decode(e, cutoff=2.5, min_size=1)) == 1  # diagonal neighbours


@given(p=pages(), cutoff=st.integers(3, 11), drop=st.integers(0, 4), min_size=st.integers(0, 6),
       conn=st.sampled_from([1, 2]), over=st.sampled_from(["core", "region"]), with_maps=st.booleans())
def test_grow_to_equals_reference(p, cutoff, drop, min_size, conn, over, with_maps):
    e, c, s = p
    kw = dict(cutoff=cutoff, min_size=min_size, connectivity=conn, grow_to=cutoff - drop, reduce_over=over,
              levels=12)
    args = (e, c, s) if with_maps else (e,)
    det = dwd_fast.decode(*args, **kw, return_label_map=True)
    ref = decode_reference(*args, **kw)
    assert_matches(det, ref)
    # the label map holds exactly the objects' regions
    assert det.label_map.max() == len(det)
    np.testing.assert_array_equal(np.bincount(det.label_map.ravel(), minlength=len(det) + 1)[1:], det.areas)


@given(p=pages(), cutoff=st.integers(2, 9), drop=st.integers(0, 3), min_size=st.integers(0, 6),
       dist=st.integers(1, 3), conn=st.sampled_from([1, 2]))
def test_peak_seeds_equal_reference(p, cutoff, drop, min_size, dist, conn):
    e, c, s = p
    kw = dict(cutoff=cutoff, min_size=min_size, connectivity=conn, seeds="peaks", min_distance=dist,
              grow_to=cutoff - drop, levels=12)
    assert_matches(dwd_fast.decode(e, c, s, **kw), decode_reference(e, c, s, **kw))


def test_grow_splits_fused_objects():
    # two cones whose fringes touch: one object at cutoff 1, two when cores at 5 grow down to 1
    e = np.zeros((9, 20), np.uint8)
    for x in (5, 13):
        yy, xx = np.ogrid[:9, :20]
        e = np.maximum(e, np.clip(8 - np.abs(yy - 4) - np.abs(xx - x), 0, 8).astype(np.uint8))
    assert len(dwd_fast.decode(e, cutoff=1, min_size=1)) == 1
    det = dwd_fast.decode(e, cutoff=5, min_size=1, grow_to=1)
    assert len(det) == 2
    assert det.areas.sum() == (e > 1).sum()
    assert len(dwd_fast.decode(e, cutoff=1, min_size=1, seeds="peaks")) == 2


def test_grow_to_above_cutoff_rejected():
    with pytest.raises(ValueError, match="grow_to must be a finite level <= cutoff"):
        dwd_fast.decode(np.zeros((4, 4), np.uint8), cutoff=3, grow_to=5)
    with pytest.raises(ValueError, match="seeds must be"):
        dwd_fast.decode(np.zeros((4, 4), np.uint8), seeds="blobs")
    with pytest.raises(ValueError, match="reduce_over must be"):
        dwd_fast.decode(np.zeros((4, 4), np.uint8), reduce_over="all")


# ---- the data-parallel (GPU) decoder through HostExec ------------------------------------------------

ORDERS = ["forward", "reversed", "shuffled"]
EXEC_FIELDS = FIELDS + ("label_map",)


def assert_same_detections(a, b):
    assert len(a) == len(b)
    for f in EXEC_FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None) == (y is None), f
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape, f
            np.testing.assert_array_equal(x, y, err_msg=f)


@given(p=pages(), cutoff=st.integers(-1, 11), min_size=st.integers(0, 6), conn=st.sampled_from([1, 2]),
       reduce=st.sampled_from(["max", "mean", "median"]), grow=st.sampled_from([None, 0, 3, "cutoff"]),
       over=st.sampled_from(["core", "region"]), use=st.sampled_from(["all", "none", "classes", "sizes"]),
       seed=st.integers(0, 2**31))
def test_host_executor_equals_cpu(p, cutoff, min_size, conn, reduce, grow, over, use, seed):
    """decode's data-parallel algorithm, run by HostExec in three element orders, equals the cpu backend."""
    e, c, s = p
    c = c if use in ("all", "classes") else None
    s = s if use in ("all", "sizes") else None
    grow_to = cutoff if grow == "cutoff" else (None if grow is None else min(grow, cutoff))
    kw = dict(cutoff=cutoff, min_size=min_size, connectivity=conn, size_reduce=reduce, grow_to=grow_to,
              reduce_over=over, levels=12, return_label_map=True)
    cpu = dwd_fast.decode(e, c, s, **kw)
    for order in ORDERS:
        assert_same_detections(dwd_fast.decode(e, c, s, **kw, backend="host", order=order, seed=seed), cpu)


@given(p=pages(logits=True), cutoff=st.integers(0, 11), grow=st.sampled_from([None, 2]),
       reduce=st.sampled_from(["max", "median"]), seed=st.integers(0, 2**31))
def test_host_executor_logits_equal_cpu(p, cutoff, grow, reduce, seed):
    el, cl, s = p
    kw = dict(cutoff=cutoff, grow_to=None if grow is None else min(grow, cutoff), size_reduce=reduce, min_size=1)
    cpu = dwd_fast.decode(el, cl, s, **kw)
    for order in ORDERS:
        assert_same_detections(dwd_fast.decode(el, cl, s, **kw, backend="host", order=order, seed=seed), cpu)


@given(a=blob_maps(max_side=20, levels=9, dtype=np.float32), cutoff=st.floats(-1, 9), seed=st.integers(0, 99))
def test_host_executor_float_energy_map(a, cutoff, seed):
    e = a + np.float32(0.25)
    cpu = dwd_fast.decode(e, cutoff=cutoff, grow_to=cutoff - 2, min_size=1)
    for order in ORDERS:
        assert_same_detections(dwd_fast.decode(e, cutoff=cutoff, grow_to=cutoff - 2, min_size=1, backend="host",
                                               order=order, seed=seed), cpu)


@pytest.mark.parametrize("kw", [dict(), dict(grow_to=3, size_reduce="median"),
                                dict(grow_to=1, reduce_over="region", size_reduce="mean")])
def test_host_executor_reference_page(page250, kw):
    p = page250
    cpu = dwd_fast.decode(p.energy, p.classes, p.sizes, cutoff=7, return_label_map=True, **kw)
    host = dwd_fast.decode(p.energy, p.classes, p.sizes, cutoff=7, return_label_map=True, backend="host", **kw)
    assert len(cpu) > 200
    assert_same_detections(host, cpu)
    # the other orders on a crop (a whole page in shuffled order takes seconds)
    e, c, s = p.energy[:700, :900], p.classes[:700, :900], p.sizes[:, :700, :900]
    cpu = dwd_fast.decode(e, c, s, cutoff=7, return_label_map=True, **kw)
    for order in ("reversed", "shuffled"):
        assert_same_detections(dwd_fast.decode(e, c, s, cutoff=7, return_label_map=True, backend="host", order=order,
                                               seed=5, **kw), cpu)


def test_host_executor_batch_and_counts(page250):
    e = np.stack([page250.energy[:300, :400], page250.energy[300:600, :400]])
    stats = {}
    dets = dwd_fast.decode(e, backend="host", _stats=stats)
    cpu = dwd_fast.decode(e)
    for d, c in zip(dets, cpu):
        assert_same_detections(d, c)
    assert stats["launches"] > 0 and stats["workspace_bytes"] > 0


@pytest.mark.parametrize("args, kw, msg", [
    ((np.full((4, 4), np.nan),), {}, "energy contains NaN"),
    ((np.zeros((3, 4, 4), np.float32), np.full((2, 4, 4), np.nan)), dict(cutoff=-1), "classes contains NaN"),
    ((np.full((4, 4), 9, np.uint8), None, np.full((2, 4, 4), np.nan)), {}, "sizes contains NaN"),
    ((np.full((4, 4), 9, np.uint8), np.full((4, 4), -1)), {}, "non-negative"),
])
def test_host_executor_bad_input(args, kw, msg):
    with pytest.raises(ValueError, match=msg):
        dwd_fast.decode(*args, **kw, backend="host")
    with pytest.raises(ValueError, match=msg):
        dwd_fast.decode(*args, **kw)


# ---- seeds="peaks" on the data-parallel decoder ------------------------------------------------------

@given(p=pages(), cutoff=st.integers(-1, 11), min_size=st.integers(0, 6), conn=st.sampled_from([1, 2]),
       min_distance=st.integers(1, 4), grow=st.sampled_from([None, 0, 3]), over=st.sampled_from(["core", "region"]),
       dtype=st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.uint64]), seed=st.integers(0, 2**31))
def test_host_executor_peak_seeds_equal_cpu(p, cutoff, min_size, conn, min_distance, grow, over, dtype, seed):
    """Peak seeds (peaks.h pipeline, plateaus, merge, growth, min_size after growth) through HostExec in three
    element orders equal the cpu backend, for integer and float level maps."""
    e, c, s = p
    e = e.astype(dtype)
    kw = dict(cutoff=cutoff, min_size=min_size, connectivity=conn, seeds="peaks", min_distance=min_distance,
              grow_to=None if grow is None else min(grow, cutoff), reduce_over=over, levels=12, return_label_map=True)
    cpu = dwd_fast.decode(e, c, s, **kw)
    for order in ORDERS:
        assert_same_detections(dwd_fast.decode(e, c, s, **kw, backend="host", order=order, seed=seed), cpu)


@given(p=pages(logits=True), cutoff=st.integers(0, 11), min_distance=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_host_executor_peak_seeds_logits_equal_cpu(p, cutoff, min_distance, seed):
    el, cl, s = p
    kw = dict(cutoff=cutoff, seeds="peaks", min_distance=min_distance, min_size=1)
    cpu = dwd_fast.decode(el, cl, s, **kw)
    for order in ORDERS:
        assert_same_detections(dwd_fast.decode(el, cl, s, **kw, backend="host", order=order, seed=seed), cpu)


def test_host_executor_peak_seeds_plateaus():
    """Two peaks on one plateau merge; a lone peak grows down to grow_to; small objects drop after growth."""
    e = np.zeros((5, 12), np.uint8)
    e[1:4, 1:4] = 5
    e[2, 1:4] = 9  # a plateau of three peaks
    e[1:4, 7:11] = 4
    e[2, 8] = 8
    e[2, 9] = 8  # two-pixel plateau
    for backend in ("cpu", "host"):
        d = dwd_fast.decode(e, cutoff=6, grow_to=3, seeds="peaks", min_size=1, return_label_map=True,
                            backend=backend)
        np.testing.assert_array_equal(d.areas, [9, 12])
        np.testing.assert_array_equal(d.label_map[1:4, 1:4], 1)
        d = dwd_fast.decode(e, cutoff=6, grow_to=3, seeds="peaks", min_size=10, backend=backend)
        np.testing.assert_array_equal(d.areas, [12])


@pytest.mark.parametrize("kw", [dict(), dict(min_distance=3, grow_to=2, reduce_over="region"),
                                dict(min_distance=2, connectivity=1, size_reduce="median", min_size=20)])
def test_host_executor_peak_seeds_reference_page(page250, kw):
    p = page250
    cpu = dwd_fast.decode(p.energy, p.classes, p.sizes, cutoff=7, seeds="peaks", return_label_map=True, **kw)
    host = dwd_fast.decode(p.energy, p.classes, p.sizes, cutoff=7, seeds="peaks", return_label_map=True,
                           backend="host", **kw)
    assert len(cpu) > 200
    assert_same_detections(host, cpu)
    e, c, s = p.energy[:700, :900], p.classes[:700, :900], p.sizes[:, :700, :900]
    cpu = dwd_fast.decode(e, c, s, cutoff=7, seeds="peaks", return_label_map=True, **kw)
    for order in ("reversed", "shuffled"):
        assert_same_detections(dwd_fast.decode(e, c, s, cutoff=7, seeds="peaks", return_label_map=True,
                                               backend="host", order=order, seed=5, **kw), cpu)


@pytest.mark.parametrize("music, seed", [("random", 3), ("chorale", 0)])
def test_host_executor_peak_seeds_engraved_page(music, seed):
    """Simulated network outputs of engraved music (blur, noise, merged neighbours): plateaus and fused
    objects that the peak seeds split."""
    pytest.importorskip("verovio")
    pytest.importorskip("resvg_py")
    from dwd_fast.data import box_targets, engraved_page, simulate_outputs

    page = engraved_page(music, seed=seed, measures=12, width=947) if music == "random" else \
        engraved_page(music, width=947)
    t, objects = box_targets(page.boxes, page.labels, page.image.shape, levels=16)
    out = simulate_outputs(t, seed=seed, objects=objects)
    for kw in (dict(cutoff=7, min_distance=2, grow_to=3), dict(cutoff=5, min_size=8, connectivity=1)):
        cpu = dwd_fast.decode(out.energy, out.classes, out.sizes, seeds="peaks", levels=16, return_label_map=True,
                              **kw)
        assert len(cpu) > 50
        for order in ORDERS:
            assert_same_detections(dwd_fast.decode(out.energy, out.classes, out.sizes, seeds="peaks", levels=16,
                                                   return_label_map=True, backend="host", order=order, seed=1, **kw),
                                   cpu)
