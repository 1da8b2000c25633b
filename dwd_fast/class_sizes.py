"""Cached box sizes per class: DWD's remedy for its smooth size regression.

The DWD authors ("DeepScores and Deep Watershed Detection: current state and open issues", §III.B)
found that the size map a convolutional network predicts is smooth: it averages neighbouring boxes, so
small boxes come out too large and large ones too small. Their patch is to replace the regressed size
by a size cached per class from the training annotations. :func:`class_size_table` builds that cache;
:func:`dwd_fast.decode` uses it with ``size_mode="class"`` or ``"blend"`` (see :func:`apply_size_mode`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _arrays

__all__ = ["class_size_table", "ClassSizeTable", "apply_size_mode", "SIZE_MODES"]

SIZE_MODES = ("regress", "class", "blend")


@dataclass(frozen=True)
class ClassSizeTable:
    """Box size per class, from training annotations (the output of :func:`class_size_table`).

    Attributes
    ----------
    sizes : (C, 2) float64
        ``(height, width)`` per class id; NaN rows for classes never seen.
    counts : (C,) int64
        Number of boxes of each class the table was built from.
    spread : (C, 2) float64
        Relative spread of each side within its class: median absolute deviation / median
        (``stat="median"``) or standard deviation / mean (``stat="mean"``); NaN for unseen classes. A
        class whose boxes all share a size (noteheads, accidentals) has spread ~0; stems, beams and
        slurs, whose lengths vary, have a large spread on that side. ``size_mode="blend"`` uses it.
    stat : str
        ``"median"`` or ``"mean"``.

    ``numpy.asarray(table)`` gives ``sizes``.
    """

    sizes: np.ndarray
    counts: np.ndarray
    spread: np.ndarray
    stat: str

    @property
    def seen(self):
        """(C,) bool: classes with at least one box."""
        return self.counts > 0

    @property
    def num_classes(self):
        return int(self.sizes.shape[0])

    def __array__(self, dtype=None, copy=None):
        return self.sizes if dtype is None else self.sizes.astype(dtype)

    def __len__(self):
        return self.num_classes


def _as_list(x, name):
    """A list of arrays from one array or a list / tuple of arrays."""
    if isinstance(x, (list, tuple)):
        return [_arrays.to_host(v, f"{name}[{i}]").array for i, v in enumerate(x)], True
    return [_arrays.to_host(x, name).array], False


def class_size_table(boxes, labels, num_classes, *, stat="median"):
    """Box ``(height, width)`` per class from training annotations.

    Parameters
    ----------
    boxes : (N, 4) array or list of (N_i, 4) arrays
        ``(x1, y1, x2, y2)`` boxes (torchvision's convention), one array per page when batched.
        Height is ``y2 - y1``, width ``x2 - x1``.
    labels : (N,) integer array or list of (N_i,) arrays
        Class id of each box, in ``[0, num_classes)``; a list exactly when ``boxes`` is a list.
    num_classes : int
        Rows of the table (class ids ``0 .. num_classes - 1``).
    stat : {"median", "mean"}
        Statistic of the sizes of each class (per side, independently).

    Returns
    -------
    ClassSizeTable
        ``sizes`` (num_classes, 2) float64 (NaN rows for classes never seen), ``counts``, ``seen``,
        ``spread``. Pass it (or its ``sizes``) to ``dwd_fast.decode(..., size_mode="class",
        class_sizes=table)``.

    Examples
    --------
    >>> import numpy as np, dwd_fast
    >>> t = dwd_fast.class_size_table(np.array([[0, 0, 4, 10], [5, 5, 9, 13]]), np.array([1, 1]), 3)
    >>> t.sizes[1].tolist(), t.seen.tolist()
    ([9.0, 4.0], [False, True, False])
    """
    if stat not in ("median", "mean"):
        raise ValueError(f"stat must be 'median' or 'mean', got {stat!r}")
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an integer, got {type(num_classes).__name__}")
    C = _arrays.check_nonneg_int(num_classes, "num_classes", maximum=_MAX_CLASSES, minimum=1)
    bl, b_batched = _as_list(boxes, "boxes")
    ll, l_batched = _as_list(labels, "labels")
    if b_batched != l_batched or len(bl) != len(ll):
        raise ValueError(f"boxes and labels must both be arrays or both be lists of the same length, got "
                         f"{len(bl) if b_batched else 'an array'} and {len(ll) if l_batched else 'an array'}")
    hs, ws, cs = [], [], []
    for i, (b, lab) in enumerate(zip(bl, ll)):
        where = f"[{i}]" if b_batched else ""
        if b.dtype.kind not in "iuf" or b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"boxes{where} must be a numeric (N, 4) array (x1, y1, x2, y2), got "
                             f"{b.dtype} of shape {b.shape}")
        if lab.dtype.kind not in "iu" or lab.ndim != 1 or lab.shape[0] != b.shape[0]:
            raise ValueError(f"labels{where} must be an integer (N,) array with one label per box "
                             f"({b.shape[0]} in boxes{where}), got {lab.dtype} of shape {lab.shape}")
        b = b.astype(np.float64)
        if not np.isfinite(b).all():
            raise ValueError(f"boxes{where} must be finite")
        h, w = b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]
        if (h < 0).any() or (w < 0).any():
            raise ValueError(f"boxes{where} must have x2 >= x1 and y2 >= y1")
        if lab.size and (lab.min() < 0 or lab.max() >= C):
            raise ValueError(f"labels{where} must be in [0, num_classes={C}), got values in "
                             f"[{lab.min()}, {lab.max()}]")
        hs.append(h)
        ws.append(w)
        cs.append(lab.astype(np.int64))
    h = np.concatenate(hs) if hs else np.zeros(0)
    w = np.concatenate(ws) if ws else np.zeros(0)
    c = np.concatenate(cs) if cs else np.zeros(0, np.int64)
    counts = np.bincount(c, minlength=C).astype(np.int64)
    sizes = np.full((C, 2), np.nan)
    spread = np.full((C, 2), np.nan)
    order = np.argsort(c, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    for k in np.flatnonzero(counts):
        idx = order[starts[k]:starts[k + 1]]
        for j, v in enumerate((h[idx], w[idx])):
            if stat == "median":
                m = np.median(v)
                d = np.median(np.abs(v - m))
            else:
                m = v.mean()
                d = v.std()
            sizes[k, j] = m
            spread[k, j] = d / m if m > 0 else (0.0 if d == 0 else np.inf)
    return ClassSizeTable(sizes, counts, spread, stat)


_MAX_CLASSES = 2**24  # the table is (num_classes, 2) float64: 256 MiB at most


def _check_table(class_sizes):
    """(sizes (C, 2) float64 with NaN rows for unseen classes, spread (C, 2) or None)."""
    if isinstance(class_sizes, ClassSizeTable):
        t = class_sizes.sizes.astype(np.float64)
        _check_float32_range(t)
        return t, class_sizes.spread.astype(np.float64)
    if class_sizes is None:
        raise ValueError("class_sizes is required with size_mode 'class' or 'blend' "
                         "(build it with dwd_fast.class_size_table)")
    t = _arrays.to_host(class_sizes, "class_sizes").array
    if t.dtype.kind not in "iuf" or t.ndim != 2 or t.shape[1] != 2 or t.shape[0] < 1:
        raise ValueError(f"class_sizes must be a numeric (num_classes, 2) array of (height, width), got "
                         f"{t.dtype} of shape {t.shape}")
    t = t.astype(np.float64)
    nan = np.isnan(t)
    if (nan.any(1) != nan.all(1)).any():
        raise ValueError("class_sizes rows must be all NaN (class never seen) or all finite")
    ok = t[~nan]
    if not (np.isfinite(ok).all() and (ok > 0).all()):
        raise ValueError("class_sizes must hold finite sizes > 0 (or NaN rows for classes never seen)")
    _check_float32_range(t)
    return t, None


_F32_MAX = float(np.finfo(np.float32).max)


def _check_float32_range(t):
    """Boxes are float32: a cached size beyond float32's range would give infinite boxes."""
    big = np.abs(t[~np.isnan(t)])
    if big.size and big.max() > _F32_MAX / 2:
        raise ValueError(f"class_sizes holds {big.max():g}, too large for float32 boxes (at most {_F32_MAX / 2:g})")


def _number(v, name, lo=0.0, hi=np.inf):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    if not (lo <= v <= hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v!r}")
    return float(v)


def check_size_mode(size_mode, class_sizes, class_confidence, class_spread):
    """Validate decode's size-mode options before any kernel runs; returns the prepared table or None."""
    if size_mode not in SIZE_MODES:
        raise ValueError(f"size_mode must be one of {SIZE_MODES}, got {size_mode!r}")
    _number(class_confidence, "class_confidence", 0.0, 1.0)
    _number(class_spread, "class_spread")
    if size_mode == "regress":
        return None
    return _check_table(class_sizes)


def apply_size_mode(det, size_mode, table, *, class_confidence=0.5, class_spread=0.15):
    """Replace regressed box sizes by cached class sizes, per object (numpy, in place on ``det``'s boxes).

    ``det`` is a dict of one page's kernel outputs (numpy): ``boxes`` (N, 4) float32, ``centers`` (N, 2)
    ``(row, col)``, ``labels`` (N,), ``class_scores`` (N,). ``table`` is the output of the validation:
    ``(sizes (C, 2), spread (C, 2) or None)``. The new box of an object whose side is replaced is centred
    on the object's centre: ``x = col + 0.5 -/+ width / 2``, ``y = row + 0.5 -/+ height / 2`` (the kernel's
    own convention), each side independently.

    - ``"class"``: both sides from the table, for every object whose class id is in the table and was
      seen; other objects keep their regressed box.
    - ``"blend"``: side ``k`` (height, width) of an object comes from the table when its class was seen,
      its ``class_scores >= class_confidence`` and the class's relative ``spread[k] <= class_spread``
      (always true when the table is a plain array, which has no spread); otherwise it keeps the
      regressed side. A wrong class makes the cached size wrong, and a class whose boxes vary in size
      (stem lengths, beams, slurs) has no size to cache, so only a confident class with a consistent
      side is trusted; the choice is all or nothing per side because a mix of two sizes is the right
      size of neither.
    """
    if size_mode == "regress":
        return det
    sizes, spread = table
    labels = np.asarray(det["labels"]).astype(np.int64)
    n = labels.shape[0]
    if n == 0:
        return det
    C = sizes.shape[0]
    inside = (labels >= 0) & (labels < C)
    lab = np.where(inside, labels, 0)
    cached = sizes[lab]  # (N, 2)
    use = inside[:, None] & ~np.isnan(cached)
    if size_mode == "blend":
        conf = np.asarray(det["class_scores"], np.float64) >= class_confidence
        use &= conf[:, None]
        if spread is not None:
            use &= spread[lab] <= class_spread
    boxes = np.asarray(det["boxes"])
    centers = np.asarray(det["centers"], np.float64)
    out = boxes.astype(np.float64)
    for k, (lo, hi, axis) in enumerate(((1, 3, 0), (0, 2, 1))):  # height: y1, y2 on rows; width: x1, x2 on cols
        u = use[:, k]
        c = centers[u, axis] + 0.5
        out[u, lo] = c - cached[u, k] / 2
        out[u, hi] = c + cached[u, k] / 2
    det["boxes"] = out.astype(boxes.dtype)
    return det
