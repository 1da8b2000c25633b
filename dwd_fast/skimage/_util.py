"""Pieces shared by the drop-in modules: neighbourhoods, plateaus, local minima (scikit-image 0.26 rules)."""

from __future__ import annotations

import numpy as np

from .. import label as _dwd_label


def binary_structure(ndim, connectivity):
    """``scipy.ndimage.generate_binary_structure``: offsets with at most ``connectivity`` non-zero
    coordinates (values below 1 count as 1)."""
    if connectivity < 1:
        connectivity = 1
    if ndim < 1:
        return np.array(True, dtype=bool)
    grid = np.abs(np.indices([3] * ndim) - 1)
    return np.add.reduce(grid, 0) <= connectivity


def raveled_offsets(shape, footprint, center):
    """Neighbour offsets in a raveled C-order array of ``shape``, in scikit-image's order: sorted by
    euclidean length (stable, so C order among equal lengths), duplicates dropped when the image is
    smaller than the footprint, and the first entry (the centre when it is in the footprint) removed."""
    footprint = np.asarray(footprint, dtype=bool)
    ndim = len(shape)
    if not footprint.ndim == ndim == len(center):
        raise ValueError("number of dimensions in image shape, footprint and itscenter index does not match")
    offsets = np.stack([(idx - c) for idx, c in zip(np.nonzero(footprint), center)], axis=-1)
    ravel = tuple(shape[1:]) + (1,)
    ravel = np.cumprod(ravel[::-1])[::-1]
    raveled = (offsets * ravel).sum(axis=1)
    dist = np.sqrt(np.sum((offsets * np.ones(ndim)) ** 2, axis=1))
    order = np.argsort(dist, kind="stable")
    raveled = raveled[order]
    if any(x < y for x, y in zip(shape, footprint.shape)):
        _, first = np.unique(raveled, return_index=True)
        raveled = raveled[np.sort(first, kind="stable")]
    return raveled[1:]


def _label_connectivity(footprint):
    """1 or 2 for the 3x3 cross / full square (the only 2-D neighbourhoods of binary_structure)."""
    return 1 if not footprint[0, 0] else 2


def plateaus(image, connectivity):
    """Labels (1..n, every pixel labelled) of the connected sets of equal value of a 2-D image (NaN-free),
    and n. ``connectivity`` is 1 or 2."""
    a = np.asarray(image)
    if a.dtype.kind == "f":
        key = (a.astype(np.float64) + 0.0).view(np.int64)  # -0.0 + 0.0 is +0.0: equal values, equal keys
        absent = np.int64(0x7FF8000000000000)  # a NaN's bits: never present
    elif a.dtype.kind == "b":
        key = a.astype(np.int64) + 1
        absent = None
    else:
        key = a.astype(np.int64) if a.dtype != np.uint64 else a.view(np.int64)
        absent = None
        lo, hi = key.min(), key.max()
        if hi < np.iinfo(np.int64).max:
            absent = hi + 1
        elif lo > np.iinfo(np.int64).min:
            absent = lo - 1
        else:  # both extremes present: rank the values
            _, inv = np.unique(key, return_inverse=True)
            key = inv.reshape(a.shape).astype(np.int64) + 1
    if absent is not None:
        key = np.where(key == 0, absent, key)  # dwd_fast.label treats 0 as background
    return _dwd_label(np.ascontiguousarray(key), connectivity=connectivity, return_num=True)


def local_minima_2d(image, footprint):
    """``skimage.morphology.local_minima(image, footprint)`` (borders allowed) for a 2-D image: the
    plateaus (connected at ``footprint``) none of whose pixels has a strictly smaller neighbour, except
    those at the image's maximum value."""
    a = np.asarray(image)
    if a.dtype == np.float16:
        raise TypeError("dtype of `image` is float16 which is not supported, try upcasting to float32")
    if a.size == 0:
        return np.zeros(a.shape, bool)
    if a.dtype.kind == "f" and np.isnan(a).any():
        raise ValueError("image must not hold NaN")
    conn = _label_connectivity(footprint)
    lab, n = plateaus(a, conn)
    lower = np.zeros(a.shape, bool)
    h, w = a.shape
    for dr, dc in zip(*np.nonzero(footprint)):
        dr, dc = int(dr) - 1, int(dc) - 1
        if dr == 0 and dc == 0:
            continue
        # pixel (r, c) against its neighbour (r + dr, c + dc), where that lies in the image
        r0, r1 = max(0, -dr), min(h, h - dr)
        c0, c1 = max(0, -dc), min(w, w - dc)
        if r0 >= r1 or c0 >= c1:
            continue
        lower[r0:r1, c0:c1] |= a[r0 + dr:r1 + dr, c0 + dc:c1 + dc] < a[r0:r1, c0:c1]
    # scikit-image pads the (inverted) image with its extreme value and counts the padding as part of
    # a plateau of that value touching the edge: a plateau at the image's maximum is never a minimum
    # (inside the image it has lower neighbours; touching the edge it meets the padding)
    lower |= a == a.max()
    bad = np.zeros(n + 1, bool)
    bad[lab[lower]] = True
    return ~bad[lab]
