"""Kernel launches and workspace of the data-parallel algorithms, counted through the host executor.

HostExec counts its device-work calls (for_each, fill, exclusive_scan, sort_keys) the way CudaExec counts
kernel launches, and sums its workspace allocations, so the launch sequence of the CUDA ops is measured
here without a GPU (CUB's scan and radix sort launch a few kernels each internally; they count once).
"""

import numpy as np

import dwd_fast


def _decode_counts(energy, **kw):
    stats = {}
    dwd_fast.decode(energy, backend="host", _stats=stats, **kw)
    return stats


def test_decode_launches_do_not_depend_on_the_page(page250, page2000):
    a = _decode_counts(page250.energy, cutoff=7)
    b = _decode_counts(page2000.energy, cutoff=7)
    assert a["launches"] == b["launches"] and a["syncs"] == b["syncs"]
    # a fixed launch sequence per page without growth; peak workspace: three int32 maps per page
    # (labels, union-find parents, ranks) plus per-object arrays
    assert a["launches"] <= 30
    H, W = page250.energy.shape
    assert a["workspace_bytes"] <= 12 * H * W + (1 << 20)
    g = _decode_counts(page250.energy, cutoff=7, grow_to=3)
    assert g["workspace_bytes"] <= 24 * H * W + (1 << 20)


def test_decode_batch_is_one_sequence_per_page(page250):
    e = page250.energy[:400, :500]
    one = _decode_counts(e, cutoff=7)
    three = _decode_counts(np.stack([e, e, e]), cutoff=7)
    assert three["launches"] == 3 * one["launches"]


def test_encode_one_launch_sequence_per_batch():
    rng = np.random.default_rng(0)

    def boxes(n):
        xy = rng.uniform(0, 200, (n, 2))
        return np.concatenate([xy, xy + rng.uniform(4, 30, (n, 2))], axis=1)

    counts = []
    for B in (1, 8, 32):
        stats = {}
        dwd_fast.encode([boxes(50) for _ in range(B)], None, (240, 240), backend="host", _stats=stats)
        counts.append(stats["launches"])
    # areas, scan, key fill, propose, write: the same five steps for B = 1, 8, 32
    assert counts[0] == counts[1] == counts[2] == 5


def test_peak_local_max_launches(page250):
    from dwd_fast._ext import cpu_ext

    a4 = np.ascontiguousarray(page250.energy)[None, None]
    _, steps = cpu_ext().peak_local_max_host(a4, 3, 3, 3, -1, False, 7, 0, 0)
    # candidate flags, compaction, differs, spacing (one element), coordinates
    assert steps == 5


def test_watershed_launches_per_sweep(page2000):
    """The CUDA watershed's launch sequence on the n=2000 reference page (relief -energy from the markers of
    energy >= 8 inside energy >= 2): 7 fixed steps (stats init, scan, level ranks, marker labels, key init,
    label init, output) plus, per group of 4 sweeps, 4 sweeps and one fill of the change counters, read back
    once per group. Workspace: level ranks, marker labels, labels (int32) and keys (uint64) = 20 B/px."""
    E = page2000.energy
    img, markers, mask = -E.astype(np.int16), dwd_fast.label(E >= 8), E >= 2
    for conn, most in ((1, 12), (2, 10)):
        st = {}
        dwd_fast.watershed(img, markers, mask=mask, connectivity=conn, backend="host", _stats=st)
        groups = -(-st["key_sweeps"] // 4) + -(-st["label_sweeps"] // 4)
        assert st["launches"] == 7 + 5 * groups
        assert st["syncs"] == 1 + groups
        assert 2 <= st["key_sweeps"] <= most and 2 <= st["label_sweeps"] <= most
        assert st["sweeps"] == st["key_sweeps"] + st["label_sweeps"]
        assert not st["level_sort"] and not st["marker_sort"]  # int16 relief, labels 1..n: no sort
        assert 20 * E.size <= st["workspace_bytes"] <= 20 * E.size + 64


def test_decode_peak_seeds_counts(page250, page2000):
    """decode(seeds="peaks") per page: the peak pipeline (flags, scan, differs, compaction, sort, spacing,
    coordinates), the plateau labelling and numbering, the growth (labelling, watershed, numbering), the
    statistics. Peak workspace: as with grow_to, 24 B/px (the peak pipeline's buffers are returned before
    the growth), plus per-object arrays."""
    H, W = page2000.energy.shape
    for kw in (dict(), dict(min_distance=3)):
        a = _decode_counts(page250.energy, cutoff=7, seeds="peaks", **kw)
        b = _decode_counts(page2000.energy, cutoff=7, seeds="peaks", **kw)
        for s in (a, b):
            assert s["launches"] <= 90 and s["syncs"] <= 20
            assert 24 * H * W <= s["workspace_bytes"] <= 24 * H * W + (1 << 20)
        g = _decode_counts(page2000.energy, cutoff=7, grow_to=7)
        assert b["launches"] > g["launches"]  # the peak pipeline and the plateau labelling come on top
