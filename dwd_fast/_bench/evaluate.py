"""Detection quality (precision / recall at an IoU threshold) and the demo's overlay picture."""

from __future__ import annotations

import numpy as np

from .._draw import overlay  # noqa: F401  (moved: shared with `dwd-fast detect`)


def box_iou(a, b):
    """(len(a), len(b)) IoU of xyxy boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match(det_boxes, det_labels, det_scores, gt_boxes, gt_labels, iou=0.5):
    """Greedy matching, highest score first (the COCO / VOC rule): a detection is a true positive when
    its best still-unmatched ground-truth box of the same class has IoU >= ``iou``.

    Returns (true-positive flags per detection, matched flags per ground-truth box).
    """
    det_labels = np.asarray(det_labels).reshape(-1)
    gt_labels = np.asarray(gt_labels).reshape(-1)
    m = box_iou(det_boxes, gt_boxes)
    m[det_labels[:, None] != gt_labels[None, :]] = 0
    tp = np.zeros(len(det_labels), bool)
    used = np.zeros(len(gt_labels), bool)
    if m.size == 0:
        return tp, used
    for i in np.argsort(-np.asarray(det_scores, np.float64), kind="stable"):
        row = np.where(used, -1.0, m[i])
        j = int(np.argmax(row))
        if row[j] >= iou:
            used[j] = True
            tp[i] = True
    return tp, used


def precision_recall(det_boxes, det_labels, det_scores, gt_boxes, gt_labels, iou=0.5):
    tp, used = match(det_boxes, det_labels, det_scores, gt_boxes, gt_labels, iou)
    p = float(tp.mean()) if tp.size else 0.0
    r = float(used.mean()) if used.size else 0.0
    return p, r, tp, used
