"""What DWD's own remedies buy, measured on engraved pages (``python benchmarks/measure_remedies.py``).

1. Cached box sizes per class (``decode(size_mode="class" | "blend")``) against the regressed size
   (``size_mode="regress"``, ``size_reduce="max"``, the original's). Simulated network outputs
   (:func:`dwd_fast.data.simulate_outputs`) with the smoothing bias of size regression on
   (``size_bias``: every side pulled towards the page mean). The class table is built from training
   pages that are not evaluated (other random music, every font). Each decoded object is matched to
   the ground-truth symbol that owns the target pixel under its centre (one detection per symbol,
   the first in decode order), which does not depend on the box sizes, so every size mode is scored
   on the same pairs: mean IoU of the pairs, and the share of ground-truth symbols found with
   IoU >= 0.5 and >= 0.75 (class-aware).
2. Rare symbols pasted into the top margin (:func:`dwd_fast.data.paste_rare_symbols`, 12 crops of 130 x
   80 per page): the number of training iterations until every class of the page pool has been seen
   at least once, batch size 4, each batch 4 distinct pages drawn uniformly from the pool (independently
   per iteration), Monte Carlo over seeds; with pasting, every page of a batch goes through
   ``paste_rare_symbols`` (bank and class frequencies from the pool) and its pasted labels count.

Pages take 1.5-4 s each to engrave; they are engraved once per run (30 pages). About 2 minutes on one core.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import dwd_fast
from dwd_fast.data import (FONTS, RareSymbolBank, box_targets, engraved_classes, engraved_page, paste_rare_symbols,
                           simulate_outputs)

EVAL_PAGES = [("random", 0, "Bravura"), ("random", 1, "Leland"), ("random", 2, "Petaluma"),
              ("toccata", 0, "Leipzig"), ("chorale", 0, "Gootville"), ("reel", 0, "Bravura")]
TRAIN_PAGES = [("random", 100 + i, FONTS[i % len(FONTS)]) for i in range(24)]
CUTOFF, MIN_SIZE = 6, 2


def engrave(specs, cache):
    out = []
    for music, seed, font in specs:
        key = (music, seed, font)
        if key not in cache:
            cache[key] = engraved_page(music, seed=seed, font=font)
        out.append(cache[key])
    return out


def iou(a, b):
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def match(det, objects):
    """(detection index, ground-truth index) pairs: the symbol owning the target pixel under each
    detection's centre, first detection wins."""
    r = np.clip(np.floor(det.centers[:, 0]).astype(int), 0, objects.shape[0] - 1)
    c = np.clip(np.floor(det.centers[:, 1]).astype(int), 0, objects.shape[1] - 1)
    gt = objects[r, c] - 1
    di = np.flatnonzero(gt >= 0)
    _, first = np.unique(gt[di], return_index=True)
    di = di[first]
    return di, gt[di]


def measure_sizes(eval_pages, table, biases, seed, blend_variants):
    modes = [("regress (size_reduce=max)", dict(size_mode="regress", size_reduce="max")),
             ("class", dict(size_mode="class", class_sizes=table)),
             ("blend (default: confidence 0.5, spread 0.15)", dict(size_mode="blend", class_sizes=table))]
    modes += [(name, dict(size_mode="blend", class_sizes=table, **kw)) for name, kw in blend_variants]
    rows = []
    for bias in biases:
        acc = {name: [] for name, _ in modes}
        found = {name: [0, 0] for name, _ in modes}
        small = {name: [] for name, _ in modes}
        large = {name: [] for name, _ in modes}
        n_gt = 0
        for k, page in enumerate(eval_pages):
            t, objects = box_targets(page.boxes, page.labels, page.image.shape, levels=16)
            out = simulate_outputs(t, seed=seed + k, objects=objects, size_bias=bias)
            gt_area = (page.boxes[:, 2] - page.boxes[:, 0]) * (page.boxes[:, 3] - page.boxes[:, 1])
            med_area = np.median(gt_area)
            n_gt += len(page.boxes)
            for name, kw in modes:
                det = dwd_fast.decode(out.energy, out.classes, out.sizes, cutoff=CUTOFF, min_size=MIN_SIZE, **kw)
                di, gi = match(det, objects)
                v = iou(det.boxes[di].astype(np.float64), page.boxes[gi].astype(np.float64))
                ok = det.labels[di] == page.labels[gi]
                acc[name].append(v)
                found[name][0] += int(((v >= 0.5) & ok).sum())
                found[name][1] += int(((v >= 0.75) & ok).sum())
                small[name].append(v[gt_area[gi] <= med_area])
                large[name].append(v[gt_area[gi] > med_area])
        for name, _ in modes:
            v = np.concatenate(acc[name])
            rows.append((bias, name, v.size, v.mean(), np.concatenate(small[name]).mean(),
                         np.concatenate(large[name]).mean(), found[name][0] / n_gt, found[name][1] / n_gt))
    return rows


def iterations_until_all_seen(page_labels, batch, runs, rng, paste=None):
    """Iterations until every class of the pool is seen, for ``runs`` Monte-Carlo runs."""
    P = len(page_labels)
    every = set(np.concatenate(page_labels).tolist())
    out = []
    for _ in range(runs):
        seen = set()
        it = 0
        while seen != every:
            it += 1
            for i in rng.choice(P, size=batch, replace=False):
                seen.update(page_labels[i].tolist())
                if paste is not None:
                    seen.update(paste(i, rng).tolist())
            if it > 100000:
                raise RuntimeError("some class is never seen")
        out.append(it)
    return np.asarray(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--biases", default="0,0.3,0.6", help="size_bias values (comma-separated)")
    ap.add_argument("--runs", type=int, default=1000, help="Monte-Carlo runs without pasting")
    ap.add_argument("--paste-runs", type=int, default=300, help="Monte-Carlo runs with pasting")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    biases = [float(b) for b in args.biases.split(",")]
    t0 = time.perf_counter()
    cache = {}
    eval_pages = engrave(EVAL_PAGES, cache)
    train_pages = engrave(TRAIN_PAGES, cache)
    t_engrave = time.perf_counter() - t0
    C = len(engraved_classes())

    print(f"dwd_fast {dwd_fast.__version__}, numpy {np.__version__}, Python {platform.python_version()}; "
          f"{len(eval_pages) + len(train_pages)} pages engraved in {t_engrave:.0f} s")
    print(f"evaluated: {len(eval_pages)} pages ({', '.join(f'{m} {s} {f}' for m, s, f in EVAL_PAGES)}), "
          f"{sum(len(p.boxes) for p in eval_pages)} symbols")
    print(f"class table from: {len(train_pages)} other pages (random music, seeds 100-123, all five fonts), "
          f"{sum(len(p.boxes) for p in train_pages)} symbols")

    # 1. cached class sizes
    table = dwd_fast.class_size_table([p.boxes for p in train_pages], [p.labels for p in train_pages], C)
    ev_classes = np.unique(np.concatenate([p.labels for p in eval_pages]))
    print(f"classes seen in training: {int(table.seen.sum())}; evaluated classes missing from the table: "
          f"{int((~table.seen[ev_classes]).sum())} of {ev_classes.size}")
    variants = [("blend, confidence 0.5, no spread rule", dict(class_spread=np.inf)),
                ("blend, confidence 0.5, spread 0.05", dict(class_spread=0.05)),
                ("blend, confidence 0.5, spread 0.3", dict(class_spread=0.3))]
    t1 = time.perf_counter()
    rows = measure_sizes(eval_pages, table, biases, args.seed, variants)
    print(f"\n## Box sizes: regressed vs cached per class ({time.perf_counter() - t1:.0f} s)\n")
    print("| size_bias | size_mode | matched | mean IoU | IoU small half | IoU large half | found @0.5 | found @0.75 |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for bias, name, n, m, s, lg, f5, f75 in rows:
        print(f"| {bias:g} | {name} | {n} | {m:.3f} | {s:.3f} | {lg:.3f} | {f5:.3f} | {f75:.3f} |")

    # 2. rare-symbol pasting
    pool = eval_pages + train_pages
    labels = [p.labels for p in pool]
    bank = RareSymbolBank.from_pages(pool, num_classes=C)
    every = np.unique(np.concatenate(labels))
    pages_with = np.array([sum(c in set(lab.tolist()) for lab in labels) for c in every])
    drawable = bank.probabilities((130, 80)) > 0
    print(f"\n## Iterations until every class is seen (batch {args.batch}, pool of {len(pool)} pages, "
          f"{every.size} classes; {int((pages_with == 1).sum())} classes on a single page; "
          f"{int(drawable[every].sum())} classes have a crop that fits 130 x 80)\n")
    rng = np.random.default_rng(args.seed)
    t2 = time.perf_counter()
    plain = iterations_until_all_seen(labels, args.batch, args.runs, rng)
    t3 = time.perf_counter()

    def paste(i, rng):
        p = pool[i]
        r = paste_rare_symbols(p.image, p.boxes, p.labels, bank, n=12, crop=(130, 80), region="top", seed=rng)
        paste.pasted += r.pasted
        paste.skipped += r.skipped
        return r.labels[len(p.labels):]

    paste.pasted = paste.skipped = 0
    pasted = iterations_until_all_seen(labels, args.batch, args.paste_runs, rng, paste=paste)
    t4 = time.perf_counter()
    print("| augmentation | runs | iterations: mean ± sd | median | 90th percentile | max |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, v in (("none", plain), ("12 rare-symbol crops per page (130 x 80, top margin)", pasted)):
        print(f"| {name} | {v.size} | {v.mean():.2f} ± {v.std(ddof=1):.2f} | {np.median(v):g} | "
              f"{np.percentile(v, 90):g} | {v.max()} |")
    print(f"\npasted {paste.pasted} crops, skipped {paste.skipped} (no free slot); "
          f"{(t3 - t2):.1f} s without, {(t4 - t3):.1f} s with pasting; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
