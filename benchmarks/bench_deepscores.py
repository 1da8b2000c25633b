"""DeepScores I/O figures: ``read_deepscores`` on a DeepScoresV2 JSON of 1,700 pages (seconds and peak
memory, each run in a fresh subprocess, beside ``json.load`` alone, interleaved), and ``make-dataset``
pages per second with 2 processes.

    python benchmarks/bench_deepscores.py [--pages 1700] [--per-page 400] [--repeat 3] [--make 8] [--jobs 2]

The synthetic file has the real files' shape (the dense DeepScoresV2 set: 1,714 pages, ~243 symbols a page
on average, up to 7,664): ``--per-page`` annotations a page on average (Poisson), half of them with
comments, every tenth without a muscima++ category.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synth_json_subprocess(path, pages, per_page, seed=0):
    """synth_json in a child process (so that this one stays small); returns the annotation count."""
    code = (f"import sys; sys.path.insert(0, {os.path.join(ROOT, 'benchmarks')!r}); import bench_deepscores as b; "
            f"print(b.synth_json({path!r}, {pages}, {per_page}, {seed}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def synth_json(path, pages, per_page, seed=0):
    """Write a synthetic DeepScoresV2 JSON; returns the annotation count."""
    sys.path.insert(0, ROOT)
    from dwd_fast.data.deepscores import _categories_json, _info_json, MUSCIMA_COUNTERPART

    rng = np.random.default_rng(seed)
    ds_ids = [i for i in range(1, 137)]
    images, anns = [], {}
    k = 1
    W, H = 1894, 2668
    for p in range(pages):
        n = int(rng.poisson(per_page))
        x0 = rng.uniform(0, W - 60, n)
        y0 = rng.uniform(0, H - 60, n)
        w = rng.uniform(2, 60, n)
        h = rng.uniform(2, 60, n)
        cats = rng.choice(ds_ids, n)
        ids = []
        for j in range(n):
            c = int(cats[j])
            m = MUSCIMA_COUNTERPART.get(c) if j % 10 else None
            a = [round(float(x0[j]), 6), round(float(y0[j]), 6), round(float(x0[j] + w[j]), 6),
                 round(float(y0[j] + h[j]), 6)]
            o = [a[2], a[3], a[2], a[1], a[0], a[1], a[0], a[3]]
            com = (f"instance:#{int(rng.integers(0, 1 << 24)):06x};onset:{j % 16 / 4};duration:1;"
                   f"rel_position:{j % 9 - 4};" if j % 2 else "")
            anns[str(k)] = {"a_bbox": a, "o_bbox": o, "cat_id": [str(c), None if m is None else str(m)],
                            "area": int(w[j] * h[j] * 0.4), "img_id": str(p + 1), "comments": com}
            ids.append(str(k))
            k += 1
        images.append({"id": p + 1, "filename": f"page-{p}.png", "width": W, "height": H, "ann_ids": ids})
    data = {"info": _info_json(), "annotation_sets": ["deepscores", "muscima++"], "categories": _categories_json(),
            "images": images, "annotations": anns}
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
    return k - 1


_CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
what, path = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if what == "json":
    with open(path, "rb") as f:
        d = json.load(f)
    n = len(d["annotations"])
else:
    from dwd_fast.data import read_deepscores
    ds = read_deepscores(path, check_images=False)
    n = sum(p.n for p in ds) + ds.skipped
dt = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({{"s": dt, "maxrss_mb": int(hwm) / 1024, "n": n}}))
"""


def run_child(what, path):
    code = _CHILD.format(root=ROOT)
    # the interpreter's and numpy's own footprint, to subtract
    out = subprocess.run([sys.executable, "-c", code, what, path], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_read(pages, per_page, repeat):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "deepscores_train.json")
        t = time.perf_counter()
        n = synth_json_subprocess(path, pages, per_page)
        mb = os.path.getsize(path) / 2 ** 20
        dt = time.perf_counter() - t
        print(f"synthetic JSON: {pages} pages, {n} annotations, {mb:.0f} MB (written in {dt:.1f} s)")
        # peak resident memory is VmHWM (ru_maxrss would carry this process's over the fork + exec)
        probe = ("import json, numpy, PIL.Image; print(json.dumps(int([l for l in open('/proc/self/status') "
                 "if l.startswith('VmHWM')][0].split()[1]) / 1024))")
        base = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                         check=True).stdout)
        res = {"json": [], "read": []}
        for _ in range(repeat):
            for what in ("json", "read"):  # interleaved
                res[what].append(run_child(what, path))
        rows = []
        for what, label in (("json", "json.load alone"), ("read", "read_deepscores")):
            s = np.array([r["s"] for r in res[what]])
            m = np.array([r["maxrss_mb"] for r in res[what]])
            rows.append((label, np.median(s), np.percentile(s, 95), np.median(m)))
        print(f"\n| {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | pages | annotations | JSON MB | "
              f"seconds (median) | p95 | peak RSS MB (median; interpreter+numpy+Pillow alone: {base:.0f}) |")
        print("|---|---|---|---|---|---|---|")
        for label, med, p95, rss in rows:
            print(f"| {label} (1 thread, {repeat} runs) | {pages} | {n} | {mb:.0f} | {med:.2f} | {p95:.2f} "
                  f"| {rss:.0f} |")
        return rows


def bench_make(pages, jobs, measures):
    sys.path.insert(0, ROOT)
    from dwd_fast.data.deepscores import make_dataset

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        r = make_dataset(d, pages, jobs=jobs, measures=measures, progress=False)
        dt = time.perf_counter() - t
        t2 = time.perf_counter()
        make_dataset(d, pages, jobs=jobs, measures=measures, progress=False)  # resumed: all kept
        dt2 = time.perf_counter() - t2
    print(f"\n| {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | make-dataset pages | --jobs | measures "
          "| annotations | seconds | pages/s | resumed run (all kept), s |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| engraved, all fonts + pieces | {pages} | {jobs} | {measures} | {r['annotations']} | {dt:.1f} "
          f"| {pages / dt:.2f} | {dt2:.2f} |")
    return pages / dt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=1700)
    ap.add_argument("--per-page", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--make", type=int, default=8, help="pages for the make-dataset figure (0: skip)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--measures", type=int, default=40)
    a = ap.parse_args(argv)
    bench_read(a.pages, a.per_page, a.repeat)
    if a.make:
        bench_make(a.make, a.jobs, a.measures)


if __name__ == "__main__":
    main()
