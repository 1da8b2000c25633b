"""``dwd-fast bench``: every op against its references on reference and engraved pages.

Each op is timed with the libraries a user would otherwise use (scikit-image, SciPy, OpenCV and cc3d
when installed) and with the re-statements of the original DWD algorithms (:mod:`.references`,
:mod:`.references_encode`), in the same run, on the same inputs; results are checked against each
other (each dwd_fast variant against each reference, the check named in the table). Ratios are
thread-matched: dwd_fast on one thread against the single-threaded references, every side warmed up
and timed as the median of at least 3 calls; dwd_fast's speed-up on its default thread count is a
column of its own. The pytest-benchmark suites in ``benchmarks/`` are the developers' version of the
same comparisons.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .._files import atomic_write, save_image

FLOOR = "numpy energy > 7 (floor)"


# --------------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------------

@dataclass
class BenchPage:
    name: str
    objects: int
    energy: np.ndarray
    classes: np.ndarray
    sizes: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    levels: int = 16
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def mask(self):
        if "mask" not in self._cache:
            self._cache["mask"] = self.energy >= 8
        return self._cache["mask"]

    @property
    def energy64(self):
        if "e64" not in self._cache:
            self._cache["e64"] = self.energy.astype(np.int64)
        return self._cache["e64"]

    @property
    def boxmap(self):
        if "boxmap" not in self._cache:
            self._cache["boxmap"] = np.ascontiguousarray(np.moveaxis(self.sizes, 0, -1))
        return self._cache["boxmap"]


def reference_bench_page(n):
    from ..data import reference_page

    p = reference_page(n, seed=0)
    return BenchPage(f"reference n={n}", n, p.energy, p.classes, p.sizes, p.boxes, p.labels)


def engraved_bench_page(music="random", seed=0, font="Bravura"):
    """An engraved page, its targets, and simulated network outputs on them (the decoder's input)."""
    from ..data import box_targets, engraved_page, simulate_outputs

    p = engraved_page(music, seed=seed, font=font)
    t, objects = box_targets(p.boxes, p.labels, p.image.shape, levels=16)
    out = simulate_outputs(t, seed=seed, objects=objects)
    what = f"random seed={seed}" if music == "random" else music
    return BenchPage(f"engraved {what} {font}", len(p.boxes), out.energy, out.classes, out.sizes, p.boxes,
                     p.labels)


# --------------------------------------------------------------------------------------------------
# Cases: (op, implementation) -> a callable on a page, or None when its library is missing
# --------------------------------------------------------------------------------------------------

@dataclass
class Case:
    op: str
    name: str
    ours: bool
    make: Callable  # page -> zero-argument callable, or None when unavailable
    check: Optional[Callable] = None  # (page, result, our result) -> bool, or (bool, what was found)
    check_what: str = ""  # what the check compares ("equal", "same partition", ...)
    slow: bool = False  # a warm-up call and 3 timed rounds (1 with --quick), whatever the budget
    pages: Optional[Callable] = None  # page -> whether to run on it


def _try(module):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        return None


def _same_objects(a, b):
    return (a["boxes"].shape == b["boxes"].shape and np.array_equal(a["labels"], b["labels"])
            and np.allclose(a["boxes"], b["boxes"], rtol=0, atol=1e-3))


def _det(d):
    return {"boxes": np.asarray(d.boxes), "labels": np.asarray(d.labels)}


def _label_partition(a, b):
    """Whether label images a and b are the same partition (any numbering)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or not np.array_equal(a > 0, b > 0):
        return False
    fg = a > 0
    x, y = a[fg].astype(np.int64), b[fg].astype(np.int64)
    pairs = np.unique(x * (int(y.max(initial=0)) + 1) + y)
    return pairs.size == np.unique(x).size == np.unique(y).size


def _ws_check(ws_inputs):
    def check(p, r, o):
        share = float(np.mean((np.asarray(r) == np.asarray(o))[ws_inputs(p)[2]]))
        return share > 0.99, f"{100 * share:.3f}% of masked pixels agree"

    return check


def cases():
    import dwd_fast

    from . import references as R
    from .references_encode import original_stamp_targets

    skimage = _try("skimage")
    cv2 = _try("cv2")
    cc3d = _try("cc3d")
    ndi = _try("scipy.ndimage")
    if cv2 is not None:
        cv2.setNumThreads(1)
    out = []

    # decode
    out.append(Case("decode", "dwd_fast", True,
                    lambda p: lambda: _det(dwd_fast.decode(p.energy, p.classes, p.sizes, cutoff=7, min_size=4))))
    if skimage:
        out.append(Case("decode", "skimage label+regionprops", False,
                        lambda p: lambda: R.skimage_decode(p.energy, p.classes, p.sizes, cutoff=7, min_size=4),
                        check=lambda p, r, o: _same_objects(r, o), check_what="same boxes (1e-3 px) and labels"))
    # decode grow_to
    out.append(Case("decode grow_to=1", "dwd_fast", True,
                    lambda p: lambda: _det(dwd_fast.decode(p.energy, p.classes, p.sizes, cutoff=7, min_size=4,
                                                           grow_to=1))))
    if skimage:
        def grow_check(p, r, o):
            if r["boxes"].shape != o["boxes"].shape:
                return False
            share = float(np.mean(np.all(np.abs(r["boxes"] - o["boxes"]) < 1e-3, axis=1)))
            return share > 0.95, f"{100 * share:.1f}% of boxes equal (1e-3 px)"
        out.append(Case("decode grow_to=1", "skimage label+watershed+regionprops", False,
                        lambda p: lambda: R.skimage_decode_grow(p.energy, p.classes, p.sizes, cutoff=7, min_size=4,
                                                                grow_to=1),
                        check=grow_check, check_what="boxes equal", slow=True))
    # label
    out.append(Case("label", "dwd_fast", True, lambda p: lambda: dwd_fast.label(p.mask, connectivity=2)))
    if skimage:
        out.append(Case("label", "skimage.measure.label", False, lambda p: lambda: R.skimage_label(p.mask),
                        check=lambda p, r, o: np.array_equal(r, o), check_what="equal"))
    if ndi:
        eight = np.ones((3, 3), bool)
        out.append(Case("label", "scipy.ndimage.label", False, lambda p: lambda: ndi.label(p.mask, structure=eight)[0],
                        check=lambda p, r, o: np.array_equal(r, o), check_what="equal"))
    if cv2:
        out.append(Case("label", "cv2.connectedComponents", False,
                        lambda p: lambda: cv2.connectedComponents(p.mask.view(np.uint8), connectivity=8)[1],
                        check=lambda p, r, o: _label_partition(r, o), check_what="same partition"))
    if cc3d:
        out.append(Case("label", "cc3d.connected_components", False,
                        lambda p: lambda: cc3d.connected_components(p.mask, connectivity=8),
                        check=lambda p, r, o: _label_partition(r, o), check_what="same partition"))
    # peak_local_max
    out.append(Case("peak_local_max", "dwd_fast", True,
                    lambda p: lambda: dwd_fast.peak_local_max(p.energy, min_distance=3, threshold_abs=8)))
    if skimage:
        from skimage.feature import peak_local_max
        out.append(Case("peak_local_max", "skimage", False,
                        lambda p: lambda: peak_local_max(p.energy, min_distance=3, threshold_abs=8),
                        check=lambda p, r, o: np.array_equal(r, o), check_what="equal"))
    # watershed
    def ws_inputs(p):
        if "ws" not in p._cache:
            e = p.energy.astype(np.int16)
            p._cache["ws"] = (-e, dwd_fast.label(e >= 8), e >= 2)
        return p._cache["ws"]

    out.append(Case("watershed", "dwd_fast canonical", True,
                    lambda p: (lambda i, m, k: lambda: dwd_fast.watershed(i, m, mask=k))(*ws_inputs(p))))
    out.append(Case("watershed", "dwd_fast method=skimage", True,
                    lambda p: (lambda i, m, k: lambda: dwd_fast.watershed(i, m, mask=k, method="skimage"))(
                        *ws_inputs(p))))
    if skimage:
        from skimage.segmentation import watershed as sk_ws
        out.append(Case("watershed", "skimage", False,
                        lambda p: (lambda i, m, k: lambda: sk_ws(i, m, mask=k))(*ws_inputs(p)),
                        check=_ws_check(ws_inputs), check_what="agreement on masked pixels", slow=True))
    # encode
    shape = lambda p: p.energy.shape  # noqa: E731
    out.append(Case("encode", "dwd_fast", True,
                    lambda p: lambda: dwd_fast.encode(p.boxes, p.labels, shape(p), levels=20)))
    out.append(Case("encode", "original per-box stamping", False,
                    lambda p: lambda: original_stamp_targets(p.boxes, p.labels, shape(p), levels=20,
                                                             nr_classes=int(p.labels.max(initial=0)) + 1),
                    slow=True))
    # perform_dws
    for variant, args, pages in (("2018", (1, 4), None), ("2020", ([7, 1], 8), lambda p: p.objects <= 300)):
        out.append(Case(f"perform_dws {variant}", "dwd_fast.compat", True,
                        (lambda v, a: lambda p: lambda: dwd_fast.compat.perform_dws(
                            p.energy64[None], p.classes[None], p.boxmap[None], *a, variant=v))(variant, args),
                        pages=pages))
        if cv2:
            orig = {"2018": R.original_perform_dws_2018, "2020": R.original_perform_dws_2020}[variant]
            out.append(Case(f"perform_dws {variant}", "original", False,
                            (lambda f, a: lambda p: lambda: f(p.energy64[None], p.classes[None], p.boxmap[None], *a))(
                                orig, args),
                            check=lambda p, r, o: r == o, check_what="equal", slow=True, pages=pages))
    return out


# --------------------------------------------------------------------------------------------------
# Timing and reporting
# --------------------------------------------------------------------------------------------------

def time_call(fn, budget, max_rounds, min_rounds=1, slow=False):
    """(result of the warm-up call, median ms, rounds): after one warm-up call, rounds until ``budget``
    seconds are spent (at least ``min_rounds``, at most ``max_rounds``)."""
    res = time_calls([fn], budget, max_rounds, min_rounds)[0]
    return res


def time_calls(fns, budget, max_rounds, min_rounds=1):
    """[(result of the warm-up call, median ms, rounds)] of each of ``fns``, timed in alternation
    (one call of each per round, the order reversed every other round), each warmed up once first."""
    results = [fn() for fn in fns]
    times = [[] for _ in fns]
    spent = 0.0
    k = 0
    while k < max_rounds and (k < min_rounds or spent < budget):
        order = range(len(fns)) if k % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            t = time.perf_counter()
            fns[i]()
            dt = time.perf_counter() - t
            times[i].append(dt)
            spent += dt
        k += 1
    return [(r, float(np.median(t)) * 1e3, len(t)) for r, t in zip(results, times)]


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts():
    import dwd_fast

    cv2 = _try("cv2")
    cpu = dwd_fast.info()["cpu"]
    return {
        "cpu_model": _cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
        "system": platform.system(), "python": platform.python_version(), "numpy": np.__version__,
        "scikit-image": _version("scikit-image"), "scipy": _version("scipy"),
        "opencv": cv2.__version__ if cv2 is not None else None, "cc3d": _version("connected-components-3d"),
        "verovio": _version("verovio"), "dwd_fast": dwd_fast.__version__,
        "threads": {"dwd_fast": dwd_fast.get_num_threads(), "dwd_fast_pool": cpu.get("pool_threads"),
                    "opencv": cv2.getNumThreads() if cv2 is not None else None,
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "load_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def machine_line(f):
    versions = ", ".join(f"{n} {f[k]}" for n, k in (
        ("Python", "python"), ("numpy", "numpy"), ("scikit-image", "scikit-image"), ("SciPy", "scipy"),
        ("OpenCV", "opencv"), ("cc3d", "cc3d"), ("Verovio", "verovio"), ("dwd_fast", "dwd_fast")) if f.get(k))
    t = f["threads"]
    return (f"Machine: {f['cpu_model']}, {f['cores']} cores ({f['system']} {f['machine']}); {versions}. Threads: "
            f"ratios compare dwd_fast on 1 thread with the single-threaded references (OpenCV {t['opencv']}); "
            f"the speed-up column is dwd_fast on its default {t.get('dwd_fast', 1)} threads over itself on 1, "
            f"OMP_NUM_THREADS={t['OMP_NUM_THREADS'] or 'unset'}. "
            f"Run {f['date_utc']} UTC, load average {f['load_1min']:.1f} at the start.")


def _ms(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def _ratio(x):
    return f"{x:,.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def table(results):
    """Markdown table: one row per (op, page, dwd_fast variant, reference): dwd_fast's time on one thread,
    the reference's (single-threaded), the thread-matched ratio, dwd_fast's time on its default threads
    and that speed-up, and the check of this variant's output against this reference."""
    lines = ["| op | page | objects | dwd_fast | ms, 1 thread | reference (1 thread) | ms | dwd_fast is "
             "(1 thread vs 1 thread) | dwd_fast ms, default threads | multi-thread speed-up | checked |",
             "|---|---|---:|---|---:|---|---:|---:|---:|---:|---|"]
    by = {}
    for r in results:
        by.setdefault((r["op"], r["page"]), []).append(r)
    for (op, page), rs in by.items():
        ours = [r for r in rs if r["ours"]]
        refs = [r for r in rs if not r["ours"]]
        floor = next((r for r in refs if r["implementation"] == FLOOR), None)
        refs = [r for r in refs if r["implementation"] != FLOOR]
        o = ours[0] if ours else None
        for ref in refs or [None]:
            for oo in ours or [None]:
                if ref is None and oo is None:
                    continue
                ratio = ""
                if ref and oo:
                    x = ref["ms"] / oo["ms"]
                    ratio = _ratio(x) + " faster" if x >= 1 else _ratio(1 / x) + " **slower**"
                chk = ""
                if ref is not None and oo is not None:
                    c = (ref.get("checks") or {}).get(oo["implementation"])
                    if c is not None:
                        chk = ("yes: " if c[0] else "**NO**: ") + c[1]
                multi = speed = ""
                if oo and oo.get("ms_default"):
                    multi = _ms(oo["ms_default"])
                    speed = f"{oo['ms'] / oo['ms_default']:.2f}x on {oo.get('threads_default', '?')}"
                lines.append(f"| {op} | {page} | {(oo or ref)['objects']} | {oo['implementation'] if oo else ''} | "
                             f"{_ms(oo['ms']) if oo else ''} | {ref['implementation'] if ref else ''} | "
                             f"{_ms(ref['ms']) if ref else ''} | {ratio} | {multi} | {speed} | {chk} |")
        if floor and o:
            lines.append(f"| {op} | {page} | {o['objects']} | {o['implementation']} | {_ms(o['ms'])} | "
                         f"{FLOOR} | {_ms(floor['ms'])} | {_ratio(o['ms'] / floor['ms'])} the floor | | | |")
    return lines


def plot(results, path, title="dwd-fast bench"):
    """PNG (Pillow) of median time against objects per page, log time axis: dwd_fast solid, each op's
    first reference dashed, one colour per op."""
    from PIL import Image, ImageDraw

    W, H, L, R_, T, B = 1000, 640, 80, 280, 40, 60
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    pts = [r for r in results if r["implementation"] != FLOOR]
    if not pts:
        save_image(img, path)
        return
    xs = [r["objects"] for r in pts]
    ys = [r["ms"] for r in pts]
    raw = max(xs) / 5
    mag = 10.0 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)  # round tick step, at most 5 steps
    x_max = step * np.ceil(max(xs) * 1.05 / step)
    lo, hi = np.floor(np.log10(min(ys))), np.ceil(np.log10(max(ys)))
    hi = max(hi, lo + 1)
    px = lambda x: L + (W - L - R_) * x / x_max  # noqa: E731
    py = lambda y: T + (H - T - B) * (hi - np.log10(y)) / (hi - lo)  # noqa: E731
    d.rectangle([L, T, W - R_, H - B], outline="black")
    for e in range(int(lo), int(hi) + 1):
        y = py(10.0 ** e)
        d.line([L, y, W - R_, y], fill=(220, 220, 220))
        d.text((8, y - 6), f"{10.0 ** e:g} ms", fill="black")
    for k in range(int(round(x_max / step)) + 1):
        x = k * step
        d.line([px(x), H - B, px(x), H - B + 5], fill="black")
        d.text((px(x) - 12, H - B + 8), f"{x:,.0f}", fill="black")
    d.text(((W - R_) / 2 - 40, H - 22), "objects per page", fill="black")
    d.text((L, 12), title + " (median time, log scale)", fill="black")
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
               (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
    ops = list(dict.fromkeys(r["op"] for r in pts))
    legend_y = T
    for i, op in enumerate(ops):
        c = colours[i % len(colours)]
        rs = [r for r in pts if r["op"] == op]
        impls = [next((r["implementation"] for r in rs if r["ours"]), None),
                 next((r["implementation"] for r in rs if not r["ours"]), None)]
        for j, impl in enumerate(impls):
            if impl is None:
                continue
            s = sorted((r["objects"], r["ms"]) for r in rs if r["implementation"] == impl)
            xy = [(px(x), py(y)) for x, y in s]
            for a, b in zip(xy, xy[1:]):
                if j == 0:
                    d.line([a, b], fill=c, width=3)
                else:
                    n = max(2, int(np.hypot(b[0] - a[0], b[1] - a[1]) // 8))
                    for k in range(0, n, 2):
                        p0 = (a[0] + (b[0] - a[0]) * k / n, a[1] + (b[1] - a[1]) * k / n)
                        p1 = (a[0] + (b[0] - a[0]) * (k + 1) / n, a[1] + (b[1] - a[1]) * (k + 1) / n)
                        d.line([p0, p1], fill=c, width=2)
            for x, y in xy:
                r = 4 if j == 0 else 3
                (d.ellipse if j == 0 else d.rectangle)([x - r, y - r, x + r, y + r], fill=c if j == 0 else "white",
                                                      outline=c)
            d.line([W - R_ + 12, legend_y + 7, W - R_ + 36, legend_y + 7], fill=c, width=3 if j == 0 else 1)
            d.text((W - R_ + 42, legend_y), f"{op}: {impl}"[:38], fill="black")
            legend_y += 16
    save_image(img, path, optimize=True)


def parse_pages(spec, quick):
    """Page list from ``--pages``: comma-separated object counts of reference pages and ``engraved``."""
    if spec is None:
        spec = "250,2000,engraved" if quick else "250,2000,7664,engraved,engraved:toccata:Leland,engraved:1:Leipzig"
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("engraved"):
            parts = item.split(":")
            music, font = "random", "Bravura"
            seed = 0
            if len(parts) > 1 and parts[1]:
                if parts[1].isdigit():
                    seed = int(parts[1])
                else:
                    music = parts[1]
            if len(parts) > 2 and parts[2]:
                font = parts[2]
            out.append(("engraved", music, seed, font))
        else:
            try:
                n = int(item)
            except ValueError:
                raise ValueError(f"--pages: {item!r} is neither an object count nor 'engraved[:seed|piece[:font]]'") \
                    from None
            if n < 1:
                raise ValueError(f"--pages: object counts must be positive, got {n}")
            out.append(("reference", n))
    return out


def run(quick=False, pages=None, only=None, progress=None):
    """Run the benchmark; returns a dict with ``machine``, ``results`` and ``pages``."""
    progress = progress or (lambda msg: None)
    budget, max_rounds, min_rounds = (0.15, 5, 1) if quick else (1.0, 30, 3)
    slow_rounds = 1 if quick else 3  # the slow references: warm-up call, then 3 timed (quick: 1)
    import dwd_fast

    threads_default = dwd_fast.get_num_threads()
    all_cases = cases()
    if quick:  # the original 2020 decoder alone takes about 10 s, even on the smallest page
        all_cases = [c for c in all_cases if not (c.op == "perform_dws 2020" and not c.ours)]
    if only:
        pats = [p.strip() for p in only.split(",") if p.strip()]
        all_cases = [c for c in all_cases if any(fnmatch.fnmatch(c.op, p) or c.op.startswith(p) for p in pats)]
        if not all_cases:
            raise ValueError(f"--only {only!r} matches no op (ops: {', '.join(sorted({c.op for c in cases()}))})")
    facts = machine_facts()
    facts["missing"] = [what for mod, what in (
        ("skimage", "scikit-image (its pipelines)"), ("scipy.ndimage", "SciPy (ndimage.label)"),
        ("cv2", "OpenCV (its labelling and the original DWD decoders)"), ("cc3d", "cc3d (connected_components)"))
        if _try(mod) is None]
    results = []
    page_specs = parse_pages(pages, quick)
    page_info = []
    for k, spec in enumerate(page_specs, 1):
        t0 = time.perf_counter()
        if spec[0] == "reference":
            progress(f"[{k}/{len(page_specs)}] reference page, {spec[1]} objects")
            page = reference_bench_page(spec[1])
        else:
            progress(f"[{k}/{len(page_specs)}] engraving a page ({spec[1]}{' seed ' + str(spec[2]) if spec[1] == 'random' else ''}, "
                     f"{spec[3]}) and simulating network outputs")
            page = engraved_bench_page(spec[1], spec[2], spec[3])
        page_info.append({"page": page.name, "objects": page.objects, "prepare_s": time.perf_counter() - t0})
        ops = list(dict.fromkeys(c.op for c in all_cases))
        for op in ops:
            mine = [c for c in all_cases if c.op == op and (c.pages is None or c.pages(page))]
            if not mine:
                continue
            progress(f"      {op}: " + ", ".join(c.name for c in mine))
            ours_results = {}
            for c in sorted(mine, key=lambda c: not c.ours):
                fn = c.make(page)
                if c.ours:  # on one thread (the ratio) and on the default count (the speed-up), alternately
                    from .._threads import using_threads

                    def on(n, fn=fn):
                        def call():
                            with using_threads(n):
                                return fn()
                        return call

                    (res, ms, rounds), (_, ms_default, _) = time_calls([on(1), on(0)], budget, max_rounds,
                                                                        min_rounds)
                    ours_results[c.name] = res
                    results.append({"op": op, "page": page.name, "objects": page.objects, "implementation": c.name,
                                    "ours": True, "ms": ms, "rounds": rounds, "correct": None, "threads": 1,
                                    "ms_default": ms_default, "threads_default": threads_default})
                    continue
                res, ms, rounds = time_call(fn, budget, slow_rounds if c.slow else max_rounds,
                                            slow_rounds if c.slow else min_rounds)
                checks, correct = {}, None
                if c.check is not None:
                    for name, mine_res in ours_results.items():
                        try:
                            got = c.check(page, res, mine_res)
                        except Exception as e:  # a failed comparison is reported, not raised
                            got = (False, f"comparison failed: {type(e).__name__}")
                        ok, what = got if isinstance(got, tuple) else (bool(got), c.check_what)
                        checks[name] = (bool(ok), what)
                    if checks:
                        correct = all(ok for ok, _ in checks.values())
                results.append({"op": op, "page": page.name, "objects": page.objects, "implementation": c.name,
                                "ours": False, "ms": ms, "rounds": rounds, "correct": correct, "checks": checks})
            if op != ops[0]:
                continue
            _, ms, rounds = time_call(lambda: np.greater(page.energy, 7), budget, max_rounds, min_rounds)
            results.append({"op": op, "page": page.name, "objects": page.objects, "implementation": FLOOR,
                            "ours": False, "ms": ms, "rounds": rounds, "correct": None})
    return {"machine": facts, "pages": page_info, "results": results, "quick": bool(quick)}


def report(data, out=None):
    out = sys.stdout if out is None else out
    print(machine_line(data["machine"]), file=out)
    print("", file=out)
    for line in table(data["results"]):
        print(line, file=out)
    if data["machine"].get("missing"):
        print(f"\nNot run, not installed: {'; '.join(data['machine']['missing'])}. "
              "pip install 'dwd-fast[bench]' to compare with them.", file=out)


def write_json(data, path):
    atomic_write(path, lambda f: json.dump(data, f, indent=1, default=str))

