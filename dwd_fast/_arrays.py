"""Array interop, validation and backend dispatch.

Inputs may be numpy arrays, PyTorch tensors or (for the CUDA backend) CuPy arrays. Outputs come back
in the caller's array library and device. Torch and CuPy are never imported unless the caller passed
one of their arrays. Validation happens here, before any kernel runs, and raises ``TypeError`` /
``ValueError`` naming the argument, what was expected and what came.
"""

from __future__ import annotations

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
        return HostArray(x, "numpy", None)
    if isinstance(x, (str, bytes, dict)) or not hasattr(x, "__len__") and not hasattr(x, "__array__"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    return HostArray(np.asarray(x), "numpy", None)


def wrap(out, like):
    """Return numpy array ``out`` in the library of ``like`` (a HostArray)."""
    if like is not None and like.library == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(out))
    return out


def check_dtype(a, name, *, integer=False, floating=False):
    """Check that numpy array ``a`` has a supported dtype; bool is accepted where integers are."""
    dt = a.dtype
    if dt.name not in _DTYPE_NAMES:
        raise TypeError(f"{name} has unsupported dtype {dt}; expected one of {', '.join(_DTYPE_NAMES)}")
    if integer and dt.kind not in _INT_KINDS:
        raise TypeError(f"{name} must be an integer or bool array, got dtype {dt}")
    if floating and dt.kind != "f":
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {dt}")


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


def resolve_backend(backend, *arrays):
    """'cpu' for host arrays; raises for anything else in this version."""
    if backend not in ("auto", "cpu", "cuda", "host"):
        raise ValueError(f"backend must be 'auto', 'cpu', 'cuda' or 'host', got {backend!r}")
    if backend == "cuda":
        raise RuntimeError("backend='cuda': the CUDA versions of the ops are not available in this version "
                           "of dwd_fast (see dwd_fast.info())")
    return "cpu" if backend == "auto" else backend
