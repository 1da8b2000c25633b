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
    ``original per-box stamping`` is :func:`references_encode.original_stamp_targets`,
    the original's per-box numpy stamping with the same outputs (a lower bound of the original's
    cost, see its docstring). Plus the numpy floor (one pass reading the uint8 page).
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
IMPLEMENTATIONS = ["dwd_fast.encode", "dwd_fast.encode out=", WRITE_FLOOR, "original per-box stamping", FLOOR]


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
    H, W = SHAPE
    maps = (np.zeros((H, W), np.uint8), np.zeros((H, W), np.int32), np.zeros((2, H, W), np.float32))
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
