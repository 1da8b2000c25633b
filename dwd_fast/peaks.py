"""Local maxima (``skimage.feature.peak_local_max`` semantics)."""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import _arrays
from ._ext import cpu_ext

__all__ = ["peak_local_max"]

_ORDERS = {"forward": 0, "reversed": 1, "shuffled": 2}


def _limit(value, name):
    """-1 (no limit) for None or +inf, else a non-negative int."""
    if value is None:
        return -1
    if isinstance(value, (float, np.floating)) and math.isinf(value) and value > 0:
        return -1
    return _arrays.check_nonneg_int(value, name)


def _border_widths(exclude_border, min_distance):
    """(rows, cols) border widths; the same cases and exception types as scikit-image."""
    if isinstance(exclude_border, bool):
        w = min_distance if exclude_border else 0
        return w, w
    if isinstance(exclude_border, int):
        if exclude_border < 0:
            raise ValueError(f"exclude_border must not be negative, got {exclude_border}")
        w = _arrays.check_nonneg_int(exclude_border, "exclude_border")
        return w, w
    if isinstance(exclude_border, tuple):
        if len(exclude_border) != 2:
            raise ValueError(f"exclude_border as a tuple needs one width per image axis (2), "
                             f"got {len(exclude_border)}: {exclude_border!r}")
        for w in exclude_border:
            if not isinstance(w, int):
                raise ValueError(f"exclude_border as a tuple must hold ints, got {exclude_border!r}")
            if w < 0:
                raise ValueError(f"exclude_border must not hold negative widths, got {exclude_border!r}")
            _arrays.check_nonneg_int(w, "exclude_border")
        return int(exclude_border[0]), int(exclude_border[1])
    raise TypeError(f"exclude_border must be a bool, an int or a tuple of 2 ints, "
                    f"got {type(exclude_border).__name__}")


def _float_bits(dt):
    return np.uint32 if dt.itemsize == 4 else np.uint64


def _float_ordinal_to_value(dt, k):
    """The float of dtype ``dt`` at position ``k`` of the total order of its bit patterns."""
    n = 8 * dt.itemsize
    sign = 1 << (n - 1)
    bits = k ^ sign if k >= sign else (~k) & ((1 << n) - 1)
    return np.array([bits], _float_bits(dt)).view(dt)[0]


def _float_value_to_ordinal(dt, v):
    n = 8 * dt.itemsize
    sign = 1 << (n - 1)
    bits = int(np.array([v], dt).view(_float_bits(dt))[0])
    return (~bits) & ((1 << n) - 1) if bits & sign else bits | sign


def _threshold_cut(dtype, threshold):
    """``(all_pass, cut)`` with ``v > threshold`` (numpy's comparison of a ``dtype`` array with
    ``threshold``, promotion rules included) equal to ``all_pass or v > cut`` compared in ``dtype``.

    The comparison is monotone in ``v``, so it is the set of values above some value of the dtype; the
    cut is found by evaluating numpy's own comparison on one-element arrays (a guess, then a
    bisection over the values of the dtype when the guess is off).
    """
    def above(v):
        return bool((np.array([v], dtype) > threshold)[0])

    if dtype.kind == "f":
        to_value = lambda k: _float_ordinal_to_value(dtype, k)  # noqa: E731
        lo = _float_value_to_ordinal(dtype, -np.inf)
        hi = _float_value_to_ordinal(dtype, np.inf)
        guess = None
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                g = dtype.type(threshold)
                if not np.isnan(g):
                    guess = _float_value_to_ordinal(dtype, g)
            except (TypeError, ValueError, OverflowError):
                pass
        if guess is not None:
            # the threshold rounded to the dtype, or its neighbour below, is usually the cut
            for k in (guess, guess - 1):
                if lo <= k < hi and not above(to_value(k)) and above(to_value(k + 1)):
                    return False, float(to_value(k))
    else:
        info = np.iinfo(dtype)
        to_value = lambda k: k  # noqa: E731
        lo, hi = info.min, info.max
        try:
            g = math.floor(threshold) if not isinstance(threshold, (int, np.integer)) else int(threshold)
            if lo <= g < hi and not above(g) and above(g + 1):
                return False, int(g)
        except (TypeError, ValueError, OverflowError):
            pass
    if above(to_value(lo)):
        return True, (0.0 if dtype.kind == "f" else 0)
    if not above(to_value(hi)):
        return False, (float(to_value(hi)) if dtype.kind == "f" else int(hi))
    # smallest k in (lo, hi] with above(k); the cut is k - 1
    a, b = lo, hi
    while b - a > 1:
        m = (a + b) // 2
        if above(to_value(m)):
            b = m
        else:
            a = m
    return False, (float(to_value(a)) if dtype.kind == "f" else int(a))


def peak_local_max(image, *, min_distance=1, threshold_abs=None, threshold_rel=None, exclude_border=True,
                   num_peaks=None, labels=None, num_peaks_per_label=None, backend="auto", order="forward",
                   seed=0, _window=None):
    """Coordinates of the local maxima of a 2-D image.

    Same result as ``skimage.feature.peak_local_max`` (scikit-image 0.26) with the default footprint
    and ``p_norm=inf``: same coordinates in the same order. A pixel is a peak candidate when it is
    larger than the threshold and no pixel of its ``(2 * min_distance + 1)``-square window (clamped to
    the image) is larger; a constant image has none. Candidates are ordered by intensity, highest first
    (as numpy's stable ``argsort(-image)``: for integer images the negation wraps, so with a threshold
    below zero 0-valued peaks of unsigned images, and the dtype minimum of signed ones, come first),
    ties in raster order; with ``min_distance > 1`` they are thinned greedily in that order, dropping
    any candidate closer than ``min_distance`` (Chebyshev distance) to one already kept.

    Parameters
    ----------
    image : (H, W) array of integers or floats
        numpy array or CPU torch tensor, any layout. Not modified. NaN is rejected.
    min_distance : int, optional
        Window half-size and minimal spacing of peaks (default 1: no spacing). 0 returns every pixel
        above the threshold, with a ``RuntimeWarning`` as scikit-image.
    threshold_abs : scalar, optional
        Peaks must be strictly above it (compared as numpy compares ``image > threshold_abs``).
        Default: the image minimum.
    threshold_rel : float, optional
        The threshold is at least ``threshold_rel * image.max()``.
    exclude_border : bool, int or tuple of 2 ints, optional
        Width of the border band (per axis for a tuple) that holds no peak; ``True`` (default) means
        ``min_distance``, ``False`` or 0 none.
    num_peaks : int, optional
        At most this many peaks (default: no limit).
    labels : (H, W) array of integers or bool, optional
        Look for peaks in each region ``labels == l`` (l > 0) separately, in increasing label order, as
        scikit-image does: the window is clamped to the region's bounding box (taken after the border
        exclusion) and pixels of other labels count as the dtype minimum; a region whose every pixel
        is a window maximum yields only its thin or isolated pixels. Regions' peaks are concatenated,
        and selected again over the whole image when there are more than ``num_peaks``.
    num_peaks_per_label : int, optional
        At most this many peaks per label (default: no limit).
    backend : {"auto", "cpu", "host"}, optional
        ``"cpu"`` evaluates the window only at pixels above the threshold. ``"host"`` runs the
        data-parallel GPU candidate step (one element per pixel, list compaction with atomicAdd, then a
        sort by (key, index)) on the CPU, one element at a time in ``order`` (``"forward"``,
        ``"reversed"`` or ``"shuffled"`` with ``seed``); it verifies the GPU code without a GPU, is slow,
        and does not take ``labels``.

    Returns
    -------
    coordinates : (K, 2) int64 array of ``(row, col)``, in the caller's array library

    Examples
    --------
    >>> import numpy as np, dwd_fast
    >>> img = np.zeros((7, 7))
    >>> img[3, 4], img[3, 2] = 1.0, 1.5
    >>> dwd_fast.peak_local_max(img)
    array([[3, 2],
           [3, 4]])
    >>> dwd_fast.peak_local_max(img, min_distance=2)
    array([[3, 2]])
    """
    backend = _arrays.resolve_backend(backend, image, labels, names=("image", "labels"), op="peak_local_max")
    if backend == "cuda":
        return _peaks_cuda(image, min_distance, threshold_abs, threshold_rel, exclude_border, num_peaks, labels)
    h = _arrays.to_host(image, "image")
    a = h.array
    _arrays.check_dtype(a, "image")
    if a.dtype.kind == "b":
        raise TypeError("image must be an integer or float array, got dtype bool")
    _arrays.check_ndim(a, "image", (2,), "2-D (H, W)")
    _arrays.check_nonempty(a, "image")
    min_distance, border_r, border_c, num_peaks = _spacing(min_distance, exclude_border, num_peaks, 3)
    num_peaks_per_label = _limit(num_peaks_per_label, "num_peaks_per_label")
    _arrays.check_no_nan(a, "image")
    _check_thresholds(threshold_abs, threshold_rel)
    # widths and spacings beyond the image act as the image's size (the window and the border are
    # clamped to the image; every distance is below it): keeps the kernels' index arithmetic small
    big = max(a.shape)
    min_distance, border_r, border_c = min(min_distance, big), min(border_r, big), min(border_c, big)
    threshold = threshold_abs if threshold_abs is not None else a.min()
    if threshold_rel is not None:
        try:
            threshold = max(threshold, threshold_rel * a.max())
        except OverflowError:
            raise ValueError(f"threshold_rel * image.max() overflows {a.dtype}, got threshold_rel={threshold_rel!r}") \
                from None
    all_pass, cut = _threshold_cut(a.dtype, threshold)

    lab = None
    if labels is not None:
        lh = _arrays.to_host(labels, "labels")
        lab = lh.array
        _arrays.check_dtype(lab, "labels", integer=True)
        if lab.dtype == np.uint64:
            raise TypeError("labels has dtype uint64, which does not convert safely to int64 labels; "
                            "use a signed or smaller integer dtype")
        if lab.shape != a.shape:
            raise ValueError(f"labels must have the shape of image {tuple(a.shape)}, got shape {tuple(lab.shape)}")
        if lab.dtype == np.bool_:
            lab = lab.view(np.uint8)
        if not lab.dtype.isnative:
            lab = lab.astype(lab.dtype.newbyteorder("="))
        lab = lab[None, None]

    a4 = _arrays.kernel_view(a)[None, None]
    ext = cpu_ext()
    if backend == "host":
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {sorted(_ORDERS)}, got {order!r}")
        if lab is not None:
            raise ValueError("backend='host' runs the data-parallel candidate step, which does not take labels; "
                             "use backend='cpu'")
        out, _ = ext.peak_local_max_host(a4, min_distance, border_r, border_c, num_peaks, all_pass, cut,
                                         _ORDERS[order], _arrays.check_nonneg_int(seed, "seed", 2**64 - 1))
    else:
        # _window (private, dwd_fast.skimage): the half-size of a full square footprint other than
        # the default one (min_distance still sets the spacing)
        window = -1 if _window is None else min(_arrays.check_nonneg_int(_window, "_window"), big)
        out = ext.peak_local_max(a4, min_distance, border_r, border_c, num_peaks, all_pass, cut, lab,
                                 num_peaks_per_label, window)
    return _arrays.wrap(out, h)


def _check_thresholds(threshold_abs, threshold_rel):
    if threshold_abs is not None:
        _arrays.check_number(threshold_abs, "threshold_abs")
    if threshold_rel is not None:
        _arrays.check_number(threshold_rel, "threshold_rel")


def _spacing(min_distance, exclude_border, num_peaks, stacklevel):
    """(min_distance, border rows, border cols, num_peaks), checked; warns (at the caller of the public
    function, ``stacklevel``) when min_distance < 1."""
    min_distance = _arrays.check_nonneg_int(min_distance, "min_distance")
    if min_distance < 1:
        # scikit-image 0.26's wording, word for word
        warnings.warn("When min_distance < 1, peak_local_max acts as finding "
                      "image > max(threshold_abs, threshold_rel * max(image)).", RuntimeWarning,
                      stacklevel=stacklevel)
    border_r, border_c = _border_widths(exclude_border, min_distance)
    return min_distance, border_r, border_c, _limit(num_peaks, "num_peaks")


_CUDA_DTYPES = ("uint8", "uint16", "int32", "int64", "float32", "float64")


def _peaks_cuda(image, min_distance, threshold_abs, threshold_rel, exclude_border, num_peaks, labels):
    """peak_local_max on the device of ``image`` (dwd/peaks.h: flags, compaction, stable radix sort, one-thread
    greedy spacing); returns (K, 2) int64 coordinates on that device."""
    from ._ext import cuda_ext

    if labels is not None:
        raise ValueError("peak_local_max with labels runs on the cpu backend only")
    dt = np.dtype(_arrays.dtype_name(image)) if _arrays.dtype_name(image) in _arrays._DTYPE_NAMES else None
    if dt is None or dt.name not in _CUDA_DTYPES:
        raise TypeError(f"image dtype {_arrays.dtype_name(image)} is not supported by peak_local_max on CUDA; "
                        f"expected one of {', '.join(_CUDA_DTYPES)}")
    shape = _arrays.shape_of(image)
    if len(shape) != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {shape}")
    if shape[0] * shape[1] == 0:
        raise ValueError(f"image is empty (shape {shape})")
    min_distance, border_r, border_c, num_peaks = _spacing(min_distance, exclude_border, num_peaks, 4)
    if dt.kind == "f" and bool((image != image).any().item()):
        raise ValueError("image contains NaN")
    _check_thresholds(threshold_abs, threshold_rel)
    big = max(shape)
    min_distance, border_r, border_c = min(min_distance, big), min(border_r, big), min(border_c, big)
    threshold = threshold_abs if threshold_abs is not None else np.array(image.min().item(), dt)[()]
    if threshold_rel is not None:
        threshold = max(threshold, threshold_rel * np.array(image.max().item(), dt)[()])
    all_pass, cut = _threshold_cut(dt, threshold)
    dev = _arrays.Device.of(image)
    box = {}

    def alloc(k):
        box["out"], ptr = dev.empty((k, 2), "int64")
        return (ptr,)

    cuda_ext().peak_local_max(_arrays.view(image, "image"), min_distance, border_r, border_c, num_peaks, all_pass,
                              cut, alloc, dev.index if dev.index is not None else -1, dev.stream())
    return box["out"]
