"""The pipelines dwd_fast is measured against, written for these benchmarks.

- :func:`skimage_label` and :func:`skimage_decode`: what a user writes today with scikit-image.
- :func:`original_perform_dws_2020` and :func:`original_perform_dws_2018`: re-statements of the
  original Deep Watershed Detector decoders (``tuggeluk/DeepWatershedDetection``,
  ``lib/main/dws_transform.py``) with the same algorithmic structure and the same cost profile
  (whole-page passes per component and all), so that their timings are what users of the original
  pay. They must return exactly what ``dwd_fast.compat.perform_dws`` returns (checked by
  ``bench_decode.py``).

None of these is tuned: they are the honest, ordinary way of doing the job with each library.
"""

from __future__ import annotations

import numpy as np

__all__ = ["skimage_label", "skimage_decode", "skimage_decode_grow", "original_perform_dws_2020",
           "original_perform_dws_2018"]


# --------------------------------------------------------------------------------------------------
# scikit-image
# --------------------------------------------------------------------------------------------------

def skimage_label(mask):
    """8-connected labels of a 2-D mask, ``skimage.measure.label(mask, connectivity=2)``."""
    from skimage.measure import label

    return label(mask, connectivity=2)


def _detections(objects):
    """Boxes of size (h, w) centred on each object's centre (dwd_fast's pixel convention), with the
    majority class of its votes: ``objects`` holds (cy, cx, h, w, votes) per object."""
    boxes = [(cx + 0.5 - w / 2, cy + 0.5 - h / 2, cx + 0.5 + w / 2, cy + 0.5 + h / 2) for cy, cx, h, w, _ in objects]
    return {"boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
            "labels": np.asarray([int(v.argmax()) for *_, v in objects], np.int64),
            "centers": np.asarray([(cy, cx) for cy, cx, *_ in objects], np.float64).reshape(-1, 2)}


def skimage_decode(energy, classes, sizes, cutoff=7, min_size=4):
    """The DWD decoder as one writes it with scikit-image: ``label`` + ``regionprops``.

    Objects are the 8-connected components of ``energy > cutoff`` with at least ``min_size`` pixels,
    in label (raster) order. Per object: the centroid, the majority class (``np.bincount`` over the
    object's class pixels, ties to the smallest id), the maximum of each size channel (regionprops'
    ``intensity_max`` over a two-channel intensity image) and a box of that size centred on the
    centroid, with dwd_fast's pixel convention (pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``).

    Parameters
    ----------
    energy : (H, W) integer array
    classes : (H, W) non-negative integer array
    sizes : (2, H, W) float array, channel 0 height, channel 1 width
    cutoff, min_size : as in ``dwd_fast.decode``

    Returns
    -------
    dict with ``boxes`` (N, 4) float32 ``(x1, y1, x2, y2)``, ``labels`` (N,) int64 and ``centers``
    (N, 2) float64 ``(row, col)`` -- the (N, 4) boxes plus the per-object values they came from, so
    that the result can be checked against ``dwd_fast.decode``.
    """
    from skimage.measure import label, regionprops

    lab = label(energy > cutoff, connectivity=2)
    # (H, W, 2) view of the size map, no copy: regionprops reduces each channel separately.
    size_image = np.moveaxis(sizes, 0, -1)
    objects = []
    for region in regionprops(lab, intensity_image=size_image):
        if region.area < min_size:
            continue
        h, w = np.maximum(region.intensity_max, 0.0)
        objects.append((*region.centroid, h, w, np.bincount(classes[region.slice][region.image])))
    return _detections(objects)


def skimage_decode_grow(energy, classes, sizes, cutoff=7, min_size=4, grow_to=1):
    """``dwd_fast.decode(..., grow_to=grow_to)`` written with scikit-image: ``label`` for the seeds,
    ``watershed(-energy, seeds, mask=energy > grow_to)`` to grow them, ``label`` again for the seedless
    components, ``regionprops`` for the objects; class vote, maximum size and centre over each object's
    core (its pixels above the cut-off). scikit-image's watershed breaks ties differently from dwd_fast's
    canonical one on a few pixels, so a few objects may differ slightly.

    Returns the same dict as :func:`skimage_decode`.
    """
    from skimage.measure import label, regionprops
    from skimage.segmentation import watershed

    seeds = label(energy > cutoff, connectivity=2)
    small = np.bincount(seeds.ravel()) < min_size
    small[0] = False
    seeds[small[seeds]] = 0
    seeds = label(seeds > 0, connectivity=2)  # renumber (seeds never touch: they are components)
    relief = -energy.astype(np.int16)
    grown = watershed(relief, seeds, mask=energy > grow_to, connectivity=2)
    n = int(seeds.max())
    rest = label((energy > grow_to) & (grown == 0), connectivity=2)
    keep = np.bincount(rest.ravel()) >= max(min_size, 1)
    keep[0] = False
    rest = np.where(keep[rest], rest, 0)
    rest = label(rest > 0, connectivity=2)
    grown = np.where(rest > 0, rest + n, grown)
    objects = []
    for region in regionprops(grown):
        sl = region.slice
        core = region.image & (energy[sl] > cutoff)
        if not core.any():
            core = region.image
        rr, cc = np.nonzero(core)
        h = max(float(sizes[0][sl][core].max()), 0.0)
        w = max(float(sizes[1][sl][core].max()), 0.0)
        objects.append((rr.mean() + sl[0].start, cc.mean() + sl[1].start, h, w, np.bincount(classes[sl][core])))
    return _detections(objects)


# --------------------------------------------------------------------------------------------------
# The original DWD decoders
# --------------------------------------------------------------------------------------------------

# 2020: the overlap ("taint") test packs a pixel's (new label, base label) pair into one float64.
_PACK = 1e5


def _dws_box(rows, cols, classes, box_sizes):
    """``[x1, y1, x2, y2, class]`` (Python ints) of one component, the original's formulas.

    Centre: truncated mean row / column. Class: majority vote (ties to the smallest id). Size: the
    truncated maximum of each channel of the box map (0 height, 1 width). Rounding: half to even.
    """
    cy, cx = np.average((rows, cols), axis=1).astype(int)
    cls = np.bincount(classes[rows, cols]).argmax()
    h, w = np.amax(box_sizes[rows, cols], axis=0).astype(int)
    return [int(np.round(cx - w / 2.0)), int(np.round(cy - h / 2.0)),
            int(np.round(cx + w / 2.0)), int(np.round(cy + h / 2.0)), int(cls)]


def _merge_untainted(base, new):
    """Add to ``base`` (in place) the components of ``new`` that touch no pixel of ``base``.

    As in the original: labels are packed as ``new * 1e5 + base`` into a float64 page, a packed value
    with a non-zero remainder marks its ``new`` label as overlapping ("tainted"), and every untainted
    label is written into ``base`` whole, shifted past ``base``'s largest label.
    """
    shift = base.max() + 1
    packed = new * _PACK + base  # float64 page
    # The original evaluates np.unique(packed) twice in one expression; both sorts are kept because
    # this function exists to cost what the original costs.
    overlapping = np.unique(packed)[np.unique(packed) % _PACK > 0]
    tainted = np.unique(np.floor(overlapping / _PACK))
    # Membership of each label in an ndarray (one vectorized comparison per label), as the original.
    untainted = [lab for lab in np.unique(new) if lab != 0 and lab not in tainted]
    added = np.isin(new, untainted)  # the original's np.in1d, removed from numpy 2.4
    base[added] = new[added] + shift
    return base


def original_perform_dws_2020(dws_energy, class_map, bbox_map, cutoff=(7, 1), min_size=8):
    """The 2020 decoder (branch ``dwd_old``, ``dws_transform.py`` @7ff2140), re-stated.

    For each cut-off in turn: threshold the energy to a uint8 0/255 map, label its 8-connected
    components with ``cv2.connectedComponents`` (OpenCV's default algorithm and numbering), and merge
    them into the components found so far (:func:`_merge_untainted`). Then count the pixels of every
    label with ``np.unique`` and, for each label with more than ``min_size`` pixels, locate its pixels
    with ``np.where`` over the whole page and reduce them to a box (:func:`_dws_box`). The caller
    passes ``min_size=8`` (the function's own default is 0; 8 is what the detector used).

    Returns a list of ``[x1, y1, x2, y2, class]`` lists of Python ints.
    """
    import cv2

    energy = np.squeeze(dws_energy)
    classes = np.squeeze(class_map)
    box_sizes = np.squeeze(bbox_map)

    base = None
    for cut in cutoff:
        # Written as the original: zero what is <= cut, then set what is > cut to 255. For a negative
        # cut the zeroed pixels are > cut too, so the whole page becomes foreground.
        binary = energy.copy()
        binary[binary <= cut] = 0
        binary[binary > cut] = 255
        _, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
        base = labels if base is None else _merge_untainted(base, labels)

    ids, counts = np.unique(base, return_counts=True)
    boxes = []
    for lab, count in zip(ids, counts):
        if lab != 0 and count > min_size:
            rows, cols = np.where(base == lab)  # a whole-page pass per component
            boxes.append(_dws_box(rows, cols, classes, box_sizes))
    return boxes


def original_perform_dws_2018(dws_energy, class_map, bbox_map, cutoff=1, min_size=4):
    """The 2018 (ISMIR) decoder (``dws_transform.py`` @927d07a), re-stated with a fast labeller.

    The original labels ``energy > cutoff`` with its own two-pass 8-connected CCL written in pure
    Python (a dict entry per foreground pixel, seconds per page). Here that CCL is replaced by
    ``cv2.connectedComponentsWithAlgorithm(..., cv2.CCL_SAUF)``, which gives the same components in the
    same raster order (the original's dict order); the timings below are therefore a LOWER bound of
    what the original costs. The rest keeps the original's structure: invert the pixel -> label map
    into one Python list of pixel coordinates per component (a Python step per foreground pixel),
    drop components with fewer than ``min_size`` pixels, and reduce each to a box (:func:`_dws_box`).
    The caller passes ``cutoff=1, min_size=4`` (the function's defaults are 0, 0).

    Returns a list of ``[x1, y1, x2, y2, class]`` lists of Python ints.
    """
    import cv2

    energy = np.squeeze(dws_energy)
    classes = np.squeeze(class_map)
    box_sizes = np.squeeze(bbox_map)

    binary = (energy > cutoff).astype(np.uint8)
    _, labels = cv2.connectedComponentsWithAlgorithm(binary, 8, cv2.CV_32S, cv2.CCL_SAUF)
    pixels_of = {}
    rows, cols = np.nonzero(labels)  # raster order, as the original's dict of pixels
    for r, c, lab in zip(rows.tolist(), cols.tolist(), labels[rows, cols].tolist()):
        pixels_of.setdefault(lab, []).append((r, c))

    boxes = []
    for pixels in pixels_of.values():
        if len(pixels) < min_size:
            continue
        rc = np.asarray(pixels)
        boxes.append(_dws_box(rc[:, 0], rc[:, 1], classes, box_sizes))
    return boxes
