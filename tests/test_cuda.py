"""CUDA backend on a real GPU: cuda == cpu for every op with a CUDA implementation.

Marked ``cuda``; every test skips cleanly when no usable GPU (or neither torch with CUDA nor CuPy) is
present. ``scripts/gpu-check.sh`` runs this file under compute-sanitizer (memcheck, racecheck).
Nothing here has been run on a GPU yet (no machine of this project has one).
"""

import numpy as np
import pytest

import dwd_fast
from dwd_fast._arrays import cuda_unusable_reason

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(cuda_unusable_reason() is not None, reason="needs a usable CUDA GPU")]

DET_FIELDS = ("boxes", "labels", "scores", "class_scores", "centers", "areas")


def _libs():
    """(name, to_device, to_host, stream context factory) for the installed CUDA array libraries."""
    out = []
    try:
        import torch

        if torch.cuda.is_available():
            out.append(("torch", lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda(),
                        lambda t: t.cpu().numpy(), lambda: torch.cuda.stream(torch.cuda.Stream())))
    except ImportError:
        pass
    try:
        import cupy

        out.append(("cupy", lambda a: cupy.asarray(a), lambda a: cupy.asnumpy(a), lambda: cupy.cuda.Stream()))
    except ImportError:
        pass
    return out


LIBS = _libs()
lib_params = pytest.mark.parametrize("lib", LIBS or [pytest.param(None, marks=pytest.mark.skip("no torch/cupy"))],
                                     ids=lambda x: x[0] if x else "none")


def _eq(dev_value, host_value, to_host, exact=True):
    got = to_host(dev_value)
    assert got.shape == np.shape(host_value)
    if exact:
        np.testing.assert_array_equal(got, host_value)
    else:
        np.testing.assert_allclose(got, host_value, rtol=1e-6, atol=1e-7)


@lib_params
def test_label(lib, page250):
    _, dev, host, _ = lib
    for a in (page250.energy > 8, page250.classes, page250.energy[::2, 1::3]):
        for conn in (1, 2):
            _eq(dwd_fast.label(dev(a), connectivity=conn), dwd_fast.label(a, connectivity=conn), host)


@lib_params
def test_region_stats(lib, page250):
    _, dev, host, _ = lib
    lab = dwd_fast.label(page250.energy > 7)
    for img in (page250.energy, page250.sizes[0], page250.sizes[1].astype(np.float64)):
        ref = dwd_fast.region_stats(lab, image=img, classes=page250.classes)
        got = dwd_fast.region_stats(dev(lab), image=dev(img), classes=dev(page250.classes))
        for f in ref._fields:
            _eq(getattr(got, f), getattr(ref, f), host)


@lib_params
@pytest.mark.parametrize("kw", [dict(), dict(grow_to=3), dict(grow_to=1, reduce_over="region", size_reduce="median"),
                                dict(size_reduce="mean", connectivity=1, return_label_map=True)])
def test_decode(lib, page250, kw):
    _, dev, host, _ = lib
    p = page250
    ref = dwd_fast.decode(p.energy, p.classes, p.sizes, cutoff=7, **kw)
    got = dwd_fast.decode(dev(p.energy), dev(p.classes), dev(p.sizes), cutoff=7, **kw)
    for f in DET_FIELDS + (("label_map",) if kw.get("return_label_map") else ()):
        _eq(getattr(got, f), getattr(ref, f), host)


@lib_params
def test_decode_logits_batched_non_contiguous(lib):
    _, dev, host, _ = lib
    rng = np.random.default_rng(0)
    el = rng.normal(size=(3, 8, 200, 300)).astype(np.float32)
    el[:, 7, 50:70, 40:90] += 5
    cl = rng.normal(size=(3, 4, 200, 300)).astype(np.float32)
    ref = dwd_fast.decode(el[..., ::2], cl[..., ::2], cutoff=3, min_size=1)
    got = dwd_fast.decode(dev(el)[..., ::2], dev(cl)[..., ::2], cutoff=3, min_size=1)
    assert len(got) == 3
    for g, r in zip(got, ref):
        for f in ("boxes", "labels", "centers", "areas"):
            _eq(getattr(g, f), getattr(r, f), host)
        # softmax uses the device's exp: equal to the last bits only
        _eq(g.scores, r.scores, host, exact=False)
        _eq(g.class_scores, r.class_scores, host, exact=False)


@lib_params
def test_encode_batched(lib):
    _, dev, host, _ = lib
    rng = np.random.default_rng(2)
    boxes, labels = [], []
    for n in (40, 0, 300, 7):
        xy = rng.uniform(0, 400, (n, 2))
        boxes.append(np.concatenate([xy, xy + rng.uniform(4, 60, (n, 2))], axis=1))
        labels.append(rng.integers(0, 100, n))
    for overlap in ("max", "nearest", "last"):
        ref = dwd_fast.encode(boxes, labels, (500, 480), overlap=overlap, marker="hull")
        got = dwd_fast.encode([dev(b) for b in boxes], [dev(x) for x in labels], (500, 480), overlap=overlap,
                              marker="hull")
        for f in ("energy", "classes", "sizes"):
            _eq(getattr(got, f), getattr(ref, f), host)


@lib_params
def test_encode_compact_equals_wide_converted(lib):
    """layout="compact" on the device (uint8 classes, __float2half_rn sizes) == the cpu's wide maps converted by
    numpy, bit for bit, on a batch whose box sizes sit on float16's rounding boundaries."""
    _, dev, host, _ = lib
    rng = np.random.default_rng(3)
    boxes, labels = [], []
    for n in (60, 0, 200):
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.uniform(1, 60, (n, 2))
        wh[: n // 3] = np.round(wh[: n // 3]) + rng.choice([0, 2.0 ** -11, 3 * 2.0 ** -11, 0.5], (n // 3, 2))
        boxes.append(np.concatenate([xy, xy + wh], axis=1))
        labels.append(rng.integers(0, 256, n))
    for overlap in ("max", "nearest"):
        wide = dwd_fast.encode(boxes, labels, (500, 480), overlap=overlap)
        got = dwd_fast.encode([dev(b) for b in boxes], [dev(x) for x in labels], (500, 480), overlap=overlap,
                              layout="compact")
        _eq(got.energy, wide.energy, host)
        _eq(got.classes, wide.classes.astype(np.uint8), host)
        sizes = host(got.sizes)
        assert sizes.dtype == np.float16
        np.testing.assert_array_equal(sizes.view(np.uint16), wide.sizes.astype(np.float16).view(np.uint16))


@lib_params
def test_half_bits_on_device_equal_host_and_numpy(lib):
    """encode::half_bits on the device (__float2half_rn) == the host's portable code == numpy, every float16
    boundary case (halves, midpoints and one ulp either side, subnormals, overflow) and random floats."""
    from dwd_fast._arrays import Device
    from dwd_fast._ext import cpu_ext, cuda_ext
    from tests.test_encode_compact import _float_cases

    _, dev, host, _ = lib
    x = _float_cases(np.random.default_rng(1))
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).view(np.uint16)
    src = dev(x)
    dst = dev(np.zeros(len(x), np.int16))
    d = Device.of(src)
    ptr = (lambda a: int(a.data_ptr())) if lib[0] == "torch" else (lambda a: int(a.data.ptr))
    cuda_ext().half_bits(ptr(src), ptr(dst), len(x), d.index if d.index is not None else -1, d.stream())
    got = host(dst).view(np.uint16)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(cpu_ext().float_to_half(x, False)[0], got)


@lib_params
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.float32, np.float64])
def test_peak_local_max(lib, page250, dtype):
    _, dev, host, _ = lib
    img = page250.energy.astype(dtype)
    for kw in (dict(min_distance=1), dict(min_distance=4, threshold_rel=0.4, num_peaks=300),
               dict(min_distance=2, exclude_border=False)):
        _eq(dwd_fast.peak_local_max(dev(img), **kw), dwd_fast.peak_local_max(img, **kw), host)
        _eq(dwd_fast.peak_local_max(dev(img)[::2, 1::2], **kw), dwd_fast.peak_local_max(img[::2, 1::2], **kw), host)


def _watershed_case(page):
    E = page.energy
    return -E.astype(np.int16), dwd_fast.label(E >= 8), E >= 2


@lib_params
@pytest.mark.parametrize("conn", [1, 2])
def test_watershed(lib, page250, conn):
    _, dev, host, _ = lib
    img, mk, mask = _watershed_case(page250)
    ref = dwd_fast.watershed(img, mk, mask=mask, connectivity=conn)
    _eq(dwd_fast.watershed(dev(img), dev(mk), mask=dev(mask), connectivity=conn), ref, host)
    # float relief (sorted level ranks), int64 markers beyond 2^32 (sorted labels), no mask
    f, big = img.astype(np.float64) * 0.5, mk.astype(np.int64) * (2**40) - (mk > 0) * 2**62
    _eq(dwd_fast.watershed(dev(f), dev(big), connectivity=conn), dwd_fast.watershed(f, big, connectivity=conn), host)


@lib_params
def test_watershed_non_contiguous(lib, page250):
    _, dev, host, _ = lib
    img, mk, mask = _watershed_case(page250)
    ref = dwd_fast.watershed(img[::2, 1::3], mk[::2, 1::3], mask=mask[::2, 1::3])
    _eq(dwd_fast.watershed(dev(img)[::2, 1::3], dev(mk)[::2, 1::3], mask=dev(mask)[::2, 1::3]), ref, host)


@lib_params
def test_watershed_errors(lib):
    _, dev, _, _ = lib
    x = dev(np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match="cpu backend only"):
        dwd_fast.watershed(x, x, method="skimage")
    bad = np.zeros((4, 4))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="image contains NaN"):
        dwd_fast.watershed(dev(bad), x)


@lib_params
@pytest.mark.parametrize("kw", [dict(), dict(min_distance=3, grow_to=2, return_label_map=True)])
def test_decode_peak_seeds(lib, page250, kw):
    _, dev, host, _ = lib
    p = page250
    ref = dwd_fast.decode(p.energy, p.classes, p.sizes, cutoff=7, seeds="peaks", **kw)
    got = dwd_fast.decode(dev(p.energy), dev(p.classes), dev(p.sizes), cutoff=7, seeds="peaks", **kw)
    for f in DET_FIELDS + (("label_map",) if kw.get("return_label_map") else ()):
        _eq(getattr(got, f), getattr(ref, f), host)


@lib_params
def test_non_default_stream(lib, page250):
    _, dev, host, stream = lib
    p = page250
    ref = dwd_fast.decode(p.energy, p.classes, p.sizes, cutoff=7, grow_to=3)
    e, c, s = dev(p.energy), dev(p.classes), dev(p.sizes)
    with stream():
        got = dwd_fast.decode(e, c, s, cutoff=7, grow_to=3)
        for f in DET_FIELDS:
            _eq(getattr(got, f), getattr(ref, f), host)
    img, mk, mask = _watershed_case(p)
    ref = dwd_fast.watershed(img, mk, mask=mask)
    di, dm, dk = dev(img), dev(mk), dev(mask)
    with stream():
        _eq(dwd_fast.watershed(di, dm, mask=dk), ref, host)
    peaks = dwd_fast.decode(p.energy, cutoff=7, seeds="peaks", min_distance=2)
    with stream():
        got = dwd_fast.decode(e, cutoff=7, seeds="peaks", min_distance=2)
        for f in DET_FIELDS:
            _eq(getattr(got, f), getattr(peaks, f), host)


@lib_params
def test_outputs_stay_on_the_device(lib, page250):
    name, dev, _, _ = lib
    det = dwd_fast.decode(dev(page250.energy), cutoff=7)
    assert type(det.boxes).__module__.split(".")[0] == name
    if name == "torch":
        assert det.boxes.is_cuda
    mk = dev(dwd_fast.label(page250.energy >= 8))
    out = dwd_fast.watershed(dev(-page250.energy.astype(np.int16)), mk)
    assert type(out).__module__.split(".")[0] == name and out.dtype == mk.dtype
    if name == "torch":
        assert out.is_cuda and out.device == mk.device


def test_selftest():
    from dwd_fast._ext import cuda_ext

    n = 1 << 20
    assert cuda_ext().selftest(n) == sum(i % 3 for i in range(n))
