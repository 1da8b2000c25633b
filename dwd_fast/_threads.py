"""The number of CPU threads dwd_fast's kernels use."""

from __future__ import annotations

from ._arrays import check_nonneg_int
from ._ext import cpu_ext


def set_num_threads(threads: int) -> None:
    """Sets how many CPU threads dwd_fast uses (``0``: OpenMP's count, i.e. ``OMP_NUM_THREADS`` or the cores).

    A batch is split over pages, one page per thread; a single page's work (the mask's runs, the
    markers, the components' floods, the objects' reductions, writing the label image) is split over
    the threads inside the page. The results do not depend on the count. Without OpenMP everything
    runs on one thread.

    Examples
    --------
    >>> import dwd_fast
    >>> dwd_fast.set_num_threads(1)
    >>> dwd_fast.get_num_threads()
    1
    >>> dwd_fast.set_num_threads(0)  # back to OpenMP's count
    """
    cpu_ext().page_threads(check_nonneg_int(threads, "threads"))


def get_num_threads() -> int:
    """The number of CPU threads dwd_fast uses (see :func:`set_num_threads`)."""
    return int(cpu_ext().get_num_threads())


class using_threads:
    """Context manager (private; benchmarks and tests): dwd_fast uses ``threads`` CPU threads inside it, and
    whatever was set before after it."""

    def __init__(self, threads: int):
        self.threads = check_nonneg_int(threads, "threads")

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
