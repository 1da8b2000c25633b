"""Page pictures with boxes drawn on them (the demo's and `dwd-fast detect`'s overlay PNGs)."""

from __future__ import annotations

import numpy as np

from ._files import save_image

__all__ = ["overlay"]


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
