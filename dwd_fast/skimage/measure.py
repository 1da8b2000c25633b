"""``skimage.measure.label`` and ``regionprops_table`` (scikit-image 0.26), bit for bit."""

from __future__ import annotations

import numpy as np

from .. import label as _dwd_label
from .. import region_stats as _region_stats
from .._ext import cpu_ext

__all__ = ["label", "regionprops_table", "SUPPORTED_PROPERTIES"]


def _as_2d(a):
    """(view as 2-D, restore) for 1-D and 2-D arrays (and empty ones of any rank); other ranks:
    ValueError (2-D only)."""
    if a.size == 0 and a.ndim != 2:
        return np.zeros((0, 0), a.dtype), lambda x: np.zeros(a.shape, x.dtype)
    if a.ndim == 2:
        return a, lambda x: x
    if a.ndim == 1:
        return a.reshape(1, -1), lambda x: x.reshape(-1)
    raise ValueError(f"dwd_fast.skimage.measure.label supports 1-D and 2-D images only, got {a.ndim}-D")


def label(label_image, background=None, return_num=False, connectivity=None):
    """Label connected regions of an integer array.

    Same signature, defaults, errors and output as ``skimage.measure.label`` (scikit-image 0.26):
    bool images give int32 labels (as scipy.ndimage.label), other images are cast to intp as
    scikit-image does and give intp labels. Pixels equal to ``background`` (default 0) are 0; the
    others are joined when neighbours at ``connectivity`` (default: image.ndim) hold the same value;
    labels follow the raster order of each region's first pixel.

    Parameters
    ----------
    label_image : ndarray of dtype int or bool
        1-D or 2-D.
    background : int, optional
        The value labelled 0 (default 0).
    return_num : bool, optional
        Also return the number of labels.
    connectivity : int, optional
        1 .. image.ndim (default image.ndim).

    Returns
    -------
    labels : ndarray
    num : int, only with ``return_num``
    """
    if label_image.dtype == bool:
        image = label_image
        if background == 1:
            image = ~image
        if connectivity is None:
            connectivity = image.ndim
        if not 1 <= connectivity <= image.ndim:
            raise ValueError(f"Connectivity for {image.ndim}D image should be in [1, ..., {image.ndim}]. Got {connectivity}.")
        a, restore = _as_2d(np.asarray(image))
        out, n = _dwd_label(a, connectivity=min(int(connectivity), 2), return_num=True)
        out = restore(out)
        return (out, n) if return_num else out
    data = np.array(label_image, order="C", dtype=np.intp)
    ndim = data.ndim
    if connectivity is None:
        connectivity = ndim
    if not 1 <= connectivity <= ndim:
        raise ValueError(f"Connectivity for {ndim}D image should be in [1, ..., {ndim}]. Got {connectivity}.")
    bg = 0 if background is None else background
    bg = np.array(bg).astype(np.intp)[()] if not isinstance(bg, (int, np.integer)) else np.intp(bg)
    a, restore = _as_2d(data)
    if bg != 0:
        # swap the values 0 and bg: a bijection, so equal values stay equal and bg becomes 0
        is_bg, is_zero = a == bg, a == 0
        a = a.copy()
        a[is_bg] = 0
        a[is_zero] = bg
    out, n = _dwd_label(a, connectivity=min(int(connectivity), 2), return_num=True)
    out = restore(out.astype(np.intp))
    return (out, n) if return_num else out


# Properties computed from one pass over the label image (and the intensity image).
SUPPORTED_PROPERTIES = ("label", "area", "num_pixels", "bbox", "area_bbox", "extent", "centroid",
                        "equivalent_diameter_area", "intensity_mean", "intensity_min", "intensity_max")
_NEEDS_INTENSITY = ("intensity_mean", "intensity_min", "intensity_max")
_ALIASES = {"Area": "area", "BoundingBox": "bbox", "BoundingBoxArea": "area_bbox", "bbox_area": "area_bbox",
            "Centroid": "centroid", "Extent": "extent", "EquivDiameter": "equivalent_diameter_area",
            "equivalent_diameter": "equivalent_diameter_area", "Label": "label",
            "MaxIntensity": "intensity_max", "max_intensity": "intensity_max",
            "MeanIntensity": "intensity_mean", "mean_intensity": "intensity_mean",
            "MinIntensity": "intensity_min", "min_intensity": "intensity_min"}


def _intensity_means(lab, inten, n, counts):
    """np.mean of the intensities of each label 1..n (raster order), bit for bit; ``counts``: the
    labels' areas. ``lab``: int32 or int64, values <= 0 ignored."""
    dt = inten.dtype
    counts = counts.astype(np.intp)
    if dt in (np.float32, np.float64):
        sums = cpu_ext().region_sums_pairwise(np.ascontiguousarray(lab), np.ascontiguousarray(inten), n)
        with np.errstate(invalid="ignore", divide="ignore"):
            if dt == np.float32:  # np.mean: float32 sum, divided by the intp count in float64, back to float32
                return (sums / counts).astype(np.float32).astype(np.float64)
            return sums / counts
    if dt.kind in "iub" and dt.itemsize <= 4:
        # float64 sums of integers are exact in any order while below 2^53: then the pairwise sums of
        # the float64 values equal numpy's (buffered) mean sums
        info = np.iinfo(dt) if dt.kind != "b" else np.iinfo(np.uint8)
        if max(abs(int(info.min)), int(info.max)) * lab.size < 2**53:
            sums = cpu_ext().region_sums_pairwise(np.ascontiguousarray(lab), inten.astype(np.float64), n)
            with np.errstate(invalid="ignore", divide="ignore"):
                return sums / counts
    # other dtypes: numpy's own mean per region (exact, slower)
    flat_l, flat_v = np.where(lab > 0, lab, 0).ravel(), inten.ravel()
    order = np.argsort(flat_l, kind="stable")
    sl, sv = flat_l[order], flat_v[order]
    starts = np.searchsorted(sl, np.arange(1, n + 2))
    out = np.full(n, np.nan)
    for k in range(n):
        if starts[k + 1] > starts[k]:
            out[k] = np.mean(sv[starts[k]:starts[k + 1]])
    return out


def regionprops_table(label_image, intensity_image=None, properties=("label", "bbox"), *, cache=True, separator="-",
                      extra_properties=None, spacing=None):
    """Region properties as a dict of columns, like ``skimage.measure.regionprops_table`` (0.26).

    The one-pass properties (``SUPPORTED_PROPERTIES``: label, area, num_pixels, bbox, area_bbox,
    extent, centroid, equivalent_diameter_area, intensity_mean / min / max) of a 2-D integer label
    image, from one pass of ``dwd_fast.region_stats`` (and an exact grouped pairwise sum for
    ``intensity_mean``): same keys, column dtypes and values bit for bit. Other properties,
    ``extra_properties``, multichannel intensity images, 3-D images and a non-unit ``spacing`` with
    centroids raise ValueError.

    Parameters
    ----------
    label_image : (M, N) ndarray of int
        Labels; 0 and negative values are background. Labels 1..max that are absent have no row.
    intensity_image : (M, N) ndarray, optional
    properties : tuple or list of str, optional
    cache : bool, optional
        Accepted for compatibility (there is nothing to cache).
    separator : str, optional
        Joins a property name and its index for multi-column properties (``bbox-0``).
    extra_properties : None
        Not supported (ValueError otherwise).
    spacing : tuple of float, optional
        Pixel spacing (areas scale by its product).

    Returns
    -------
    dict of str -> ndarray
    """
    if label_image.ndim not in (2, 3):
        raise TypeError("Only 2-D and 3-D images supported.")
    if not np.issubdtype(label_image.dtype, np.integer):
        if np.issubdtype(label_image.dtype, bool):
            raise TypeError("Non-integer image types are ambiguous: use skimage.measure.label to label the connected "
                            "components of label_image, or label_image.astype(np.uint8) to interpret the True values "
                            "as a single label.")
        raise TypeError("Non-integer label_image types are ambiguous")
    if label_image.ndim != 2:
        raise ValueError("dwd_fast.skimage.measure.regionprops_table supports 2-D label images only")
    if extra_properties is not None:
        raise ValueError("dwd_fast.skimage.measure.regionprops_table does not support extra_properties")
    if intensity_image is not None:
        intensity_image = np.asarray(intensity_image)
        if not (intensity_image.shape[:2] == label_image.shape and intensity_image.ndim in (2, 3)):
            raise ValueError("Label and intensity image shapes must match, except for channel (last) axis.")
        if intensity_image.ndim != 2:
            raise ValueError("dwd_fast.skimage.measure.regionprops_table supports single-channel intensity images only")
    props = [(p, _ALIASES.get(p, p)) for p in properties]
    for orig, p in props:
        if p not in SUPPORTED_PROPERTIES:
            raise ValueError(f"property {orig!r} is not supported by dwd_fast.skimage.measure.regionprops_table "
                             f"(supported: {', '.join(SUPPORTED_PROPERTIES)})")
        if p in _NEEDS_INTENSITY and intensity_image is None:
            raise AttributeError("No intensity image specified.")
    if spacing is None:
        sp = np.ones(2)
    else:
        sp = np.asarray(spacing, dtype=float)
        if sp.shape != (2,):
            raise ValueError(f"spacing should be a sequence of 2 floats, got {spacing!r}")
    pixel_area = np.prod(sp)
    if not np.all(sp == 1) and any(p == "centroid" for _, p in props):
        raise ValueError("dwd_fast.skimage.measure.regionprops_table: centroid with a non-unit spacing is not supported")

    lab = np.asarray(label_image)
    if lab.dtype == np.uint64:
        if lab.size and lab.max() > np.iinfo(np.int64).max:
            raise ValueError("label_image holds labels of 2^63 or more")
        lab = lab.astype(np.int64)
    need_int = intensity_image is not None and any(p in ("intensity_min", "intensity_max") for _, p in props)
    img_for_stats = None
    if need_int:
        img_for_stats = intensity_image if intensity_image.dtype.kind != "b" else intensity_image.view(np.uint8)
    st = _region_stats(lab, image=img_for_stats)
    present = np.flatnonzero(st.area > 0)  # labels present, as scipy.ndimage.find_objects' slices
    if len(present) == 0:
        return _empty(props, separator)
    out = {}
    area = st.area[present]
    bbox = st.bbox[present]
    n_max = len(st.area)
    for orig, p in props:
        if p == "label":
            out[orig] = (present + 1).astype(int)
        elif p == "num_pixels":
            out[orig] = area.astype(int)
        elif p == "area":
            out[orig] = (area * pixel_area).astype(float)
        elif p == "bbox":
            for k in range(4):
                out[f"{orig}{separator}{k}"] = bbox[:, k].astype(int)
        elif p in ("area_bbox", "extent", "equivalent_diameter_area"):
            box = ((bbox[:, 2] - bbox[:, 0]) * (bbox[:, 3] - bbox[:, 1])) * pixel_area
            a = area * pixel_area
            if p == "area_bbox":
                out[orig] = box.astype(float)
            elif p == "extent":
                out[orig] = (a / box).astype(float)
            else:
                out[orig] = np.array([(2 * 2 * float(x) / np.pi) ** (1 / 2) for x in a], dtype=float)
        elif p == "centroid":
            for k in range(2):
                out[f"{orig}{separator}{k}"] = st.centroid[present, k].astype(float)
        elif p == "intensity_max":
            out[orig] = st.image_max[present].astype(float)
        elif p == "intensity_min":
            out[orig] = _region_min(lab, intensity_image)[present].astype(float)
        elif p == "intensity_mean":
            labk = lab if lab.dtype in (np.int32, np.int64) else lab.astype(np.int64)
            out[orig] = _intensity_means(labk, intensity_image, n_max, st.area)[present].astype(float)
    return out


def _region_min(lab, inten):
    """Per label 1..max: the minimum intensity as float64 (minus the maximum of the negated values,
    negated exactly: floats in their dtype, integers up to 32 bits in int64, others in float64)."""
    if inten.dtype.kind == "f" and inten.dtype.itemsize >= 4:
        neg = -inten
    elif inten.dtype.kind in "iub" and inten.dtype.itemsize <= 4:
        neg = -inten.astype(np.int64)
    else:
        neg = -inten.astype(np.float64)
    return -_region_stats(lab, image=neg).image_max


def _empty(props, separator):
    out = {}
    for orig, p in props:
        if p == "bbox":
            for k in range(4):
                out[f"{orig}{separator}{k}"] = np.zeros(0, int)
        elif p == "centroid":
            for k in range(2):
                out[f"{orig}{separator}{k}"] = np.zeros(0, float)
        else:
            out[orig] = np.zeros(0, int if p in ("label", "num_pixels") else float)
    return out
