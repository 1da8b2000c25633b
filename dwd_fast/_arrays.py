"""Array interop, validation and backend dispatch.

Inputs may be numpy arrays, PyTorch tensors or (for the CUDA backend) CuPy arrays. Outputs come back
in the caller's array library and device. Torch and CuPy are never imported unless the caller passed
one of their arrays. Validation happens here, before any kernel runs, and raises ``TypeError`` /
``ValueError`` naming the argument, what was expected and what came.
"""

from __future__ import annotations

import math
import operator

import numpy as np

__all__ = ["HostArray", "to_host", "wrap", "resolve_backend"]

_INT_KINDS = "biu"
_DTYPE_NAMES = ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
                "float32", "float64")


def _library(x):
    """'numpy', 'torch', 'cupy' or None (array-like) for x."""
    if isinstance(x, np.ndarray):
        return "numpy"
    mod = type(x).__module__ or ""
    if mod.startswith("torch"):
        return "torch"
    if mod.startswith("cupy"):
        return "cupy"
    return None


class HostArray:
    """A validated numpy view of the caller's array plus what is needed to return results like it."""

    __slots__ = ("array", "library", "device")

    def __init__(self, array, library, device):
        self.array = array
        self.library = library
        self.device = device


def _is_cuda(x, lib):
    if lib == "torch":
        return x.device.type != "cpu"
    return lib == "cupy"


def to_host(x, name, *, allow_none=False):
    """Return ``HostArray`` for a CPU array (numpy, torch CPU tensor, or array-like), else raise.

    No copy is made for numpy arrays and CPU tensors.
    """
    if x is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be an array, got None")
    lib = _library(x)
    if _is_cuda(x, lib):
        raise RuntimeError(
            f"{name} is on a CUDA device, but this version of dwd_fast runs this op on the CPU only; "
            f"move it to the host first (tensor.cpu() / cupy.asnumpy), or see dwd_fast.info() for the CUDA status")
    if lib == "torch":
        if x.requires_grad:
            x = x.detach()
        try:
            arr = x.numpy()
        except TypeError as e:  # e.g. bfloat16
            raise TypeError(f"{name} has unsupported dtype {x.dtype}") from e
        return HostArray(arr, "torch", x.device)
    if lib == "numpy":
        return HostArray(native(x), "numpy", None)
    if isinstance(x, (str, bytes, dict)) or not hasattr(x, "__len__") and not hasattr(x, "__array__"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as e:  # ragged nested sequences, objects numpy cannot take
        raise TypeError(f"{name} must be an array, got {type(x).__name__} that numpy cannot convert ({e})") from None
    return HostArray(native(arr), "numpy", None)


def native(a):
    """``a`` in native byte order: non-native (e.g. big-endian ``>f8``) arrays are converted once, here,
    so that no kernel and no comparison helper ever reads swapped bytes."""
    if a.dtype.isnative or a.dtype.fields is not None:
        return a
    return a.astype(a.dtype.newbyteorder("="))


def params_to_host(x):
    """Per-object parameters (boxes, their labels: a few numbers per object) as a host array.

    The one place where CUDA data is copied to the host, explicitly and by design: encode builds its
    fixed-point marker geometry on the host from the boxes, then uploads it. Page-sized maps never
    come here."""
    place, _ = where(x)
    if place != "cuda":
        return x
    lib = _library(x)
    if lib == "torch":
        return x.detach().cpu().numpy()
    import cupy

    return cupy.asnumpy(cupy.asarray(x))


def wrap(out, like):
    """Return numpy array ``out`` in the library of ``like`` (a HostArray)."""
    if like is not None and like.library == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(out))
    return out


_SUPPORTED = set()  # dtypes found supported (``dtype.name`` is computed in Python: slow on every call)


def check_dtype(a, name, *, integer=False, floating=False):
    """Check that numpy array ``a`` has a supported dtype; bool is accepted where integers are."""
    dt = a.dtype
    if dt in _SUPPORTED:
        pass
    elif dt.name in _DTYPE_NAMES:
        _SUPPORTED.add(dt)
    else:
        raise TypeError(f"{name} has unsupported dtype {dt}; expected one of {', '.join(_DTYPE_NAMES)}")
    if integer and dt.kind not in _INT_KINDS:
        raise TypeError(f"{name} must be an integer or bool array, got dtype {dt}")
    if floating and dt.kind != "f":
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {dt}")


INT64_MAX = 2**63 - 1


def check_nonneg_int(value, name, maximum=INT64_MAX, minimum=0):
    """``value`` as a Python int; TypeError unless an integer (bools refused), ValueError outside
    ``[minimum, maximum]`` (by default what the kernels' int64 parameters hold)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {v}")
    return v


def check_seed(seed, name="seed"):
    """A seed for ``numpy.random.default_rng``: None, a non-negative int, a SeedSequence or a Generator."""
    if seed is None or isinstance(seed, (np.random.SeedSequence, np.random.Generator)):
        return seed
    return check_nonneg_int(seed, name, maximum=float("inf"))


def check_number(value, name, *, finite=False):
    """``value`` as a Python float; TypeError unless a real number (bools and strings refused)."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if finite and not is_finite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def is_finite(value):
    """math.isfinite for any real number, Python ints beyond float64 (e.g. 10**400) counting as infinite
    (numpy's isfinite refuses ints beyond int64)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def check_connectivity(connectivity, name="connectivity"):
    """1 or 2 as a Python int: ints only (1.0, True and strings are refused)."""
    if isinstance(connectivity, (bool, np.bool_)) or not isinstance(connectivity, (int, np.integer)):
        raise TypeError(f"{name} must be the int 1 or 2, got {type(connectivity).__name__} {connectivity!r}")
    if connectivity not in (1, 2):
        raise ValueError(f"{name} must be 1 or 2 for a 2-D image, got {connectivity!r}")
    return int(connectivity)


def check_ndim(a, name, ndims, what):
    if a.ndim not in ndims:
        raise ValueError(f"{name} must be {what}, got shape {tuple(a.shape)}")


def check_nonempty(a, name):
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(a.shape)})")


def check_no_nan(a, name):
    if a.dtype.kind == "f" and np.isnan(a).any():
        raise ValueError(f"{name} contains NaN")


def kernel_view(a):
    """A native-order view whose last axis is contiguous (what the C++ scans need); bool is viewed as
    uint8. Copies only when the input is not like that already."""
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.ndim and a.shape[-1] > 1 and a.strides[-1] != a.itemsize:
        a = np.ascontiguousarray(a)
    return a


_BACKENDS = ("auto", "cpu", "cuda", "host")
_DT_CODES = {"uint8": 0, "int8": 1, "uint16": 2, "int16": 3, "uint32": 4, "int32": 5, "uint64": 6, "int64": 7,
             "float32": 8, "float64": 9, "bool": 0}
_TYPESTR = {"|u1": "uint8", "|b1": "bool", "|i1": "int8", "<u2": "uint16", "<i2": "int16", "<u4": "uint32",
            "<i4": "int32", "<u8": "uint64", "<i8": "int64", "<f4": "float32", "<f8": "float64"}


def _cuda_interface(x):
    try:
        return x.__cuda_array_interface__
    except AttributeError:
        return None
    except Exception:  # e.g. a torch CUDA tensor that needs grad raises here; handled by the torch path
        return None


def where(x):
    """("host", None) or ("cuda", device index or None) for an array argument (None -> (None, None))."""
    if x is None:
        return None, None
    lib = _library(x)
    if lib == "torch":
        return ("cuda", x.device.index) if x.device.type == "cuda" else ("host", None)
    if lib == "cupy":
        return "cuda", x.device.id
    if lib == "numpy":
        return "host", None
    if _cuda_interface(x) is not None or hasattr(type(x), "__cuda_array_interface__"):
        return "cuda", None
    return "host", None


def _describe(x, name):
    lib = _library(x) or type(x).__name__
    place, dev = where(x)
    return f"{name} ({lib}, {'cuda' + ('' if dev is None else f':{dev}') if place == 'cuda' else 'host'})"


def cuda_unusable_reason():
    """None when CUDA ops can run here, else why not (for the RuntimeError of a CUDA call)."""
    from ._ext import cuda_ext

    cu = cuda_ext()
    if cu is None:
        return ("dwd_fast was built without CUDA (no nvcc at build time, or DWD_FAST_CUDA=0); rebuild it with "
                "nvcc on PATH and DWD_FAST_CUDA=1, e.g. `DWD_FAST_CUDA=1 pip install .`")
    info = dict(cu.device_info())
    if not info.get("usable"):
        return ("dwd_fast was built with CUDA, but no usable GPU was found: "
                f"{info.get('error') or 'unknown reason'} (see dwd_fast.info())")
    return None


def resolve_backend(backend, *arrays, names=None, cuda_ok=True, op="this op"):
    """The backend an op runs on: "cpu" / "host" for host arrays, "cuda" for CUDA arrays.

    ``backend="auto"`` follows the inputs. Raises ``ValueError`` when host and CUDA arrays are mixed (or
    CUDA arrays on different devices), when the requested backend does not match where the arrays are
    (nothing is copied between host and device behind the caller's back), and ``RuntimeError`` when
    CUDA is needed but not built, not usable here, or not implemented for ``op``.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be 'auto', 'cpu', 'cuda' or 'host', got {backend!r}")
    names = list(names) if names is not None else [f"argument {k}" for k in range(len(arrays))]
    present = [(n, a) for n, a in zip(names, arrays) if a is not None]
    places = [(n, a) + where(a) for n, a in present]
    cuda = [p for p in places if p[2] == "cuda"]
    host = [p for p in places if p[2] == "host"]
    if cuda and host:
        raise ValueError(f"{_describe(cuda[0][1], cuda[0][0])} is on a CUDA device but "
                         f"{_describe(host[0][1], host[0][0])} is on the host; pass all arrays on the same device")
    devs = {p[3] for p in cuda if p[3] is not None}
    if len(devs) > 1:
        a, b = [next(p for p in cuda if p[3] == d) for d in sorted(devs)[:2]]
        raise ValueError(f"{_describe(a[1], a[0])} and {_describe(b[1], b[0])} are on different CUDA devices")
    libs = {_library(p[1]) for p in cuda}
    if len(libs) > 1:
        raise ValueError("CUDA arrays from different libraries (" + ", ".join(sorted(str(x) for x in libs))
                         + ") in one call; pass all of them from one library")
    if backend == "auto":
        backend = "cuda" if cuda else "cpu"
    if backend == "cuda":
        reason = cuda_unusable_reason()
        if reason is not None:
            raise RuntimeError(f"{op} on CUDA: {reason}")
        if host:
            raise ValueError(f"backend='cuda' needs CUDA arrays (torch CUDA tensors or CuPy arrays), but "
                             f"{_describe(host[0][1], host[0][0])} is on the host; move it to the GPU first")
        if not present:
            raise ValueError("backend='cuda' needs CUDA arrays (torch CUDA tensors or CuPy arrays)")
        if not cuda_ok:
            raise RuntimeError(f"{op} has no CUDA implementation in this version of dwd_fast; "
                               f"copy the inputs to the host and use backend='cpu'")
    elif cuda:
        raise ValueError(f"backend={backend!r} runs on the host, but {_describe(cuda[0][1], cuda[0][0])} is on a "
                         f"CUDA device; nothing is copied implicitly: move it to the host first, or use "
                         f"backend='cuda'")
    return backend


# ---- executor-run ops: views, allocation, streams ----------------------------------------------------

class Device:
    """Where an executor-run op reads and writes: the host (numpy) or one CUDA device of one library."""

    __slots__ = ("library", "index", "torch_device")

    def __init__(self, library, index=None, torch_device=None):
        self.library = library          # "numpy", "torch" or "cupy"
        self.index = index              # CUDA device index
        self.torch_device = torch_device

    @classmethod
    def of(cls, x):
        lib = _library(x)
        if lib == "torch":
            return cls("torch", x.device.index, x.device)
        if lib == "cupy":
            return cls("cupy", x.device.id)
        if lib == "numpy" or _cuda_interface(x) is None:
            return cls("numpy")
        # another CUDA array library: outputs are CuPy arrays on the current device
        try:
            import cupy  # noqa: F401
        except ImportError:
            raise TypeError(f"{type(x).__name__} arrays (__cuda_array_interface__) are accepted with CuPy "
                            f"installed (outputs are CuPy arrays); install cupy or pass torch tensors") from None
        return cls("cupy", None)

    @property
    def is_cuda(self):
        return self.library != "numpy"

    def stream(self, x=None):
        """The caller's current stream on this device, as an integer handle (0 on the host)."""
        if self.library == "torch":
            import torch

            return int(torch.cuda.current_stream(self.torch_device).cuda_stream)
        if self.library == "cupy":
            import cupy

            return int(cupy.cuda.get_current_stream().ptr)
        return 0

    def empty(self, shape, dtype):
        """(array, pointer) of a new uninitialised array on this device."""
        dtype = np.dtype(dtype)
        if self.library == "torch":
            import torch

            t = torch.empty(tuple(shape), dtype=getattr(torch, dtype.name), device=self.torch_device)
            return t, int(t.data_ptr())
        if self.library == "cupy":
            import cupy

            if self.index is None:
                a = cupy.empty(tuple(shape), dtype)
            else:
                with cupy.cuda.Device(self.index):
                    a = cupy.empty(tuple(shape), dtype)
            return a, int(a.data.ptr)
        a = np.empty(tuple(shape), dtype)
        return a, int(a.ctypes.data)

    def upload(self, a):
        """A small host array (per-object parameters) on this device: (array, pointer)."""
        a = np.ascontiguousarray(a)
        if self.library == "torch":
            import torch

            t = torch.from_numpy(a).to(self.torch_device, non_blocking=False)
            return t, int(t.data_ptr())
        if self.library == "cupy":
            import cupy

            d = cupy.asarray(a) if self.index is None else _cupy_on(self.index, a)
            return d, int(d.data.ptr)
        return a, int(a.ctypes.data)

    def download(self, a):
        """A small array of this device (per-object records) as a numpy array."""
        if self.library == "torch":
            return a.detach().cpu().numpy()
        if self.library == "cupy":
            import cupy

            return cupy.asnumpy(a)
        return np.asarray(a)


def _cupy_on(index, a):
    import cupy

    with cupy.cuda.Device(index):
        return cupy.asarray(a)


def dtype_name(x):
    """numpy dtype name of a numpy array, torch tensor or __cuda_array_interface__ object."""
    if _library(x) == "torch":
        return str(x.dtype).replace("torch.", "")
    cai = _cuda_interface(x)
    if cai is not None and _library(x) != "cupy":
        return _TYPESTR.get(cai["typestr"], cai["typestr"])
    return np.dtype(x.dtype).name


def shape_of(x):
    cai = _cuda_interface(x) if _library(x) not in ("torch", "numpy") else None
    return tuple(int(v) for v in (cai["shape"] if cai is not None and _library(x) != "cupy" else x.shape))


def view(x, name, *, planes=False):
    """The (pointer, dtype code, planes, rows, cols, stride_p, stride_r, stride_c) descriptor of a 2-D map
    (or a 3-D stack of maps with planes=True) for the executor-run kernels; strides in elements."""
    if x is None:
        return None
    lib = _library(x)
    dt = dtype_name(x)
    if dt not in _DT_CODES:
        raise TypeError(f"{name} has unsupported dtype {dt}; expected one of {', '.join(_DTYPE_NAMES)}")
    if lib == "torch":
        ptr, shape, strides = int(x.data_ptr()), tuple(x.shape), tuple(x.stride())
    elif lib == "numpy":
        if not x.dtype.isnative:
            raise TypeError(f"{name} must be in native byte order")
        item = x.itemsize
        if any(s % item for s in x.strides):
            raise ValueError(f"{name}: misaligned strides")
        ptr, shape, strides = int(x.ctypes.data), x.shape, tuple(s // item for s in x.strides)
    else:
        cai = x.__cuda_array_interface__
        item = np.dtype(dt).itemsize
        shape = tuple(cai["shape"])
        if cai.get("strides") is None:
            strides, acc = [], 1
            for n in reversed(shape):
                strides.insert(0, acc)
                acc *= n
            strides = tuple(strides)
        else:
            if any(s % item for s in cai["strides"]):
                raise ValueError(f"{name}: misaligned strides")
            strides = tuple(s // item for s in cai["strides"])
        ptr = int(cai["data"][0])
    if planes:
        if len(shape) != 3:
            raise ValueError(f"{name}: internal error, expected (P, H, W)")
        return (ptr, _DT_CODES[dt], shape[0], shape[1], shape[2], strides[0], strides[1], strides[2])
    if len(shape) != 2:
        raise ValueError(f"{name}: internal error, expected (H, W)")
    return (ptr, _DT_CODES[dt], 1, shape[0], shape[1], 0, strides[0], strides[1])
