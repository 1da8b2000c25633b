"""watershed(method="skimage") against scikit-image over page sizes (issue 18 item 1): the page area
doubles three times (1/8 .. 1 of a 2668 x 1894 page, crops of reference page n=250's energy E, markers
label(E >= 8), no mask) on three reliefs: noisy float (-E + U[0, 0.01), float64: nearly every pixel
a value of its own), noisy int (-1000 E + U{0..999}, int32) and plateau-heavy (-E, int16: 16 levels,
the background one plateau). dwd_fast on one thread, interleaved with scikit-image in each repeat;
medians and p95 of the repeats; exponent = log2 of the median's growth per doubling (ours).

    python benchmarks/bench_watershed_skimage_sizes.py [--repeats 7] [--clock wall|process]

--clock process times CPU time (time.process_time) instead of wall time: on a shared, oversubscribed
machine wall time mostly measures the wait for a core (both calls run on one thread).
"""

import argparse
import math
import time

import numpy as np
from skimage.segmentation import watershed as sk_watershed

import dwd_fast
from dwd_fast.data import reference_page

H_FULL, W_FULL = 2668, 1894


def reliefs(E, rng):
    Ei = E.astype(np.int32)
    yield "noisy float", -Ei + rng.uniform(0, 0.01, E.shape)
    yield "noisy int", (-1000 * Ei + rng.integers(0, 1000, E.shape)).astype(np.int32)
    yield "plateau-heavy", -E.astype(np.int16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--clock", choices=("wall", "process"), default="wall")
    a = ap.parse_args()
    clock = time.perf_counter if a.clock == "wall" else time.process_time
    dwd_fast.set_num_threads(1)
    E_full = reference_page(250, seed=0).energy
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, dwd_fast {dwd_fast.__version__} "
          f"({dwd_fast.__file__}) 1 thread vs scikit-image, {a.repeats} interleaved repeats, {a.clock} time")
    print("| relief | size | ours 1-thr median (p95) s | scikit-image median (p95) s | ratio | exponent |")
    print("|---|---|---|---|---|---|")
    for name_i, _ in enumerate(("noisy float", "noisy int", "plateau-heavy")):
        prev = None
        for frac in (1 / 8, 1 / 4, 1 / 2, 1):
            k = math.sqrt(frac)
            H, W = int(round(H_FULL * k)), int(round(W_FULL * k))
            E = E_full[:H, :W]
            name, img = list(reliefs(E, np.random.default_rng(0)))[name_i]
            mk = dwd_fast.label(E >= 8)
            ours, ref = dwd_fast.watershed(img, mk, method="skimage"), sk_watershed(img, mk)
            assert np.array_equal(ours, ref), (name, H, W)
            t_o, t_s = [], []
            for _ in range(a.repeats):
                t0 = clock()
                dwd_fast.watershed(img, mk, method="skimage")
                t_o.append(clock() - t0)
                t0 = clock()
                sk_watershed(img, mk)
                t_s.append(clock() - t0)
            mo, ms = float(np.median(t_o)), float(np.median(t_s))
            po, ps = float(np.percentile(t_o, 95)), float(np.percentile(t_s, 95))
            ex = "" if prev is None else f"{math.log2(mo / prev):.2f}"
            prev = mo
            print(f"| {name} | {H}x{W} | {mo:.4f} ({po:.4f}) | {ms:.4f} ({ps:.4f}) | {ms / mo:.1f}x | {ex} |",
                  flush=True)


if __name__ == "__main__":
    main()
