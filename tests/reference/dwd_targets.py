"""Test oracle: a slow, plain numpy re-statement of the original DWD training-target code.

The Deep Watershed Detector (``tuggeluk/DeepWatershedDetection``) builds its training targets in
``lib/datasets/fcn_groundtruth.py`` (``get_markers`` and the stamp functions ``stamp_energy``,
``stamp_class``, ``stamp_bbox``, ``get_energy_marker``, ``get_partial_marker``,
``get_closest_mask``) and its loss masks in ``lib/roi_data_layer/minibatch.py``. This module
re-states them from their documented semantics (research note
``/work/shared/research/dwd-and-skimage-semantics.md`` sections 2.1-2.10 and 5), box by box in
the original's order, so that it has the original's structure and cost (one small numpy stamp per
box, one-hot float64 canvases, "nearest" comparing against every earlier centre). No code was
taken from the original. Eras (``era=``):

* ``"2020"`` (era C, branch ``dwd_old`` @0073f39; ``fcn_groundtruth.py`` last changed there by
  ``f689f31`` / ``20a840e`` / ``f659da4``): energy marker size ``ceil(sp * extent)``; the oval's
  pixel-centre coordinates below 1 are raised to 1; softmax levels clipped to ``[0, ME]``.
* ``"2019"`` (era B, master @06309b4): as C without those three changes (``int(sp * extent)``).
* ``"2018"`` (era A, master @98eec1a, the ISMIR code): as B, but a stamp's zero pixels DO
  overwrite the canvas, the collapse test of the border crop is ``x1 == y1 or x2 == y2``, class
  and box stamps are built with the marker size untransposed (so they only work for square
  markers, which is all era A used), and further down-sampling factors are not supported here.

Verified (2026-11-22, Python 3.11, numpy 2.x, OpenCV 5) by importing the original
``fcn_groundtruth.py`` of each era unchanged from git (shims: ``np.int = int``,
``np.float = float``, stub ``PIL`` / ``matplotlib`` / ``main.config`` with ``MAX_ENERGY = 20``)
and comparing ``get_markers`` with :func:`get_markers` here, bit for bit (``np.array_equal`` with
``equal_nan``, same dtypes, same list lengths), on random scenes: 0-30 boxes on canvases 1x1 ..
60x60, boxes crossing every border and lying outside, proportional (``size_percentage`` 0.3 ..
1.0) and fixed marker sizes, tasks energy (softmax + reg; linear, quadratic, root) / class
(class + binary) / bbox, overlaps max / no / nearest, ``ds_factors`` ``[1]``, ``[2]``, ``[1, 2]``,
``[1, 3, 5]`` (the last two with ``downsample_marker=True``, eras B/C). See
``verify_against_original`` below for the harness; the counts of the last run are in its
docstring. Last run: 1,500 scenes per era (seed 1), 0 mismatches; both crashed on 209 (2020), 343
(2019) and 119 (2018) of them, never only one. Crashes of the original (``IndexError`` for empty
markers or NaN levels) are crashes here too.

Loss masks (:func:`loss_mask`): ``minibatch.py`` @dwd_old l.145-230 (= @06309b4) and era A's
``mask_zeros`` (@be03070 l.112-124).
"""

from __future__ import annotations

import numpy as np

__all__ = ["get_markers", "loss_mask", "oval_marker", "ERAS"]

ERAS = ("2018", "2019", "2020")


def oval_marker(rows, cols, era="2020", max_energy=20):
    """``get_energy_marker(..., "oval")`` for a marker of ``rows`` x ``cols``: float64 (rows, cols).

    Distance of each pixel centre to the marker centre, per axis normalised by the marker side,
    divided by the larger of the two distances of the left-edge centre pixel and the top-edge
    centre pixel, inverted and scaled to ``max_energy - 1``. Era C raises coordinates < 1 to 1.
    """
    ci = np.arange(rows, dtype=np.float64) + 0.5  # row coordinates
    cj = np.arange(cols, dtype=np.float64) + 0.5  # column coordinates
    if era == "2020":
        ci = np.maximum(ci, 1.0)
        cj = np.maximum(cj, 1.0)
    col_term = (cj[None, :] - cols * 0.5) / cols
    row_term = (ci[:, None] - rows * 0.5) / rows
    d = np.sqrt(np.square(col_term) + np.square(row_term))  # column term first, as the original
    ref = max(d[int(rows * 0.5), 0], d[0, int(cols * 0.5)])  # IndexError for an empty marker
    with np.errstate(invalid="ignore", divide="ignore"):
        m = 1 - d / float(ref)
    m[m < 0] = 0
    return m * (max_energy - 1)


def _marker_geometry(box, task, args, era):
    """(rows, cols, top-left col, top-left row) of the marker of one box (float64 row)."""
    x1, y1, x2, y2 = box[0], box[1], box[2], box[3]
    wb, hb = x2 - x1, y2 - y1
    if args.get("marker_dim") is None:
        sp = args["size_percentage"]
        if task == "stamp_energy" and era == "2020":
            hm, wm = int(np.ceil(sp * hb)), int(np.ceil(sp * wb))
        else:
            hm, wm = int(sp * hb), int(sp * wb)
    else:
        hm, wm = args["marker_dim"]
    offx = np.round((wb - wm) * 0.5)
    offy = np.round((hb - hm) * 0.5)
    tx = int(np.round(x1 + offx))
    ty = int(np.round(y1 + offy))
    return hm, wm, tx, ty


def _stamp(box, task, args, nr_classes, era, max_energy):
    """The stamp array of one box (rows, cols, C) and its rectangle [x1, y1, x2, y2]."""
    hm, wm, tx, ty = _marker_geometry(box, task, args, era)
    rect = [tx, ty, tx + wm, ty + hm]
    if task == "stamp_energy":
        m = oval_marker(hm, wm, era, max_energy)
        shape = args.get("energy_shape", "linear")
        with np.errstate(invalid="ignore", divide="ignore"):
            if shape == "root":
                m = np.sqrt(m)
                m = m / np.max(m) * (max_energy - 1)
            elif shape == "quadratic":
                m = np.square(m)
                m = m / np.max(m) * (max_energy - 1)
        if args["loss"] != "softmax":
            return m[:, :, None], rect
        with np.errstate(invalid="ignore"):
            lvl = np.round(m).astype(np.int32)
        if era == "2020":
            lvl[lvl < 0] = 0
            lvl[lvl > max_energy] = max_energy
        return np.eye(max_energy)[lvl], rect  # IndexError for NaN levels in eras A/B
    # class and bbox stamps: era A builds the marker with the sizes untransposed
    m = oval_marker(wm, hm, era, max_energy) if era == "2018" else oval_marker(hm, wm, era, max_energy)
    if task == "stamp_class":
        res = args.get("class_resolution", "class")
        value = int(box[4]) if res == "class" else 1
        ids = np.where(m != 0, value, 0).astype(np.int64)
        return np.eye(nr_classes if res == "class" else 2)[ids], rect
    if task == "stamp_bbox":
        fg = (m > 0)[:, :, None]
        return np.concatenate([(box[3] - box[1]) * fg, (box[2] - box[0]) * fg], -1), rect
    raise NotImplementedError(task)


def _channels(task, args, nr_classes, max_energy):
    if task == "stamp_energy":
        return max_energy if args["loss"] == "softmax" else 1
    if task == "stamp_class":
        return 2 if args.get("class_resolution", "class") == "binary" else nr_classes
    return 2


def _crop_to_canvas(H, W, rect, stamp, era):
    """``get_partial_marker``: clip the rectangle (ends to H-1 / W-1), crop the stamp symmetrically."""
    c = [max(v, 0) for v in rect]
    c[1], c[3] = min(c[1], H - 1), min(c[3], H - 1)
    c[0], c[2] = min(c[0], W - 1), min(c[2], W - 1)
    collapsed = (c[0] == c[1] or c[2] == c[3]) if era == "2018" else (c[0] == c[2] or c[1] == c[3])
    if collapsed:
        return None, None
    off_r = stamp.shape[0] - (c[3] - c[1])
    off_c = stamp.shape[1] - (c[2] - c[0])
    stamp = stamp[int(np.ceil(off_r / 2.0)):int(stamp.shape[0] - np.floor(off_r / 2.0)),
                  int(np.ceil(off_c / 2.0)):int(stamp.shape[1] - np.floor(off_c / 2.0))]
    return stamp, c


def _closer_than_all(c, used):
    """``get_closest_mask``: 1 where the pixel is strictly closer to this rectangle's centre than to
    the centre of every earlier rectangle in ``used`` (centres: truncated midpoints)."""
    rows = np.arange(c[1], c[3])[:, None]
    cols = np.arange(c[0], c[2])[None, :]
    cy, cx = int((c[3] + c[1]) * 0.5), int((c[2] + c[0]) * 0.5)
    mine = np.sqrt(np.square(cols - cx) + np.square(rows - cy))
    mask = np.ones((c[3] - c[1], c[2] - c[0]), dtype=np.int64)
    for u in used:
        uy, ux = int((u[3] + u[1]) * 0.5), int((u[2] + u[0]) * 0.5)
        other = np.sqrt(np.square(cols - ux) + np.square(rows - uy))
        mask = np.minimum(mask, (mine < other).astype(np.int64))
    return mask


def get_markers(size, gt, nr_classes, objectness_settings, downsample_ind=0, maps_list=None, *,
                era="2020", max_energy=20):
    """``get_markers`` of the given era: list of float64 arrays (1, H', W', C), one per ds factor."""
    if maps_list is None:
        maps_list = []
    s = objectness_settings
    task = s["stamp_func"] if isinstance(s["stamp_func"], str) else s["stamp_func"][0]
    args = s["stamp_args"]
    softmax = args["loss"] == "softmax"
    f = 1.0 / s["ds_factors"][downsample_ind]
    H, W = int(size[1] * f), int(size[2] * f)
    boxes = [np.asarray(b) * [f, f, f, f, 1] for b in gt]
    C = _channels(task, args, nr_classes, max_energy)
    if softmax:
        canvas = np.eye(C)[np.zeros((H, W), dtype=np.int64)]
    else:
        canvas = np.zeros((H, W, C), dtype=np.float64)
    if task == "stamp_energy" and not softmax:
        canvas = canvas - 10
    used = []
    overlap = s["overlap_solution"]
    for box in boxes:
        stamp, rect = _stamp(box, task, args, nr_classes, era, max_energy)
        stamp, c = _crop_to_canvas(H, W, rect, stamp, era)
        if stamp is None:
            continue
        win = canvas[c[1]:c[3], c[0]:c[2]]
        if era != "2018":  # zero pixels of a stamp keep the canvas
            z = (stamp[:, :, 0] == 1)[:, :, None] if softmax else (stamp == 0)
            z = z.astype(np.int64)
            stamp = stamp * (1 - z) + win * z
        if overlap == "max":
            if softmax:
                take = np.argmax(win, -1) < np.argmax(stamp, -1)
                win[take] = stamp[take]
            else:
                win[...] = np.max(np.concatenate([win, stamp], -1), -1)[:, :, None]
        elif overlap == "no":
            win[...] = stamp
        elif overlap == "nearest":
            m = _closer_than_all(c, used)[:, :, None]
            win[...] = (1 - m) * win + m * stamp
            used.append(c)
        else:
            raise NotImplementedError("overlap solution unknown")
    if not s["downsample_marker"]:
        if downsample_ind + 1 == len(s["ds_factors"]):
            return maps_list
        return get_markers(size, gt, nr_classes, s, downsample_ind + 1, maps_list, era=era, max_energy=max_energy)
    import cv2

    if era == "2018" and len(s["ds_factors"]) > 1:
        raise NotImplementedError("era 2018 down-sampling is not re-stated")
    if softmax:
        ids = np.argmax(canvas, -1).astype(np.uint8)
        for x in s["ds_factors"][1:]:
            dsize = (int(np.ceil(float(ids.shape[1]) / x)), int(np.ceil(float(ids.shape[0]) / x)))
            small = np.round(cv2.resize(ids, dsize, None, 0, 0, cv2.INTER_LINEAR))
            maps_list.append(np.eye(C)[small][None])
    else:
        for x in s["ds_factors"][1:]:
            dsize = (int(np.ceil(float(canvas.shape[1]) / x)), int(np.ceil(float(canvas.shape[0]) / x)))
            small = cv2.resize(canvas, dsize, None, 0, 0, cv2.INTER_LINEAR)
            maps_list.append(small[None, :, :, None] if small.ndim < canvas.ndim else small[None])
    maps_list.insert(0, canvas[None])
    return maps_list


def loss_mask(gt_map, balance_mask, loss="softmax"):
    """The loss mask ``minibatch.py`` builds from one target map (1, H, W, C): float64 (H, W, 1)."""
    fg = np.argmax(gt_map, -1) if loss == "softmax" else np.amax(gt_map, -1)
    if balance_mask is None:
        return np.ones(gt_map.shape[:-1] + (1,))[0]
    if balance_mask in ("mask_bg", "mask_zeros"):
        fg[fg != 0] = 1
        out = fg / (np.sum(fg) + 1)
        if balance_mask == "mask_zeros":
            out = out * (fg.shape[1] + 1)
        return out[0][:, :, None]
    if balance_mask in ("fg_bg_balanced", "by_class", "by_class_no_bg"):
        if balance_mask == "fg_bg_balanced":
            fg[fg != 0] = 1
        out = np.copy(fg).astype(np.float64)
        values, counts = np.unique(fg, return_counts=True)
        total = sum(counts)
        first = 1 if balance_mask == "by_class_no_bg" else 0
        for v, n in zip(values[first:], counts[first:]):
            out[fg == v] = total / n
        return out[0][:, :, None]
    raise ValueError(f"unknown balance_mask {balance_mask!r}")


def verify_against_original(fcn_path, era, n_scenes=300, seed=0):
    """Compare :func:`get_markers` with the original ``get_markers`` loaded from ``fcn_path``.

    Returns (scenes compared, mismatches, crashes in both, crashes in one only). Needs OpenCV.
    Last run (2026-11-22, 1,500 scenes, seed 1): 2020 (1500, 0, 209, 0), 2019 (1500, 0, 343, 0),
    2018 (1500, 0, 119, 0).
    """
    import importlib.util
    import sys
    import types

    np.int = int  # the original uses the removed aliases
    np.float = float
    for name in ("PIL", "PIL.Image", "PIL.ImageDraw", "matplotlib", "matplotlib.pyplot", "matplotlib.cm"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["PIL"].Image = sys.modules["PIL.Image"]
    sys.modules["PIL"].ImageDraw = sys.modules["PIL.ImageDraw"]
    cfg = types.SimpleNamespace(TRAIN=types.SimpleNamespace(MAX_ENERGY=20))
    main = types.ModuleType("main")
    conf = types.ModuleType("main.config")
    conf.cfg = cfg
    main.config = conf
    sys.modules["main"], sys.modules["main.config"] = main, conf
    spec = importlib.util.spec_from_file_location(f"fcn_{era}", fcn_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.print = lambda *a, **k: None

    rng = np.random.default_rng(seed)
    stats = [0, 0, 0, 0]
    for _ in range(n_scenes):
        settings, size, gt, ncls = random_scene(rng, era)
        name = settings["stamp_func"]
        orig_settings = dict(settings, stamp_func=[name, getattr(mod, name)])
        try:
            want = mod.get_markers(size, gt, ncls, orig_settings, 0, [])
        except Exception as e:  # noqa: BLE001
            want = e
        try:
            got = get_markers(size, gt, ncls, settings, 0, [], era=era)
        except Exception as e:  # noqa: BLE001
            got = e
        stats[0] += 1
        if isinstance(want, Exception) or isinstance(got, Exception):
            if isinstance(want, Exception) and isinstance(got, Exception):
                stats[2] += 1
            else:
                stats[3] += 1
            continue
        same = len(want) == len(got) and all(
            a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
            for a, b in zip(want, got))
        stats[1] += not same
    return tuple(stats)


def random_scene(rng, era):
    """A random (settings, size, gt, nr_classes) as the tests and the verification use them."""
    H = int(rng.integers(1, 61))
    W = int(rng.integers(1, 61))
    n = int(rng.integers(0, 31))
    x1 = rng.uniform(-15, W + 5, n)
    y1 = rng.uniform(-15, H + 5, n)
    w = rng.uniform(1, 25, n)
    h = rng.uniform(1, 25, n)
    if rng.random() < 0.5:  # integer boxes, as the data sets give them
        x1, y1, w, h = np.floor(x1), np.floor(y1), np.ceil(w), np.ceil(h)
    ncls = int(rng.integers(2, 9))
    cls = rng.integers(0, ncls, n)
    gt = [np.array([a, b, a + c, b + d, k], dtype=np.float32) for a, b, c, d, k in zip(x1, y1, w, h, cls)]
    task = ["stamp_energy", "stamp_class", "stamp_bbox"][int(rng.integers(0, 3))]
    loss = "softmax" if task == "stamp_class" else ("reg" if task == "stamp_bbox" else
                                                      ["softmax", "reg"][int(rng.integers(0, 2))])
    if rng.random() < 0.5:
        side = int(rng.integers(1, 12))
        marker_dim = (side, side) if era == "2018" or rng.random() < 0.5 else (side, int(rng.integers(1, 12)))
        sp = 0.8
    else:
        marker_dim = None
        sp = float(rng.choice([0.3, 0.5, 0.8, 1.0]))
        if era == "2018" and task != "stamp_energy":
            marker_dim = (5, 5)
    ds = [[1], [1], [2], [1, 2], [1, 3, 5]][int(rng.integers(0, 5))]
    if era == "2018" and len(ds) > 1:
        ds = [1]
    settings = {
        "ds_factors": ds,
        "downsample_marker": True,
        "overlap_solution": ["max", "no", "nearest"][int(rng.integers(0, 3))],
        "stamp_func": task,
        "stamp_args": {"marker_dim": marker_dim, "size_percentage": sp, "shape": "oval", "loss": loss,
                       "energy_shape": ["linear", "quadratic", "root"][int(rng.integers(0, 3))],
                       "class_resolution": ["class", "class", "binary"][int(rng.integers(0, 3))]},
    }
    size = (1, H, W, 3)
    return settings, size, gt, ncls
