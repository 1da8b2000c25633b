"""Connected-component labelling (``skimage.measure.label`` semantics)."""

from __future__ import annotations

import numpy as np

from . import _arrays
from ._ext import cpu_ext

__all__ = ["label"]

_ORDERS = {"forward": 0, "reversed": 1, "shuffled": 2}


def label(image, *, connectivity=2, return_num=False, backend="auto", order="forward", seed=0):
    """Label the connected regions of a 2-D integer or boolean image.

    Same result as ``skimage.measure.label(image, connectivity=connectivity, return_num=return_num)``
    (background 0): pixels are joined when they are neighbours and hold the same non-zero value, and
    labels ``1..n`` follow the raster order of each region's first pixel.

    Parameters
    ----------
    image : (H, W) array of bool or integers
        numpy array or CPU torch tensor. Not modified.
    connectivity : {1, 2}, optional
        Maximum number of orthogonal hops to a neighbour: 1 is the 4-neighbourhood, 2 (default, as in
        scikit-image) the 8-neighbourhood.
    return_num : bool, optional
        Also return the number of labels.
    backend : {"auto", "cpu", "cuda", "host"}, optional
        ``"auto"`` follows the input: a torch CUDA tensor or CuPy array is labelled on its device by the
        data-parallel algorithm (union-find with atomicMin, ``csrc/dwd/label.h``) on the caller's current
        stream, and the labels come back on that device. ``"cpu"`` runs the sequential run-based labeller. ``"host"`` runs the data-parallel GPU
        algorithm (union-find with atomicMin) on the CPU, one element at a time in ``order``
        (``"forward"``, ``"reversed"`` or ``"shuffled"`` with ``seed``); it exists to verify the GPU
        code without a GPU and is slow.

    Returns
    -------
    labels : (H, W) int32 array, in the caller's array library
    num : int
        Only with ``return_num=True``.

    Examples
    --------
    >>> import numpy as np, dwd_fast
    >>> dwd_fast.label(np.array([[1, 0, 1], [0, 0, 1]], dtype=bool))
    array([[1, 0, 2],
           [0, 0, 2]], dtype=int32)
    """
    backend = _arrays.resolve_backend(backend, image, names=("image",), op="label")
    if backend == "cuda":
        return _label_cuda(image, connectivity, return_num)
    h = _arrays.to_host(image, "image")
    a = h.array
    _arrays.check_dtype(a, "image", integer=True)
    _arrays.check_ndim(a, "image", (2,), "2-D (H, W)")
    connectivity = _arrays.check_connectivity(connectivity)
    if a.size == 0:  # like scikit-image: an empty image has no labels
        out = _arrays.wrap(np.zeros(a.shape, np.int32), h)
        return (out, 0) if return_num else out
    a4 = _arrays.kernel_view(a)[None, None]
    if backend == "host":
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {sorted(_ORDERS)}, got {order!r}")
        out, n, _ = cpu_ext().label_host(a4, connectivity, _ORDERS[order], _arrays.check_nonneg_int(seed, "seed", 2**64 - 1))
    else:
        out, n = cpu_ext().label(a4, connectivity)
    out = _arrays.wrap(out, h)
    return (out, int(n)) if return_num else out


def _label_cuda(image, connectivity, return_num):
    dt = _arrays.dtype_name(image)
    shape = _arrays.shape_of(image)
    if dt not in _arrays._DTYPE_NAMES or dt.startswith("float"):
        raise TypeError(f"image must be an integer or bool array, got dtype {dt}")
    if len(shape) != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {shape}")
    connectivity = _arrays.check_connectivity(connectivity)
    from ._ext import cuda_ext

    dev = _arrays.Device.of(image)
    out, ptr = dev.empty(shape, "int32")
    n = 0
    if shape[0] * shape[1] > 0:
        if shape[0] * shape[1] >= 2**31:
            raise ValueError("image has 2^31 pixels or more")
        n, _ = cuda_ext().label(_arrays.view(image, "image"), int(connectivity), ptr,
                                dev.index if dev.index is not None else -1, dev.stream())
    return (out, int(n)) if return_num else out
