"""Paired bootstrap over test pages of detectors' headline metrics: how much of a difference between two
models (or two decoder modes) the choice of test pages alone could make.

    python benchmarks/bootstrap_detections.py linear=dets_linear.npz log=dets_log.npz [--resamples 200]
        [--min-count 50] [--only clean/blend,clean/regress]

Each file is written by ``benchmarks/measure_detector.py --dets``: per condition (e.g. ``clean/blend``)
and test page, the detections and ground truths. Every resample draws the pages with replacement, the same
draw for every condition (paired), and scores each condition with :func:`dwd_fast.evaluate`: mAP@0.5 over
the classes with at least ``--min-count`` instances on the whole test set (the headline of the issue) and
COCO mAP. Prints each condition's value on all pages with the 2.5-97.5 % interval of the resamples, and
each condition's paired difference from the best one (interval, and the share of resamples in which the
best one wins). The spread between training seeds is not in it: one run per model.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(spec):
    tag, path = spec.split("=", 1) if "=" in spec else (os.path.splitext(os.path.basename(spec))[0], spec)
    z = np.load(path)
    names = list(z["class_names"])
    conds = {}
    for key in z.files:
        if key == "class_names":
            continue
        cond, page, field = key.split("|")
        conds.setdefault(cond, {}).setdefault(int(page), {})[field] = z[key]
    return tag, names, {c: [pages[k] for k in sorted(pages)] for c, pages in conds.items()}


def score(pages, idx, classes, num_classes):
    import dwd_fast

    dets = [{"boxes": pages[i]["det_boxes"], "labels": pages[i]["det_labels"], "scores": pages[i]["det_scores"]}
            for i in idx]
    gts = [{"boxes": pages[i]["gt_boxes"], "labels": pages[i]["gt_labels"]} for i in idx]
    r = dwd_fast.evaluate(dets, gts, class_names=[str(c) for c in range(1, num_classes + 1)])
    ap50 = np.asarray(r.ap50, np.float64)[classes]
    return float(np.nanmean(ap50)), float(r.map)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="TAG=FILE.npz from measure_detector.py --dets")
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--min-count", type=int, default=50)
    ap.add_argument("--only", help="comma-separated conditions (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    systems = {}
    names = None
    for spec in args.files:
        tag, n, conds = load(spec)
        if names is not None and n != names:
            sys.exit(f"{spec}: other classes than the first file's")
        names = n
        for c, pages in conds.items():
            if args.only and c not in args.only.split(","):
                continue
            systems[f"{tag}:{c}"] = pages
    if not systems:
        sys.exit("no conditions")
    n_pages = {len(p) for p in systems.values()}
    if len(n_pages) != 1:
        sys.exit(f"the conditions have different page counts: {sorted(n_pages)}")
    P = n_pages.pop()
    C = len(names)
    # the headline classes: at least min_count instances on all pages (of the first condition's ground truth)
    first = next(iter(systems.values()))
    counts = np.bincount(np.concatenate([np.asarray(p["gt_labels"], np.int64) for p in first]), minlength=C + 1)[1:]
    classes = np.flatnonzero(counts >= args.min_count)
    print(f"{len(systems)} conditions, {P} test pages, {len(classes)} classes with >= {args.min_count} instances, "
          f"{args.resamples} paired resamples of the pages")
    t = time.perf_counter()
    full = {s: score(p, range(P), classes, C) for s, p in systems.items()}
    rng = np.random.default_rng(args.seed)
    draws = [rng.integers(0, P, P) for _ in range(args.resamples)]
    boot = {s: np.array([score(p, d, classes, C) for d in draws]) for s, p in systems.items()}
    best = max(full, key=lambda s: full[s][0])
    print(f"({time.perf_counter() - t:.0f} s)\n")
    print(f"| condition | mAP@0.5, classes >= {args.min_count} [95% interval] | COCO mAP [95% interval] | "
          f"difference from {best} (mAP@0.5) [95% interval] | {best} better in |")
    print("|---|---|---|---|---:|")
    for s in sorted(full, key=lambda s: -full[s][0]):
        b = boot[s]
        lo, hi = np.percentile(b, [2.5, 97.5], axis=0)
        d = boot[best][:, 0] - b[:, 0]
        dl, dh = np.percentile(d, [2.5, 97.5])
        diff = "—" if s == best else f"{full[best][0] - full[s][0]:+.3f} [{dl:+.3f}, {dh:+.3f}]"
        share = "—" if s == best else f"{np.mean(d > 0):.0%}"
        print(f"| {s} | {full[s][0]:.3f} [{lo[0]:.3f}, {hi[0]:.3f}] | {full[s][1]:.3f} [{lo[1]:.3f}, {hi[1]:.3f}] | "
              f"{diff} | {share} |")


if __name__ == "__main__":
    main()
