"""``skimage.feature.peak_local_max`` (scikit-image 0.26), bit for bit."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import peak_local_max as _dwd_peaks
from .. import region_stats as _region_stats

__all__ = ["peak_local_max"]


def _border_width(image, min_distance, exclude_border):
    if isinstance(exclude_border, bool):
        return (min_distance if exclude_border else 0,) * image.ndim
    if isinstance(exclude_border, int):
        if exclude_border < 0:
            raise ValueError("`exclude_border` cannot be a negative value")
        return (exclude_border,) * image.ndim
    if isinstance(exclude_border, tuple):
        if len(exclude_border) != image.ndim:
            raise ValueError("`exclude_border` should have the same length as the dimensionality of the image.")
        for w in exclude_border:
            if not isinstance(w, int):
                raise ValueError("`exclude_border`, when expressed as a tuple, must only contain ints.")
            if w < 0:
                raise ValueError("`exclude_border` can not be a negative value")
        return exclude_border
    raise TypeError("`exclude_border` must be bool, int, or tuple with the same length as the dimensionality of the image.")


def _exclude_border(a, widths):
    for i, w in enumerate(widths):
        if w == 0:
            continue
        a[(slice(None),) * i + (slice(None, w),)] = 0
        a[(slice(None),) * i + (slice(-w, None),)] = 0
    return a


def _max_filter(image, footprint):
    """scipy.ndimage.maximum_filter(image, footprint=footprint, mode='nearest') (2-D), by shifted maxima."""
    fp = np.asarray(footprint, bool)
    if not fp.any():
        raise ValueError("footprint array has no nonzero elements")
    h, w = image.shape
    cr, cc = fp.shape[0] // 2, fp.shape[1] // 2
    padded = np.pad(image, ((cr, fp.shape[0] - 1 - cr), (cc, fp.shape[1] - 1 - cc)), mode="edge")
    out = None
    for i, j in zip(*np.nonzero(fp)):
        win = padded[i:i + h, j:j + w]
        out = win.copy() if out is None else np.maximum(out, win, out=out)
    return out


def _binary_opening_cross(mask):
    """scipy.ndimage.binary_opening(mask) (2-D cross, border 0)."""
    p = np.pad(mask, 1, constant_values=False)
    er = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    q = np.pad(er, 1, constant_values=False)
    return q[1:-1, 1:-1] | q[:-2, 1:-1] | q[2:, 1:-1] | q[1:-1, :-2] | q[1:-1, 2:]


def _peak_mask(image, footprint, threshold, mask=None):
    if footprint.size == 1 or image.size == 1:
        return image > threshold
    image_max = _max_filter(image, footprint)
    out = image == image_max
    trivial = np.all(out) if mask is None else np.all(out[mask])
    if trivial:
        out[:] = False
        if mask is not None:
            out[np.logical_xor(mask, _binary_opening_cross(mask))] = True
    out &= image > threshold
    return out


def _minkowski(d, p):
    """scipy's cdist 'minkowski' distance of one integer offset ``d`` (its p = 1, 2, inf special cases)."""
    if p == 1:
        return float(sum(abs(x) for x in d))
    if p == 2:
        return math.sqrt(sum(float(x) * float(x) for x in d))
    if math.isinf(p):
        return float(max(abs(x) for x in d))
    s = 0.0
    for x in d:
        s += math.pow(abs(float(x)), p)
    return math.pow(s, 1.0 / p)


def _ensure_spacing(coord, spacing, p_norm, max_out):
    """skimage's ensure_spacing: keep each point (in order) unless an earlier kept point lies closer than
    ``spacing`` (p-norm); at most ``max_out`` points. A grid of spacing-sized cells finds the near points."""
    if len(coord) == 0:
        return coord
    if not p_norm >= 1:
        raise ValueError("Only p-norms with 1<=p<=infinity permitted")
    # every p-norm is at least the Chebyshev distance: closer points lie in the 3x3 cells around
    cell = max(float(spacing), 1.0)
    grid = {}
    kept = []
    reach = 1
    for k, pt in enumerate(coord.tolist()):
        key = tuple(int(x // cell) for x in pt)
        ok = True
        for dr in range(-reach, reach + 1):
            for dc in range(-reach, reach + 1):
                for j in grid.get((key[0] + dr, key[1] + dc), ()):
                    q = coord[j]
                    if _minkowski((pt[0] - int(q[0]), pt[1] - int(q[1])), p_norm) < spacing:
                        ok = False
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            kept.append(k)
            grid.setdefault(key, []).append(k)
            if max_out is not None and len(kept) >= max_out:
                break
    return coord[np.array(kept, dtype=np.intp)]


def _high_intensity_peaks(image, mask, num_peaks, min_distance, p_norm):
    coord = np.nonzero(mask)
    intensities = image[coord]
    idx = np.argsort(-intensities, kind="stable")
    coord = np.transpose(coord)[idx]
    max_out = int(num_peaks) if np.isfinite(num_peaks) else None
    if min_distance > 1:
        coord = _ensure_spacing(coord, min_distance, p_norm, max_out)
    if len(coord) > num_peaks:
        coord = coord[:num_peaks]
    return coord


def _objects(labels):
    """scipy.ndimage.find_objects for 2-D integer labels: a slice pair per label 1..max, None if absent."""
    lab = labels
    if lab.size == 0 or lab.max() <= 0:
        return []
    st = _region_stats(np.ascontiguousarray(lab))
    return [None if a == 0 else (slice(int(b[0]), int(b[2])), slice(int(b[1]), int(b[3])))
            for a, b in zip(st.area, st.bbox)]


def peak_local_max(image, min_distance=1, threshold_abs=None, threshold_rel=None, exclude_border=True,
                   num_peaks=np.inf, footprint=None, labels=None, num_peaks_per_label=np.inf, p_norm=np.inf):
    """Find peaks in an image as coordinate list.

    Same signature, defaults, warnings, errors and output (coordinates and their order) as
    ``skimage.feature.peak_local_max`` (scikit-image 0.26), for 2-D images.

    Parameters
    ----------
    image : (M, N) ndarray
    min_distance : int, optional
        Minimal allowed distance separating peaks (p-norm ``p_norm``); also the default footprint's
        half-size and the default border width.
    threshold_abs, threshold_rel : float, optional
    exclude_border : int, tuple of ints, or bool, optional
    num_peaks : int, optional
    footprint : ndarray of bools, optional
        The neighbourhood of the maximum filter (default: a ``2 * min_distance + 1`` square).
    labels : ndarray of ints, optional
    num_peaks_per_label : int, optional
    p_norm : float, optional
        Which Minkowski p-norm to use for the spacing (default inf, the Chebyshev distance).

    Returns
    -------
    output : (K, 2) ndarray of int

    Notes
    -----
    Square all-True footprints (the default one included) with ``p_norm=inf`` (or no spacing,
    ``min_distance <= 1``) run the C++ kernel of ``dwd_fast.peak_local_max``; other footprints and
    p-norms run an exact numpy / Python implementation (slower).
    """
    if (footprint is None or footprint.size == 1) and min_distance < 1:
        warnings.warn("When min_distance < 1, peak_local_max acts as finding "
                      "image > max(threshold_abs, threshold_rel * max(image)).", RuntimeWarning, stacklevel=2)
    border_width = _border_width(image, min_distance, exclude_border)
    if image.ndim != 2:
        raise ValueError(f"dwd_fast.skimage.feature.peak_local_max supports 2-D images only, got {image.ndim}-D")
    window = None  # half-size of a full square footprint (the C++ kernel's window)
    if footprint is None:
        size = 2 * min_distance + 1
        footprint = np.ones((size,) * image.ndim, dtype=bool)
        if min_distance >= 1:
            window = min_distance
    else:
        footprint = np.asarray(footprint)
        s = footprint.shape
        if footprint.ndim == 2 and s[0] == s[1] and s[0] % 2 == 1 and bool(np.all(footprint)):
            window = s[0] // 2
    fast = (window is not None and (min_distance <= 1 or math.isinf(p_norm)) and image.size > 1
            and image.dtype.kind in "iuf" and isinstance(min_distance, (int, np.integer)) and min_distance >= 0
            and (labels is None or (labels.dtype.kind in "iub")))
    if fast:  # (the kernel rejects NaN with a ValueError)
        nump = None if not np.isfinite(num_peaks) else int(num_peaks)
        nppl = None if not np.isfinite(num_peaks_per_label) else int(num_peaks_per_label)
        if labels is not None and not np.can_cast(labels.dtype, int, "safe"):
            labels.astype(int, casting="safe")  # raises numpy's TypeError, as scikit-image does
        # min_distance 0 and 1 both mean no spacing (the window and border are passed explicitly)
        return _dwd_peaks(image, min_distance=max(int(min_distance), 1), threshold_abs=threshold_abs,
                          threshold_rel=threshold_rel, exclude_border=tuple(int(w) for w in border_width),
                          num_peaks=nump, labels=labels, num_peaks_per_label=nppl, _window=window)
    threshold = threshold_abs if threshold_abs is not None else image.min()
    if threshold_rel is not None:
        threshold = max(threshold, threshold_rel * image.max())
    return _general(image, min_distance, threshold, border_width, num_peaks, footprint, labels, num_peaks_per_label,
                    p_norm)


def _general(image, min_distance, threshold, border_width, num_peaks, footprint, labels, num_peaks_per_label, p_norm):
    """The exact numpy / Python path (any footprint and p-norm)."""
    if labels is None:
        mask = _peak_mask(image, footprint, threshold)
        mask = _exclude_border(mask, border_width)
        return _high_intensity_peaks(image, mask, num_peaks, min_distance, p_norm)
    _labels = _exclude_border(labels.astype(int, casting="safe"), border_width)
    if np.issubdtype(image.dtype, np.floating):
        bg_val = np.finfo(image.dtype).min
    else:
        bg_val = np.iinfo(image.dtype).min
    found = []
    for label_idx, roi in enumerate(_objects(_labels)):
        if roi is None:
            continue
        label_mask = labels[roi] == label_idx + 1
        img_object = image[roi].copy()
        img_object[np.logical_not(label_mask)] = bg_val
        mask = _peak_mask(img_object, footprint, threshold, label_mask)
        coords = _high_intensity_peaks(img_object, mask, num_peaks_per_label, min_distance, p_norm)
        for idx, s in enumerate(roi):
            coords[:, idx] += s.start
        found.append(coords)
    coordinates = np.vstack(found) if found else np.empty((0, 2), dtype=int)
    if len(coordinates) > num_peaks:
        out = np.zeros_like(image, dtype=bool)
        out[tuple(coordinates.T)] = True
        coordinates = _high_intensity_peaks(image, out, num_peaks, min_distance, p_norm)
    return coordinates
