#!/usr/bin/env python
"""Thread settings against each other: one thread, the default count, and both under load.

Usage::

    python benchmarks/bench_threads.py [--rounds 40] [--sizes crop,1,250,2000] [--json out.json]

For each op (label, region_stats, decode with cutoff / peaks / grow_to seeds, watershed canonical and
skimage, peak_local_max, encode, compat.perform_dws, and dwd_fast.torch's loss kernels through
``TargetEncoder`` + ``DWDLoss``) on ``dwd_fast.data.reference_page(n)`` pages (``crop``: a 64 x 64 crop
around the 1-object page's object), every call is timed under four settings:

``1 thread``            ``dwd_fast.set_num_threads(1)`` (and ``torch.set_num_threads(1)`` for the loss)
``default``             the default counts (dwd_fast's: the cores; PyTorch's: its own default)
``1 thread, load``      1 thread while another process spins on one core (``python -c "while True: pass"``)
``default, load``       the default counts while that process spins

The settings are interleaved call by call (quiet rounds and loaded rounds alternate in blocks), so that a
drift of the shared machine hits all of them alike. The table gives the median (p50) and the 95th
percentile (p95) of each, in milliseconds, and ``default / 1 thread`` of the p50s and p95s (quiet and
under load; at most 1.0 is the goal: the default never slower than one thread).

This is a script, not a pytest-benchmark module: it has no test functions (pytest collects nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's dwd_fast

import dwd_fast  # noqa: E402
from dwd_fast import compat  # noqa: E402
from dwd_fast._threads import using_threads  # noqa: E402
from dwd_fast.data import reference_page  # noqa: E402

SETTINGS = ("1 thread", "default", "1 thread, load", "default, load")


def pages(sizes):
    out = {}
    for s in sizes:
        if s == "crop":
            p = reference_page(1, seed=0)
            x0, y0, x1, y1 = [int(v) for v in p.boxes[0]]
            cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
            ys = slice(max(cy - 32, 0), max(cy - 32, 0) + 64)
            xs = slice(max(cx - 32, 0), max(cx - 32, 0) + 64)
            boxes = p.boxes - np.array([xs.start, ys.start, xs.start, ys.start], p.boxes.dtype)
            out["crop"] = (p.energy[ys, xs].copy(), p.classes[ys, xs].copy(), p.sizes[:, ys, xs].copy(), boxes, p.labels)
        else:
            p = reference_page(int(s), seed=0)
            out[f"n={s}"] = (p.energy, p.classes, p.sizes, p.boxes, p.labels)
    return out


def ops(page, with_torch):
    """name -> zero-argument callable, for one page."""
    E, C, S, boxes, labels = page
    lab = dwd_fast.label(E > 3)
    relief, markers, mask = -E.astype(np.int16), dwd_fast.label(E >= 8), E >= 1
    Ef = E.astype(np.float32)
    bbox_map = np.ascontiguousarray(np.moveaxis(S, 0, -1), np.float32)
    f = {
        "label": lambda: dwd_fast.label(E > 3),
        "region_stats": lambda: dwd_fast.region_stats(lab, image=Ef),
        "decode cutoff": lambda: dwd_fast.decode(E, C, S, cutoff=7, min_size=4),
        "decode peaks": lambda: dwd_fast.decode(E, C, S, seeds="peaks"),
        "decode grow_to=1": lambda: dwd_fast.decode(E, C, S, cutoff=7, min_size=4, grow_to=1),
        "watershed canonical": lambda: dwd_fast.watershed(relief, markers, mask=mask),
        "watershed skimage": lambda: dwd_fast.watershed(relief, markers, mask=mask, method="skimage"),
        "peak_local_max": lambda: dwd_fast.peak_local_max(Ef, min_distance=2, threshold_abs=3),
        "encode": lambda: dwd_fast.encode(boxes, labels, E.shape),
        "compat.perform_dws": lambda: compat.perform_dws(E, C, bbox_map, 7, 4, variant="2018"),
    }
    if with_torch:
        import torch
        from dwd_fast.torch import DWDLoss, TargetEncoder

        H, W = E.shape
        if H * W > 700 * 500:  # the network's outputs at a quarter of the page (stride 4): 120 classes fit in memory
            H, W = H // 4, W // 4
            tb = torch.from_numpy(boxes / 4)
        else:
            tb = torch.from_numpy(boxes.astype(np.float64))
        keep = (tb[:, 2] > tb[:, 0]) & (tb[:, 3] > tb[:, 1]) & (tb[:, 0] >= 0) & (tb[:, 1] >= 0)
        targets = [{"boxes": tb[keep].float(), "labels": torch.from_numpy(labels.astype(np.int64))[keep]}]
        g = torch.Generator().manual_seed(0)
        outputs = {"energy": torch.randn(1, 20, H, W, generator=g), "classes": torch.randn(1, 120, H, W, generator=g),
                   "sizes": torch.rand(1, 2, H, W, generator=g) * 40}
        encoder, loss = TargetEncoder(20, 120), DWDLoss()
        tg = encoder(targets, (H, W))

        def run_loss():
            with torch.no_grad():
                return loss(outputs, tg)

        f["torch DWDLoss"] = run_loss
    return f


@contextlib.contextmanager
def threads(n):
    """dwd_fast's and PyTorch's threads: n (0: the defaults)."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(n if n else DEFAULT_TORCH_THREADS)
    try:
        with using_threads(n):
            yield
    finally:
        if torch:
            torch.set_num_threads(before)


DEFAULT_TORCH_THREADS = 1


def spinner():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(sizes, rounds, blocks, with_torch):
    all_pages = pages(sizes)
    table = {}
    for size, page in all_pages.items():
        fs = ops(page, with_torch)
        times = {(name, s): [] for name in fs for s in SETTINGS}
        for name, f in fs.items():  # warm-up (allocations, the pool's helpers)
            for n in (1, 0):
                with threads(n):
                    f()
        per_block = max(1, rounds // blocks)
        for _ in range(blocks):
            for loaded in (False, True):
                proc = spinner() if loaded else None
                try:
                    if proc:
                        time.sleep(0.2)  # let it start spinning
                    for _ in range(per_block):
                        for name, f in fs.items():
                            for n in (1, 0) if _ % 2 == 0 else (0, 1):
                                with threads(n):
                                    t0 = time.perf_counter()
                                    f()
                                    dt = time.perf_counter() - t0
                                key = ("1 thread" if n == 1 else "default") + (", load" if loaded else "")
                                times[(name, key)].append(dt)
                finally:
                    if proc:
                        proc.kill()
                        proc.wait()
        for name in fs:
            table[(name, size)] = {s: (float(np.median(times[(name, s)])) * 1e3,
                                       float(np.percentile(times[(name, s)], 95)) * 1e3, len(times[(name, s)]))
                                   for s in SETTINGS}
        print(f"  {size} done", file=sys.stderr, flush=True)
    return table


def markdown(table, header):
    lines = [header, "",
             "| op | page | 1 thread p50 / p95 | default p50 / p95 | 1 thread, load p50 / p95 | default, load p50 / p95 "
             "| default / 1 thread (p50, p95) | under load (p50, p95) |",
             "|---|---|---|---|---|---|---|---|"]
    for (name, size), r in table.items():
        def cell(s):
            return f"{r[s][0]:.3g} / {r[s][1]:.3g}"

        q = (r["default"][0] / r["1 thread"][0], r["default"][1] / r["1 thread"][1])
        ld = (r["default, load"][0] / r["1 thread, load"][0], r["default, load"][1] / r["1 thread, load"][1])
        lines.append(f"| {name} | {size} | {cell('1 thread')} | {cell('default')} | {cell('1 thread, load')} | "
                     f"{cell('default, load')} | {q[0]:.2f}, {q[1]:.2f} | {ld[0]:.2f}, {ld[1]:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    global DEFAULT_TORCH_THREADS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=40, help="timed calls per op, page and setting (default 40)")
    ap.add_argument("--blocks", type=int, default=4, help="quiet / loaded alternations (default 4)")
    ap.add_argument("--sizes", default="crop,1,250,2000", help="pages: crop and object counts (default crop,1,250,2000)")
    ap.add_argument("--no-torch", action="store_true", help="leave out the torch loss kernels")
    ap.add_argument("--json", help="write the table to this JSON file")
    args = ap.parse_args(argv)
    with_torch = not args.no_torch
    if with_torch:
        try:
            import torch

            DEFAULT_TORCH_THREADS = torch.get_num_threads()
        except ImportError:
            with_torch = False
    dwd_fast.set_num_threads(0)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"Run {when}; {os.cpu_count()} cores (load average {load:.1f} at the start); default threads: "
              f"dwd_fast {dwd_fast.get_num_threads()}"
              + (f", PyTorch {DEFAULT_TORCH_THREADS}" if with_torch else "")
              + f"; {args.rounds} calls per cell; times in ms.")
    table = measure([s.strip() for s in args.sizes.split(",") if s.strip()], args.rounds, args.blocks, with_torch)
    text = markdown(table, header)
    print(text)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"header": header, "rows": [{"op": k[0], "page": k[1], **{s: v for s, v in r.items()}}
                                                  for k, r in table.items()]}, fh, indent=1)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
