"""GPU timing of decode, decode with peak seeds, encode and watershed (for ``benchmarks/bench_gpu.py`` and
``dwd-fast bench --device cuda``).

Times with CUDA events on the caller's stream (median of ``repeats`` runs after ``warmup`` runs), in
torch (default) or CuPy. Reports per op and batch size B: median milliseconds per call, pages per
second, kernel launches per call and workspace bytes (watershed: one page per call, with its relaxation
sweeps). Nothing here has been run on a GPU yet; the
function refuses to run (RuntimeError with the reason) without a usable one.
"""

from __future__ import annotations

import statistics

import numpy as np

__all__ = ["bench_gpu"]


def _library(name):
    if name == "torch":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("torch has no CUDA device")

        def timer():
            return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        return (lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda(), timer,
                lambda s, e: s.elapsed_time(e), torch.cuda.synchronize)
    if name == "cupy":
        import cupy

        def timer():
            return cupy.cuda.Event(), cupy.cuda.Event()

        return (cupy.asarray, timer, lambda s, e: cupy.cuda.get_elapsed_time(s, e),
                cupy.cuda.runtime.deviceSynchronize)
    raise ValueError(f"library must be 'torch' or 'cupy', got {name!r}")


def _time(fn, timer, elapsed, sync, warmup, repeats):
    for _ in range(warmup):
        fn()
    sync()
    ms = []
    for _ in range(repeats):
        start, end = timer()
        start.record()
        fn()
        end.record()
        end.synchronize()
        ms.append(elapsed(start, end))
    return statistics.median(ms)


def bench_gpu(batch_sizes=(1, 8, 32), n_objects=250, *, library="torch", warmup=3, repeats=20, seed=0,
              decode_kwargs=None, peak_kwargs=None):
    """Median CUDA-event time of decode, decode with peak seeds and encode per batch size, and of the
    watershed on one page; returns a list of result dicts.

    Each dict: ``op``, ``B``, ``ms`` (median per call), ``pages_per_s``, ``launches`` (per call, from
    CudaExec's counter) and ``workspace_bytes`` (largest per page), plus ``device``; the watershed's also
    ``sweeps`` (relaxation sweeps of both phases).
    """
    import dwd_fast
    from dwd_fast._arrays import cuda_unusable_reason

    reason = cuda_unusable_reason()
    if reason is not None:
        raise RuntimeError(f"bench_gpu: {reason}")
    dev, timer, elapsed, sync = _library(library)
    page = dwd_fast.data.reference_page(n_objects, seed=seed)
    info = dwd_fast.info()["cuda"]
    device = info.get("devices", [("?", 0)])[0]
    dk = dict(cutoff=7) if decode_kwargs is None else dict(decode_kwargs)
    pk = dict(cutoff=7, seeds="peaks", min_distance=2) if peak_kwargs is None else dict(peak_kwargs)
    rng = np.random.default_rng(seed)
    H, W = page.energy.shape
    results = []
    for B in batch_sizes:
        e = dev(np.broadcast_to(page.energy, (B, H, W)))
        c = dev(np.broadcast_to(page.classes, (B, H, W)))
        s = dev(np.broadcast_to(page.sizes, (B, 2, H, W)))
        stats = {}
        dwd_fast.decode(e, c, s, **dk, _stats=stats)
        ms = _time(lambda: dwd_fast.decode(e, c, s, **dk), timer, elapsed, sync, warmup, repeats)
        results.append(dict(op="decode", B=B, ms=ms, pages_per_s=1000.0 * B / ms, launches=stats["launches"],
                            workspace_bytes=stats["workspace_bytes"], device=device))
        stats = {}
        dwd_fast.decode(e, c, s, **pk, _stats=stats)
        ms = _time(lambda: dwd_fast.decode(e, c, s, **pk), timer, elapsed, sync, warmup, repeats)
        results.append(dict(op="decode-peaks", B=B, ms=ms, pages_per_s=1000.0 * B / ms, launches=stats["launches"],
                            workspace_bytes=stats["workspace_bytes"], device=device))
        boxes, labels = [], []
        for _ in range(B):
            xy = rng.uniform(0, [W - 40, H - 40], (n_objects, 2))
            boxes.append(dev(np.concatenate([xy, xy + rng.uniform(6, 40, (n_objects, 2))], axis=1)))
            labels.append(dev(rng.integers(1, 120, n_objects)))
        stats = {}
        dwd_fast.encode(boxes, labels, (H, W), _stats=stats)
        ms = _time(lambda: dwd_fast.encode(boxes, labels, (H, W)), timer, elapsed, sync, warmup, repeats)
        results.append(dict(op="encode", B=B, ms=ms, pages_per_s=1000.0 * B / ms, launches=stats["launches"],
                            workspace_bytes=stats["workspace_bytes"], device=device))
    # watershed (one page per call): relief -energy from the markers of energy >= 8 inside energy >= 2
    E = page.energy
    img, mk, mask = dev(-E.astype(np.int16)), dev(dwd_fast.label(E >= 8)), dev(E >= 2)
    stats = {}
    dwd_fast.watershed(img, mk, mask=mask, _stats=stats)
    ms = _time(lambda: dwd_fast.watershed(img, mk, mask=mask), timer, elapsed, sync, warmup, repeats)
    results.append(dict(op="watershed", B=1, ms=ms, pages_per_s=1000.0 / ms, launches=stats["launches"],
                        workspace_bytes=stats["workspace_bytes"], sweeps=stats["sweeps"], device=device))
    return results


def format_results(results):
    lines = [f"{'op':12} {'B':>4} {'ms/call':>10} {'pages/s':>10} {'launches':>9} {'workspace MB':>13} {'sweeps':>7}"]
    for r in results:
        lines.append(f"{r['op']:12} {r['B']:4d} {r['ms']:10.3f} {r['pages_per_s']:10.1f} {r['launches']:9d} "
                     f"{r['workspace_bytes'] / 2**20:13.1f} {r.get('sweeps', ''):>7}")
    return "\n".join(lines)
