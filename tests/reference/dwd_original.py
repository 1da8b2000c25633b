"""Test oracle: a slow, plain numpy re-statement of the original DWD ``perform_dws``.

The Deep Watershed Detector (repository ``tuggeluk/DeepWatershedDetection``) decodes its
network output -- an energy map (quantized levels, usually 0..19), a class map and a
two-channel box-size map -- into boxes by thresholding the energy and taking connected
components.  ``lib/main/dws_transform.py`` changed over time; this module re-states three
versions of its ``perform_dws`` from their documented semantics (research note
``/work/shared/research/dwd-and-skimage-semantics.md`` sections 4.2-4.5, 5 item 10), using
only numpy, ``scipy.ndimage`` and ``skimage.measure.label``.  It is meant to be obviously
correct, not fast.  No code was taken from the original; its return formats were read at:

* ``perform_dws_2018`` -- ``lib/main/dws_transform.py`` @927d07a (2018-10-20) l.9-59, CCL in
  l.75-188; the file is identical @06309b4 (eras A/B).
  Components: 8-connected components of ``energy > cutoff`` (written ``not energy <= cutoff``),
  in raster order of their first pixel; components with fewer than ``min_ccoponent_size``
  pixels are dropped (size == min is kept).  One box per component (see "box formula").
* ``perform_dws_2020`` -- same path @7ff2140 (2020-08-20, branch ``dwd_old``; unchanged at
  its HEAD 0073f39) l.8-96 (era C).  ``cutoff`` is a list, applied in order.  The first
  cutoff gives the base components (OpenCV label order); every later cutoff adds only its
  components that touch no base pixel ("untainted"), renumbered after the current maximum
  label.  So an object seen at the first cutoff keeps only its core pixels.  Components
  with ``size <= min_ccoponent_size`` are dropped (strict ``>`` to keep, unlike 2018).
  A negative cutoff makes every pixel foreground (quirk of the original binarization).
* ``perform_dws_2019_fatten`` -- same path @a78ceb0 (2019-05-22, last change on ``master``)
  l.10-141 (era D).  Only ``predict_dict["stamp_energy"]`` is read; returns ``[]`` as soon
  as ``"stamp_bbox"`` is a key.  Components at ``cutoff`` (sizes ``< min`` dropped) are
  "fattened" with the components at ``fatten_cutoff``; boxes are the tight pixel extents of
  the fattened labels and the class is always 1.0.

Box formula (2018 and 2020), for a component with pixel rows ``r`` and columns ``c``::

    cy, cx = int(mean(r)), int(mean(c))                  # truncation
    cls    = argmax(bincount(class_map[r, c]))           # ties -> smallest id
    h, w   = amax(bbox_map[r, c], axis=0).astype(int)    # channel 0 = height, 1 = width
    box    = [round(cx - w/2), round(cy - h/2), round(cx + w/2), round(cy + h/2), cls]

with ``round`` = ``np.round`` (half to even).  Boxes may leave the image; negative sizes give
``x1 > x2``.  ``class_map`` must hold non-negative integers (``np.bincount``).

Return formats (as in the originals):

* 2018 and 2020: a Python ``list`` of boxes, each a ``list`` of five Python ``int``
  ``[x1, y1, x2, y2, class_id]`` (x = column, y = row); ``[]`` when nothing is found.
* 2019-fatten: a ``list`` of boxes, each a ``list`` ``[x_min, y_min, x_max, y_max, 1.0]``
  whose first four items are ``numpy.int64`` scalars (inclusive pixel extents) and whose
  last item is ``numpy.float64(1.0)``; ``[]`` when nothing is found or when
  ``"stamp_bbox" in predict_dict``.
* Order: 2018 = raster order of each component's first pixel; 2020 = base components in
  OpenCV label order, then the added components of each later cutoff in their OpenCV order;
  2019-fatten = OpenCV label order at ``cutoff``.  OpenCV (8-connectivity) numbers components
  by their first 2x2 block, see ``opencv_block_order_labels``.

Input shapes: every map is ``np.squeeze``d first, so ``(1, H, W, 1)``, ``(1, H, W)``,
``(H, W, 1)`` and ``(H, W)`` energy/class maps and ``(1, H, W, 2)`` / ``(H, W, 2)`` box maps
are accepted (the detector passes ``argmax`` outputs of shape ``(1, H, W)`` (int64) and a
float32 box map ``(1, H, W, 2)``).  Squeezing breaks maps with a 1-pixel dimension:
2018 raises (``ValueError`` here and in the original); 2020 and 2019-fatten follow
OpenCV >= 5, which reads a squeezed 1-D map of length N as a 1 x N image (OpenCV 4 read it
as N x 1) and a 0-d one as 1 x 1, after which 2020 fails with ``IndexError`` on its squeezed
class map as soon as a component survives the size filter; 2019-fatten rejects a 1 x 1 map
(``ValueError`` here, ``cv2.error`` in the original).

Left out on purpose: the debug arguments ``return_ccomp_img`` (2018/2020) and
``store_ccomp_img``, ``cfg``, ``counter`` (2020, write a PNG) and ``config`` (2019-fatten; its
only use is ``config.bbox_angle``, which does not change the boxes but makes the original raise
``AttributeError`` for the default ``config=None`` whenever ``"stamp_bbox"`` is absent).  The
original prints progress messages; this module does not.  Energies are assumed finite.
"""

import numpy as np
from scipy import ndimage
from skimage.measure import label as _skimage_label

__all__ = [
    "opencv_block_order_labels",
    "perform_dws_2018",
    "perform_dws_2020",
    "perform_dws_2019_fatten",
]

# 2020: the taint test packs (new label, base label) into one float64 as new * 1e5 + base.
_TAINT_PACK = 1e5
# 2019-fatten: distance given to every pixel of a window that holds no seed of a label.
_NO_SEED_DISTANCE = 1e6


def opencv_block_order_labels(binary):
    """8-connected component labels numbered like ``cv2.connectedComponents(connectivity=8)``.

    ``binary`` is a 2-D array; nonzero pixels are foreground.  Returns an ``int32`` array of
    the same shape, 0 for background and 1..n for the components.  OpenCV's block-based
    algorithm numbers components in the lexicographic order of the first 2x2 block
    ``(row // 2, col // 2)`` holding one of their pixels (research note 4.5).  All foreground
    pixels of one 2x2 block are 8-connected, so no two components share a first block.
    """
    binary = np.asarray(binary)
    if binary.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {binary.shape}")
    raster = _skimage_label(binary != 0, connectivity=2)  # 8-conn, raster order of first pixel
    n = int(raster.max())
    if n == 0:
        return raster.astype(np.int32)
    rows, cols = np.nonzero(raster)
    blocks_per_row = (binary.shape[1] + 1) // 2
    block_index = (rows // 2) * blocks_per_row + cols // 2  # lexicographic (row//2, col//2)
    first_block = np.full(n + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_block, raster[rows, cols], block_index)
    new_id = np.zeros(n + 1, dtype=np.int32)
    new_id[1 + np.argsort(first_block[1:])] = np.arange(1, n + 1, dtype=np.int32)
    return new_id[raster]


def _as_opencv_image(mask):
    """Shape a squeezed foreground mask the way OpenCV >= 5 reads it: 0-d -> 1x1, 1-D -> 1xN."""
    if mask.ndim > 2:
        raise ValueError(f"energy map must squeeze to at most 2 dimensions, got {mask.shape}")
    return mask.reshape((1, -1)) if mask.ndim < 2 else mask


def _box_from_pixels(rows, cols, class_map, bbox_map):
    """2018/2020 box of one component: list of five Python ints [x1, y1, x2, y2, cls]."""
    cy = int(np.mean(rows))  # truncation (coordinates are >= 0)
    cx = int(np.mean(cols))
    class_id = int(np.argmax(np.bincount(class_map[rows, cols])))
    size = np.amax(bbox_map[rows, cols], axis=0).astype(int)  # truncation toward zero
    half_h = size[0] / 2.0
    half_w = size[1] / 2.0
    return [
        int(np.round(cx - half_w)),
        int(np.round(cy - half_h)),
        int(np.round(cx + half_w)),
        int(np.round(cy + half_h)),
        class_id,
    ]


def perform_dws_2018(dws_energy, class_map, bbox_map, cutoff=0, min_ccoponent_size=0):
    """Era A/B decoder (@927d07a / @06309b4): one cutoff, raster order, keep ``size >= min``."""
    energy = np.squeeze(dws_energy)
    class_map = np.squeeze(class_map)
    bbox_map = np.squeeze(bbox_map)
    if energy.ndim != 2:
        raise ValueError(f"energy map must squeeze to 2 dimensions, got {energy.shape}")

    foreground = np.logical_not(energy <= cutoff)
    labels = _skimage_label(foreground, connectivity=2)  # raster order = original dict order
    boxes = []
    for lab in range(1, int(labels.max()) + 1):
        rows, cols = np.nonzero(labels == lab)
        if rows.size < min_ccoponent_size:
            continue
        boxes.append(_box_from_pixels(rows, cols, class_map, bbox_map))
    return boxes


def _untainted_labels(base, new):
    """Labels of ``new`` (> 0) having no pixel on a nonzero ``base`` pixel.

    Re-states the original's packed test: a pixel's key is ``new * 1e5 + base`` (float64),
    and a key with a nonzero remainder modulo 1e5 taints ``floor(key / 1e5)``.  That equals
    "``new`` overlaps ``base > 0``" while base labels stay below 100000; beyond that the
    packing taints the wrong labels, and so does this oracle.
    """
    key = new.astype(np.float64) * _TAINT_PACK + base
    tainted = np.unique(np.floor(key[key % _TAINT_PACK > 0] / _TAINT_PACK))
    present = np.unique(new)
    return present[(present != 0) & ~np.isin(present, tainted)]


def perform_dws_2020(dws_energy, class_map, bbox_map, cutoff=[7, 1], min_ccoponent_size=0):
    """Era C decoder (@7ff2140, branch dwd_old): cutoff list, core-only rule, keep ``size > min``."""
    energy = np.squeeze(dws_energy)
    class_map = np.squeeze(class_map)
    bbox_map = np.squeeze(bbox_map)

    base = None
    for cut in cutoff:
        # The original zeroes pixels <= cut, then sets pixels > cut to 255: for cut < 0 the
        # zeroed pixels are > cut as well, so every pixel becomes foreground.
        foreground = (energy > cut) | (0 > cut)
        labels = opencv_block_order_labels(_as_opencv_image(np.asarray(foreground)))
        if base is None:
            base = labels
            continue
        offset = base.max() + 1
        added = np.isin(labels, _untainted_labels(base, labels))
        base[added] = labels[added] + offset
    if base is None:
        raise ValueError("cutoff must contain at least one value")

    boxes = []
    values, counts = np.unique(base, return_counts=True)
    for lab, count in zip(values, counts):
        if lab == 0 or not count > min_ccoponent_size:
            continue
        rows, cols = np.nonzero(base == lab)
        boxes.append(_box_from_pixels(rows, cols, class_map, bbox_map))
    return boxes


def _taxicab_distance(seeds):
    """Exact L1 distance of every pixel to the nearest True pixel of ``seeds``.

    Capped at 1e6; 1e6 everywhere when ``seeds`` has no True pixel (as in the original).
    """
    if not seeds.any():
        return np.full(seeds.shape, _NO_SEED_DISTANCE)
    dist = ndimage.distance_transform_cdt(~seeds, metric="taxicab").astype(np.float64)
    return np.minimum(dist, _NO_SEED_DISTANCE)


def perform_dws_2019_fatten(predict_dict, cutoff=0, min_ccoponent_size=0, fatten_cutoff=1):
    """Era D decoder (@a78ceb0, master): energy only, fattening, class always 1.0.

    Steps:
    1. ``L`` = OpenCV-ordered 8-connected components of ``energy > cutoff``; components with
       fewer than ``min_ccoponent_size`` pixels are erased (size == min is kept).
    2. If ``"stamp_bbox"`` is a key of ``predict_dict``: return ``[]``.
    3. ``L0`` = components of ``energy > fatten_cutoff``.  For each ``i`` of ``L0`` in
       OpenCV order (``L`` is updated as we go), ``S`` = nonzero labels of ``L`` on ``L0 == i``:
       one label -> the whole of ``L0 == i`` gets it; several -> take the window
       ``rows r0:r1, cols c0:c1`` spanned by ``L0 == i`` with its LAST row and column
       EXCLUDED, give each window pixel the label of ``S`` whose pixels (within the window)
       are nearest in L1 distance (ties -> smallest label; 1e6 for a label without pixels
       in the window), and write it on every window pixel where ``L0 != 0`` -- pixels of
       other ``L0`` components in the window included.  An empty window changes nothing.
    4. One box per remaining label, ascending: ``[min col, min row, max col, max row, 1.0]``.

    When ``"stamp_class"`` is a key (and ``"stamp_bbox"`` is not) the original never defines
    its class list and raises ``UnboundLocalError`` at the first box; so does this oracle.
    """
    energy = np.squeeze(predict_dict["stamp_energy"])
    if energy.ndim == 0:
        # (energy > cutoff) * 255 is then a numpy scalar, which OpenCV rejects.
        raise ValueError("a 1x1 energy map is rejected (the original fails in OpenCV)")
    labels = opencv_block_order_labels(_as_opencv_image(np.asarray(energy > cutoff)))
    sizes = np.bincount(labels.ravel())
    for lab in range(1, sizes.size):
        if sizes[lab] < min_ccoponent_size:
            labels[labels == lab] = 0

    if "stamp_bbox" in predict_dict:
        return []

    low = opencv_block_order_labels(_as_opencv_image(np.asarray(energy > fatten_cutoff)))
    for i in range(1, int(low.max()) + 1):
        component = low == i
        support = np.unique(labels[component])
        support = support[support != 0]
        if support.size == 1:
            labels[component] = support[0]
        elif support.size > 1:
            rows, cols = np.nonzero(component)
            window = (slice(rows.min(), rows.max()), slice(cols.min(), cols.max()))
            patch = labels[window]
            if patch.size == 0:
                continue
            distances = np.stack([_taxicab_distance(patch == s) for s in support])
            nearest = support[np.argmin(distances, axis=0)]
            update = low[window] != 0
            patch[update] = nearest[update]  # patch is a view into labels

    boxes = []
    for lab in np.unique(labels):
        if lab == 0:
            continue
        if "stamp_class" in predict_dict:
            raise UnboundLocalError(
                "perform_dws (2019-fatten) has no class list when 'stamp_class' is given"
            )
        rows, cols = np.nonzero(labels == lab)
        boxes.append([cols.min(), rows.min(), cols.max(), rows.max(), np.float64(1.0)])
    return boxes
