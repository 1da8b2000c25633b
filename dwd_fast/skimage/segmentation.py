"""``skimage.segmentation.watershed`` (scikit-image 0.26), bit for bit."""

from __future__ import annotations

import numpy as np

from .. import label as _dwd_label
from .. import watershed as _dwd_watershed
from .._ext import cpu_ext
from ._util import binary_structure, local_minima_2d, raveled_offsets

__all__ = ["watershed"]


def _regular_seeds(shape, n_points):
    """``skimage.util.regular_seeds(shape, n_points)``: labels 1..k on a regular grid."""
    shape = np.asanyarray(shape)
    ndim = len(shape)
    unsort = np.argsort(np.argsort(shape))
    dims = np.sort(shape)
    space = float(np.prod(shape))
    if space <= n_points:
        grid = (slice(None),) * ndim
    else:
        steps = np.full(ndim, (space / n_points) ** (1.0 / ndim), dtype="float64")
        if (dims < steps).any():
            for dim in range(ndim):
                steps[dim] = dims[dim]
                space = float(np.prod(dims[dim + 1:]))
                steps[dim + 1:] = (space / n_points) ** (1.0 / (ndim - dim - 1))
                if (dims >= steps).all():
                    break
        starts = (steps // 2).astype(int)
        steps = np.round(steps).astype(int)
        slices = [slice(a, None, s) for a, s in zip(starts, steps)]
        grid = tuple(slices[i] for i in unsort)
    seeds = np.zeros(tuple(int(s) for s in shape), dtype=int)
    seeds[grid] = 1 + np.reshape(np.arange(seeds[grid].size), seeds[grid].shape)
    return seeds


def _minima_markers(image, connectivity, mask):
    """scikit-image's markers=None: the local minima at ``connectivity`` inside ``mask``, labelled at
    ``connectivity`` (int32, as scipy.ndimage.label)."""
    if image.ndim != 2:
        raise ValueError(f"watershed with markers=None supports 2-D images only, got {image.ndim}-D")
    if not np.isscalar(connectivity):
        raise ValueError("markers=None needs an integer connectivity (scikit-image fails on a footprint array there too)")
    fp = binary_structure(2, 2 if connectivity is None else connectivity)
    minima = local_minima_2d(image, fp)
    if mask is not None:
        minima &= mask
    return _dwd_label(minima, connectivity=1 if not fp[0, 0] else 2).astype(np.int32, copy=False)


def watershed(image, markers=None, connectivity=1, offset=None, mask=None, compactness=0, watershed_line=False):
    """Find watershed basins in an image flooded from given markers.

    Same signature, defaults, errors and output (bit for bit, dtype included) as
    ``skimage.segmentation.watershed`` of scikit-image 0.26.

    Parameters
    ----------
    image : (M, N[, ...]) ndarray
        Data array where the lowest value points are labelled first (compared as float64).
    markers : int, or (M, N[, ...]) ndarray of int, optional
        The marker labels (0: not a marker); an int asks for that many markers on a regular grid
        (within the mask); None (default) takes the local minima of ``image``, labelled (2-D only).
    connectivity : int or ndarray, optional
        An int as in ``scipy.ndimage.generate_binary_structure`` (1: 4-neighbourhood in 2-D, default;
        2: 8-neighbourhood), or a footprint array.
    offset : array_like of shape image.ndim, optional
        The centre of the footprint (default: its middle).
    mask : (M, N[, ...]) ndarray of bools or 0's and 1's, optional
        Only pixels where mask is True are labelled.
    compactness : float, optional
        Compact watershed: the priority is value + compactness * distance to the marker pixel.
    watershed_line : bool, optional
        Leave a one-pixel line (label 0) between regions (ignored with compactness > 0, as in
        scikit-image 0.26).

    Returns
    -------
    out : ndarray
        Labels of the same shape and dtype as the markers.

    Notes
    -----
    2-D images with connectivity 1 or 2 (as ints or as their footprints), no compactness and no
    watershed line run the multi-threaded replay of ``dwd_fast.watershed(method="skimage")``; every
    other case runs a single-threaded exact replay of scikit-image's flood (C++, radix heap once the
    seeds' ties are settled), on n-D images too.
    """
    image = np.asanyarray(image)
    mask_arr = None
    if mask is not None:
        mask_arr = np.asanyarray(mask, dtype=bool)
        if mask_arr.shape != image.shape:
            raise ValueError(f"`mask` (shape {mask_arr.shape}) must have same shape as `image` (shape {image.shape})")
    if image.dtype.kind == "f" and image.size and np.isnan(image).any():
        raise ValueError("image must not hold NaN (the flood order is undefined there)")
    if markers is None:
        markers = _minima_markers(image, connectivity, mask_arr)
    elif not isinstance(markers, (np.ndarray, list, tuple)):
        n_pixels = image.size if mask_arr is None else np.sum(mask_arr)
        markers = _regular_seeds(image.shape, int(markers / (n_pixels / image.size)))
        if mask_arr is not None:
            markers *= mask_arr
    else:
        markers = np.asanyarray(markers)
        # scikit-image multiplies by the mask (markers outside it vanish: so they do in both floods
        # here); only a shape mismatch needs the product (numpy's broadcasting, or its error)
        if markers.shape != image.shape:
            markers = markers * (mask_arr if mask_arr is not None else np.ones(image.shape, bool))
        elif markers.dtype == np.bool_:
            markers = markers * (mask_arr if mask_arr is not None else True)
        if markers.shape != image.shape:
            raise ValueError(f"`markers` (shape {markers.shape}) must have same shape as `image` (shape {image.shape})")
    if markers.dtype.kind not in "iu":
        raise TypeError(f"markers must be an integer array, got dtype {markers.dtype}")

    # scikit-image's _validate_connectivity
    if connectivity is None:
        connectivity = 1
    if np.isscalar(connectivity):
        footprint = binary_structure(image.ndim, connectivity)
    else:
        footprint = np.array(connectivity, bool)
        if footprint.ndim != image.ndim:
            raise ValueError("Connectivity dimension must be same as image")
    if offset is None:
        if any(x % 2 == 0 for x in footprint.shape):
            raise ValueError("Connectivity array must have an unambiguous center")
        offset = np.array(footprint.shape) // 2
    offset = np.asarray(offset)

    compact = bool(compactness > 0)
    standard = (image.ndim == 2 and footprint.shape == (3, 3) and tuple(int(o) for o in offset) == (1, 1)
                and (np.array_equal(footprint, binary_structure(2, 1))
                     or np.array_equal(footprint, binary_structure(2, 2))))
    if standard and not compact and not watershed_line and image.dtype.kind in "biuf" and image.size:
        img = image.view(np.uint8) if image.dtype == np.bool_ else image
        return _dwd_watershed(np.asarray(img), np.asarray(markers), connectivity=1 if not footprint[0, 0] else 2,
                              mask=mask_arr, method="skimage")
    return _raveled(image, markers, mask_arr, footprint, offset, float(compactness) if compact else 0.0,
                    bool(watershed_line))


def _raveled(image, markers, mask, footprint, offset, compactness, watershed_line):
    """scikit-image's padded, raveled flood (every mode), replayed by the C++ kernel."""
    pad = [(int(p), int(p)) for p in offset]
    img = np.pad(image.astype(np.float64), pad, mode="constant")
    m = np.ones(image.shape, np.uint8) if mask is None else mask.astype(np.uint8)
    m = np.ascontiguousarray(np.pad(m, pad, mode="constant")).ravel()
    mk = np.asarray(markers)
    if mask is not None:  # scikit-image's markers * mask: seeds outside the mask vanish
        mk = np.where(mask, mk, 0).astype(mk.dtype, copy=False)
    out = np.pad(mk, pad, mode="constant")
    offsets = raveled_offsets(img.shape, footprint, offset).astype(np.int64)
    flat = out.ravel()
    seeds = np.flatnonzero(flat).astype(np.int64)
    values, dense = np.unique(flat[seeds], return_inverse=True)
    if len(values) >= 2**31 - 1:
        raise ValueError("markers hold too many distinct labels (2^31 or more)")
    lab = np.zeros(flat.shape, np.int32)
    lab[seeds] = dense.astype(np.int32) + 1
    strides = np.array(img.strides, dtype=np.int64) // img.itemsize
    comp = None
    if img.ndim == 2 and footprint.shape == (3, 3) and tuple(int(o) for o in offset) == (1, 1):
        for conn in (1, 2):
            if np.array_equal(footprint, binary_structure(2, conn)):
                # the mask's components under the neighbourhood: floods never cross them, so only ties
                # between seeds of one component need scikit-image's heap layout (C++ side)
                comp = _dwd_label(m.reshape(img.shape), connectivity=conn).ravel()
    cpu_ext().watershed_raveled(np.ascontiguousarray(img).ravel(), seeds, offsets, strides, m, compactness,
                                watershed_line, lab, comp)
    lut = np.zeros(len(values) + 1, out.dtype)
    lut[1:] = values
    res = lut[lab].reshape(out.shape)
    crop = tuple(slice(a, s - b) for (a, b), s in zip(pad, res.shape))
    return res[crop].copy()
