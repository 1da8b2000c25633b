"""Backend dispatch for CUDA arrays, verified without a GPU.

* Objects exposing ``__cuda_array_interface__`` route to the CUDA backend and raise the clear errors
  (CUDA not built / no usable GPU), and mixing them with host arrays raises ``ValueError``.
* The whole CUDA code path of the Python layer (validation, view descriptors, output allocation
  callbacks, batches, label maps) runs against a stand-in for ``dwd_fast._cuda`` whose entry points
  forward to the host executor with the same arguments; "device" arrays are numpy memory behind a fake
  ``__cuda_array_interface__``. The results must equal the cpu backend's.
"""

import ctypes

import numpy as np
import pytest

import dwd_fast
from dwd_fast import _arrays, _ext

_TYPESTR = {np.dtype(t): np.dtype(t).str.replace("=", "<") for t in
            (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64, np.float32, np.float64)}
_TYPESTR[np.dtype(bool)] = "|b1"


class FakeCuda:
    """A numpy array that presents itself as device memory through __cuda_array_interface__."""

    def __init__(self, a):
        self._a = a

    @property
    def __cuda_array_interface__(self):
        a = self._a
        return {"shape": a.shape, "typestr": _TYPESTR[a.dtype], "data": (a.ctypes.data, False),
                "strides": a.strides, "version": 3}

    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)

    def __getitem__(self, k):
        return FakeCuda(self._a[k])


def _np_from(ptr, shape, dtype, strides=None):
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) if shape else 1
    if strides is None:
        buf = (ctypes.c_char * (n * dtype.itemsize)).from_address(ptr)
        return np.frombuffer(buf, dtype).reshape(shape)
    span = sum((s - 1) * st for s, st in zip(shape, strides)) + 1 if n else 0
    buf = (ctypes.c_char * (span * dtype.itemsize)).from_address(ptr)
    return np.lib.stride_tricks.as_strided(np.frombuffer(buf, dtype), shape, [s * dtype.itemsize for s in strides])


class HostBackedCuda:
    """Stands in for dwd_fast._cuda: same entry points, run by the host executor (order: shuffled)."""

    ops = ("label", "region_stats", "decode", "encode", "peak_local_max", "watershed")
    archs = "75;80;90"

    def __init__(self):
        self.calls = []

    def device_info(self):
        return {"usable": True, "error": "", "devices": [("fake", 75)], "device_count": 1,
                "runtime_version": 13000, "driver_version": 13000}

    def region_stats(self, labels, image, classes, num_classes, alloc, device, stream):
        self.calls.append(("region_stats", device, stream))
        return _ext.cpu_ext().region_stats_host(labels, image, classes, num_classes, alloc, 2, 7)

    def decode(self, *args):
        self.calls.append(("decode", args[-2], args[-1]))
        return _ext.cpu_ext().decode_host(*args[:-2], 2, 7)

    def label(self, image, connectivity, out, device, stream):
        self.calls.append(("label", device, stream))
        ptr, dt, _, rows, cols, _, sr, sc = image
        dtype = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64][dt]
        img = _np_from(ptr, (rows, cols), dtype, (sr, sc))
        lab, n, _ = _ext.cpu_ext().label_host(np.ascontiguousarray(img)[None, None], connectivity, 2, 7)
        _np_from(out, (rows, cols), np.int32)[...] = lab
        return n, {"launches": 0, "syncs": 0, "workspace_bytes": 0}

    def peak_local_max(self, image, min_distance, border_r, border_c, num_peaks, all_pass, cut, alloc, device,
                       stream):
        self.calls.append(("peak_local_max", device, stream))
        ptr, dt, _, rows, cols, _, sr, sc = image
        dtype = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64, np.float32,
                 np.float64][dt]
        img = np.ascontiguousarray(_np_from(ptr, (rows, cols), dtype, (sr, sc)))
        coords, _ = _ext.cpu_ext().peak_local_max_host(img[None, None], min_distance, border_r, border_c, num_peaks,
                                                       all_pass, cut, 2, 7)
        out = alloc(len(coords))[0]
        _np_from(out, (len(coords), 2), np.int64)[...] = coords
        return len(coords), {"launches": 0, "syncs": 0, "workspace_bytes": 0}

    def watershed(self, image, markers, mask, connectivity, out, device, stream):
        self.calls.append(("watershed", device, stream))
        return _ext.cpu_ext().watershed_exec_host(image, markers, mask, connectivity, out, 2, 7)

    def encode(self, objs_host, objs, offsets, B, H, W, labels, sizes, table, marker, overlap, energy, classes,
               size_maps, device, stream, compact=False):
        self.calls.append(("encode", device, stream))
        M = len(objs_host)
        c_dtype, s_dtype = (np.uint8, np.float16) if compact else (np.int32, np.float32)
        arrays = (_np_from(objs, (M, 8), np.int64), _np_from(offsets, (B + 1,), np.int64),
                  _np_from(labels, (M,), np.int32), _np_from(sizes, (M, 2), np.float32),
                  _np_from(table, (4096,), np.uint8), marker, overlap, _np_from(energy, (B, H, W), np.uint8),
                  _np_from(classes, (B, H, W), c_dtype), _np_from(size_maps, (B, 2, H, W), s_dtype))
        _ext.cpu_ext().encode_host(*arrays, 2, 7)
        return _ext.cpu_ext().encode_host_counts()


@pytest.fixture
def fake_gpu(monkeypatch):
    fake = HostBackedCuda()
    monkeypatch.setattr(_ext, "cuda_ext", lambda: fake)
    orig = _arrays.Device.of.__func__

    def of(cls, x):
        return cls("numpy") if isinstance(x, FakeCuda) else orig(cls, x)

    monkeypatch.setattr(_arrays.Device, "of", classmethod(of))
    orig_params = _arrays.params_to_host
    monkeypatch.setattr(_arrays, "params_to_host", lambda x: x._a if isinstance(x, FakeCuda) else orig_params(x))
    return fake


# ---- errors without a GPU ------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda x: dwd_fast.decode(x),
    lambda x: dwd_fast.label(x),
    lambda x: dwd_fast.region_stats(x),
    lambda x: dwd_fast.encode(x, None, (8, 8)),
    lambda x: dwd_fast.watershed(x, x),
    lambda x: dwd_fast.peak_local_max(x),
])
def test_cuda_input_without_usable_gpu_raises(call):
    if _arrays.cuda_unusable_reason() is None:
        pytest.skip("a usable GPU is present")
    x = FakeCuda(np.zeros((4, 4), np.uint8))
    with pytest.raises(RuntimeError) as e:
        call(x)
    msg = str(e.value)
    if _ext.cuda_ext() is None:
        assert "built without CUDA" in msg and "DWD_FAST_CUDA=1" in msg
    else:
        assert "no usable GPU" in msg and dwd_fast.info()["cuda"]["error"] in msg


def test_backend_cuda_on_host_arrays_raises():
    with pytest.raises((RuntimeError, ValueError), match="CUDA"):
        dwd_fast.decode(np.zeros((4, 4), np.uint8), backend="cuda")


def test_mixed_devices_name_both_arguments():
    e = FakeCuda(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"energy .* CUDA device but classes .* host"):
        dwd_fast.decode(e, np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match=r"labels .*CUDA device but image .*host"):
        dwd_fast.region_stats(e, image=np.zeros((4, 4)))


def test_host_backend_refuses_cuda_arrays(fake_gpu):
    with pytest.raises(ValueError, match="nothing is copied implicitly"):
        dwd_fast.decode(FakeCuda(np.zeros((4, 4), np.uint8)), backend="cpu")


def test_torch_is_not_imported_for_numpy():
    import subprocess
    import sys

    code = ("import sys, numpy as np, dwd_fast; dwd_fast.decode(np.zeros((5, 5), np.uint8)); "
            "dwd_fast.region_stats(np.ones((3, 3), np.int32)); print('torch' in sys.modules, 'cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_info_reports_cuda_build():
    i = dwd_fast.info()
    assert set(i["cuda"]) >= {"usable", "error"}
    if i["cuda_built"]:
        assert {"75", "80", "90"} <= set(i["cuda_archs"]) or i["cuda_archs"]
        assert "runtime_version" in i["cuda"] and "driver_version" in i["cuda"]


# ---- the CUDA path of the Python layer against the host-backed stand-in --------------------------------

def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def test_decode_cuda_path(fake_gpu, page250):
    p = page250
    e, c, s = p.energy[:400, :500], p.classes[:400, :500], p.sizes[:, :400, :500]
    for kw in (dict(), dict(grow_to=3, size_reduce="median", return_label_map=True)):
        cpu = dwd_fast.decode(e, c, s, cutoff=7, **kw)
        gpu = dwd_fast.decode(FakeCuda(e), FakeCuda(c), FakeCuda(s), cutoff=7, **kw)
        assert len(gpu) == len(cpu) > 0
        for f in ("boxes", "labels", "scores", "class_scores", "centers", "areas"):
            _same(getattr(gpu, f), getattr(cpu, f))
        if kw.get("return_label_map"):
            _same(gpu.label_map, cpu.label_map)
    assert fake_gpu.calls and all(call[0] == "decode" for call in fake_gpu.calls)


def test_decode_cuda_path_peak_seeds(fake_gpu, page250):
    p = page250
    e, c, s = p.energy[:400, :500], p.classes[:400, :500], p.sizes[:, :400, :500]
    for kw in (dict(), dict(min_distance=3, grow_to=2, return_label_map=True)):
        cpu = dwd_fast.decode(e, c, s, cutoff=7, seeds="peaks", **kw)
        gpu = dwd_fast.decode(FakeCuda(e), FakeCuda(c), FakeCuda(s), cutoff=7, seeds="peaks", **kw)
        assert len(gpu) == len(cpu) > 0
        for f in ("boxes", "labels", "scores", "class_scores", "centers", "areas") + \
                (("label_map",) if kw.get("return_label_map") else ()):
            _same(getattr(gpu, f), getattr(cpu, f))


def test_decode_cuda_path_batched_non_contiguous_logits(fake_gpu):
    rng = np.random.default_rng(0)
    el = rng.normal(size=(2, 6, 40, 60)).astype(np.float32)
    el[:, 5, 10:20, 10:30] += 4
    el = el[:, :, :, ::2]  # non-contiguous columns
    cl = rng.normal(size=(2, 3, 40, 30))
    cpu = dwd_fast.decode(el, cl, cutoff=2, min_size=1)
    gpu = dwd_fast.decode(FakeCuda(el), FakeCuda(cl), cutoff=2, min_size=1)
    assert len(gpu) == 2
    for g, c in zip(gpu, cpu):
        for f in ("boxes", "labels", "scores", "class_scores", "centers", "areas"):
            _same(getattr(g, f), getattr(c, f))


def test_label_and_region_stats_cuda_path(fake_gpu, page250):
    img = page250.energy[:300, :300] > 8
    lab = dwd_fast.label(FakeCuda(img))
    _same(lab, dwd_fast.label(img))
    lab16 = dwd_fast.label(img).astype(np.uint16)
    st = dwd_fast.region_stats(FakeCuda(lab16), image=FakeCuda(page250.sizes[0, :300, :300]),
                               classes=FakeCuda(page250.classes[:300, :300]))
    ref = dwd_fast.region_stats(lab16, image=page250.sizes[0, :300, :300], classes=page250.classes[:300, :300])
    for f in ref._fields:
        _same(getattr(st, f), getattr(ref, f))


def test_encode_cuda_path_batched(fake_gpu):
    rng = np.random.default_rng(1)
    boxes = []
    for n in (5, 0, 9):
        xy = rng.uniform(0, 40, (n, 2))
        boxes.append(np.concatenate([xy, xy + rng.uniform(3, 15, (n, 2))], axis=1))
    labels = [rng.integers(0, 7, len(b)) for b in boxes]
    cpu = dwd_fast.encode(boxes, labels, (48, 64), overlap="nearest")
    gpu = dwd_fast.encode([FakeCuda(b) for b in boxes], [FakeCuda(x) for x in labels], (48, 64), overlap="nearest")
    for f in ("energy", "classes", "sizes"):
        _same(getattr(gpu, f), getattr(cpu, f))
    assert [c[0] for c in fake_gpu.calls] == ["encode"]  # one call (one launch sequence) for the batch
    compact = dwd_fast.encode([FakeCuda(b) for b in boxes], [FakeCuda(x) for x in labels], (48, 64),
                              overlap="nearest", layout="compact")
    _same(compact.classes, cpu.classes.astype(np.uint8))
    _same(np.asarray(compact.sizes).view(np.uint16), cpu.sizes.astype(np.float16).view(np.uint16))


def test_peak_local_max_cuda_dtype_error(fake_gpu):
    with pytest.raises(TypeError, match="not supported by peak_local_max on CUDA"):
        dwd_fast.peak_local_max(FakeCuda(np.zeros((4, 4), np.int8)))


@pytest.mark.parametrize("conn", [1, 2])
def test_watershed_cuda_path(fake_gpu, page250, conn):
    E = page250.energy[:300, :400]
    img, markers, mask = -E.astype(np.int16), dwd_fast.label(E >= 8), E >= 2
    cpu = dwd_fast.watershed(img, markers, mask=mask, connectivity=conn)
    stats = {}
    gpu = dwd_fast.watershed(FakeCuda(img), FakeCuda(markers), mask=FakeCuda(mask), connectivity=conn, _stats=stats)
    _same(gpu, cpu)
    assert stats["sweeps"] > 2 and stats["launches"] > 0
    # non-contiguous float image, uint64 markers beyond 2^63, no mask
    big = (markers.astype(np.uint64) * np.uint64(2**40)) | np.uint64(2**63) * (markers > 0)
    f = np.repeat(img.astype(np.float32), 2, axis=1)[:, ::2]
    _same(dwd_fast.watershed(FakeCuda(f), FakeCuda(np.repeat(big, 2, axis=0)[::2]), connectivity=conn),
          dwd_fast.watershed(f, big, connectivity=conn))
    assert [c[0] for c in fake_gpu.calls] == ["watershed", "watershed"]


def test_watershed_cuda_path_errors(fake_gpu):
    x = FakeCuda(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="method='skimage' runs on the cpu backend only"):
        dwd_fast.watershed(x, x, method="skimage")
    with pytest.raises(TypeError, match="markers must be an integer"):
        dwd_fast.watershed(x, FakeCuda(np.zeros((4, 4), np.float32)))
    with pytest.raises(ValueError, match="markers must have the shape of image"):
        dwd_fast.watershed(x, FakeCuda(np.zeros((4, 5), np.int32)))
    with pytest.raises(ValueError, match="image must be 2-D"):
        dwd_fast.watershed(FakeCuda(np.zeros((2, 4, 4))), FakeCuda(np.zeros((2, 4, 4), np.int32)))
    with pytest.raises(TypeError, match="mask must be a bool"):
        dwd_fast.watershed(x, x, mask=FakeCuda(np.zeros((4, 4), np.float64)))
    img = np.zeros((4, 4))
    img[2, 2] = np.nan
    with pytest.raises(ValueError, match="image contains NaN"):  # checked in the kernel on CUDA
        dwd_fast.watershed(FakeCuda(img), x)
    out = dwd_fast.watershed(FakeCuda(np.zeros((0, 3))), FakeCuda(np.zeros((0, 3), np.int16)))
    assert out.shape == (0, 3) and out.dtype == np.int16


class _Reducible(FakeCuda):
    """FakeCuda with the reductions peak_local_max's threshold needs (min, max, !=, any, item)."""

    def min(self):
        return np.asarray(self._a.min())

    def max(self):
        return np.asarray(self._a.max())

    def __ne__(self, other):
        return np.asarray(self._a != other._a)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int64])
@pytest.mark.parametrize("kw", [dict(), dict(min_distance=3, threshold_rel=0.3, num_peaks=20),
                                dict(min_distance=2, exclude_border=False, threshold_abs=5)])
def test_peak_local_max_cuda_path(fake_gpu, page250, dtype, kw):
    img = page250.energy[:300, :400].astype(dtype)
    _same(dwd_fast.peak_local_max(_Reducible(img), **kw), dwd_fast.peak_local_max(img, **kw))
