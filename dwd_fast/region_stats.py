"""Per-region statistics of a label image (``regionprops`` geometry, sums, class votes)."""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from . import _arrays
from ._ext import cpu_ext

__all__ = ["region_stats", "RegionStats"]


class RegionStats(NamedTuple):
    """Statistics of labels ``1..n`` (``n`` = the largest label; absent labels have area 0).

    area : (n,) int64 pixel counts
    bbox : (n, 4) int64 ``(min_row, min_col, max_row + 1, max_col + 1)``, half-open as in regionprops
    centroid : (n, 2) float64 mean ``(row, col)``, equal to regionprops' ``centroid`` (NaN if absent)
    image_sum, image_max : (n,) float64, or None without ``image``
    vote : (n,) int64 majority class (ties to the smallest id; -1 if absent), or None without ``classes``
    vote_count : (n,) int64 pixels of the winning class, or None
    """

    area: object
    bbox: object
    centroid: object
    image_sum: Optional[object] = None
    image_max: Optional[object] = None
    vote: Optional[object] = None
    vote_count: Optional[object] = None


_ORDERS = {"forward": 0, "reversed": 1, "shuffled": 2}
_FIELDS = (("area", (1,), "int64"), ("bbox", (1, 4), "int64"), ("centroid", (1, 2), "float64"),
           ("image_sum", (1,), "float64"), ("image_max", (1,), "float64"), ("vote", (1,), "int64"),
           ("vote_count", (1,), "int64"))


def _region_stats_exec(backend, labels, image, classes, num_classes, order, seed, stats=None):
    """The data-parallel algorithm (dwd/region_stats.h) on the host executor or CUDA."""
    dev = _arrays.Device.of(labels)
    outs = {}

    def alloc(n):
        ptrs = []
        for name, shape, dt in _FIELDS:
            want = not ((name.startswith("image") and image is None) or (name.startswith("vote") and classes is None))
            if want:
                arr, ptr = dev.empty((n,) + shape[1:], dt)
                outs[name] = arr
                ptrs.append(ptr)
            else:
                ptrs.append(0)
        return tuple(ptrs)

    views = (_arrays.view(labels, "labels"), _arrays.view(image, "image"), _arrays.view(classes, "classes"))
    nc = -1 if num_classes is None else int(num_classes)
    if backend == "host":
        _, counts = cpu_ext().region_stats_host(*views, nc, alloc, _ORDERS[order], _arrays.check_nonneg_int(seed, "seed", 2**64 - 1))
    else:
        from ._ext import cuda_ext

        _, counts = cuda_ext().region_stats(*views, nc, alloc, dev.index if dev.index is not None else -1,
                                            dev.stream())
    if stats is not None:
        stats.update(counts)
    return RegionStats(**outs)


def _check_num_classes(num_classes):
    if isinstance(num_classes, (int, np.integer)) and not isinstance(num_classes, (bool, np.bool_)) \
            and num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return _arrays.check_nonneg_int(num_classes, "num_classes", minimum=1)


def region_stats(labels, *, image=None, classes=None, num_classes=None, backend="auto", order="forward", seed=0,
                 _stats=None):
    """Area, bounding box, centroid, image sum / max and class vote of every labelled region.

    One pass over the label image's runs; exact integer accumulators for area, bbox and centroid
    (the centroid is ``sum / area`` in float64, identical to ``skimage.measure.regionprops``).

    Parameters
    ----------
    labels : (H, W) integer array
        Region labels; values <= 0 are background.
    image : (H, W) array, optional
        Intensities summed and maximised per region. Integer images (int64 and uint64 included, uint64
        compared as unsigned) sum exactly, in 128 bits on the CPU and as two 64-bit halves on the
        data-parallel backends, and the exact sum is rounded once to float64: every backend agrees.
    classes : (H, W) non-negative integer array, optional
        Class ids voted per region: the most frequent id wins, ties go to the smallest id.
    num_classes : int, optional
        If given, class ids must be smaller than it.

    backend : {"auto", "cpu", "cuda", "host"}, optional
        ``"auto"`` follows the inputs: CUDA tensors / CuPy arrays run on the GPU (the data-parallel
        algorithm of ``csrc/dwd/region_stats.h``, on the caller's current stream), host arrays on the CPU.
        ``"host"`` runs the data-parallel algorithm on the CPU in ``order`` (``"forward"``,
        ``"reversed"``, ``"shuffled"`` with ``seed``), to verify it without a GPU. Every backend gives
        identical results.

    Returns
    -------
    RegionStats
        Arrays in the caller's array library (and on its device).
    """
    backend = _arrays.resolve_backend(backend, labels, image, classes, names=("labels", "image", "classes"),
                                      op="region_stats")
    if backend == "host" and order not in _ORDERS:
        raise ValueError(f"order must be one of {sorted(_ORDERS)}, got {order!r}")
    if backend == "cuda":
        return _region_stats_cuda(labels, image, classes, num_classes, _stats)
    h = _arrays.to_host(labels, "labels")
    a = h.array
    _arrays.check_dtype(a, "labels", integer=True)
    _arrays.check_ndim(a, "labels", (2,), "2-D (H, W)")
    extra = {}
    for name, x, integer in (("image", image, False), ("classes", classes, True)):
        if x is None:
            extra[name] = None
            continue
        xa = _arrays.to_host(x, name).array
        _arrays.check_dtype(xa, name, integer=integer)
        if xa.shape != a.shape:
            raise ValueError(f"{name} must have the shape of labels {tuple(a.shape)}, got {tuple(xa.shape)}")
        extra[name] = _arrays.kernel_view(xa)[None, None]
    if num_classes is not None:
        num_classes = _check_num_classes(num_classes)
    if a.dtype.kind == "b":
        raise TypeError("labels must be an integer label image, got dtype bool (label it first)")
    if a.size == 0:
        a = np.zeros((1, 1), a.dtype)  # no regions; keeps the optional maps' checks above
        extra = {k: (None if v is None else np.zeros((1, 1, 1, 1), v.dtype)) for k, v in extra.items()}
    if backend == "host":
        if a.size == 0:
            return region_stats(a, image=None if extra["image"] is None else extra["image"][0, 0],
                                classes=None if extra["classes"] is None else extra["classes"][0, 0],
                                num_classes=num_classes)
        try:
            res = _region_stats_exec("host", _arrays.kernel_view(a),
                                     None if extra["image"] is None else extra["image"][0, 0],
                                     None if extra["classes"] is None else extra["classes"][0, 0],
                                     num_classes, order, seed, _stats)
        except MemoryError:
            raise ValueError(f"labels: the outputs have one row per label up to the largest ({int(a.max())}), "
                             f"which does not fit in memory; relabel densely (dwd_fast.label)") from None
        return RegionStats(*[None if v is None else _arrays.wrap(v, h) for v in res])
    try:
        d = cpu_ext().region_stats(_arrays.kernel_view(a)[None, None], extra["image"], extra["classes"],
                                   -1 if num_classes is None else int(num_classes))
    except MemoryError:
        raise ValueError(f"labels: the outputs have one row per label up to the largest ({int(a.max())}), "
                         f"which does not fit in memory; relabel densely (dwd_fast.label)") from None
    except ValueError as e:  # the CPU class vote's id limit: name the argument
        if str(e).startswith("class id"):
            raise ValueError(f"classes holds {e}") from None
        raise
    w = {k: _arrays.wrap(v, h) for k, v in d.items()}
    return RegionStats(**w)


def _region_stats_cuda(labels, image, classes, num_classes, stats):
    names = ("labels", "image", "classes")
    dts = [None if x is None else _arrays.dtype_name(x) for x in (labels, image, classes)]
    shapes = [None if x is None else _arrays.shape_of(x) for x in (labels, image, classes)]
    if dts[0] not in _arrays._DTYPE_NAMES or dts[0] in ("float32", "float64"):
        raise TypeError(f"labels must be an integer label image, got dtype {dts[0]}")
    if dts[0] == "bool":
        raise TypeError("labels must be an integer label image, got dtype bool (label it first)")
    if len(shapes[0]) != 2:
        raise ValueError(f"labels must be 2-D (H, W), got shape {shapes[0]}")
    for k in (1, 2):
        if shapes[k] is not None and shapes[k] != shapes[0]:
            raise ValueError(f"{names[k]} must have the shape of labels {shapes[0]}, got {shapes[k]}")
    if dts[2] is not None and dts[2] in ("float32", "float64"):
        raise TypeError(f"classes must be an integer or bool array, got dtype {dts[2]}")
    if num_classes is not None:
        num_classes = _check_num_classes(num_classes)
    return _region_stats_exec("cuda", labels, image, classes, num_classes, "forward", 0, stats)
