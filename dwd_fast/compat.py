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
component, and ``round`` half to even. A NaN, +-inf or beyond-int64 maximum of ``bbox_map`` truncates
to int64's minimum as numpy's cast does on x86-64, so such a box is the original's garbage box, bit
for bit. Returns a list of lists of five Python ints (2019-fatten: four
``numpy.int64`` and ``numpy.float64(1.0)``), like the originals. Inputs are ``np.squeeze``d as in the
original: ``(1, H, W)``, ``(1, H, W, 1)``, ``(H, W)`` maps and ``(1, H, W, 2)`` / ``(H, W, 2)`` box maps.

Deliberate differences, all on inputs where the original fails or is wrong:

- maps with a 1-pixel dimension raise ``ValueError`` (the original's ``np.squeeze`` breaks them and
  its result then depends on the OpenCV version);
- 2020 with more than 99,999 components: the original's overlap test packs two labels into one
  float and mis-assigns components; this gives the intended result;
- integer ``bbox_map`` values within 512 of int64's maximum (or uint64 values beyond it), which
  round to 2^63 or more in float64, give int64's minimum as size (the original keeps the exact
  integer); both are overflow garbage;
- 2019-fatten ignores ``config`` (the original raises ``AttributeError`` for the default ``None``);
- the debug arguments that draw or store component images (``return_ccomp_img``,
  ``store_ccomp_img``, ``cfg``, ``counter``) are accepted and ignored.

Training targets
----------------
``get_markers(size, gt, nr_classes, objectness_settings, downsample_ind=0, maps_list=None, era="2020")``
returns the same list of float64 target maps ``(1, H', W', C)`` as the original ``get_markers``
(``lib/datasets/fcn_groundtruth.py``) with its stamp functions ``stamp_energy``, ``stamp_class`` and
``stamp_bbox`` (oval markers): one-hot maps for ``loss="softmax"``, float maps for ``"reg"``, one per
``ds_factors`` entry, quirks included -- banker's rounding of marker offsets and levels, truncated
(class, box) and ceiled (2020 energy) marker sizes, the border crop that clips ends to ``H-1`` /
``W-1`` and crops stamps symmetrically (shifting clipped markers), stamps whose zero pixels keep the
canvas (2019, 2020), ``"max"`` collapsing the two box-map channels, ``"nearest"`` comparing each
pixel against the centres of all earlier stamped boxes, and the bilinear resize (``INTER_NEAREST``
passed as ``dst``) of further ``ds_factors`` (needs OpenCV). ``era`` selects the code base:
``"2020"`` (branch ``dwd_old``, DeepScoresV2), ``"2019"`` (master @06309b4) or ``"2018"`` (the ISMIR
2018 code @98eec1a: whole rectangles overwrite, the ``x1 == y1 or x2 == y2`` collapse test).
``stamp_func`` is the task name or the original's ``[name, function]`` pair (the function is not
called). ``loss_mask(gt_map, balance_mask, loss)`` gives the loss masks ``minibatch.py`` builds
from a target map. Differences, all where the original fails: the inputs on which the original
raises ``IndexError`` (empty markers, undefined levels in 2018/2019, class ids beyond
``nr_classes``) raise ``ValueError`` naming the box; NaN coordinates raise ``ValueError``; era
2018 class and box stamps must be square (the original fails otherwise) and take one
``ds_factors`` entry; ``maps_list`` defaults to a new list (the original's shared mutable default
grows from call to call); ``shape="square"`` markers (Python 2 only) are not offered.
"""

from __future__ import annotations

import math

import numpy as np

from . import _arrays
from ._ext import cpu_ext

__all__ = ["perform_dws", "get_markers", "loss_mask"]

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
        _arrays.check_number(cut, "cutoff", finite=True)
    min_size = _min_size(min_size, keep_equal)
    if b.dtype.kind != "f":
        b = b.astype(np.float64)
    b4 = np.moveaxis(b, -1, 0)[None]  # (1, 2, H, W) view, strided columns
    c4 = (c.view(np.uint8) if c.dtype == np.bool_ else c)[None, None]
    try:
        out = cpu_ext().perform_dws(_arrays.kernel_view(e)[None, None], c4, b4, [float(x) for x in cutoffs],
                                    min_size, keep_equal, block_order, neg_all)
    except ValueError as err:  # the class vote's id limit: name the argument
        if str(err).startswith(("class id", "classes must be")):
            raise ValueError(f"class_map: {err}") from None
        raise
    return out.tolist()


def _min_size(v, keep_equal):
    """The integer threshold equal to the original's comparison with ``min_ccoponent_size`` (any real
    number): kept when ``size >= v`` (``keep_equal``, i.e. ``size >= ceil(v)``) or ``size > v`` (i.e.
    ``size > floor(v)``); values beyond int64 keep no component, like int64's maximum."""
    _arrays.check_number(v, "min_ccoponent_size")
    if v != v:
        raise ValueError("min_ccoponent_size must not be NaN")
    if v >= 2**63:
        return _arrays.INT64_MAX
    if v <= -2**63:
        return -2**63
    return int(math.ceil(v) if keep_equal else math.floor(v))


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
        _arrays.check_number(v, name, finite=True)
    if "stamp_bbox" in predict_dict:
        return []
    ext = cpu_ext().perform_dws_fatten(_arrays.kernel_view(e)[None, None], float(cutoff), _min_size(min_ccoponent_size, True),
                                       float(fatten_cutoff))
    if len(ext) and "stamp_class" in predict_dict:
        raise UnboundLocalError("perform_dws (2019-fatten) has no class list when 'stamp_class' is given "
                                "(as in the original)")
    return [[x1, y1, x2, y2, np.float64(1.0)] for x1, y1, x2, y2 in ext]


# ==================================================================================================
# Training targets: get_markers and the loss masks
# ==================================================================================================

ERAS = ("2018", "2019", "2020")
_TASKS = ("stamp_energy", "stamp_class", "stamp_bbox")


def _oval(rows, cols, era, max_energy):
    """The original oval marker (``get_energy_marker``), float64 (rows, cols); see research §2.3."""
    ci = np.arange(rows, dtype=np.float64) + 0.5
    cj = np.arange(cols, dtype=np.float64) + 0.5
    if era == "2020":  # coordinates below 1 are raised to 1
        np.maximum(ci, 1.0, out=ci)
        np.maximum(cj, 1.0, out=cj)
    dc = np.square((cj - cols * 0.5) / cols)
    dr = np.square((ci - rows * 0.5) / rows)
    d = np.sqrt(dc[None, :] + dr[:, None])
    ref = float(max(d[rows // 2, 0], d[0, cols // 2]))
    with np.errstate(invalid="ignore", divide="ignore"):
        m = 1 - d / ref
    m[m < 0] = 0
    return m * (max_energy - 1)


# Stamp values by (task, settings, marker size), shared by all calls: a marker is a pure function of
# these, and training sees the same sizes over and over. Entries are read-only arrays.
_STAMP_CACHE = {}
_STAMP_CACHE_LIMIT = 8192
_STAMP_CACHE_MAX_PX = 1 << 20  # larger stamps (beyond any page's boxes at ds 1) are not kept
# A marker of more pixels than this is rejected (gt names it): its stamp alone would take gigabytes (the
# original builds it whole before cropping it to the canvas). A full DeepScores page is 5 Mpx.
_MAX_MARKER_PX = 1 << 26


class _Stamps:
    """The stamp values of one task's markers, by size (the marker depends only on its size)."""

    def __init__(self, task, args, era, max_energy, nr_classes):
        self.task, self.args, self.era, self.me, self.nc = task, args, era, max_energy, nr_classes
        self.softmax = args["loss"] == "softmax"
        self.prefix = (task, era, max_energy, self.softmax, args.get("energy_shape", "linear") if
                       task == "stamp_energy" else None)

    def values(self, hm, wm, box_index):
        """Integer one-hot indices (softmax) or float64 (rows, cols[, C]) stamp of a marker."""
        key = (self.prefix, hm, wm)
        v = _STAMP_CACHE.get(key)
        if v is None:
            v = self._make(hm, wm, box_index)
            v.setflags(write=False)
            if hm * wm <= _STAMP_CACHE_MAX_PX:
                if len(_STAMP_CACHE) >= _STAMP_CACHE_LIMIT:
                    _STAMP_CACHE.clear()
                _STAMP_CACHE[key] = v
        return v

    def _make(self, hm, wm, i):
        if hm <= 0 or wm <= 0:
            raise ValueError(f"gt: box {i} gives an empty {hm} x {wm} marker (the original raises IndexError)")
        if hm * wm > _MAX_MARKER_PX:
            raise ValueError(f"gt: box {i} gives a {hm} x {wm} marker, more than 2^26 px (boxes must be of "
                             "the canvas' scale; the original runs out of memory)")
        task, era, me = self.task, self.era, self.me
        if task != "stamp_energy" and era == "2018" and hm != wm:
            raise ValueError(f"gt: box {i}: era 2018 class and box stamps need square markers, got {hm} x {wm} "
                             "(the original fails on them)")
        m = _oval(hm, wm, era, me)
        if task == "stamp_energy":
            shape = self.args.get("energy_shape", "linear")
            with np.errstate(invalid="ignore", divide="ignore"):
                if shape == "root":
                    m = np.sqrt(m)
                    m = m / np.max(m) * (me - 1)
                elif shape == "quadratic":
                    m = np.square(m)
                    m = m / np.max(m) * (me - 1)
            if not self.softmax:
                return m[:, :, None]
            with np.errstate(invalid="ignore"):
                r = np.round(m)
            bad = ~np.isfinite(r)
            if era != "2020" and bad.any():
                raise ValueError(f"gt: box {i}: the {hm} x {wm} energy marker has undefined (NaN) levels "
                                 "(the original raises IndexError)")
            r[bad] = 0  # era C: int32 minimum clipped to 0
            return np.clip(r, 0, me).astype(np.int64)
        if task == "stamp_class":
            return m != 0  # class ids are filled in per box
        return (m > 0)[:, :, None]


def _geometry_c(boxes, task, args, era):
    """(hm, wm, tx, ty) int64 arrays of all markers, as the original computes them (research §2.2)."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    wb, hb = x2 - x1, y2 - y1
    n = len(boxes)
    if args.get("marker_dim") is None:
        sp = args["size_percentage"]
        if task == "stamp_energy" and era == "2020":
            hm, wm = np.ceil(sp * hb), np.ceil(sp * wb)
        else:
            hm, wm = np.trunc(sp * hb), np.trunc(sp * wb)
        _check_int64(hm, wm)
        hm, wm = hm.astype(np.int64), wm.astype(np.int64)
    else:
        md = args["marker_dim"]
        hm, wm = np.full(n, int(md[0]), np.int64), np.full(n, int(md[1]), np.int64)
    offx = np.round((wb - wm) * 0.5)
    offy = np.round((hb - hm) * 0.5)
    tx, ty = np.round(x1 + offx), np.round(y1 + offy)
    _check_int64(tx, ty)
    return hm, wm, tx.astype(np.int64), ty.astype(np.int64)


def _check_int64(*arrays):
    """Raises ValueError naming gt and the first box whose marker geometry (float64) is not a number of
    magnitude below 2^62 (infinite or astronomically large boxes: int64 would wrap)."""
    bad = np.zeros(len(arrays[0]), bool)
    for a in arrays:
        with np.errstate(invalid="ignore"):
            bad |= ~(np.abs(a) < 2.0**62)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"gt: box {i} has infinite or astronomically large coordinates (marker geometry beyond "
                         "2^62 px)")


def _settings(objectness_settings, era):
    s = objectness_settings
    if era not in ERAS:
        raise ValueError(f"era must be one of {ERAS}, got {era!r}")
    if not isinstance(s, dict):
        raise TypeError(f"objectness_settings must be a dict, got {type(s).__name__}")
    for k in ("ds_factors", "downsample_marker", "overlap_solution", "stamp_func", "stamp_args"):
        if k not in s:
            raise KeyError(f"objectness_settings must hold {k!r}")
    f = s["stamp_func"]
    task = f if isinstance(f, str) else f[0]
    if task not in _TASKS:
        raise ValueError(f"stamp_func must be one of {_TASKS} (or the original's [name, function] pair), got {f!r}")
    args = s["stamp_args"]
    if args.get("loss") not in ("softmax", "reg"):
        raise ValueError(f"stamp_args['loss'] must be 'softmax' or 'reg', got {args.get('loss')!r}")
    if task == "stamp_energy" and args.get("shape", "oval") != "oval":
        raise ValueError(f"only oval markers are supported (square markers need Python 2), got {args.get('shape')!r}")
    if s["overlap_solution"] not in ("max", "no", "nearest"):
        raise NotImplementedError("overlap solution unkown")
    return task, args


def _canvas(size, f):
    """(H', W') = int(H * f), int(W * f) of the network input shape ``size`` (B, H, W, ...), checked."""
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) < 3:
        raise TypeError(f"size must be the network input shape (B, H, W, C), got {size!r}")
    try:
        h, w = float(size[1]) * f, float(size[2]) * f
    except (TypeError, ValueError):
        raise TypeError(f"size must hold numbers (B, H, W, C), got {size!r}") from None
    if not (0 <= h < 2**20 and 0 <= w < 2**20):
        raise ValueError(f"size must give a canvas of 0 to 2^20 px per side, got {size!r} (factor {f})")
    return int(h), int(w)


def get_markers(size, gt, nr_classes, objectness_settings, downsample_ind=0, maps_list=None, *, era="2020",
                max_energy=20):
    """The training targets of the original DWD ``get_markers``, bit for bit (see the module docstring).

    Parameters
    ----------
    size : (1, H, W, 3)-like
        Shape of the network input; the canvas is ``(int(H / ds), int(W / ds))``.
    gt : sequence of ``[x1, y1, x2, y2, cls]`` rows (float32 in the original), or an (N, 5) array
    nr_classes : int
    objectness_settings : dict
        The original's assignment dict: ``ds_factors``, ``downsample_marker``, ``overlap_solution``
        (``"max"``, ``"no"``, ``"nearest"``), ``stamp_func`` (``"stamp_energy"``, ``"stamp_class"``,
        ``"stamp_bbox"``, or the original's ``[name, function]`` pair; the function is not called) and
        ``stamp_args`` (``loss``, ``marker_dim``, ``size_percentage``, ``shape``, ``energy_shape``,
        ``class_resolution``).
    downsample_ind : int
    maps_list : list, optional
        Appended to and returned, as in the original (default: a new list).
    era : {"2020", "2019", "2018"}
        ``"2020"``: branch ``dwd_old`` (DeepScoresV2). ``"2019"``: master @06309b4. ``"2018"``: the
        ISMIR 2018 code (master @98eec1a).
    max_energy : int
        ``cfg.TRAIN.MAX_ENERGY`` (20).

    Returns
    -------
    list of float64 arrays ``(1, H', W', C)``, one per entry of ``ds_factors``
    """
    task, args = _settings(objectness_settings, era)
    s = objectness_settings
    if maps_list is None:
        maps_list = []
    ds = s["ds_factors"]
    f = 1.0 / ds[downsample_ind]
    H, W = _canvas(size, f)
    nr_classes = _arrays.check_nonneg_int(nr_classes, "nr_classes", maximum=2**16)
    try:
        rows = [np.asarray(b, dtype=np.float64) for b in gt]
        boxes = (np.stack(rows) if rows else np.zeros((0, 5))) * np.array([f, f, f, f, 1.0])
    except (TypeError, ValueError) as e:
        raise ValueError(f"gt must be rows [x1, y1, x2, y2, cls] of numbers ({e})") from None
    if boxes.ndim != 2 or boxes.shape[1] < 5:
        raise ValueError(f"gt must be rows [x1, y1, x2, y2, cls], got shape {boxes.shape}")
    if np.isnan(boxes[:, :4]).any():
        raise ValueError("gt contains NaN")
    canvas = _paint(boxes, task, args, int(nr_classes), era, int(max_energy), H, W, s["overlap_solution"])

    if not s["downsample_marker"]:
        if downsample_ind + 1 == len(ds):
            return maps_list
        return get_markers(size, gt, nr_classes, s, downsample_ind + 1, maps_list, era=era, max_energy=max_energy)
    softmax = args["loss"] == "softmax"
    C = canvas[1] if softmax else canvas.shape[-1]
    if len(ds) > 1:
        if era == "2018":
            raise NotImplementedError("era 2018 targets with several ds_factors are not supported")
        try:
            import cv2
        except ImportError as e:  # pragma: no cover
            raise ImportError("compat.get_markers needs OpenCV (opencv-python) for several ds_factors") from e
        base = canvas[0].astype(np.uint8) if softmax else canvas
        for x in ds[1:]:
            dsize = (int(np.ceil(float(base.shape[1]) / x)), int(np.ceil(float(base.shape[0]) / x)))
            # the original passes INTER_NEAREST as the third positional argument (dst): bilinear
            small = cv2.resize(base, dsize, None, 0, 0, cv2.INTER_LINEAR)
            if softmax:
                maps_list.append(_one_hot(np.round(small).astype(np.int64), C)[None])
            else:
                maps_list.append(small[None, :, :, None] if small.ndim < base.ndim else small[None])
    full = _one_hot(canvas[0], C) if softmax else canvas
    maps_list.insert(0, full[None])
    return maps_list


def _one_hot(ids, C):
    out = np.zeros(ids.shape + (C,), np.float64)
    flat = out.reshape(-1)
    flat[np.arange(ids.size, dtype=np.int64) * C + ids.reshape(-1)] = 1.0
    return out


def _paint(boxes, task, args, nr_classes, era, me, H, W, overlap):
    """The canvas: (ids (H, W) int64, C) for softmax tasks, float64 (H, W, C) for regression."""
    softmax = args["loss"] == "softmax"
    stamps = _Stamps(task, args, era, me, nr_classes)
    if task == "stamp_energy":
        C = me if softmax else 1
    elif task == "stamp_class":
        C = 2 if args.get("class_resolution", "class") == "binary" else nr_classes
        if args.get("class_resolution", "class") not in ("class", "binary"):
            raise NotImplementedError("unknown class resolution:" + str(args.get("class_resolution")))
    else:
        C = 2
    if softmax:
        canvas = np.zeros((H, W), np.int64)
    else:
        canvas = np.full((H, W, C), -10.0 if task == "stamp_energy" else 0.0)
    hm, wm, tx, ty = _geometry_c(boxes, task, args, era)
    # clipped rectangles (get_partial_marker): ends clipped to H-1 / W-1
    c0 = np.minimum(np.maximum(tx, 0), W - 1)
    c2 = np.minimum(np.maximum(tx + wm, 0), W - 1)
    c1 = np.minimum(np.maximum(ty, 0), H - 1)
    c3 = np.minimum(np.maximum(ty + hm, 0), H - 1)
    skip = ((c0 == c1) | (c2 == c3)) if era == "2018" else ((c0 == c2) | (c1 == c3))
    zero_rule = era != "2018"
    centres = np.zeros((len(boxes), 2), np.int64)  # (row, col) of every earlier stamped box ("nearest")
    n_used = 0
    cls_ids = np.trunc(boxes[:, 4]).astype(np.int64)
    for i in range(len(boxes)):
        h, w = int(hm[i]), int(wm[i])
        st = stamps.values(h, w, i)  # raises where the original's stamp function crashes
        if task == "stamp_class" and args.get("class_resolution", "class") == "class":
            value = int(cls_ids[i])
            if not -C <= value < C and st.any():
                raise ValueError(f"gt: box {i} has class {value}, outside [0, {C}) (the original raises IndexError)")
            value %= C
        if skip[i]:
            continue
        r0, r1, k0, k1 = int(c1[i]), int(c3[i]), int(c0[i]), int(c2[i])
        # symmetric crop of the stamp to the clipped rectangle
        o_r, o_c = h - (r1 - r0), w - (k1 - k0)
        a0, a1 = -(-o_r // 2), h - o_r // 2
        b0, b1 = -(-o_c // 2), w - o_c // 2
        st = st[a0:a1, b0:b1]
        if task == "stamp_class":
            st = st.astype(np.int64) * (value if args.get("class_resolution", "class") == "class" else 1)
        elif task == "stamp_bbox":
            st = np.concatenate([(boxes[i, 3] - boxes[i, 1]) * st, (boxes[i, 2] - boxes[i, 0]) * st], -1)
        win = canvas[r0:r1, k0:k1]
        if overlap == "nearest":
            cy, cx = (r1 + r0) // 2, (k1 + k0) // 2
            take = _closer_mask(r0, r1, k0, k1, cy, cx, centres[:n_used])
            centres[n_used] = cy, cx
            n_used += 1
        if softmax:
            nz = st != 0
            if overlap == "max":
                sel = st > win
            elif overlap == "no":
                sel = nz if zero_rule else None
            else:
                sel = (take & nz) if zero_rule else take
            if sel is None:
                win[...] = st
            else:
                win[sel] = st[sel]
        else:
            if zero_rule:
                z = (st == 0).astype(np.int64)
                st = st * (1 - z) + win * z
            if overlap == "max":
                win[...] = np.max(np.concatenate([win, st], -1), -1)[:, :, None]
            elif overlap == "no":
                win[...] = st
            else:
                m = take[:, :, None].astype(np.int64)
                win[...] = (1 - m) * win + m * st
    return (canvas, C) if softmax else canvas


def _closer_mask(r0, r1, k0, k1, cy, cx, used):
    """True where a pixel of the rectangle is strictly nearer to (cy, cx) than to every earlier centre."""
    take = np.ones((r1 - r0, k1 - k0), bool)
    if len(used) == 0:
        return take
    # only centres that can be at least as near somewhere in the rectangle matter
    far = max((r0 - cy) ** 2, (r1 - 1 - cy) ** 2) + max((k0 - cx) ** 2, (k1 - 1 - cx) ** 2)
    dy = np.maximum(np.maximum(r0 - used[:, 0], used[:, 0] - (r1 - 1)), 0)
    dx = np.maximum(np.maximum(k0 - used[:, 1], used[:, 1] - (k1 - 1)), 0)
    near = used[(dy * dy + dx * dx) <= 4 * far]
    if len(near) == 0:
        return take
    rr = np.arange(r0, r1)[:, None]
    cc = np.arange(k0, k1)[None, :]
    mine = (rr - cy) ** 2 + (cc - cx) ** 2
    for uy, ux in near:
        take &= mine < (rr - uy) ** 2 + (cc - ux) ** 2
    return take


LOSS_MASKS = (None, "mask_bg", "fg_bg_balanced", "by_class", "by_class_no_bg", "mask_zeros")


def loss_mask(gt_map, balance_mask, loss="softmax"):
    """The loss mask the original ``minibatch.py`` builds from one target map, float64 (H, W, 1).

    ``gt_map`` is one array of :func:`get_markers`' list, ``(1, H, W, C)``; ``loss`` is that task's
    ``stamp_args["loss"]``. Modes (research §2.10): ``None`` ones; ``"mask_bg"`` foreground 1 /
    (foreground pixels + 1), background 0; ``"fg_bg_balanced"`` each of foreground and background
    gets N / (its pixel count); ``"by_class"`` each value v gets N / N_v; ``"by_class_no_bg"`` the
    same except the smallest value present, which keeps its own value; ``"mask_zeros"`` (era 2018)
    ``"mask_bg"`` times (H + 1). ``"by_object"`` and ``"by_object_no_bg"`` were never implemented
    (the original exits) and raise ``NotImplementedError``.
    """
    a = _arrays.to_host(gt_map, "gt_map").array
    if a.ndim != 4 or a.shape[0] != 1:
        raise ValueError(f"gt_map must be one target map (1, H, W, C), got shape {tuple(a.shape)}")
    if balance_mask in ("by_object", "by_object_no_bg"):
        raise NotImplementedError(f"balance_mask {balance_mask!r} was never implemented by the original")
    if balance_mask not in LOSS_MASKS:
        raise ValueError(f"balance_mask must be one of {LOSS_MASKS}, got {balance_mask!r}")
    if loss not in ("softmax", "reg"):
        raise ValueError(f"loss must be 'softmax' or 'reg', got {loss!r}")
    if balance_mask is None:
        return np.ones(a.shape[1:3] + (1,))
    fg = np.argmax(a, -1) if loss == "softmax" else np.amax(a, -1)
    if balance_mask in ("mask_bg", "mask_zeros", "fg_bg_balanced"):
        fg[fg != 0] = 1
    if balance_mask in ("mask_bg", "mask_zeros"):
        out = fg / (np.sum(fg) + 1)
        if balance_mask == "mask_zeros":
            out = out * (fg.shape[1] + 1)
        return out[0][:, :, None]
    values, inverse, counts = np.unique(fg, return_inverse=True, return_counts=True)
    weight = np.sum(counts) / counts
    out = weight[inverse.reshape(fg.shape)]
    if balance_mask == "by_class_no_bg":
        first = inverse.reshape(fg.shape) == 0
        out[first] = np.float64(values[0])
    return out[0][:, :, None]
