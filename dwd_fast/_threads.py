"""The number of CPU threads dwd_fast's kernels use."""

from __future__ import annotations

from ._arrays import check_nonneg_int
from ._ext import cpu_ext

#: The largest thread count :func:`set_num_threads` accepts (a fixed cap, independent of the machine:
#: a count beyond the cores only adds sleeping helpers, but thousands would exhaust the system).
MAX_THREADS = 1024


def _check_threads(threads):
    threads = check_nonneg_int(threads, "threads")
    if threads > MAX_THREADS:
        raise ValueError(f"threads must be at most {MAX_THREADS} (0: the default count), got {threads}")
    return threads


def set_num_threads(threads: int) -> None:
    """Sets how many CPU threads dwd_fast uses.

    ``0`` restores the default: ``DWD_FAST_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs this
    process may run on -- and 1 in a process forked from one that had loaded dwd_fast (DataLoader
    workers, ``multiprocessing``), as PyTorch does in its DataLoader workers, so that workers do not
    oversubscribe the cores. A count set with this function is kept in forked children.

    dwd_fast runs its own pool of helper threads. A batch is split over pages; a single page's work
    (the mask's runs, the markers, the components' floods, the objects' reductions, writing the label
    image) is split into parts that the calling thread runs itself, helped by the pool's threads
    that are free at that moment: a call never waits for a helper that has not started, so a busy
    machine costs at most the helpers' share. Small phases run on the calling thread alone, and calls
    from several Python threads at once share the pool (a caller that finds it busy works alone).
    The results do not depend on the count. If the system refuses to create threads, the work runs
    on those there are.

    Parameters
    ----------
    threads : int
        0 (the default) to ``MAX_THREADS`` (1024).

    Raises
    ------
    TypeError
        If ``threads`` is not an integer.
    ValueError
        If ``threads`` is negative or above 1024.

    Examples
    --------
    >>> import dwd_fast
    >>> dwd_fast.set_num_threads(1)
    >>> dwd_fast.get_num_threads()
    1
    >>> dwd_fast.set_num_threads(0)  # back to the default
    """
    cpu_ext().page_threads(_check_threads(threads))


def get_num_threads() -> int:
    """The number of CPU threads dwd_fast uses (see :func:`set_num_threads`)."""
    return int(cpu_ext().get_num_threads())


class using_threads:
    """Context manager (private; benchmarks and tests): dwd_fast uses ``threads`` CPU threads inside it, and
    whatever was set before after it."""

    def __init__(self, threads: int):
        self.threads = _check_threads(threads)

    def __enter__(self):
        self._old = cpu_ext().page_threads(self.threads)
        return self

    def __exit__(self, *exc):
        cpu_ext().page_threads(*self._old)
        return False


def one_thread(f):
    """``f`` run with dwd_fast on one thread (benchmarks' single-thread rows)."""

    def run(*args, **kwargs):
        with using_threads(1):
            return f(*args, **kwargs)

    return run
