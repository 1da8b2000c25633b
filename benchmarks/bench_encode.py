"""Building DWD training targets: dwd_fast.encode and compat.get_markers against the original's algorithm.

Groups:

``encode n=...``
    Energy, class and size maps of the reference page's boxes (``reference_page(n).boxes`` and
    ``.labels``, 2668 x 1894; defaults: oval markers of 0.8 x the box, 20 linear levels, ``"max"``).
    ``dwd_fast.encode`` is the whole call (validation, fresh output maps, rasterization);
    ``dwd_fast.encode out=`` writes into the same buffers every round (what a training loop that
    reuses its buffers pays: no allocation, no page faults). ``fill the maps (write floor)`` is
    numpy filling the three output maps (65 MB: uint8, int32 and 2 x float32 planes) that were
    already touched: every encode must write them once, so this is its floor on this machine.
    The ``compact`` rows are the same with ``layout="compact"`` (classes uint8, sizes float16: 30 MB
    instead of 65 MB), against the fill of the compact maps.
    ``original per-box stamping`` is :func:`references_encode.original_stamp_targets`,
    the original's per-box numpy stamping with the same outputs (a lower bound of the original's
    cost, see its docstring). Plus the numpy floor (one pass reading the uint8 page).
``python benchmarks/bench_encode.py`` (a script)
    ``encode`` against the write floor of its own outputs, for both layouts, on the reference pages and an
    engraved page, at one thread and the default threads: the floor is ``memset`` of the same bytes into
    the same, already faulted buffers (one ``memset`` per map, split over the threads like encode's work),
    interleaved round by round with the encode calls; the table gives p50 and p95 of each and their ratios.
``get_markers <task> crop960``
    ``dwd_fast.compat.get_markers`` against the verified numpy re-statement of the original
    (``tests/reference/dwd_targets.py``, same structure and cost), on the training crop the original
    was built for: 960 x 960, 200 boxes, the 2020 training configuration of each task (energy:
    softmax, quadratic, 0.8 x the box, ``"max"``; class: softmax, 16 x 16, ``"nearest"``, 136
    classes; box: regression, 16 x 16, ``"nearest"``). Both must return identical float64 maps.
    ``compat.get_markers`` keeps its stamps by marker size across calls, so its rounds after the
    first run with a warm cache, as every call after the first does in training. Both are bound by
    writing the float64 one-hot outputs (147 MB for 20 levels, 1 GB for 136 classes).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest

if __name__ == "__main__":  # run as a script: this checkout's dwd_fast, not an installed one
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import FLOOR, floor_call, record
from references_encode import original_stamp_targets

import dwd_fast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.reference import dwd_targets  # noqa: E402

SHAPE = dwd_fast.data.PAGE_SHAPE


@functools.lru_cache(maxsize=None)
def _boxes(n):
    p = dwd_fast.data.reference_page(n, seed=0)
    return p.boxes, p.labels


def _encode(boxes, labels):
    return dwd_fast.encode(boxes, labels, SHAPE)


WRITE_FLOOR = "fill the maps (write floor)"
COMPACT, COMPACT_OUT, COMPACT_FLOOR = ("dwd_fast.encode compact", "dwd_fast.encode compact out=",
                                      "fill the compact maps (write floor)")
IMPLEMENTATIONS = ["dwd_fast.encode", "dwd_fast.encode out=", WRITE_FLOOR, COMPACT, COMPACT_OUT, COMPACT_FLOOR,
                   "original per-box stamping", FLOOR]


def _maps(layout):
    H, W = SHAPE
    c, s = (np.uint8, np.float16) if layout == "compact" else (np.int32, np.float32)
    return np.zeros((H, W), np.uint8), np.zeros((H, W), c), np.zeros((2, H, W), s)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_encode(benchmark, page, implementation):
    benchmark.group = f"encode n={page.n}"
    record(benchmark, implementation, page, levels=20, marker="oval", size=0.8, overlap="max")
    boxes, labels = _boxes(page.n)
    if implementation == FLOOR:
        fn, args = floor_call(page)
        benchmark(fn, *args)
        return
    if implementation == "dwd_fast.encode":
        t = benchmark(_encode, boxes, labels)
        benchmark.extra_info["marker_pixels"] = int(np.count_nonzero(t.energy))
        return
    if implementation in (COMPACT, COMPACT_OUT, COMPACT_FLOOR):
        labels8 = np.asarray(labels) % 256
        maps = _maps("compact")
        if implementation == COMPACT_FLOOR:
            benchmark(lambda: [m.view(np.uint8).fill(0) for m in maps])
            return
        kw = dict(out=maps) if implementation == COMPACT_OUT else {}
        t = benchmark(lambda: dwd_fast.encode(boxes, labels8, SHAPE, layout="compact", **kw))
        wide = _encode(boxes, labels8)
        ok = np.array_equal(t.classes, wide.classes.astype(np.uint8)) and np.array_equal(
            t.sizes.view(np.uint16), wide.sizes.astype(np.float16).view(np.uint16)) and np.array_equal(
            t.energy, wide.energy)
        benchmark.extra_info["correct"] = ok
        assert ok
        return
    maps = _maps("wide")
    if implementation == "dwd_fast.encode out=":
        t = benchmark(lambda: dwd_fast.encode(boxes, labels, SHAPE, out=maps))
        fresh = _encode(boxes, labels)
        ok = all(np.array_equal(a, b) for a, b in zip(maps, (fresh.energy, fresh.classes, fresh.sizes)))
        benchmark.extra_info["correct"] = ok
        assert ok and t.energy is maps[0]
        return
    if implementation == WRITE_FLOOR:
        benchmark(lambda: [m.fill(0) for m in maps])
        return
    e, c, s = benchmark.pedantic(original_stamp_targets, args=(boxes, labels, SHAPE), rounds=1, iterations=1)
    t = _encode(boxes, labels)
    # same algorithm family, different geometry conventions: report how much of the support agrees
    agree = float(np.count_nonzero((e > 0) == (t.energy > 0))) / e.size
    benchmark.extra_info.update(marker_pixels=int(np.count_nonzero(e)), support_agreement=round(agree, 5))


# ---------------------------------------------------------------------------------------------------
# compat.get_markers against the original's re-statement
# ---------------------------------------------------------------------------------------------------

def _crop_gt(n=200, size=960, seed=0):
    rng = np.random.default_rng(seed)
    ys, xs = rng.integers(20, size - 20, n), rng.integers(20, size - 20, n)
    hh, ww = rng.integers(6, 40, n), rng.integers(6, 30, n)
    cl = rng.integers(1, 136, n)
    return [np.array([x - w / 2, y - h / 2, x + w / 2, y + h / 2, c], np.float32)
            for y, x, h, w, c in zip(ys, xs, hh, ww, cl)]


TASKS = {
    "energy": {"stamp_func": "stamp_energy", "overlap_solution": "max",
               "stamp_args": {"loss": "softmax", "marker_dim": None, "size_percentage": 0.8, "shape": "oval",
                              "energy_shape": "quadratic"}},
    "class": {"stamp_func": "stamp_class", "overlap_solution": "nearest",
              "stamp_args": {"loss": "softmax", "marker_dim": [16, 16], "size_percentage": 0.8, "shape": "oval",
                             "class_resolution": "class"}},
    "bbox": {"stamp_func": "stamp_bbox", "overlap_solution": "nearest",
             "stamp_args": {"loss": "reg", "marker_dim": [16, 16], "size_percentage": 0.8, "shape": "oval"}},
}


@pytest.mark.parametrize("implementation", ["dwd_fast.compat", "original"])
@pytest.mark.parametrize("task", list(TASKS))
def test_get_markers(benchmark, page250, task, implementation):
    settings = dict(TASKS[task], ds_factors=[1], downsample_marker=True)
    gt = _crop_gt()
    args = ((1, 960, 960, 3), gt, 136, settings, 0)
    benchmark.group = f"get_markers {task} crop960"
    record(benchmark, implementation, page250, task=task, crop=960, boxes=len(gt))
    if implementation == "dwd_fast.compat":
        benchmark.pedantic(lambda: dwd_fast.compat.get_markers(*args, []), rounds=5, iterations=1)
        return
    want = benchmark.pedantic(lambda: dwd_targets.get_markers(*args, []),
                              rounds=1, iterations=1)
    got = dwd_fast.compat.get_markers(*args, [])
    ok = len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
    benchmark.extra_info["correct"] = ok
    assert ok


# ---------------------------------------------------------------------------------------------------
# Script: encode against the write floor of its own outputs (both layouts, 1 and default threads)
# ---------------------------------------------------------------------------------------------------

def _memset_floor(maps, threads):
    """A callable writing every byte of ``maps`` once (glibc memset, zeros), split over ``threads`` threads."""
    import ctypes
    from concurrent.futures import ThreadPoolExecutor

    parts = []
    for m in maps:
        base, n = m.ctypes.data, m.nbytes
        step = -(-n // threads)
        parts += [(base + k, min(step, n - k)) for k in range(0, n, step)]
    if threads == 1:
        return lambda: [ctypes.memset(p, 0, n) for p, n in parts]
    pool = ThreadPoolExecutor(threads)  # ctypes releases the GIL around memset
    return lambda: list(pool.map(lambda pn: ctypes.memset(pn[0], 0, pn[1]), parts))


def _floor_table(rounds=30, sizes=(250, 2000, 7664), engraved=True, clock="wall"):
    import os
    import time

    # "cpu": the process's CPU time (all its threads), which a loaded machine's waits for a core do not inflate
    now = time.perf_counter if clock == "wall" else time.process_time

    from dwd_fast._threads import using_threads

    pages = [(f"reference n={n}", *_boxes(n), SHAPE) for n in sizes]
    if engraved:
        from dwd_fast.data import engraved_page

        p = engraved_page("random", seed=0)
        pages.append((f"engraved n={len(p.boxes)}", p.boxes, p.labels, p.image.shape))
    default = dwd_fast.get_num_threads()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    print(f"encode against the write floor of its outputs ({stamp}; {rounds} interleaved rounds; p50 / p95 ms of "
          f"{clock} time; {os.cpu_count()} CPUs{load})\n")
    print("| page | layout | threads | MB written | encode out= | fresh encode | floor (memset) "
          "| out= / floor p50 | p95 | fresh / floor p50 | p95 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, boxes, labels, shape in pages:
        labels8 = np.asarray(labels) % 256
        H, W = shape
        for layout in ("wide", "compact"):
            c, s = (np.uint8, np.float16) if layout == "compact" else (np.int32, np.float32)
            maps = (np.ones((H, W), np.uint8), np.ones((H, W), c), np.ones((2, H, W), s))
            mb = sum(m.nbytes for m in maps) / 1e6
            for threads in sorted({1, default}):
                floor = _memset_floor(maps, threads)
                calls = {"out": lambda: dwd_fast.encode(boxes, labels8, shape, layout=layout, out=maps),
                         "fresh": lambda: dwd_fast.encode(boxes, labels8, shape, layout=layout),
                         "floor": floor}
                times = {k: [] for k in calls}
                with using_threads(threads):
                    for f in calls.values():
                        f()
                    for _ in range(rounds):
                        for k, f in calls.items():
                            t0 = now()
                            f()
                            times[k].append((now() - t0) * 1e3)
                q = {k: (np.percentile(v, 50), np.percentile(v, 95)) for k, v in times.items()}
                fl = q["floor"]
                print(f"| {name} | {layout} | {threads} | {mb:.1f} | {q['out'][0]:.2f} / {q['out'][1]:.2f} "
                      f"| {q['fresh'][0]:.2f} / {q['fresh'][1]:.2f} | {fl[0]:.2f} / {fl[1]:.2f} "
                      f"| {q['out'][0] / fl[0]:.2f}x | {q['out'][1] / fl[1]:.2f}x "
                      f"| {q['fresh'][0] / fl[0]:.2f}x | {q['fresh'][1] / fl[1]:.2f}x |", flush=True)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--sizes", type=int, nargs="*", default=[250, 2000, 7664])
    ap.add_argument("--no-engraved", action="store_true")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time; cpu: the process's CPU time (for a machine shared with other work)")
    a = ap.parse_args()
    _floor_table(a.rounds, tuple(a.sizes), not a.no_engraved, a.clock)
