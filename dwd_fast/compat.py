"""Exact drop-ins for the original Deep Watershed Detector functions, quirks included.

``perform_dws(..., variant=...)`` gives the same boxes, in the same order and the same Python types,
as the ``perform_dws`` of the original code (``tuggeluk/DeepWatershedDetection``,
``lib/main/dws_transform.py``), in its three versions:

``"2018"`` (default of the ISMIR 2018 code, eras A/B)
    ``perform_dws(dws_energy, class_map, bbox_map, cutoff=0, min_ccoponent_size=0,
    return_ccomp_img=False)``. 8-connected components of ``energy > cutoff`` in raster order, kept
    when ``size >= min_ccoponent_size``.
``"2020"`` (branch ``dwd_old``, DeepScoresV2; the default here)
    ``perform_dws(dws_energy, class_map, bbox_map, cutoff=[7, 1], min_ccoponent_size=0, ...)``. The
    first cut-off's components (OpenCV's label order), then those of each later cut-off that touch
    no earlier object, added whole; kept when ``size > min_ccoponent_size``; an object found at the
    first cut-off keeps only its core pixels. A negative cut-off makes every pixel foreground.
``"2019-fatten"`` (``master``)
    ``perform_dws(predict_dict, cutoff=0, min_ccoponent_size=0, config=None, fatten_cutoff=1)``.
    Energy only: components of ``energy > cutoff`` grown over those of ``energy > fatten_cutoff``
    (a fused low-energy region is split by L1 distance inside its bounding window, whose last row
    and column are excluded); boxes are pixel extents and the class is always ``1.0``.

For 2018 and 2020 each box is ``[round(cx - w/2), round(cy - h/2), round(cx + w/2), round(cy + h/2),
cls]`` with ``cx, cy`` the truncated mean column / row, ``cls`` the majority class (ties to the
smallest id), ``h, w`` the truncated maximum of ``bbox_map`` (channel 0 height, 1 width) over the
component, and ``round`` half to even. Returns a list of lists of five Python ints (2019-fatten: four
``numpy.int64`` and ``numpy.float64(1.0)``), like the originals. Inputs are ``np.squeeze``d as in the
original: ``(1, H, W)``, ``(1, H, W, 1)``, ``(H, W)`` maps and ``(1, H, W, 2)`` / ``(H, W, 2)`` box maps.

Deliberate differences, all on inputs where the original fails or is wrong:

- maps with a 1-pixel dimension raise ``ValueError`` (the original's ``np.squeeze`` breaks them and
  its result then depends on the OpenCV version);
- 2020 with more than 99,999 components: the original's overlap test packs two labels into one
  float and mis-assigns components; this gives the intended result;
- 2019-fatten ignores ``config`` (the original raises ``AttributeError`` for the default ``None``);
- the debug arguments that draw or store component images (``return_ccomp_img``,
  ``store_ccomp_img``, ``cfg``, ``counter``) are accepted and ignored.
"""

from __future__ import annotations

import numpy as np

from . import _arrays
from ._ext import cpu_ext

__all__ = ["perform_dws"]

VARIANTS = ("2018", "2020", "2019-fatten")


def perform_dws(*args, variant="2020", **kwargs):
    """Decode like the original DWD ``perform_dws`` of the given ``variant`` (see the module docstring).

    The positional and keyword arguments are those of that variant's original signature.

    Examples
    --------
    >>> import numpy as np
    >>> from dwd_fast.compat import perform_dws
    >>> e = np.zeros((1, 6, 6), np.int64); e[0, 1:4, 1:4] = 9
    >>> perform_dws(e, np.ones_like(e), np.full((1, 6, 6, 2), 3, np.float32), [7, 1], 0)
    [[0, 0, 4, 4, 1]]
    """
    if variant == "2018":
        return _perform_dws_2018(*args, **kwargs)
    if variant == "2020":
        return _perform_dws_2020(*args, **kwargs)
    if variant == "2019-fatten":
        return _perform_dws_2019_fatten(*args, **kwargs)
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def _map(x, name, *, channels=None):
    """np.squeeze'd 2-D map (or (H, W, channels)) as the kernels want it."""
    a = _arrays.to_host(x, name).array
    _arrays.check_dtype(a, name)
    a = np.squeeze(a)
    want = 2 if channels is None else 3
    if a.ndim != want or (channels is not None and a.shape[-1] != channels):
        what = "(H, W)" if channels is None else f"(H, W, {channels})"
        raise ValueError(f"{name} must squeeze to {what} (maps with a 1-pixel side are not supported), "
                         f"got shape {tuple(np.shape(x))}")
    _arrays.check_nonempty(a, name)
    return a


def _boxes(dws_energy, class_map, bbox_map, cutoffs, min_size, *, keep_equal, block_order, neg_all):
    e = _map(dws_energy, "dws_energy")
    _arrays.check_no_nan(e, "dws_energy")
    c = _map(class_map, "class_map")
    b = _map(bbox_map, "bbox_map", channels=2)
    if c.shape != e.shape or b.shape[:2] != e.shape:
        raise ValueError(f"class_map {tuple(c.shape)} and bbox_map {tuple(b.shape)} must match dws_energy "
                         f"{tuple(e.shape)}")
    if c.dtype.kind not in "biu":
        raise TypeError(f"class_map must hold integer class ids (np.bincount), got dtype {c.dtype}")
    if len(cutoffs) == 0:
        raise ValueError("cutoff must contain at least one value")
    for cut in cutoffs:
        if not np.isfinite(cut):
            raise ValueError(f"cutoff must be finite, got {cut!r}")
    if b.dtype.kind != "f":
        b = b.astype(np.float64)
    b4 = np.moveaxis(b, -1, 0)[None]  # (1, 2, H, W) view, strided columns
    c4 = (c.view(np.uint8) if c.dtype == np.bool_ else c)[None, None]
    out = cpu_ext().perform_dws(_arrays.kernel_view(e)[None, None], c4, b4, [float(x) for x in cutoffs],
                                int(min_size), keep_equal, block_order, neg_all)
    return out.tolist()


def _perform_dws_2018(dws_energy, class_map, bbox_map, cutoff=0, min_ccoponent_size=0, return_ccomp_img=False):
    return _boxes(dws_energy, class_map, bbox_map, [cutoff], min_ccoponent_size,
                  keep_equal=True, block_order=False, neg_all=False)


def _perform_dws_2020(dws_energy, class_map, bbox_map, cutoff=[7, 1], min_ccoponent_size=0,  # noqa: B006
                      return_ccomp_img=False, store_ccomp_img=False, cfg=None, counter=0):
    if np.ndim(cutoff) != 1:
        raise TypeError(f"cutoff must be a list of cut-offs in the 2020 variant, got {cutoff!r}")
    return _boxes(dws_energy, class_map, bbox_map, list(cutoff), min_ccoponent_size,
                  keep_equal=False, block_order=True, neg_all=True)


def _perform_dws_2019_fatten(predict_dict, cutoff=0, min_ccoponent_size=0, config=None, fatten_cutoff=1):
    if "stamp_energy" not in predict_dict:
        raise KeyError("predict_dict must hold 'stamp_energy'")
    e = _map(predict_dict["stamp_energy"], "stamp_energy")
    _arrays.check_no_nan(e, "stamp_energy")
    for name, v in (("cutoff", cutoff), ("fatten_cutoff", fatten_cutoff)):
        if not np.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v!r}")
    if "stamp_bbox" in predict_dict:
        return []
    ext = cpu_ext().perform_dws_fatten(_arrays.kernel_view(e)[None, None], float(cutoff), int(min_ccoponent_size),
                                       float(fatten_cutoff))
    if len(ext) and "stamp_class" in predict_dict:
        raise UnboundLocalError("perform_dws (2019-fatten) has no class list when 'stamp_class' is given "
                                "(as in the original)")
    return [[x1, y1, x2, y2, np.float64(1.0)] for x1, y1, x2, y2 in ext]
