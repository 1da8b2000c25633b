"""Detection quality (precision / recall at an IoU threshold) and the demo's overlay picture."""

from __future__ import annotations

import numpy as np

from .._files import save_image


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


def overlay(image, gt_boxes, det_boxes, det_ok=None, path=None, scale=1.0):
    """RGB picture of the page with the ground-truth boxes (green) and the detections (magenta; orange
    for detections that match no ground truth). Returns the PIL image; saved as PNG when ``path``."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    if scale != 1.0:
        img = img.resize((max(1, int(round(img.width * scale))), max(1, int(round(img.height * scale)))),
                         Image.LANCZOS)
    d = ImageDraw.Draw(img)
    for b in np.asarray(gt_boxes, np.float64).reshape(-1, 4) * scale:
        d.rectangle([b[0] - 1, b[1] - 1, max(b[2], b[0]), max(b[3], b[1])], outline=(0, 170, 0))
    det_boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4) * scale
    for i, b in enumerate(det_boxes):
        ok = True if det_ok is None else bool(det_ok[i])
        d.rectangle([b[0], b[1], max(b[2] - 1, b[0]), max(b[3] - 1, b[1])], outline=(220, 0, 200) if ok else (255, 120, 0))
    if path is not None:
        save_image(img, path, optimize=True)
    return img
