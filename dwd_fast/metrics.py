"""Detection evaluation: COCO's bbox mAP and the DeepScoresV2 toolkit's metric (see docs/evaluation.md).

:func:`evaluate` scores detections against ground-truth pages; :func:`write_detections` and
:func:`read_detections` write and read COCO results files and the DeepScoresV2 toolkit's proposals files.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ._ext import cpu_ext
from ._files import atomic_write

__all__ = ["evaluate", "EvaluationResult", "write_detections", "read_detections", "COCO_AREA_RANGES"]

# COCO's thresholds, built exactly as pycocotools builds them (so 0.55 etc. are the same doubles).
_COCO_IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
_COCO_REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
#: COCO's area ranges (pixels squared), for ``evaluate(..., area_range=name)``.
COCO_AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
                    "large": (96.0 ** 2, 1e5 ** 2)}


# --------------------------------------------------------------------------------------------------
# Inputs


def _np(x, name):
    """numpy view of an array-like (numpy, torch on any device, lists)."""
    if x is None:
        return None
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().numpy()
    elif hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        x = x.get()
    try:
        return np.asarray(x)
    except Exception as e:  # noqa: BLE001 - ragged lists etc.
        raise TypeError(f"{name}: not an array ({type(x).__name__}): {e}") from None


def _field(obj, key, name, required=True):
    if isinstance(obj, Mapping):
        if key in obj:
            return obj[key]
    elif hasattr(obj, key):
        return getattr(obj, key)
    if required:
        raise TypeError(f"{name}: has no {key!r} (expected a page, a dict with {key!r}, or Detections)")
    return None


def _finite_coordinates(a, name):
    """``a`` as float64, after checking that it holds real, finite numbers."""
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite coordinates")
    return a


def _boxes(x, name, n=None):
    a = _np(x, name)
    if a.size == 0 and (n is None or n == 0):
        return np.zeros((0, 4), np.float64)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{name}: expected an (N, 4) array of (x1, y1, x2, y2), got shape {a.shape}")
    a = _finite_coordinates(a, name)
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name}: {a.shape[0]} boxes but {n} labels")
    if (a[:, 2] < a[:, 0]).any() or (a[:, 3] < a[:, 1]).any():
        raise ValueError(f"{name}: boxes must have x2 >= x1 and y2 >= y1 (xyxy order)")
    return a


def _oriented(x, name, n):
    if x is None:
        return None
    a = _np(x, name)
    if a.size == 0 and n == 0:
        return np.zeros((0, 8), np.float64)
    if a.ndim == 3 and a.shape[1:] == (4, 2):
        a = a.reshape(a.shape[0], 8)
    if a.ndim != 2 or a.shape[1] != 8:
        raise ValueError(f"{name}: expected (N, 4, 2) corners or (N, 8) values, got shape {a.shape}")
    a = _finite_coordinates(a, name)
    if a.shape[0] != n:
        raise ValueError(f"{name}: {a.shape[0]} polygons but {n} labels")
    return a


def _labels(x, name, num_classes):
    a = _np(x, name)
    if a.size == 0:
        return np.zeros(0, np.int64)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of labels, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.isfinite(a).all() and (a == np.round(a)).all():
            a = a.astype(np.int64)
        else:
            raise TypeError(f"{name}: labels must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    bad = (a < 1) | ((a > num_classes) if num_classes is not None else False)
    if bad.any():
        v = int(a[np.argmax(bad)])
        lim = f"1..{num_classes}" if num_classes is not None else ">= 1"
        raise ValueError(f"{name}: label {v} outside {lim} (labels are contiguous class ids, 0 = background)")
    return a


def _class_space(ground_truth):
    """(pages, class_names or None, names_indexed_by_label)."""
    names = None
    pages = ground_truth
    if not isinstance(ground_truth, (Sequence, Mapping)) and hasattr(ground_truth, "pages"):
        pages = ground_truth.pages
        names = getattr(ground_truth, "class_names", None)
    elif isinstance(ground_truth, Mapping) and "pages" in ground_truth:
        pages, names = ground_truth["pages"], ground_truth.get("class_names")
    if isinstance(pages, (str, bytes)) or not isinstance(pages, Sequence):
        raise TypeError("ground_truth: expected a dataset (with .pages), or a list of pages / dicts with "
                        f"'boxes' and 'labels', got {type(ground_truth).__name__}")
    if names is not None:
        names = [str(s) for s in names]
        if names and names[0].lower() == "background":
            names = names[1:]
    return list(pages), names


@dataclass
class _Flat:
    img: np.ndarray
    cls: np.ndarray  # 0-based
    boxes: np.ndarray  # (n, 4) xyxy float64
    oriented: Optional[np.ndarray]  # (n, 8) or None
    score: Optional[np.ndarray] = None


def _cat(parts, dim, dtype):
    return np.concatenate(parts).astype(dtype) if parts else np.zeros((0,) + dim, dtype)


def _flatten_gt(pages, num_classes):
    imgs, clss, boxes, orients, ids = [], [], [], [], []
    have_oriented = True
    for i, p in enumerate(pages):
        name = f"ground_truth[{i}]"
        lab = _labels(_field(p, "labels", name), f"{name}.labels", num_classes)
        b = _boxes(_field(p, "boxes", name), f"{name}.boxes", len(lab))
        o = _oriented(_field(p, "oriented", name, required=False), f"{name}.oriented", len(lab))
        iid = _field(p, "image_id", name, required=False)
        ids.append(i if iid is None else int(iid))
        have_oriented &= o is not None
        imgs.append(np.full(len(lab), i, np.int64))
        clss.append(lab - 1)
        boxes.append(b)
        orients.append(o)
    if len(set(ids)) != len(ids):
        raise ValueError("ground_truth: two pages have the same image_id")
    ori = _cat(orients, (8,), np.float64) if have_oriented and pages else None
    return _Flat(_cat(imgs, (), np.int64), _cat(clss, (), np.int64), _cat(boxes, (4,), np.float64), ori), ids


def _flatten_dt(detections, ids, num_classes):
    n_pages = len(ids)
    if isinstance(detections, Mapping):
        where = {iid: i for i, iid in enumerate(ids)}
        unknown = [k for k in detections if int(k) not in where]
        if unknown:
            raise ValueError(f"detections: image_id {unknown[0]!r} is not in ground_truth")
        items = [(where[int(k)], v, f"detections[{k!r}]") for k, v in detections.items()]
    elif isinstance(detections, Sequence) and not isinstance(detections, (str, bytes)):
        if len(detections) != n_pages:
            raise ValueError(f"detections: {len(detections)} entries for {n_pages} ground-truth pages (pass a list "
                             "aligned with the pages, or a dict keyed by image_id)")
        items = [(i, d, f"detections[{i}]") for i, d in enumerate(detections)]
    else:
        raise TypeError("detections: expected a list of Detections / dicts aligned with the ground-truth pages, "
                        f"or a dict keyed by image_id, got {type(detections).__name__}")
    # Page order, then each page's own order (COCO's concatenation order on score ties).
    items.sort(key=lambda t: t[0])
    imgs, clss, boxes, orients, scores = [], [], [], [], []
    have_oriented = True
    for i, d, name in items:
        if d is None:
            continue
        lab = _labels(_field(d, "labels", name), f"{name}.labels", num_classes)
        b = _boxes(_field(d, "boxes", name), f"{name}.boxes", len(lab))
        s = _np(_field(d, "scores", name), f"{name}.scores")
        if s.size == 0 and len(lab) == 0:
            s = np.zeros(0)
        if s.ndim != 1 or s.shape[0] != len(lab):
            raise ValueError(f"{name}.scores: expected ({len(lab)},) scores, got shape {s.shape}")
        if s.dtype.kind not in "fiu":
            raise TypeError(f"{name}.scores: expected real numbers, got dtype {s.dtype}")
        s = s.astype(np.float64)
        if not np.isfinite(s).all():
            raise ValueError(f"{name}.scores: contains NaN or infinite scores")
        o = _oriented(_field(d, "oriented", name, required=False), f"{name}.oriented", len(lab))
        have_oriented &= o is not None
        imgs.append(np.full(len(lab), i, np.int64))
        clss.append(lab - 1)
        boxes.append(b)
        orients.append(o)
        scores.append(s)
    ori = _cat(orients, (8,), np.float64) if have_oriented and imgs else None
    return _Flat(_cat(imgs, (), np.int64), _cat(clss, (), np.int64), _cat(boxes, (4,), np.float64), ori,
                 _cat(scores, (), np.float64))


def _max_label(*parts):
    m = 0
    for p in parts:
        if p.cls.size:
            m = max(m, int(p.cls.max()) + 1)
    return m


# --------------------------------------------------------------------------------------------------
# Result


@dataclass
class EvaluationResult:
    """Scores of detections against ground truth, per class and overall.

    Per-class arrays have one entry per class, index ``c`` for label ``c + 1``; NaN marks a class that
    the protocol leaves out of the mean (COCO: no ground truth; DeepScores faithful: no detection).

    Attributes
    ----------
    protocol : str
        ``"coco"`` or ``"deepscores"`` (``faithful`` tells which DeepScores variant).
    class_names : list of str
    iou_thresholds : (T,) float64
        0.50:0.05:0.95.
    ap, ap50, ap75 : (C,) float64
        AP averaged over the IoU thresholds, at 0.5 and at 0.75.
    recall : (C,) float64
        Final recall averaged over the IoU thresholds (COCO's AR at the detection cap).
    num_gt, num_dets : (C,) int64
        Ground truths (COCO: not ignored) and detections evaluated, per class.
    map, map50, map75, mar : float
        Means of ``ap``, ``ap50``, ``ap75`` and ``recall`` over the classes that count (NaN if none).
    curves : list of (recall, precision) pairs
        Precision-recall curve of each class at IoU 0.5 (COCO: precision at the 101 recall points;
        DeepScores: the raw curve of the ranked detections). Empty arrays for a class without one.
    precision : (T, R, C) float64 or None
        COCO's ``eval["precision"]`` for the chosen area range and cap (-1 where a class has no ground truth).
    recall_thresholds : (R,) float64 or None
        COCO's 101 recall points.
    pooled_ap : float or None
        DeepScores only: the toolkit's ``classwise=False`` AP (every class's detections ranked together
        against all ground truths), averaged over the IoU thresholds.
    faithful : bool or None
        DeepScores only: matched lowest score first, as the toolkit does.
    """

    protocol: str
    class_names: list
    iou_thresholds: np.ndarray
    ap: np.ndarray
    ap50: np.ndarray
    ap75: np.ndarray
    recall: np.ndarray
    num_gt: np.ndarray
    num_dets: np.ndarray
    map: float
    map50: float
    map75: float
    mar: float
    curves: list = field(repr=False)
    precision: Optional[np.ndarray] = field(default=None, repr=False)
    recall_thresholds: Optional[np.ndarray] = field(default=None, repr=False)
    pooled_ap: Optional[float] = None
    faithful: Optional[bool] = None

    def table(self, all_classes=False):
        """A readable per-class table (AP, AP50, AP75, recall, GT and detection counts) and the overall row.

        Parameters
        ----------
        all_classes : bool
            Also list classes with neither ground truth nor detections (left out by default).
        """
        w = max([len("class")] + [len(n) for n in self.class_names] + [len("mean")])
        head = f"{'class':<{w}}  {'AP':>6}  {'AP50':>6}  {'AP75':>6}  {'recall':>6}  {'GT':>7}  {'dets':>7}"
        lines = [head, "-" * len(head)]

        def f(v):
            return "     -" if v is None or not np.isfinite(v) else f"{100 * v:6.2f}"

        for c, name in enumerate(self.class_names):
            if not all_classes and self.num_gt[c] == 0 and self.num_dets[c] == 0:
                continue
            lines.append(f"{name:<{w}}  {f(self.ap[c])}  {f(self.ap50[c])}  {f(self.ap75[c])}  {f(self.recall[c])}  "
                         f"{int(self.num_gt[c]):>7}  {int(self.num_dets[c]):>7}")
        lines.append("-" * len(head))
        lines.append(f"{'mean':<{w}}  {f(self.map)}  {f(self.map50)}  {f(self.map75)}  {f(self.mar)}  "
                     f"{int(self.num_gt.sum()):>7}  {int(self.num_dets.sum()):>7}")
        kind = self.protocol if self.faithful is None else f"{self.protocol} ({'faithful' if self.faithful else 'corrected'})"
        lines.append(f"protocol {kind}: AP = mean over IoU 0.50:0.05:0.95, in %"
                     + (f"; pooled AP (toolkit, classwise=False) {f(self.pooled_ap).strip()}"
                        if self.pooled_ap is not None else ""))
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def as_dict(self):
        """Plain floats and lists (JSON-serialisable): the overall figures and the per-class ones by name."""
        def nz(v):
            return None if not np.isfinite(v) else float(v)

        return {"protocol": self.protocol, "faithful": self.faithful, "mAP": nz(self.map), "mAP50": nz(self.map50),
                "mAP75": nz(self.map75), "mAR": nz(self.mar),
                "pooled_ap": None if self.pooled_ap is None else nz(self.pooled_ap),
                "classes": {n: {"AP": nz(self.ap[c]), "AP50": nz(self.ap50[c]), "AP75": nz(self.ap75[c]),
                                "recall": nz(self.recall[c]), "num_gt": int(self.num_gt[c]),
                                "num_dets": int(self.num_dets[c])}
                            for c, n in enumerate(self.class_names) if self.num_gt[c] or self.num_dets[c]}}

    def plot(self, path, classes=None, max_classes=20):
        """Writes the precision-recall curves at IoU 0.5 as a PNG (matplotlib if importable, else Pillow).

        Parameters
        ----------
        path : str or os.PathLike
            The PNG file (written to a temporary name first, then renamed).
        classes : sequence of int, optional
            Labels to draw; default: the ``max_classes`` classes with the most ground truth.
        max_classes : int
        """
        if classes is None:
            order = np.argsort(-self.num_gt, kind="stable")
            classes = [int(c) + 1 for c in order[:max_classes] if self.num_gt[c] > 0]
        curves = [(self.class_names[c - 1], *self.curves[c - 1]) for c in classes]
        title = f"precision-recall at IoU 0.5 ({self.protocol}), mAP@0.5 = {100 * self.map50:.1f}"
        atomic_write(path, lambda f: _draw_pr(f, curves, title), binary=True, suffix=".png")


def _draw_pr(f, curves, title):
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001 - any import failure: fall back to Pillow
        plt = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
        cmap = plt.get_cmap("tab20")
        for i, (name, r, p) in enumerate(curves):
            ax.plot(r, p, label=name, lw=1.2, color=cmap(i % 20), ls=("-", "--", ":")[(i // 20) % 3])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(title, fontsize=10)
        if curves:
            ax.legend(fontsize=7, loc="lower left", ncol=2)
        ax.grid(alpha=0.3)
        fig.savefig(f, format="png")
        plt.close(fig)
        return
    from PIL import Image, ImageDraw

    W, H, m = 800, 600, 50
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    d.rectangle([m, m, W - m, H - m], outline="black")
    d.text((m, 15), title, fill="black")
    for i, (name, r, p) in enumerate(curves):
        col = tuple(int(v) for v in np.array([(i * 97) % 255, (i * 57 + 80) % 255, (i * 151 + 40) % 255]))
        if len(r):
            pts = [(m + float(x) * (W - 2 * m), H - m - float(y) * (H - 2 * m)) for x, y in zip(r, p)]
            if len(pts) > 1:
                d.line(pts, fill=col, width=2)
        d.text((W - m - 150, m + 5 + 12 * i), name, fill=col)
    im.save(f, format="PNG")


# --------------------------------------------------------------------------------------------------
# evaluate


def evaluate(detections, ground_truth, *, protocol="coco", max_dets=None, area_range="all", faithful=True,
             oriented=None, reserve=0.2, iou_thresholds=None, class_names=None):
    """Scores detections against ground-truth pages.

    Parameters
    ----------
    detections : list or dict
        Per page: :class:`dwd_fast.Detections`, or a dict with ``"boxes"`` (N, 4) xyxy, ``"labels"`` (N,)
        in 1..C and ``"scores"`` (N,) (torchvision's format; ``"oriented"`` (N, 4, 2) optional). Either a
        list aligned with the ground-truth pages, or a dict keyed by ``image_id`` (pages without an entry
        have no detections). numpy arrays or torch tensors. Scores may be any finite numbers (only
        their order matters; negative ones are accepted).
    ground_truth : dataset or list
        A dataset with ``.pages`` (and ``.class_names``), e.g. :func:`dwd_fast.data.deepscores.read_deepscores`'s,
        or a list of pages / dicts with ``"boxes"`` (N, 4) xyxy, ``"labels"`` (N,) in 1..C and optionally
        ``"oriented"`` (N, 4, 2) and ``"image_id"``.
    protocol : {"coco", "deepscores"}
        ``"coco"``: COCOeval's bbox matching and 101-point AP, exactly as pycocotools and faster-coco-eval
        compute it. ``"deepscores"``: the DeepScoresV2 toolkit's (obb_anns) metric.
    max_dets : int, optional
        COCO: at most this many detections per image and class, the highest scored (COCO's ``maxDets``).
        Default: no cap (COCO's own default of 100 would silently drop most of a page's symbols).
    area_range : str or (float, float)
        COCO: ``"all"`` (default), ``"small"``, ``"medium"``, ``"large"`` or ``(lo, hi)`` in pixels²:
        ground truths whose box area is outside are ignored, as are unmatched detections outside.
    faithful : bool
        DeepScores: match each image's proposals lowest score first, as the toolkit does (a duplicate
        scored 0.1 takes the ground truth from one scored 0.9), and average over the classes that have
        proposals (the toolkit's ``classwise`` output). ``False``: highest score first, and the mean over
        the classes that have ground truth.
    oriented : bool, optional
        DeepScores: compare oriented boxes (polygon IoU of ``"oriented"`` corners) instead of
        axis-aligned ones (intersection over the enclosing box). Default: oriented when every detection
        entry and every ground-truth page has ``oriented``.
    reserve : float
        DeepScores: the overlap a proposal needs to reserve a ground truth (the toolkit's 0.2).
    iou_thresholds : sequence of float, optional
        The IoU (overlap) thresholds AP is averaged over; default COCO's 0.50:0.05:0.95 (the toolkit's
        ``iou_thrs`` argument). ``ap50`` / ``ap75`` are NaN when 0.5 / 0.75 is not among them.
    class_names : sequence of str, optional
        Names of labels 1..C (default: the dataset's ``class_names``, else "1".."C").

    Returns
    -------
    EvaluationResult
        Per-class AP, AP50, AP75, recall, ground-truth counts, the means, and the precision-recall
        curves; ``str(result)`` is a per-class table.

    Raises
    ------
    ValueError, TypeError
        Unknown protocol, lists of different lengths, wrong shapes, labels outside 1..C, NaN boxes or scores.

    Examples
    --------
    >>> r = dwd_fast.evaluate(dets, dataset)            # doctest: +SKIP
    >>> print(r); r.map, r.map50                        # doctest: +SKIP
    """
    if protocol not in ("coco", "deepscores"):
        raise ValueError(f"protocol: expected 'coco' or 'deepscores', got {protocol!r}")
    if iou_thresholds is None:
        thr = _COCO_IOU_THRS
    else:
        thr = _np(iou_thresholds, "iou_thresholds")
        if thr.ndim != 1 or thr.size == 0 or thr.dtype.kind not in "fiu":
            raise ValueError(f"iou_thresholds: expected a non-empty 1-D sequence of numbers, got {iou_thresholds!r}")
        thr = thr.astype(np.float64)
        if not ((thr >= 0) & (thr <= 1)).all():
            raise ValueError(f"iou_thresholds: expected values in [0, 1], got {iou_thresholds!r}")
    pages, names = _class_space(ground_truth)
    if class_names is not None:
        names = [str(s) for s in class_names]
    nc = len(names) if names is not None else None
    gt, ids = _flatten_gt(pages, nc)
    dt = _flatten_dt(detections, ids, nc)
    if nc is None:
        nc = _max_label(gt, dt)
        names = [str(c) for c in range(1, nc + 1)]
    if protocol == "coco":
        return _coco(dt, gt, len(pages), ids, nc, names, max_dets, area_range, thr)
    if not isinstance(faithful, (bool, np.bool_)):
        raise TypeError(f"faithful: expected a bool, got {type(faithful).__name__}")
    if not (isinstance(reserve, (int, float)) and 0 <= reserve < 1):
        raise ValueError(f"reserve: expected a number in [0, 1), got {reserve!r}")
    return _deepscores(dt, gt, len(pages), nc, names, bool(faithful), oriented, float(reserve), thr)


def _mean(v):
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _xywh(b):
    out = b.copy()
    out[:, 2] = b[:, 2] - b[:, 0]
    out[:, 3] = b[:, 3] - b[:, 1]
    return out


def _at(thr, v):
    """Index of threshold v in thr, or None."""
    hit = np.flatnonzero(np.isclose(thr, v, rtol=0, atol=1e-12))
    return int(hit[0]) if hit.size else None


def _coco(dt, gt, n_pages, ids, nc, names, max_dets, area_range, thr):
    if max_dets is None:
        cap = -1
    elif isinstance(max_dets, (int, np.integer)) and not isinstance(max_dets, bool) and max_dets >= 1:
        cap = int(max_dets)
    else:
        raise ValueError(f"max_dets: expected a positive int or None (no cap), got {max_dets!r}")
    if isinstance(area_range, str):
        if area_range not in COCO_AREA_RANGES:
            raise ValueError(f"area_range: expected one of {sorted(COCO_AREA_RANGES)} or (lo, hi), got {area_range!r}")
        lo, hi = COCO_AREA_RANGES[area_range]
    else:
        try:
            lo, hi = (float(v) for v in area_range)
        except Exception:  # noqa: BLE001
            raise TypeError(f"area_range: expected a name or (lo, hi), got {area_range!r}") from None
        if not lo <= hi:
            raise ValueError(f"area_range: expected lo <= hi, got {area_range!r}")
    # COCO concatenates images in sorted image-id order: rank the pages so.
    rank = np.empty(n_pages, np.int64)
    rank[np.argsort(np.asarray(ids, np.int64), kind="stable")] = np.arange(n_pages)
    gxywh = _xywh(gt.boxes)
    garea = gxywh[:, 2] * gxywh[:, 3]
    prec, rec, npig, ndet = cpu_ext().coco_eval(
        rank[dt.img], dt.cls, dt.score, _xywh(dt.boxes), rank[gt.img], gt.cls, gxywh, garea, n_pages, nc,
        thr, _COCO_REC_THRS, cap, lo, hi)
    valid = npig > 0
    i50, i75 = _at(thr, 0.5), _at(thr, 0.75)
    nan = np.full(nc, np.nan)
    ap = np.where(valid, prec.mean(axis=(0, 1)), np.nan)
    ap50 = nan if i50 is None else np.where(valid, prec[i50].mean(axis=0), np.nan)
    ap75 = nan if i75 is None else np.where(valid, prec[i75].mean(axis=0), np.nan)
    ar = np.where(valid, rec.mean(axis=0), np.nan)
    ic = 0 if i50 is None else i50
    curves = [(_COCO_REC_THRS, prec[ic, :, c]) if valid[c] else (np.zeros(0), np.zeros(0)) for c in range(nc)]
    return EvaluationResult("coco", list(names), thr.copy(), ap, ap50, ap75, ar, npig, ndet,
                            _mean(ap), _mean(ap50), _mean(ap75), _mean(ar), curves, prec, _COCO_REC_THRS.copy())


def _voc_ap(tp, nr_gt):
    """The toolkit's AP for each threshold row of tp (T, n) over ranked records: area under the
    precision envelope (VOC 2010+ 'area', mmdetection's average_precision), with the final recall."""
    T, n = tp.shape
    tps = np.cumsum(tp, axis=1, dtype=np.float64)
    fps = np.cumsum(~tp, axis=1, dtype=np.float64)
    rec = tps / nr_gt if nr_gt > 0 else tps * 0
    prec = tps / (fps + tps + np.spacing(1))
    mrec = np.hstack([np.zeros((T, 1)), rec, np.ones((T, 1))])
    mpre = np.hstack([np.zeros((T, 1)), prec, np.zeros((T, 1))])
    mpre = np.maximum.accumulate(mpre[:, ::-1], axis=1)[:, ::-1]
    step = mrec[:, 1:] != mrec[:, :-1]
    ap = np.sum(np.where(step, (mrec[:, 1:] - mrec[:, :-1]) * mpre[:, 1:], 0.0), axis=1)
    final = rec[:, -1] if n else np.zeros(T)
    return ap, final, rec, prec


def _deepscores(dt, gt, n_pages, nc, names, faithful, oriented, reserve, thr):
    if oriented is None:
        oriented = dt.oriented is not None and gt.oriented is not None and dt.img.size > 0
    if oriented:
        if gt.oriented is None:
            raise ValueError("ground_truth: oriented=True but the pages have no 'oriented' corners")
        if dt.oriented is None:
            raise ValueError("detections: oriented=True but the detections have no 'oriented' corners")
        dgeom, ggeom = dt.oriented, gt.oriented
    else:
        dgeom, ggeom = dt.boxes, gt.boxes
    overlap, _ = cpu_ext().deepscores_match(dt.img, dt.cls, dt.score, dgeom, gt.img, gt.cls, ggeom, n_pages, nc,
                                            faithful, reserve)
    i50, i75 = _at(thr, 0.5), _at(thr, 0.75)
    num_gt = np.bincount(gt.cls, minlength=nc).astype(np.int64)
    num_dets = np.bincount(dt.cls, minlength=nc).astype(np.int64)
    # The toolkit's record order: images in order, each image's proposals by ascending score (its
    # matching order); then ranked by score with argsort()[::-1].
    if faithful:
        rec_order = np.lexsort((dt.score, dt.img))
    else:
        rec_order = np.lexsort((-dt.score, dt.img))
    s_rec = dt.score[rec_order]

    def ranked(sel):
        s = s_rec[sel]
        return np.argsort(s, kind="stable")[::-1] if faithful else np.argsort(-s, kind="stable")

    cls_rec = dt.cls[rec_order]
    ov_rec = overlap[rec_order]
    ap = np.full(nc, np.nan)
    ap50, ap75, recall = ap.copy(), ap.copy(), ap.copy()
    curves = [(np.zeros(0), np.zeros(0))] * nc
    by_cls = np.argsort(cls_rec, kind="stable")
    bounds = np.searchsorted(cls_rec[by_cls], np.arange(nc + 1))
    for c in range(nc):
        sel = by_cls[bounds[c]:bounds[c + 1]]
        if sel.size == 0:
            if not faithful and num_gt[c] > 0:
                ap[c] = ap50[c] = ap75[c] = recall[c] = 0.0
            continue
        if not faithful and num_gt[c] == 0:
            continue
        o = ov_rec[sel][ranked(sel)]
        a, fin, r, p = _voc_ap(o[None, :] >= thr[:, None], num_gt[c])
        ap[c], recall[c] = a.mean(), fin.mean()
        ap50[c] = np.nan if i50 is None else a[i50]
        ap75[c] = np.nan if i75 is None else a[i75]
        ic = 0 if i50 is None else i50
        curves[c] = (r[ic], p[ic])
    pooled = None
    if dt.img.size:
        o = ov_rec[ranked(np.arange(len(ov_rec)))]
        pooled = float(_voc_ap(o[None, :] >= thr[:, None], int(num_gt.sum()))[0].mean())
    return EvaluationResult("deepscores", list(names), thr.copy(), ap, ap50, ap75, recall, num_gt, num_dets,
                            _mean(ap), _mean(ap50), _mean(ap75), _mean(recall), curves, pooled_ap=pooled,
                            faithful=faithful)


# --------------------------------------------------------------------------------------------------
# Detection files


def _category_lut(category_ids, labels, name="category_ids"):
    """Dataset category ids of contiguous labels: category_ids[label] (a sequence indexed by label, as a
    dataset's ``category_ids`` whose entry 0 is the background) or category_ids[label] of a mapping."""
    if category_ids is None:
        return labels.astype(np.int64)
    if isinstance(category_ids, Mapping):
        try:
            return np.array([int(category_ids[int(v)]) for v in labels], np.int64)
        except KeyError as e:
            raise ValueError(f"{name}: no category id for label {e.args[0]}") from None
    lut = np.asarray(category_ids)
    if lut.ndim != 1 or lut.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected a mapping or a 1-D integer array indexed by label")
    if labels.size and (labels.min() < 0 or labels.max() >= len(lut)):
        raise ValueError(f"{name}: {len(lut)} entries (indexed by label, entry 0 = background) but a label is "
                         f"{int(labels.max())}")
    return lut[labels].astype(np.int64)


def _det_arrays(d, name):
    lab = _labels(_field(d, "labels", name), f"{name}.labels", None)
    b = _boxes(_field(d, "boxes", name), f"{name}.boxes", len(lab))
    s = _np(_field(d, "scores", name), f"{name}.scores").astype(np.float64).reshape(-1)
    if s.shape[0] != len(lab):
        raise ValueError(f"{name}.scores: expected ({len(lab)},) scores, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name}.scores: contains NaN or infinite scores")
    o = _oriented(_field(d, "oriented", name, required=False), f"{name}.oriented", len(lab))
    return lab, b, s, o


def to_coco(detections, image_id, category_ids=None):
    """COCO results records of one page's detections: ``[{"image_id", "category_id", "bbox": [x, y, w, h],
    "score"}]``. See :meth:`dwd_fast.Detections.to_coco`."""
    lab, b, s, _ = _det_arrays(detections, "detections")
    cat = _category_lut(category_ids, lab)
    iid = int(image_id)
    b32 = b.tolist()
    return [{"image_id": iid, "category_id": int(c), "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(sc)}
            for (x0, y0, x1, y1), c, sc in zip(b32, cat.tolist(), s.tolist())]


def to_deepscores(detections, image_id, category_ids=None, oriented=None):
    """The DeepScoresV2 toolkit's proposal records of one page: ``[{"bbox", "cat_id", "img_id", "score"}]``,
    ``bbox`` = ``[x0, y0, x1, y1]`` (its ``a_bbox`` layout), or the 8 corner values ``[x0, y0, ..., x3, y3]``
    (``o_bbox``) when ``oriented`` (default: when the detections carry ``oriented``).
    See :meth:`dwd_fast.Detections.to_deepscores`."""
    lab, b, s, o = _det_arrays(detections, "detections")
    if oriented is None:
        oriented = o is not None
    if oriented and o is None:
        raise ValueError("oriented: the detections have no 'oriented' corners")
    cat = _category_lut(category_ids, lab)
    geo = (o if oriented else b).tolist()
    iid = int(image_id)
    return [{"bbox": g, "cat_id": int(c), "img_id": iid, "score": float(sc)}
            for g, c, sc in zip(geo, cat.tolist(), s.tolist())]


def write_detections(path, detections, image_ids, format="coco", category_ids=None, annotation_set="deepscores",
                     oriented=None):
    """Writes detections of several pages as a COCO results file or a DeepScoresV2 proposals file.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file, written to a temporary name in the same folder, then renamed.
    detections : sequence
        Per page: :class:`dwd_fast.Detections` or a dict with ``boxes``, ``labels``, ``scores``.
    image_ids : sequence of int
        The dataset's image id of each page.
    format : {"coco", "deepscores"}
        ``"coco"``: a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.
        ``"deepscores"``: ``{"annotation_set": ..., "proposals": [{"bbox", "cat_id", "img_id", "score"}]}``
        (obb_anns' ``load_proposals``), bbox ``[x0, y0, x1, y1]`` or 8 corner values.
    category_ids : sequence or mapping, optional
        Label -> the dataset's category id (a dataset's ``category_ids``, indexed by label); default:
        the labels themselves.
    annotation_set : str
        DeepScores: the annotation set the categories belong to.
    oriented : bool, optional
        DeepScores: write the 8 corner values (default: when every page's detections carry ``oriented``).
        The toolkit reads one kind per file.
    """
    if format not in ("coco", "deepscores"):
        raise ValueError(f"format: expected 'coco' or 'deepscores', got {format!r}")
    if isinstance(detections, (str, bytes)) or not isinstance(detections, Sequence):
        raise TypeError(f"detections: expected a list of per-page detections, got {type(detections).__name__}")
    image_ids = list(image_ids)
    if len(image_ids) != len(detections):
        raise ValueError(f"image_ids: {len(image_ids)} ids for {len(detections)} pages of detections")
    if format == "coco":
        recs = [r for d, i in zip(detections, image_ids) for r in to_coco(d, i, category_ids)]
        doc: Any = recs
    else:
        if oriented is None:
            oriented = bool(detections) and all(_field(d, "oriented", "detections", required=False) is not None
                                                for d in detections)
        recs = [r for d, i in zip(detections, image_ids) for r in to_deepscores(d, i, category_ids, oriented)]
        doc = {"annotation_set": str(annotation_set), "proposals": recs}
    atomic_write(path, lambda f: json.dump(doc, f))


def read_detections(path, category_ids=None):
    """Reads a COCO results file or a DeepScoresV2 proposals file (the kind is told by its content).

    Parameters
    ----------
    path : str or os.PathLike
    category_ids : sequence or mapping, optional
        Label -> dataset category id (as for :func:`write_detections`); the file's category ids are
        mapped back to labels with it. Default: labels are the file's category ids.

    Returns
    -------
    dict
        ``{image_id: {"boxes" (N, 4) float32 xyxy, "labels" (N,) int64, "scores" (N,) float32,
        "oriented" (N, 4, 2) float32 (DeepScores files with 8-value boxes; ``boxes`` is then their
        enclosing box)}}``, accepted by :func:`evaluate` (matched to the pages by image id).
    """
    path = os.fspath(path)
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON: {e}") from None
    fmt = detections_format(doc, path)
    recs = doc if fmt == "coco" else doc["proposals"]
    inv = None
    if category_ids is not None:
        if isinstance(category_ids, Mapping):
            inv = {int(v): int(k) for k, v in category_ids.items()}
        else:
            inv = {int(v): i for i, v in enumerate(np.asarray(category_ids).tolist()) if i > 0}
    per: dict = {}
    for n, r in enumerate(recs):
        where = f"{path}: record {n}"
        if not isinstance(r, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(r).__name__}")
        try:
            if fmt == "coco":
                iid, cat, bb, sc = r["image_id"], r["category_id"], r["bbox"], r["score"]
            else:
                iid, cat, bb, sc = r["img_id"], r["cat_id"], r["bbox"], r["score"]
        except KeyError as e:
            raise ValueError(f"{where}: missing {e.args[0]!r}") from None
        try:
            iid, cat, sc = int(iid), int(cat), float(sc)
            bb = [float(v) for v in bb]
        except (TypeError, ValueError):
            raise ValueError(f"{where}: image id, category id, bbox or score is not a number") from None
        if inv is not None:
            if cat not in inv:
                raise ValueError(f"{where}: category id {cat} is not in category_ids")
            cat = inv[cat]
        if fmt == "coco":
            if len(bb) != 4:
                raise ValueError(f"{where}: bbox must have 4 values [x, y, w, h], got {len(bb)}")
            box, poly = [bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]], None
        elif len(bb) == 4:
            box, poly = bb, None
        elif len(bb) == 8:
            xs, ys = bb[0::2], bb[1::2]
            box, poly = [min(xs), min(ys), max(xs), max(ys)], bb
        else:
            raise ValueError(f"{where}: bbox must have 4 or 8 values, got {len(bb)}")
        if not all(math.isfinite(v) for v in box + [sc]):
            raise ValueError(f"{where}: NaN or infinite value")
        e = per.setdefault(iid, ([], [], [], []))
        e[0].append(box)
        e[1].append(cat)
        e[2].append(sc)
        e[3].append(poly)
    out = {}
    for iid, (b, c, s, p) in per.items():
        d = {"boxes": np.asarray(b, np.float32).reshape(-1, 4), "labels": np.asarray(c, np.int64),
             "scores": np.asarray(s, np.float32)}
        if all(q is not None for q in p):
            d["oriented"] = np.asarray(p, np.float32).reshape(-1, 4, 2)
        out[iid] = d
    return out


def detections_format(doc, path="detections"):
    """``"coco"`` (a list of results) or ``"deepscores"`` (``{"proposals": [...]}``) for a loaded JSON document."""
    if isinstance(doc, list):
        return "coco"
    if isinstance(doc, Mapping) and isinstance(doc.get("proposals"), list):
        return "deepscores"
    raise ValueError(f"{path}: neither a COCO results list nor a DeepScores proposals file "
                     "({'annotation_set', 'proposals': [...]})")
