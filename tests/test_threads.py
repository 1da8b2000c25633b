"""dwd_fast.set_num_threads: the count is kept, bad counts are refused, and results do not depend on it."""

import numpy as np
import pytest

import dwd_fast


@pytest.fixture
def restore_threads():
    yield
    dwd_fast.set_num_threads(0)


def test_set_and_get(restore_threads):
    dwd_fast.set_num_threads(0)
    default = dwd_fast.get_num_threads()
    assert default >= 1
    dwd_fast.set_num_threads(3)
    assert dwd_fast.get_num_threads() == 3
    dwd_fast.set_num_threads(np.int64(1))
    assert dwd_fast.get_num_threads() == 1
    dwd_fast.set_num_threads(0)
    assert dwd_fast.get_num_threads() == default


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_bad_counts(bad, exc, restore_threads):
    with pytest.raises(exc, match="threads"):
        dwd_fast.set_num_threads(bad)


def test_results_do_not_depend_on_the_count(page2000, restore_threads):
    E = page2000.energy
    img, markers, mask = -E.astype(np.int16), dwd_fast.label(E >= 8), E >= 2
    out = {}
    for n in (1, 2, 3):
        dwd_fast.set_num_threads(n)
        d = dwd_fast.decode(E, page2000.classes, page2000.sizes, cutoff=7, min_size=4, grow_to=1)
        out[n] = (dwd_fast.label(E > 3), dwd_fast.watershed(img, markers, mask=mask),
                  dwd_fast.watershed(img, markers, mask=mask, method="skimage"), d.boxes, d.labels, d.scores)
    for n in (2, 3):
        for a, b in zip(out[1], out[n]):
            np.testing.assert_array_equal(a, b)


# ---- the pool: counts, concurrent callers, busy machines, fork, thread limits ------------------------

import os
import subprocess
import sys
import threading

from dwd_fast import _ext


def _ops(page):
    """Every op that splits its work over threads, on one page; the results as a flat list of arrays."""
    E = page.energy
    img, markers, mask = -E.astype(np.int16), dwd_fast.label(E >= 8), E >= 2
    out = [dwd_fast.label(E > 3), dwd_fast.watershed(img, markers, mask=mask),
           dwd_fast.watershed(img, markers, mask=mask, method="skimage"),
           dwd_fast.peak_local_max(E.astype(np.float32), min_distance=2, threshold_abs=3)]
    for kw in ({"cutoff": 7, "min_size": 4}, {"cutoff": 7, "min_size": 4, "grow_to": 1}, {"seeds": "peaks"}):
        d = dwd_fast.decode(E, page.classes, page.sizes, **kw)
        out += [d.boxes, d.labels, d.scores]
    stats = dwd_fast.region_stats(out[0], image=E.astype(np.float32))
    out += [np.asarray(v) for v in stats if v is not None]
    t = dwd_fast.encode(page.boxes, page.labels, E.shape)
    out += [t.energy, t.classes, t.sizes]
    return out


def _assert_all_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("bad", [1025, 5000, 2**31 - 1, 2**63])
def test_counts_beyond_the_cap_are_refused(bad, restore_threads):
    before = dwd_fast.get_num_threads()
    with pytest.raises(ValueError, match="threads"):
        dwd_fast.set_num_threads(bad)
    assert dwd_fast.get_num_threads() == before


def test_the_cap_itself_works(page250, restore_threads):
    """1024 threads (the cap) is accepted; the helpers the system grants are used, the results are the same."""
    ref = _ops(page250)
    dwd_fast.set_num_threads(1024)
    old = _ext.cpu_ext().page_threads(1024, 0)
    try:
        _assert_all_equal(_ops(page250), ref)
    finally:
        _ext.cpu_ext().page_threads(*old)
    assert 1 <= dwd_fast.info()["cpu"]["pool_threads"] <= 1024


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_many_small_parts(page250, threads, restore_threads):
    """Every phase split (no work threshold) over several threads, more parts than threads: same results."""
    ref = _ops(page250)
    old = _ext.cpu_ext().page_threads(threads, 0)
    try:
        _assert_all_equal(_ops(page250), ref)
    finally:
        _ext.cpu_ext().page_threads(*old)


def test_concurrent_python_threads(page250, restore_threads):
    """Four Python threads calling at once (the pool is shared; a caller that finds it busy works alone)."""
    ref = _ops(page250)
    old = _ext.cpu_ext().page_threads(2, 0)
    results, errors = [None] * 4, []

    def work(k):
        try:
            for _ in range(3):
                results[k] = _ops(page250)
                _assert_all_equal(results[k], ref)
        except Exception as e:  # reported below
            errors.append(e)

    try:
        ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        _ext.cpu_ext().page_threads(*old)
    assert not errors, errors
    for r in results:
        _assert_all_equal(r, ref)


def test_busy_process(page250, restore_threads):
    """With other processes spinning on every core, the default count still gives the one-thread results."""
    with using_threads_1():
        ref = _ops(page250)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        for threads in (0, 2):
            dwd_fast.set_num_threads(threads)
            _assert_all_equal(_ops(page250), ref)
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def using_threads_1():
    from dwd_fast._threads import using_threads

    return using_threads(1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child(page250, restore_threads):
    """A forked child (after the parent used its helpers) decodes correctly, on 1 thread by default."""
    dwd_fast.set_num_threads(0)
    ref = _ops(page250)  # the parent's pool is running
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report (threads, equal) and leave without running pytest's teardown
        code = 1
        try:
            same = all(np.array_equal(x, y) for x, y in zip(_ops(page250), ref))
            os.write(w, f"{dwd_fast.get_num_threads()} {int(same)}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        msg = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    threads, same = map(int, msg.split())
    assert same == 1
    assert threads == 1  # the default in a forked child, as PyTorch's DataLoader workers use


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_keeps_a_set_count(page250, restore_threads):
    dwd_fast.set_num_threads(3)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if dwd_fast.get_num_threads() == 3 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_thread_creation_failure_degrades():
    """When the system refuses threads (the pool's thread creation fails after two helpers, through the
    same path as a real thread limit), the process survives, every call returns the same result on the
    threads it got, and the pool keeps the helpers it has. (An address-space limit is no way to test
    this: once the helpers' stacks have used the memory up, glibc aborts in any thread that first
    touches a dlopen'ed library's thread-local data, whichever library it is.)"""
    code = r"""
import numpy as np, dwd_fast
from dwd_fast import _ext
from dwd_fast.data import reference_page
cpu = _ext.cpu_ext()
page = reference_page(60, seed=1)
ref = dwd_fast.label(page.energy > 3)
ref_ws = dwd_fast.watershed(-page.energy.astype(np.int32), dwd_fast.label(page.energy > 8), mask=page.energy > 1)
cpu.spawn_limit(2)
cpu.page_threads(64, 0)  # every phase asks for 64 threads
for _ in range(5):
    assert np.array_equal(dwd_fast.label(page.energy > 3), ref)
    assert np.array_equal(dwd_fast.watershed(-page.energy.astype(np.int32), dwd_fast.label(page.energy > 8),
                                             mask=page.energy > 1), ref_ws)
pool = dwd_fast.info()["cpu"]["pool_threads"]
assert pool <= 3, pool  # the caller and at most two helpers
print("ok", pool)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("ok")
