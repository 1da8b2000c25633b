"""Marker watershed: the canonical order-invariant definition, and scikit-image's exact flooding."""

from __future__ import annotations

import numpy as np

from . import _arrays
from ._ext import cpu_ext

__all__ = ["watershed"]

_METHODS = {"canonical": 0, "skimage": 1}
_ORDERS = {"forward": 0, "reversed": 1, "shuffled": 2}


def watershed(image, markers, *, connectivity=1, mask=None, method="canonical", backend="auto", order="forward",
              seed=0, _stats=None):
    """Flood ``image`` from ``markers``, like ``skimage.segmentation.watershed(image, markers, ...)``.

    Every pixel inside ``mask`` that a marker can reach gets the label of the marker that floods it
    first; pixels outside the mask, and pixels no marker reaches, are 0. Markers outside the mask are
    ignored (as in scikit-image).

    Parameters
    ----------
    image : (H, W) array of integers or floats
        The relief; low values flood first. NaN is rejected.
    markers : (H, W) integer array
        Non-zero values are marker labels (negative labels are labels too).
    connectivity : {1, 2}, optional
        4- (1, default, as scikit-image) or 8-neighbourhood (2).
    mask : (H, W) bool array, optional
        Only pixels where it is True are flooded.
    method : {"canonical", "skimage"}, optional
        ``"canonical"`` (default): the order-invariant lexicographic definition of
        ``research/algorithms.md`` §5.4 — every pixel takes the marker with the lowest flood level
        (minimax value of a path), then the shortest path inside that level, then the smallest label.
        It has exactly one answer, identical on every backend, and differs from scikit-image only
        on its tie zones (well under 1% of pixels on DWD pages). ``"skimage"`` (CPU only):
        bit-identical to scikit-image 0.26 (compactness 0, no watershed line), including the tie
        rules of its binary heap.
    backend : {"auto", "cpu", "cuda", "host"}, optional
        ``"auto"`` follows the inputs: torch CUDA tensors / CuPy arrays run the data-parallel algorithm
        (``csrc/dwd/watershed.h``: level ranks, dense marker labels, relaxation of packed keys) on their
        device and the caller's current stream (``method="canonical"`` only), host arrays the CPU
        algorithm. ``"host"`` runs that same data-parallel algorithm on the CPU in ``order``
        (``"forward"``, ``"reversed"``, ``"shuffled"`` with ``seed``); for verification.

    Returns
    -------
    (H, W) array of the markers' dtype, in the caller's array library and on its device.

    Examples
    --------
    >>> import numpy as np
    >>> from dwd_fast import watershed
    >>> img = np.array([[0, 1, 2, 1, 0]])
    >>> watershed(img, np.array([[1, 0, 0, 0, 2]]))
    array([[1, 1, 1, 2, 2]])
    """
    backend = _arrays.resolve_backend(backend, image, markers, mask, names=("image", "markers", "mask"),
                                      op="watershed")
    connectivity = _arrays.check_connectivity(connectivity)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    if backend in ("host", "cuda") and method != "canonical":
        raise ValueError(f"method='skimage' runs on the cpu backend only (backend={backend!r}); "
                         f"use method='canonical'")
    if backend == "host" and order not in _ORDERS:
        raise ValueError(f"order must be one of {sorted(_ORDERS)}, got {order!r}")
    if backend == "cuda":
        return _watershed_cuda(image, markers, mask, connectivity, _stats)
    hi = _arrays.to_host(image, "image")
    img = hi.array
    mk = _arrays.to_host(markers, "markers").array
    _arrays.check_dtype(img, "image")
    _arrays.check_ndim(img, "image", (2,), "2-D (H, W)")
    _arrays.check_dtype(mk, "markers", integer=True)
    if mk.shape != img.shape:
        raise ValueError(f"markers must have the shape of image {tuple(img.shape)}, got {tuple(mk.shape)}")
    m = None
    if mask is not None:
        m = _arrays.to_host(mask, "mask").array
        if m.shape != img.shape:
            raise ValueError(f"mask must have the shape of image {tuple(img.shape)}, got {tuple(m.shape)}")
        if m.dtype != np.bool_:
            if m.dtype.kind not in "biu":
                raise TypeError(f"mask must be a bool array, got dtype {m.dtype}")
            m = m != 0
    _arrays.check_no_nan(img, "image")
    out_dtype = mk.dtype
    if img.size == 0:
        return _arrays.wrap(np.zeros(img.shape, out_dtype), hi)
    if backend == "host":
        out = np.empty(img.shape, out_dtype)  # the kernel writes every pixel
        # the views hold bare pointers: keep the (possibly copied) arrays alive across the call
        ki, km, kk = _arrays.kernel_view(img), _arrays.kernel_view(mk), None if m is None else _arrays.kernel_view(m)
        counts = cpu_ext().watershed_exec_host(
            _arrays.view(ki, "image"), _arrays.view(km, "markers"), None if kk is None else _arrays.view(kk, "mask"),
            int(connectivity), _arrays.view(out, "out"), _ORDERS[order], _arrays.check_nonneg_int(seed, "seed", 2**64 - 1))
        _record(_stats, counts)
        return _arrays.wrap(out, hi)
    if mk.dtype == np.bool_:
        mk = mk.view(np.uint8)
    out = np.empty(img.shape, np.int32)  # the kernel writes every pixel
    counts = None if _stats is None or method != "skimage" else {}
    first = cpu_ext().watershed(
        _arrays.kernel_view(img)[None, None], _arrays.kernel_view(mk)[None, None],
        None if m is None else _arrays.kernel_view(m)[None, None], int(connectivity), _METHODS[method], out, counts)
    _record(_stats, counts or {})
    # Dense labels 1..M follow the order of the marker values; map them back.
    values = mk.reshape(-1)[first] if mk.flags.c_contiguous else mk[np.unravel_index(first, mk.shape)]
    if not (out_dtype == np.int32 and np.array_equal(values, np.arange(1, len(values) + 1))):
        lut = np.zeros(len(values) + 1, out_dtype)
        lut[1:] = values
        out = lut[out]
    return _arrays.wrap(out, hi)


def _record(stats, counts):
    if stats is not None:
        stats.update(counts)


def _watershed_cuda(image, markers, mask, connectivity, stats):
    """The data-parallel watershed on the inputs' CUDA device and the caller's current stream (metadata
    checks only here; NaN is checked in the kernel). Returns a new array of the markers' dtype there."""
    names = (("image", image), ("markers", markers)) + ((("mask", mask),) if mask is not None else ())
    for name, x in names:
        dt = _arrays.dtype_name(x)
        if dt not in _arrays._DTYPE_NAMES:
            raise TypeError(f"{name} has unsupported dtype {dt}; expected one of {', '.join(_arrays._DTYPE_NAMES)}")
    shape = _arrays.shape_of(image)
    if len(shape) != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {shape}")
    mdt = _arrays.dtype_name(markers)
    if mdt.startswith("float"):
        raise TypeError(f"markers must be an integer or bool array, got dtype {mdt}")
    if _arrays.shape_of(markers) != shape:
        raise ValueError(f"markers must have the shape of image {shape}, got {_arrays.shape_of(markers)}")
    if mask is not None:
        if _arrays.shape_of(mask) != shape:
            raise ValueError(f"mask must have the shape of image {shape}, got {_arrays.shape_of(mask)}")
        if _arrays.dtype_name(mask).startswith("float"):
            raise TypeError(f"mask must be a bool array, got dtype {_arrays.dtype_name(mask)}")
    dev = _arrays.Device.of(image)
    out, _ = dev.empty(shape, mdt)
    if shape[0] * shape[1] == 0:
        return out
    from ._ext import cuda_ext

    counts = cuda_ext().watershed(_arrays.view(image, "image"), _arrays.view(markers, "markers"),
                                  None if mask is None else _arrays.view(mask, "mask"), int(connectivity),
                                  _arrays.view(out, "out"), dev.index if dev.index is not None else -1, dev.stream())
    _record(stats, counts)
    return out
