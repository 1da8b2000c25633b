"""Slow, obviously-correct statement of dwd_fast.decode (DESIGN.md §2 "decode"), on scikit-image and
the canonical-watershed oracle."""

import numpy as np
from skimage.feature import peak_local_max
from skimage.measure import label as sk_label

from tests.reference.watershed_oracle import canonical_watershed


def _softmax(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _seeds(lv, cutoff, min_size, connectivity, seeds, min_distance):
    """Seed id map (0 = none), ids 1..n in raster order of each seed's first pixel."""
    out = np.zeros(lv.shape, np.int64)
    if seeds == "cutoff":
        lab = sk_label(lv > cutoff, connectivity=connectivity)
        n = 0
        for l in range(1, lab.max() + 1):
            if (lab == l).sum() >= min_size:
                n += 1
                out[lab == l] = n
        return out, n
    peaks = peak_local_max(lv, min_distance=min_distance, threshold_abs=cutoff, exclude_border=False)
    plateaus = []
    covered = np.zeros(lv.shape, bool)
    for r, c in peaks:
        if covered[r, c]:
            continue
        plab = sk_label(lv == lv[r, c], connectivity=connectivity)
        pl = plab == plab[r, c]
        covered |= pl
        plateaus.append(pl)
    plateaus.sort(key=lambda m: np.flatnonzero(m)[0])
    for k, pl in enumerate(plateaus):
        out[pl] = k + 1
    return out, len(plateaus)


def decode_reference(energy, classes=None, sizes=None, *, cutoff=7, min_size=4, connectivity=2,
                     size_reduce="max", levels=None, seeds="cutoff", grow_to=None, reduce_over="core",
                     min_distance=1):
    """One page. Returns a dict of numpy arrays like dwd_fast.Detections."""
    logits = energy.dtype.kind == "f" and energy.ndim == 3
    if logits:
        lv = np.argmax(energy, axis=0)
        p_above = _softmax(energy, 0)[np.arange(energy.shape[0]) > cutoff].sum(axis=0)
        levels = levels or energy.shape[0]
    else:
        lv = energy
        levels = levels or 20
    if seeds == "peaks" and grow_to is None:
        grow_to = cutoff
    seed_map, n = _seeds(lv, cutoff, min_size, connectivity, seeds, min_distance)
    objects = []  # (core mask, region mask)
    if grow_to is None:
        objects = [(seed_map == k, seed_map == k) for k in range(1, n + 1)]
    else:
        mask = lv > grow_to
        relief = -lv.astype(np.float64)
        grown = canonical_watershed(relief, seed_map, mask, connectivity)
        regions = [grown == k for k in range(1, n + 1)]
        comps = sk_label(mask, connectivity=connectivity)
        for l in range(1, comps.max() + 1):
            m = comps == l
            if not grown[m].any() and m.sum() >= max(min_size, 1):
                regions.append(m)
        if seeds == "peaks":
            regions = [m for m in regions if m.sum() >= min_size]
        for m in regions:
            core = m & (lv > cutoff)
            objects.append((core if core.any() else m, m))
    out = {k: [] for k in ("boxes", "labels", "scores", "class_scores", "centers", "areas")}
    for core, region in objects:
        stat = region if reduce_over == "region" else core
        rr, cc = np.nonzero(stat)
        n_px = rr.size
        cy, cx = rr.mean(), cc.mean()
        out["centers"].append((cy, cx))
        out["areas"].append(int(region.sum()))
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
            out["class_scores"].append(counts.max() / n_px)
        if sizes is None:
            gr, gc = np.nonzero(region)
            out["boxes"].append((gc.min(), gr.min(), gc.max() + 1, gr.max() + 1))
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
