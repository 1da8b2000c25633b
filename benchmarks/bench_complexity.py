"""Complexity checks (issue 18): every op on adversarial inputs at page areas doubling three times
(1/8, 1/4, 1/2 and the whole 2668 x 1894 page), one thread; prints, per case, the times (median and
min of the repeats) and the growth exponent of each doubling, log2(t(2A) / t(A)) on the minima, and
flags a case whose last two doublings both exceed 1.2 (linear is 1, n log n about 1.05 here).

    python benchmarks/bench_complexity.py [--repeats 3] [--only SUBSTRING] [--scale 1.0]

Times are the process's CPU time (time.process_time: on a shared, oversubscribed machine wall time
mostly measures the wait for a core). The minimum over repeats is the robust figure; a single
doubling above 1.2 with the others near 1 is noise (re-run with --only); a defect shows as a
growing exponent (quadratic: about 2 per doubling).
"""

import argparse
import math
import time

import numpy as np

import dwd_fast
from dwd_fast.data import reference_page

H_FULL, W_FULL = 2668, 1894


def shape_for(frac, scale):
    k = math.sqrt(frac * scale)
    return max(8, int(round(H_FULL * k))), max(8, int(round(W_FULL * k)))


_PAGE = {}


def page_energy(H, W):
    """The reference page n=2000's energy, tiled to (H, W) (DWD-like: thousands of small cones)."""
    if "E" not in _PAGE:
        p = reference_page(2000, seed=0)
        _PAGE["E"] = p.energy
    E = _PAGE["E"]
    reps = (-(-H // E.shape[0]), -(-W // E.shape[1]))
    return np.tile(E, reps)[:H, :W]


def serpentine(H, W):
    """One giant 4-connected component snaking through the whole page (rows joined at alternate ends)."""
    m = np.zeros((H, W), bool)
    m[::2] = True
    m[1::4, -1] = True
    m[3::4, 0] = True
    return m


def grid_markers(H, W, step=8):
    mk = np.zeros((H, W), np.int32)
    n = mk[::step, ::step].size
    mk[::step, ::step] = np.arange(1, n + 1).reshape(mk[::step, ::step].shape)
    return mk


def tiny_objects(H, W, rng, density=0.02):
    """Thousands of 1-2 px objects."""
    m = rng.random((H, W)) < density
    m[:, 1:] |= m[:, :-1] & (rng.random((H, W - 1)) < 0.3)
    return m


def cases():
    """(name, make(H, W, rng) -> zero-argument callable)."""
    ws = dwd_fast.watershed

    def w(method, relief, markers, mask=None, conn=1):
        def make(H, W, rng):
            img = relief(H, W, rng)
            mk = markers(H, W, rng, img)
            m = None if mask is None else mask(H, W, rng, img)
            return lambda: ws(img, mk, mask=m, connectivity=conn, method=method)
        return make

    noise_f = lambda H, W, rng: rng.uniform(0, 0.01, (H, W))
    page_noise_f = lambda H, W, rng: -page_energy(H, W).astype(np.int32) + rng.uniform(0, 0.01, (H, W))
    page_noise_i = lambda H, W, rng: -page_energy(H, W).astype(np.int32) * 1000 + rng.integers(0, 1000, (H, W)).astype(np.int32)
    page_int16 = lambda H, W, rng: -page_energy(H, W).astype(np.int16)
    flat = lambda H, W, rng: np.zeros((H, W), np.float32)
    one_marker = lambda H, W, rng, img: _one(H, W)
    two_markers = lambda H, W, rng, img: _two(H, W)
    grid = lambda H, W, rng, img: grid_markers(H, W)
    page_markers = lambda H, W, rng, img: dwd_fast.label(page_energy(H, W) >= 8)
    page_mask = lambda H, W, rng, img: page_energy(H, W) >= 2
    out = []
    for method in ("canonical", "skimage"):
        out += [
            (f"watershed {method} noise-f64 two markers", w(method, noise_f, two_markers)),
            (f"watershed {method} page-noise-f64 page markers", w(method, page_noise_f, page_markers)),
            (f"watershed {method} page-noise-i32 page markers", w(method, page_noise_i, page_markers)),
            (f"watershed {method} page-i16 masked conn2", w(method, page_int16, page_markers, page_mask, 2)),
            (f"watershed {method} plateau grid markers", w(method, flat, grid)),
            (f"watershed {method} plateau one marker", w(method, flat, one_marker)),
            (f"watershed {method} noise-f64 grid markers", w(method, noise_f, grid)),
        ]

    def lab(img_fn, conn):
        def make(H, W, rng):
            b = img_fn(H, W, rng)
            return lambda: dwd_fast.label(b, connectivity=conn)
        return make

    out += [
        ("label noise p=0.5 conn1", lab(lambda H, W, rng: rng.random((H, W)) < 0.5, 1)),
        ("label noise p=0.6 conn2", lab(lambda H, W, rng: rng.random((H, W)) < 0.6, 2)),
        ("label serpentine (one giant)", lab(lambda H, W, rng: serpentine(H, W), 1)),
        ("label checkerboard conn2 (one giant)", lab(lambda H, W, rng: (np.indices((H, W)).sum(0) % 2) == 0, 2)),
        ("label tiny objects", lab(tiny_objects, 2)),
        ("label all ones", lab(lambda H, W, rng: np.ones((H, W), bool), 1)),
    ]

    def rs(labels_fn):
        def make(H, W, rng):
            L = labels_fn(H, W, rng)
            img = rng.random((H, W)).astype(np.float32)
            cls = rng.integers(0, 8, (H, W)).astype(np.int32)
            return lambda: dwd_fast.region_stats(L, image=img, classes=cls, num_classes=8)
        return make

    out += [
        ("region_stats noise labels (many tiny)", rs(lambda H, W, rng: dwd_fast.label(rng.random((H, W)) < 0.5, connectivity=1))),
        ("region_stats one giant", rs(lambda H, W, rng: np.ones((H, W), np.int32))),
        ("region_stats random ids 1..1e5", rs(lambda H, W, rng: rng.integers(0, 100_000, (H, W)).astype(np.int32))),
    ]

    def dec(energy_fn, **kw):
        def make(H, W, rng):
            E = energy_fn(H, W, rng)
            C = rng.integers(0, 10, (H, W)).astype(np.int32)
            S = rng.uniform(2, 20, (2, H, W)).astype(np.float32)
            return lambda: dwd_fast.decode(E, C, S, **kw)
        return make

    noise_e = lambda H, W, rng: rng.integers(0, 16, (H, W)).astype(np.uint8)
    plateau_e = lambda H, W, rng: np.full((H, W), 15, np.uint8)
    page_e = lambda H, W, rng: page_energy(H, W)
    tiny_e = lambda H, W, rng: (tiny_objects(H, W, rng, 0.05) * 12).astype(np.uint8)
    for seeds in ("cutoff", "peaks"):
        extra = {} if seeds == "cutoff" else {"grow_to": 2}
        out += [
            (f"decode seeds={seeds} noise levels", dec(noise_e, seeds=seeds, min_size=1, **extra)),
            (f"decode seeds={seeds} plateau (one giant)", dec(plateau_e, seeds=seeds, **extra)),
            (f"decode seeds={seeds} page", dec(page_e, seeds=seeds, **extra)),
            (f"decode seeds={seeds} tiny objects", dec(tiny_e, seeds=seeds, min_size=1, **extra)),
        ]

    def pk(img_fn, **kw):
        def make(H, W, rng):
            img = img_fn(H, W, rng)
            return lambda: dwd_fast.peak_local_max(img, **kw)
        return make

    out += [
        ("peak_local_max noise f64", pk(lambda H, W, rng: rng.random((H, W)), min_distance=1)),
        ("peak_local_max noise f64 min_distance=5", pk(lambda H, W, rng: rng.random((H, W)), min_distance=5)),
        ("peak_local_max plateau", pk(lambda H, W, rng: np.ones((H, W), np.float32), min_distance=1,
                                      exclude_border=False)),
        ("peak_local_max few levels", pk(lambda H, W, rng: rng.integers(0, 3, (H, W)).astype(np.uint8),
                                         min_distance=2)),
        ("peak_local_max page", pk(lambda H, W, rng: page_energy(H, W), min_distance=2)),
    ]

    def enc(boxes_fn):
        def make(H, W, rng):
            boxes = boxes_fn(H, W, rng)
            labels = rng.integers(1, 10, len(boxes)).astype(np.int32)
            return lambda: dwd_fast.encode(boxes, labels, (H, W))
        return make

    def tiny_boxes(H, W, rng):  # one 2-6 px box per 200 px^2
        n = H * W // 200
        x, y = rng.uniform(0, W - 8, n), rng.uniform(0, H - 8, n)
        s = rng.uniform(2, 6, (n, 2))
        return np.stack([x, y, x + s[:, 0], y + s[:, 1]], 1).astype(np.float32)

    def overlapping_boxes(H, W, rng):  # boxes per area fixed, each ~40 px, heavily overlapping
        n = H * W // 400
        x, y = rng.uniform(0, W - 48, n), rng.uniform(0, H - 48, n)
        s = rng.uniform(20, 48, (n, 2))
        return np.stack([x, y, x + s[:, 0], y + s[:, 1]], 1).astype(np.float32)

    out += [("encode tiny boxes", enc(tiny_boxes)), ("encode overlapping boxes", enc(overlapping_boxes))]

    from dwd_fast.compat import perform_dws

    def pdws(energy_fn, variant):
        def make(H, W, rng):
            E = energy_fn(H, W, rng).astype(np.int64)[None]
            C = rng.integers(0, 10, E.shape).astype(np.int64)
            B = rng.uniform(2, 20, E.shape + (2,)).astype(np.float32)
            if variant == "2020":
                return lambda: perform_dws(E, C, B, [7, 1], 0, variant="2020")
            return lambda: perform_dws(E, C, B, 7, 0, variant="2018")
        return make

    out += [
        ("compat.perform_dws 2020 page", pdws(page_e, "2020")),
        ("compat.perform_dws 2020 noise levels", pdws(noise_e, "2020")),
        ("compat.perform_dws 2020 tiny objects", pdws(tiny_e, "2020")),
        ("compat.perform_dws 2018 page", pdws(page_e, "2018")),
    ]
    return out


def _one(H, W):
    mk = np.zeros((H, W), np.int32)
    mk[H // 2, W // 2] = 1
    return mk


def _two(H, W):
    mk = _one(H, W)
    mk[0, 0] = 2
    return mk


def run(repeats=3, only=None, scale=1.0, fracs=(1 / 8, 1 / 4, 1 / 2, 1)):
    dwd_fast.set_num_threads(1)
    rows = []
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 1 thread, repeats={repeats}, "
          f"areas {', '.join(f'{f * scale:g}' for f in fracs)} x {H_FULL}x{W_FULL}")
    print("| case | " + " | ".join(f"{f * scale:g} page: min / median s" for f in fracs) + " | exponents | flag |")
    print("|---|" + "---|" * len(fracs) + "---|---|")
    for name, make in cases():
        if only and only not in name:
            continue
        mins, meds = [], []
        try:
            for f in fracs:
                H, W = shape_for(f, scale)
                fn = make(H, W, np.random.default_rng(0))
                fn()  # warm up
                ts = []
                for _ in range(repeats):
                    t0 = time.process_time()
                    fn()
                    ts.append(time.process_time() - t0)
                mins.append(min(ts))
                meds.append(float(np.median(ts)))
        except Exception as e:  # a case this build cannot run: say so, go on
            print(f"| {name} | error: {type(e).__name__}: {e} |")
            continue
        ex = [math.log2(b / a) if a > 0 and b > 0 else float("nan") for a, b in zip(mins, mins[1:])]
        flag = "DEFECT?" if len(ex) >= 2 and min(ex[-2:]) > 1.2 else ""
        cells = " | ".join(f"{a:.4f} / {m:.4f}" for a, m in zip(mins, meds))
        print(f"| {name} | {cells} | {' '.join(f'{e:.2f}' for e in ex)} | {flag} |", flush=True)
        rows.append((name, mins, meds, ex, flag))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default=None)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every area (0.25: quicker)")
    a = ap.parse_args()
    run(a.repeats, a.only, a.scale)


if __name__ == "__main__":
    main()
