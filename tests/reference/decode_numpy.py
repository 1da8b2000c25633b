"""Slow, obviously-correct statement of dwd_fast.decode (DESIGN.md §2 "decode"), on scikit-image."""

import numpy as np
from skimage.measure import label as sk_label


def _softmax(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def decode_reference(energy, classes=None, sizes=None, *, cutoff=7, min_size=4, connectivity=2,
                     size_reduce="max", levels=None):
    """One page. Returns a dict of numpy arrays like dwd_fast.Detections."""
    logits = energy.dtype.kind == "f" and energy.ndim == 3
    if logits:
        lv = np.argmax(energy, axis=0)
        p_above = _softmax(energy, 0)[np.arange(energy.shape[0]) > cutoff].sum(axis=0)
        levels = levels or energy.shape[0]
    else:
        lv = energy
        levels = levels or 20
    lab = sk_label(lv > cutoff, connectivity=connectivity)
    out = {k: [] for k in ("boxes", "labels", "scores", "class_scores", "centers", "areas")}
    for l in range(1, lab.max() + 1):
        rr, cc = np.nonzero(lab == l)
        n = rr.size
        if n < min_size:
            continue
        cy, cx = rr.mean(), cc.mean()
        out["centers"].append((cy, cx))
        out["areas"].append(n)
        if logits:
            out["scores"].append(p_above[rr, cc].mean())
        else:
            out["scores"].append(np.clip(lv[rr, cc].max() / (levels - 1), 0, 1))
        if classes is None:
            out["labels"].append(-1)
            out["class_scores"].append(0.0)
        elif classes.dtype.kind == "f":
            mean_p = _softmax(classes[:, rr, cc], 0).mean(axis=1)
            out["labels"].append(int(np.argmax(mean_p)))
            out["class_scores"].append(mean_p.max())
        else:
            counts = np.bincount(classes[rr, cc].astype(np.int64))
            out["labels"].append(int(np.argmax(counts)))
            out["class_scores"].append(counts.max() / n)
        if sizes is None:
            out["boxes"].append((cc.min(), rr.min(), cc.max() + 1, rr.max() + 1))
        else:
            red = {"max": np.max, "mean": np.mean, "median": np.median}[size_reduce]
            h = max(0.0, red(sizes[0, rr, cc].astype(np.float64)))
            w = max(0.0, red(sizes[1, rr, cc].astype(np.float64)))
            out["boxes"].append((cx + 0.5 - w / 2, cy + 0.5 - h / 2, cx + 0.5 + w / 2, cy + 0.5 + h / 2))
    return {
        "boxes": np.array(out["boxes"], np.float32).reshape(-1, 4),
        "labels": np.array(out["labels"], np.int64),
        "scores": np.array(out["scores"], np.float32),
        "class_scores": np.array(out["class_scores"], np.float32),
        "centers": np.array(out["centers"], np.float64).reshape(-1, 2),
        "areas": np.array(out["areas"], np.int64),
    }
