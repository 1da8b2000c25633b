"""The DWD target encoder: boxes -> energy, class and size maps (the training targets)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _arrays
from ._ext import cpu_ext

__all__ = ["encode", "Targets"]

_MARKERS = {"oval": 0, "box": 1, "hull": 2}
_OVERLAPS = {"max": 0, "nearest": 1, "last": 2, "smallest": 2}  # "smallest": reordered, then "last"
_NEST = (0.5, 0.4)  # overlap="smallest": (radius, fraction) of _nest
_ORDERS = {"forward": 0, "reversed": 1, "shuffled": 2}
_PROFILES = ("linear", "quadratic", "root")
# layout -> (classes dtype, sizes dtype)
_LAYOUTS = {"wide": (np.int32, np.float32), "compact": (np.uint8, np.float16)}

BINS = 4096          # distance bins of the level table (12 bits)
_Q = 256             # fixed point of positions (8 bits)
_MAX_EXTENT = 1024   # a marker may reach at most this many pixels from its centre
_MAX_SIDE = 1 << 20  # canvas side limit
_CENTRE_LIMIT = float(1 << 22)  # marker centres are clamped to +-this (px): far beyond any canvas + marker


@dataclass
class Targets:
    """Training targets of one image (or a batch) at one output stride.

    Attributes
    ----------
    energy : (H, W) or (B, H, W) uint8
        Energy level 0..levels-1 of the winning marker at each pixel (0 = background).
    classes : (H, W) or (B, H, W) int32 (uint8 in the compact layout)
        Label of the box whose marker won the pixel; 0 where the energy is 0.
    sizes : (2, H, W) or (B, 2, H, W) float32 (float16 in the compact layout)
        ``(height, width)`` of that box in pixels of this grid; 0 where the energy is 0.
    stride : int
        Output stride: the maps cover ``ceil(H / stride) x ceil(W / stride)`` pixels.
    levels : int
        Number of energy levels.
    """

    energy: Any
    classes: Any
    sizes: Any
    stride: int = 1
    levels: int = 20


# --------------------------------------------------------------------------------------------------
# Level tables
# --------------------------------------------------------------------------------------------------

def _bin_centres():
    return (np.arange(BINS, dtype=np.float64) + 0.5) / BINS


@functools.lru_cache(maxsize=32)
def _named_table(profile, levels):
    d = _bin_centres()
    f = {"linear": lambda: 1.0 - d, "quadratic": lambda: (1.0 - d) ** 2, "root": lambda: np.sqrt(1.0 - d)}[profile]()
    return _quantize(f, levels)


def _quantize(f, levels):
    """Level of each bin: floor(f * (levels - 1) + 1/2), i.e. round half up, in [0, levels - 1]."""
    lvl = np.floor(f * (levels - 1) + 0.5)
    return np.clip(lvl, 0, levels - 1).astype(np.uint8)


def level_table(profile="linear", levels=20):
    """The 4096-entry uint8 table that maps a pixel's distance bin to its energy level.

    Bin ``b`` holds the normalized distances ``d`` in ``[b/4096, (b+1)/4096)``; its level is
    ``floor(f(d_b) * (levels - 1) + 1/2)`` with ``d_b = (b + 1/2) / 4096`` the bin centre and ``f``
    the profile: ``"linear"`` ``1 - d``, ``"quadratic"`` ``(1 - d)**2``, ``"root"`` ``sqrt(1 - d)``,
    a callable (called once with the array of bin centres, must return values in [0, 1]), or a 1-D
    array of values in [0, 1] sampled at ``T`` equal steps of ``d`` (``f(d) = table[floor(d T)]``).
    """
    if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, (int, np.integer)) or not 2 <= levels <= 256:
        raise ValueError(f"levels must be an integer in [2, 256], got {levels!r}")
    levels = int(levels)
    if isinstance(profile, str):
        if profile not in _PROFILES:
            raise ValueError(f"profile must be one of {_PROFILES}, a callable or a 1-D table, got {profile!r}")
        return _named_table(profile, levels)
    if callable(profile):
        f = np.asarray(profile(_bin_centres()), dtype=np.float64)
        if f.shape != (BINS,):
            raise ValueError(f"profile(d) must return an array of the shape of d ({BINS},), got shape {f.shape}")
    else:
        tab = np.asarray(profile, dtype=np.float64)
        if tab.ndim != 1 or tab.size == 0:
            raise ValueError(f"a profile table must be a non-empty 1-D array, got shape {tab.shape}")
        f = tab[np.minimum((_bin_centres() * tab.size).astype(np.int64), tab.size - 1)]
    if not np.all(np.isfinite(f)) or f.min() < 0 or f.max() > 1:
        raise ValueError("profile values must be finite and in [0, 1]")
    return _quantize(f, levels)


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------

def _is_batch(boxes):
    return isinstance(boxes, (list, tuple)) and len(boxes) > 0 and all(
        isinstance(b, np.ndarray) or _arrays._library(b) in ("torch", "cupy") or _arrays.where(b)[0] == "cuda"
        for b in boxes)


def _check_boxes(b, name, H, W):
    """float64 (N, 4) or (N, 4, 2) boxes, validated."""
    h = _arrays.to_host(_arrays.params_to_host(b), name)
    a = h.array
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        a = a.reshape(0, 4)
    if not (a.ndim == 2 and a.shape[1] == 4) and not (a.ndim == 3 and a.shape[1:] == (4, 2)):
        raise ValueError(f"{name} must be (N, 4) boxes (x1, y1, x2, y2) or (N, 4, 2) corner polygons, "
                         f"got shape {tuple(a.shape)}")
    if not np.all(np.isfinite(a)):
        i = int(np.nonzero(~np.all(np.isfinite(a.reshape(len(a), -1)), axis=1))[0][0])
        raise ValueError(f"{name}: box {i} is not finite (NaN or inf): {a[i].tolist()}")
    if a.ndim == 2:
        x1, y1, x2, y2 = a.T
        bad = np.nonzero((x2 <= x1) | (y2 <= y1))[0]
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name}: box {i} is degenerate or has a negative size (need x2 > x1 and y2 > y1), "
                             f"got {a[i].tolist()}")
        lo_x, lo_y, hi_x, hi_y = x1, y1, x2, y2
    else:
        x, y = a[..., 0], a[..., 1]
        area2 = np.abs(np.sum(x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y, axis=1))
        bad = np.nonzero(area2 <= 0)[0]
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name}: polygon {i} is degenerate (zero area): {a[i].tolist()}")
        lo_x, lo_y, hi_x, hi_y = x.min(1), y.min(1), x.max(1), y.max(1)
    out = np.nonzero((hi_x <= 0) | (hi_y <= 0) | (lo_x >= W) | (lo_y >= H))[0]
    if out.size:
        i = int(out[0])
        raise ValueError(f"{name}: box {i} lies outside the image of shape {(H, W)} (the shape / image_size "
                         f"argument): {a[i].tolist()}")
    return a, h


def _check_labels(lab, name, n, layout="wide"):
    if lab is None:
        return np.ones(n, np.int32)
    a = _arrays.to_host(_arrays.params_to_host(lab), name).array
    if a.dtype.kind not in "biu":
        raise TypeError(f"{name} must be integer class ids, got dtype {a.dtype}")
    a = a.reshape(-1) if a.ndim else a.reshape(1)
    if a.shape != (n,):
        raise ValueError(f"{name} must have one class id per box ({n} in boxes), got shape {tuple(np.shape(lab))}")
    if a.size and (a.min() < 0 or a.max() > np.iinfo(np.int32).max):
        raise ValueError(f"{name} must be non-negative int32 class ids, got values in [{a.min()}, {a.max()}]")
    if layout == "compact" and a.size and a.max() > 255:
        i = int(np.argmax(a > 255))
        raise ValueError(f"{name}: the compact layout stores classes as uint8 (at most 255), got label {int(a[i])} "
                         f"at box {i}; use layout='wide'")
    return a.astype(np.int32)


def _geometry(a, size, stride, min_marker=(0.0, 0.0), nest=None):
    """(objs int64 (N, 8), sizes float32 (N, 2)) of validated boxes ``a`` on the grid of ``stride``.

    ``min_marker`` ``(rows, cols)``: the drawn marker's full extent along each of its axes is at least this
    (px of the grid); only the drawn geometry grows, about the centre, the sizes stay the boxes' own.
    ``nest`` ``(radius, fraction)``: see :func:`_nest` (overlap="smallest")."""
    min_r, min_c = min_marker
    n = len(a)
    if a.ndim == 2:
        x1, y1, x2, y2 = (a / stride).T
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        w, h = x2 - x1, y2 - y1
        z = np.zeros(n)
        if isinstance(size, tuple):
            ux, vy = np.full(n, size[1] / 2), np.full(n, size[0] / 2)
        else:
            ux, vy = w * (size / 2), h * (size / 2)
        ux, vy = np.maximum(ux, min_c / 2), np.maximum(vy, min_r / 2)
        ux, uy, vx = ux, z, z
        hw = np.stack([h, w], 1)
    else:
        p = a / stride
        c = p.mean(1)
        cx, cy = c[:, 0], c[:, 1]
        u = ((p[:, 1] - p[:, 0]) + (p[:, 2] - p[:, 3])) / 4
        v = ((p[:, 3] - p[:, 0]) + (p[:, 2] - p[:, 1])) / 4
        if isinstance(size, tuple):
            lu = np.hypot(u[:, 0], u[:, 1])[:, None]
            lv = np.hypot(v[:, 0], v[:, 1])[:, None]
            with np.errstate(invalid="ignore", divide="ignore"):
                u = np.where(lu > 0, u / lu, 0) * (size[1] / 2)
                v = np.where(lv > 0, v / lv, 0) * (size[0] / 2)
        else:
            u, v = u * size, v * size
        if min_c > 0 or min_r > 0:  # lengthen the half-axes (never shorten): drawn geometry only
            lu = np.hypot(u[:, 0], u[:, 1])[:, None]
            lv = np.hypot(v[:, 0], v[:, 1])[:, None]
            with np.errstate(invalid="ignore", divide="ignore"):
                u = np.where(lu < min_c / 2, u * np.where(lu > 0, (min_c / 2) / lu, 0), u)
                v = np.where(lv < min_r / 2, v * np.where(lv > 0, (min_r / 2) / lv, 0), v)
        ux, uy, vx, vy = u[:, 0], u[:, 1], v[:, 0], v[:, 1]
        hw = np.stack([p[..., 1].max(1) - p[..., 1].min(1), p[..., 0].max(1) - p[..., 0].min(1)], 1)
    if nest is not None and n > 1:
        fu, fv = _nest(cx, cy, ux, uy, vx, vy, *nest)
        with np.errstate(invalid="ignore", divide="ignore"):  # never below min_marker
            fu = np.minimum(1.0, np.maximum(fu, np.nan_to_num((min_c / 2) / np.hypot(ux, uy), posinf=1.0)))
            fv = np.minimum(1.0, np.maximum(fv, np.nan_to_num((min_r / 2) / np.hypot(vx, vy), posinf=1.0)))
        ux, uy, vx, vy = ux * fu, uy * fu, vx * fv, vy * fv
    # The extent is checked in float64, before the fixed-point conversion (which would overflow int64
    # beyond ~3.6e16 px and drop the box silently).
    with np.errstate(over="ignore", invalid="ignore"):
        ext_f = np.maximum(np.abs(ux) + np.abs(vx), np.abs(uy) + np.abs(vy))
    big = np.nonzero(~(ext_f * _Q <= _MAX_EXTENT * _Q + 2))[0]  # +2: the rounding of the fixed point
    if not big.size:
        # A marker reaches at most _MAX_EXTENT px from its centre: a centre farther than _CENTRE_LIMIT
        # from the canvas draws nothing, wherever exactly it is; clamping keeps the fixed point in int64.
        cx, cy = np.clip(cx, -_CENTRE_LIMIT, _CENTRE_LIMIT), np.clip(cy, -_CENTRE_LIMIT, _CENTRE_LIMIT)
    q = lambda v: np.rint(np.asarray(v, np.float64) * _Q).astype(np.int64)  # noqa: E731
    if not big.size:
        objs = np.stack([q(cx), q(cy), q(ux), q(uy), q(vx), q(vy), q(np.hypot(ux, uy)), q(np.hypot(vx, vy))], 1)
        ext = np.maximum(np.abs(objs[:, 2]) + np.abs(objs[:, 4]), np.abs(objs[:, 3]) + np.abs(objs[:, 5]))
        big = np.nonzero(ext > _MAX_EXTENT * _Q)[0]
    if big.size:
        i = int(big[0])
        raise ValueError(f"boxes: the marker of box {i} reaches more than {_MAX_EXTENT} px from its centre "
                         f"(size {size!r}, stride {stride}); markers are limited to {2 * _MAX_EXTENT} px across")
    too_big = np.nonzero(~(np.abs(hw) <= np.finfo(np.float32).max))[0]
    if too_big.size:
        i = int(too_big[0])
        raise ValueError(f"boxes: box {i} is too large for the float32 size maps: (height, width) = "
                         f"{hw[i].tolist()} (stride {stride})")
    return np.ascontiguousarray(objs), np.ascontiguousarray(hw, dtype=np.float32)


def _nest(cx, cy, ux, uy, vx, vy, radius, fraction):
    """Shrink factors ``(fu, fv)`` of the half-axes ``u``, ``v`` of markers nested in larger ones.

    Marker ``i`` is nested in marker ``j`` when ``j``'s drawn area is larger and ``i``'s centre lies
    within ``radius`` of ``j``'s centre in ``j``'s normalized frame (``j``'s marker is the unit disk
    there): a ledger line through a notehead, say. Drawn on top of ``j`` at full length, ``i`` would cut
    ``j``'s core in two; so each half-axis of ``i``, measured in ``j``'s normalized frame, is shortened
    to at most ``fraction`` (never lengthened), which keeps ``i``'s marker inside ``j``'s core and
    ``j``'s core around it in one piece. The sizes written are the boxes' own.
    """
    n = len(cx)
    fu, fv = np.ones(n), np.ones(n)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        area = np.abs(ux * vy - uy * vx)
        ex, ey = (np.abs(ux) + np.abs(vx)) * radius, (np.abs(uy) + np.abs(vy)) * radius
        o = np.argsort(cx, kind="stable")
        xs = cx[o]
        lo = np.searchsorted(xs, cx - ex, "left")
        hi = np.searchsorted(xs, cx + ex, "right")
        cnt = hi - lo
        if cnt.sum() == 0:
            return fu, fv
        j = np.repeat(np.arange(n), cnt)  # the containing (larger) marker
        start = np.repeat(lo - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
        i = o[np.arange(len(j)) + start]   # candidate nested markers
        keep = (i != j) & (area[i] < area[j]) & (np.abs(cy[i] - cy[j]) <= ey[j])
        i, j = i[keep], j[keep]
        det = ux[j] * vy[j] - uy[j] * vx[j]
        dx, dy = cx[i] - cx[j], cy[i] - cy[j]
        s = (vy[j] * dx - vx[j] * dy) / det
        t = (ux[j] * dy - uy[j] * dx) / det
        keep = (det != 0) & (s * s + t * t < radius * radius)
        i, j, det = i[keep], j[keep], det[keep]
        if not i.size:
            return fu, fv

        def reach(ax, ay):  # length of the vector (ax, ay) of marker i in the normalized frame of j
            return np.hypot((vy[j] * ax - vx[j] * ay) / det, (ux[j] * ay - uy[j] * ax) / det)

        np.minimum.at(fu, i, np.minimum(1.0, fraction / reach(ux[i], uy[i])))
        np.minimum.at(fv, i, np.minimum(1.0, fraction / reach(vx[i], vy[i])))
    return fu, fv


def _check_size(size):
    if isinstance(size, (tuple, list, np.ndarray)):
        s = tuple(float(v) for v in np.asarray(size, np.float64).reshape(-1))
        if len(s) != 2 or not all(np.isfinite(v) and v > 0 for v in s):
            raise ValueError(f"size must be a fraction > 0 or a (rows, cols) pair of positive sizes, got {size!r}")
        return s
    try:
        f = float(size)
    except (TypeError, ValueError):
        raise TypeError(f"size must be a number or a (rows, cols) pair, got {type(size).__name__}") from None
    if not np.isfinite(f) or f <= 0:
        raise ValueError(f"size must be a fraction > 0 of the box, got {size!r}")
    return f


def _check_min_marker(m):
    """``(rows, cols)`` floats >= 0 of a number or a pair."""
    if isinstance(m, (bool, np.bool_)) or isinstance(m, (str, bytes)):
        raise TypeError(f"min_marker must be a number or a (rows, cols) pair, got {type(m).__name__}")
    try:
        v = np.asarray(m, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"min_marker must be a number or a (rows, cols) pair, got {type(m).__name__}") from None
    if v.size == 1:
        v = np.repeat(v, 2)
    if v.size != 2 or not np.all(np.isfinite(v)) or np.any(v < 0) or np.any(v > 2 * _MAX_EXTENT):
        raise ValueError(f"min_marker must be a size in [0, {2 * _MAX_EXTENT}] px or a (rows, cols) pair of them, "
                         f"got {m!r}")
    return float(v[0]), float(v[1])


# --------------------------------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------------------------------

def _check_options(shape, levels, marker, size, profile, overlap, layout="wide"):
    """(H, W, level table, size) after validating encode's options."""
    if not isinstance(layout, str) or layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {tuple(_LAYOUTS)}, got {layout!r}")
    if shape is None:
        raise TypeError("encode() needs the image shape (H, W)")
    try:
        H, W = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (H, W), got {shape!r}") from None
    if not (0 < H < _MAX_SIDE and 0 < W < _MAX_SIDE):
        raise ValueError(f"shape must be (H, W) with 0 < H, W < {_MAX_SIDE}, got {shape!r}")
    if marker not in _MARKERS:
        raise ValueError(f"marker must be one of {tuple(_MARKERS)}, got {marker!r}")
    if overlap not in _OVERLAPS:
        raise ValueError(f"overlap must be one of {tuple(_OVERLAPS)}, got {overlap!r}")
    return H, W, level_table(profile, levels), _check_size(size)


def _check_out(out, n_strides, batched, B, H, W, layout="wide"):
    """The (energy, classes, sizes) arrays of ``out`` as (B, ...) views, checked."""
    c_dtype, s_dtype = _LAYOUTS[layout]
    if n_strides != 1:
        raise ValueError(f"out works with one stride, got {n_strides} strides")
    maps = (out.energy, out.classes, out.sizes) if isinstance(out, Targets) else out
    if not isinstance(maps, (tuple, list)) or len(maps) != 3:
        raise TypeError("out must be a Targets or a tuple (energy, classes, sizes)")
    lead = (B,) if batched else ()
    views = []
    for m, name, dtype, shape in zip(maps, ("energy", "classes", "sizes"), (np.uint8, c_dtype, s_dtype),
                                     (lead + (H, W), lead + (H, W), lead + (2, H, W))):
        if not isinstance(m, np.ndarray):
            raise TypeError(f"out.{name} must be a numpy array, got {type(m).__name__}")
        if m.dtype != dtype or m.shape != shape:
            raise ValueError(f"out.{name} must be {np.dtype(dtype).name} of shape {shape} (layout={layout!r}), "
                             f"got {m.dtype} of shape {m.shape}")
        if not m.flags.c_contiguous or not m.flags.writeable:
            raise ValueError(f"out.{name} must be C-contiguous and writeable")
        views.append(m)
    return views


def encode(boxes, labels=None, shape=None, *, levels=20, marker="box", size=0.8, profile="linear", overlap="smallest",
           strides=(1,), backend="auto", order="forward", seed=0, out=None, layout="wide", min_marker=6.0,
           _stats=None):
    """Build DWD training targets (energy, class and size maps) from boxes.

    Each box gets a marker: a shape of ``size`` centred on the box centre (``size`` a fraction of
    the box's width and height, default 0.8, or a fixed ``(rows, cols)`` in pixels of the output
    grid), at least ``min_marker`` pixels across each of its axes (default 6). At each pixel inside
    the marker the energy level comes from the pixel's normalized
    distance ``d`` in [0, 1) to the marker's boundary through ``profile``; the class map gets the
    box's label and the size map its ``(height, width)`` wherever the marker's level is non-zero
    and wins the pixel.

    Conventions
        Box coordinates are ``(x1, y1, x2, y2)`` (x = column, y = row, no +1) and pixel ``(r, c)``
        covers ``[c, c+1) x [r, r+1)``: a pixel belongs to a marker when its centre
        ``(c + 1/2, r + 1/2)`` lies strictly inside. Positions are snapped to 1/256 px and the
        inside tests and levels use exact integer arithmetic, so every backend writes identical
        maps. ``d`` is quantized to 1/4096 and the level of bin ``b`` is
        ``floor(f((b + 1/2) / 4096) * (levels - 1) + 1/2)`` (round half up), ``f`` the profile.
    Markers
        ``"oval"``: the ellipse inscribed in the marker rectangle, ``d`` = elliptic radius.
        ``"box"``: the marker rectangle, ``d = max(|s|, |t|)`` in box-normalized coordinates.
        ``"hull"``: the marker rectangle, ``d`` = 1 - (distance to the nearest side, measured
        along the box axes) / (half the shorter side): a roof-shaped profile.
    Oriented boxes
        ``(N, 4, 2)`` corner polygons ``(x, y)`` in order around the box: the marker frame is the
        parallelogram spanned by the mean of opposite edges (exact for rotated rectangles),
        centred on the corners' mean; ``size`` scales it (a fixed ``(rows, cols)`` sets the
        extent along edge 0-3 and edge 0-1). The size map holds the polygon's axis-aligned extent.
    Overlaps
        ``"smallest"`` (default): the smallest marker (drawn area, after ``min_marker``) with a non-zero
        level wins (equal areas: the first box), so small objects stay visible on top of large ones;
        and a marker whose centre lies in the inner half of a larger marker (in that marker's
        normalized frame: a ledger line through a notehead) has each half-axis shortened to at most
        0.4 of the larger one's (never below ``min_marker``), so that it does not cut the larger
        object's core in two. ``"max"``: the highest level wins, the first drawn box wins ties.
        ``"nearest"``: the box whose centre is nearest to the pixel centre wins (ties: first drawn).
        ``"last"``: the last drawn box with a non-zero level wins.
    Defaults
        ``marker="box", overlap="smallest", min_marker=6``: ground truth encoded and decoded by the
        default decoder is recovered (recall and precision >= 0.98 per class on engraved pages at
        DeepScores' resolution, ``benchmarks/measure_ceiling.py``). The former defaults were
        ``marker="oval", overlap="max", min_marker=0``.
    Strides
        One set of targets per stride ``s``: boxes are divided by ``s`` and drawn on a
        ``ceil(H/s) x ceil(W/s)`` grid; sizes are in pixels of that grid (fixed marker sizes too).

    Parameters
    ----------
    boxes : (N, 4) or (N, 4, 2) array, or a list of them for a batch
        Boxes may extend beyond the image (their markers are clipped); a box entirely outside the
        image, a degenerate box (``x2 <= x1`` or ``y2 <= y1``, a zero-area polygon) and NaN or inf
        coordinates raise ``ValueError``. Markers are limited to 2048 px across.
    labels : (N,) non-negative integers, or a list of them; default all 1
    shape : (H, W)
        Image size in pixels.
    levels : int in [2, 256]
    marker : {"box", "oval", "hull"}
    size : float > 0 or (rows, cols)
    profile : {"linear", "quadratic", "root"}, callable or 1-D array, see :func:`level_table`
        ``"linear"``: ``1 - d``; ``"quadratic"``: ``(1 - d)**2``; ``"root"``: ``sqrt(1 - d)``.
    overlap : {"smallest", "max", "nearest", "last"}
    min_marker : float >= 0 or (rows, cols)
        Smallest extent of a drawn marker along each of its axes, in pixels of the output grid (of each
        stride), at most 2048: thinner markers grow about their centre. Only the drawn geometry: the
        size map keeps the boxes' real ``(height, width)``. A fixed ``size`` is raised too. 0 draws
        markers as ``size`` says.
    strides : sequence of positive ints
    backend : {"auto", "cpu", "cuda", "host"}
        ``"auto"`` follows ``boxes``: torch CUDA tensors / CuPy arrays give maps on their device, written by
        the data-parallel rasterizer (``csrc/dwd/encode.h``, one launch sequence for the whole batch) on the
        caller's current stream; the boxes themselves (a few numbers per object) are read on the host to
        build the fixed-point geometry, which is then uploaded. ``"host"`` runs the data-parallel
        algorithm on the CPU in ``order`` (``"forward"``, ``"reversed"``, ``"shuffled"`` with ``seed``);
        it exists to verify that algorithm.
    out : Targets or (energy, classes, sizes), optional
        numpy arrays to write the maps into (CPU backends, one stride only; C-contiguous, the dtypes and
        shapes of the result). Every pixel is overwritten, whatever they held. A training loop that
        passes the same buffers every time saves allocating the maps (65 MB for a DeepScores page, 30 MB
        in the compact layout) and the page faults of touching fresh memory.
    layout : {"wide", "compact"}
        Element types of the class and size maps. ``"wide"`` (default): classes int32, sizes float32
        (13 bytes per pixel with the energy). ``"compact"``: classes uint8 (labels must be at most 255,
        else ``ValueError``) and sizes float16, rounded to nearest even (6 bytes per pixel: less than half
        the memory and the bytes written). The compact maps are exactly the wide ones converted,
        ``classes.astype(np.uint8)`` and ``sizes.astype(np.float16)``, on every backend: float16 holds
        integer sizes up to 2048 exactly, others to 3 significant digits (relative error at most
        2^-11), and sizes from 65520 px on become inf.

    Returns
    -------
    Targets, or a tuple of Targets (one per stride) when ``len(strides) > 1``
        Maps are ``(H, W)`` for one image and ``(B, H, W)`` for a list of ``B`` box arrays, in the
        array library of ``boxes``.

    Examples
    --------
    >>> import numpy as np, dwd_fast
    >>> t = dwd_fast.encode(np.array([[1, 1, 6, 6]]), np.array([3]), (7, 7), levels=5, size=1.0)
    >>> t.energy
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 1, 1, 0],
           [0, 1, 3, 3, 3, 1, 0],
           [0, 1, 3, 4, 3, 1, 0],
           [0, 1, 3, 3, 3, 1, 0],
           [0, 1, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 0, 0]], dtype=uint8)
    >>> int(t.classes[3, 3]), t.sizes[:, 3, 3].tolist()
    (3, [5.0, 5.0])
    """
    H, W, table, size = _check_options(shape, levels, marker, size, profile, overlap, layout)
    min_marker = _check_min_marker(min_marker)
    c_dtype, s_dtype = _LAYOUTS[layout]
    try:
        strides = tuple(strides)
    except TypeError:
        strides = (strides,)
    if not strides or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                              for s in strides):
        raise ValueError(f"strides must be a non-empty sequence of positive ints, got {strides!r}")
    backend = _arrays.resolve_backend(backend, *(_box_arrays(boxes)), op="encode")
    if backend == "host" and order not in _ORDERS:
        raise ValueError(f"order must be one of {tuple(_ORDERS)}, got {order!r}")

    batched = _is_batch(boxes)
    box_list = list(boxes) if batched else [boxes]
    if batched:
        if labels is None:
            labels = [None] * len(box_list)
        if not isinstance(labels, (list, tuple)) or len(labels) != len(box_list):
            raise ValueError(f"labels must be a list with one label array per box array ({len(box_list)})")
        lab_list = list(labels)
    else:
        lab_list = [labels]
    names = [f"boxes[{k}]" if batched else "boxes" for k in range(len(box_list))]
    checked = [_check_boxes(b, nm, H, W) for b, nm in zip(box_list, names)]
    like = checked[0][1] if checked else None
    if like is not None and like.library == "torch" and backend == "cuda":
        like = None  # CUDA results are built on the device (_encode_cuda)
    labs = [_check_labels(lab, nm.replace("boxes", "labels"), len(a), layout) for lab, (a, _), nm
            in zip(lab_list, checked, names)]
    offsets = np.zeros(len(checked) + 1, np.int64)
    offsets[1:] = np.cumsum([len(a) for a, _ in checked])
    all_labels = np.ascontiguousarray(np.concatenate(labs) if labs else np.zeros(0, np.int32))

    results = []
    for s in strides:
        s = int(s)
        Hs, Ws = -(-H // s), -(-W // s)
        geo = [_geometry(a, size, s, min_marker, _NEST if overlap == "smallest" else None) for a, _ in checked]
        objs = np.ascontiguousarray(np.concatenate([g[0] for g in geo]) if geo else np.zeros((0, 8), np.int64))
        hw = np.ascontiguousarray(np.concatenate([g[1] for g in geo]) if geo else np.zeros((0, 2), np.float32))
        labels_s = all_labels
        if overlap == "smallest":
            perm = _smallest_on_top(objs, offsets)
            objs, hw, labels_s = objs[perm], hw[perm], all_labels[perm]
        B = len(checked)
        if backend == "cuda":
            if out is not None:
                raise ValueError("out is for the CPU backends; on CUDA the maps are allocated on the boxes' device")
            results.append(_encode_cuda(boxes, objs, offsets, labels_s, hw, table, marker, overlap, B, Hs, Ws,
                                        batched, s, levels, _stats, layout))
            continue
        if out is not None:
            given = energy, classes, sizes = _check_out(out, len(strides), batched, B, Hs, Ws, layout)
            if backend == "host":
                for m in (energy, classes, sizes):
                    m.fill(0)
            if not batched:  # the kernels take (B, ...) maps; the caller gets its own arrays back
                energy, classes, sizes = energy[None], classes[None], sizes[None]
        else:  # lazily zeroed: only the pages the markers touch get allocated
            energy = np.zeros((B, Hs, Ws), np.uint8)
            classes = np.zeros((B, Hs, Ws), c_dtype)
            sizes = np.zeros((B, 2, Hs, Ws), s_dtype)
        args = (objs, offsets, labels_s, hw, table, _MARKERS[marker], _OVERLAPS[overlap], energy, classes, sizes)
        if backend == "host":
            cpu_ext().encode_host(*args, _ORDERS[order], _arrays.check_nonneg_int(seed, "seed", 2**64 - 1))
            if _stats is not None:
                _stats.update(cpu_ext().encode_host_counts())
        else:
            cpu_ext().encode(*args, out is None)
        if out is not None and not batched:
            energy, classes, sizes = given
        elif not batched:
            energy, classes, sizes = energy[0], classes[0], sizes[0]
        results.append(Targets(_arrays.wrap(energy, like), _arrays.wrap(classes, like), _arrays.wrap(sizes, like),
                               stride=s, levels=int(levels)))
    return results[0] if len(results) == 1 else tuple(results)


def _smallest_on_top(objs, offsets):
    """The drawing order of overlap="smallest": within each image, markers by decreasing drawn area (exact,
    from the fixed-point half-axes), equal areas by decreasing index, so that with "last" the smallest marker
    wins, and the first of equal ones."""
    area = np.abs(objs[:, 2] * objs[:, 5] - objs[:, 3] * objs[:, 4])  # |u x v| in 1/65536 px^2 (int64)
    perm = np.empty(len(objs), np.int64)
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        idx = np.arange(lo, hi)
        perm[lo:hi] = idx[np.lexsort((-idx, -area[lo:hi]))]
    return perm


def _box_arrays(boxes):
    """The array arguments of encode's ``boxes`` (a list for a batch), for backend dispatch."""
    return list(boxes) if _is_batch(boxes) else [boxes]


def _encode_cuda(boxes, objs, offsets, labels, hw, table, marker, overlap, B, H, W, batched, stride, levels, stats,
                 layout="wide"):
    """Rasterizes the batch on the device of ``boxes`` (one launch sequence per batch)."""
    from ._ext import cuda_ext

    first = _box_arrays(boxes)[0]
    dev = _arrays.Device.of(first)
    energy, e_ptr = dev.empty((B, H, W), "uint8")
    compact = layout == "compact"
    classes, c_ptr = dev.empty((B, H, W), "uint8" if compact else "int32")
    sizes, s_ptr = dev.empty((B, 2, H, W), "float16" if compact else "float32")
    for a in (energy, classes, sizes):
        a[...] = 0
    up = [dev.upload(x) for x in (objs, offsets, labels.astype(np.int32, copy=False), hw, table)]
    counts = cuda_ext().encode(np.ascontiguousarray(objs, np.int64), up[0][1], up[1][1], B, H, W, up[2][1], up[3][1],
                               up[4][1], _MARKERS[marker], _OVERLAPS[overlap], e_ptr, c_ptr, s_ptr,
                               dev.index if dev.index is not None else -1, dev.stream(), compact)
    if stats is not None:
        stats.update(counts)
    if not batched:
        energy, classes, sizes = energy[0], classes[0], sizes[0]
    return Targets(energy, classes, sizes, stride=stride, levels=int(levels))
