"""Detection evaluation: ``dwd_fast.evaluate(protocol="coco")`` against faster-coco-eval on the same detections.

The workload of issue 16: 350 pages x ~1,000 ground truths (100 classes, small boxes on a 2668 x 1894
page) and ~1,000 detections per page (jittered ground truths, duplicates, false positives), no cap on
detections per image (maxDets = 10^5 for faster-coco-eval, more than a page holds; it allocates by maxDets). Groups:

* ``dwd_fast`` (1 thread): from the per-page arrays (validation, flattening, matching, accumulation);
* ``faster-coco-eval loadRes+evaluate+accumulate``: from the results list (what a user does with a
  model's output), ground truth already indexed;
* ``faster-coco-eval evaluate+accumulate``: detections already loaded.

The results are checked equal (precision array) before timing. ``python benchmarks/bench_evaluate.py``
interleaves the three for several rounds and prints medians, p95 and ratios (the figures of the README).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest

if __name__ == "__main__":  # run as a script: this checkout's dwd_fast (built in place)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
try:
    import dwd_fast
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import dwd_fast

from dwd_fast._threads import using_threads  # noqa: E402

PAGES, OBJECTS, CLASSES = 350, 1000, 100


def make_workload(pages=PAGES, objects=OBJECTS, classes=CLASSES, seed=0):
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(pages):
        xy = rng.uniform(0, [1850, 2620], (objects, 2))
        wh = rng.uniform(6, 40, (objects, 2))
        gb = np.hstack([xy, xy + wh]).astype(np.float32)
        gl = rng.integers(1, classes + 1, objects)
        keep = np.flatnonzero(rng.random(objects) < 0.85)
        db = gb[keep] + rng.normal(0, 2.0, (keep.size, 4)).astype(np.float32)
        dl = np.where(rng.random(keep.size) < 0.95, gl[keep], rng.integers(1, classes + 1, keep.size))
        n_dup = objects // 20
        dup = rng.choice(keep.size, n_dup)
        n_fp = objects - keep.size - n_dup
        fxy = rng.uniform(0, [1850, 2620], (max(n_fp, 0), 2))
        fb = np.hstack([fxy, fxy + rng.uniform(6, 40, (max(n_fp, 0), 2))])
        db = np.vstack([db, db[dup] + 1.5, fb]).astype(np.float32)
        db = np.hstack([np.minimum(db[:, :2], db[:, 2:]), np.maximum(db[:, :2], db[:, 2:])])
        dl = np.concatenate([dl, dl[dup], rng.integers(1, classes + 1, max(n_fp, 0))])
        sc = np.concatenate([rng.uniform(0.3, 1, keep.size), rng.uniform(0, 0.5, n_dup), rng.uniform(0, 0.6, max(n_fp, 0))])
        gts.append({"boxes": gb, "labels": gl})
        dets.append({"boxes": db, "labels": dl, "scores": sc.astype(np.float32)})
    return gts, dets


def coco_docs(gts, dets, classes=CLASSES):
    images = [{"id": i + 1, "width": 1894, "height": 2668} for i in range(len(gts))]
    anns, aid = [], 1
    for i, g in enumerate(gts):
        b = g["boxes"].astype(np.float64)
        for (x0, y0, x1, y1), c in zip(b.tolist(), g["labels"].tolist()):
            anns.append({"id": aid, "image_id": i + 1, "category_id": c, "bbox": [x0, y0, x1 - x0, y1 - y0],
                         "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
            aid += 1
    from dwd_fast.metrics import to_coco

    res = [r for i, d in enumerate(dets) for r in to_coco(d, i + 1)]
    return {"images": images, "annotations": anns, "categories": [{"id": c, "name": str(c)}
                                                                   for c in range(1, classes + 1)]}, res


class FCE:
    """faster-coco-eval with the ground truth indexed once."""

    def __init__(self, gt_doc):
        from faster_coco_eval import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            self.gt = COCO(gt_doc)

    def load(self, res):
        with contextlib.redirect_stdout(io.StringIO()):
            return self.gt.loadRes(res)

    def evaluate(self, dt):
        from faster_coco_eval import COCOeval_faster

        with contextlib.redirect_stdout(io.StringIO()):
            E = COCOeval_faster(self.gt, dt, "bbox")
            E.params.maxDets = [10 ** 5]
            E.params.areaRng = [[0, 1e10]]
            E.params.areaRngLbl = ["all"]
            E.evaluate()
            E.accumulate()
        return E.eval["precision"][:, :, :, 0, 0]

    def full(self, res):
        return self.evaluate(self.load(res))


def ours(gts, dets):
    with using_threads(1):
        return dwd_fast.evaluate(dets, gts).precision


@pytest.fixture(scope="module")
def work():
    pytest.importorskip("faster_coco_eval")
    gts, dets = make_workload()
    gt_doc, res = coco_docs(gts, dets)
    fce = FCE(gt_doc)
    dt = fce.load(res)
    np.testing.assert_allclose(ours(gts, dets), fce.evaluate(dt), atol=1e-6, rtol=0)
    return gts, dets, res, fce, dt


@pytest.mark.parametrize("impl", ["dwd_fast (1 thread)", "faster-coco-eval loadRes+evaluate+accumulate",
                                  "faster-coco-eval evaluate+accumulate"])
def test_evaluate_coco(benchmark, work, impl):
    gts, dets, res, fce, dt = work
    benchmark.group = f"evaluate coco {PAGES} pages x {OBJECTS} dets"
    fn = {"dwd_fast (1 thread)": lambda: ours(gts, dets),
          "faster-coco-eval loadRes+evaluate+accumulate": lambda: fce.full(res),
          "faster-coco-eval evaluate+accumulate": lambda: fce.evaluate(dt)}[impl]
    benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)


def main(rounds=7):
    gts, dets = make_workload()
    gt_doc, res = coco_docs(gts, dets)
    fce = FCE(gt_doc)
    dt = fce.load(res)
    np.testing.assert_allclose(ours(gts, dets), fce.evaluate(dt), atol=1e-6, rtol=0)
    fns = {"dwd_fast evaluate (1 thread)": lambda: ours(gts, dets),
           "dwd_fast evaluate (all threads)": lambda: dwd_fast.evaluate(dets, gts),
           "faster-coco-eval loadRes+evaluate+accumulate": lambda: fce.full(res),
           "faster-coco-eval evaluate+accumulate": lambda: fce.evaluate(dt)}
    t = {k: [] for k in fns}
    for _ in range(rounds):  # interleaved
        for k, f in fns.items():
            s = time.perf_counter()
            f()
            t[k].append(time.perf_counter() - s)
    n_det = sum(len(d["labels"]) for d in dets)
    n_gt = sum(len(g["labels"]) for g in gts)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {PAGES} pages, {n_gt} GT, {n_det} detections, "
          f"{CLASSES} classes, {rounds} interleaved rounds, dwd_fast threads={dwd_fast.get_num_threads()}")
    base = np.median(t["dwd_fast evaluate (1 thread)"])
    print("| implementation | median ms | p95 ms | time / dwd_fast (1 thread) |")
    print("|---|---|---|---|")
    for k, v in t.items():
        v = np.array(v) * 1e3
        print(f"| {k} | {np.median(v):.0f} | {np.percentile(v, 95):.0f} | {np.median(v) / 1e3 / base:.2f}x |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
