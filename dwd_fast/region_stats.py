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


def region_stats(labels, *, image=None, classes=None, num_classes=None):
    """Area, bounding box, centroid, image sum / max and class vote of every labelled region.

    One pass over the label image's runs; exact integer accumulators for area, bbox and centroid
    (the centroid is ``sum / area`` in float64, identical to ``skimage.measure.regionprops``).

    Parameters
    ----------
    labels : (H, W) integer array
        Region labels; values <= 0 are background.
    image : (H, W) array, optional
        Intensities summed and maximised per region (integer images sum exactly in int64).
    classes : (H, W) non-negative integer array, optional
        Class ids voted per region: the most frequent id wins, ties go to the smallest id.
    num_classes : int, optional
        If given, class ids must be smaller than it.

    Returns
    -------
    RegionStats
        Arrays in the caller's array library.
    """
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
    if num_classes is not None and (int(num_classes) != num_classes or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if a.dtype.kind == "b":
        raise TypeError("labels must be an integer label image, got dtype bool (label it first)")
    if a.size == 0:
        a = np.zeros((1, 1), a.dtype)  # no regions; keeps the optional maps' checks above
        extra = {k: (None if v is None else np.zeros((1, 1, 1, 1), v.dtype)) for k, v in extra.items()}
    d = cpu_ext().region_stats(_arrays.kernel_view(a)[None, None], extra["image"], extra["classes"],
                               -1 if num_classes is None else int(num_classes))
    w = {k: _arrays.wrap(v, h) for k, v in d.items()}
    return RegionStats(**w)
