"""Shared fixtures and bookkeeping for the dwd_fast benchmarks (DESIGN.md §5).

Run them with::

    python -m pytest benchmarks/ --benchmark-enable --benchmark-json=bench.json -q
    python scripts/bench_table.py bench.json

Every benchmark runs on the reference page (``dwd_fast.data.reference_page(n, seed=0)``, 2668 x 1894)
for n = 250, 2000 and 7664 objects, and is put in a pytest-benchmark group together with the references
it is compared with and the floor (one numpy pass reading the uint8 page), so that each op is reported
as a ratio measured in the same run.

Threads: OpenCV is pinned to one thread here. BLAS reads its thread count when it loads, which happens
before a conftest can act; dwd_fast's own pool follows dwd_fast.set_num_threads (the "(1 thread)" rows
set 1). The thread settings in force are recorded with every result.

``DWD_BENCH_SLOW=1`` also runs the slowest reference (the original 2020 decoder at n=7664, minutes).
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.metadata
import os
import platform
import sys

from dataclasses import dataclass
from pathlib import Path

# One BLAS thread: numpy's OpenBLAS workers otherwise keep spinning on the second core after a BLAS
# call, taking it from the process being timed (set before numpy is first imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest

try:
    import dwd_fast  # noqa: F401
except ImportError:  # run as `pytest benchmarks/` from a checkout with the extension built in place
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import dwd_fast  # noqa: F401
from dwd_fast._bench.runner import _cpu_model, _version  # the machine probes of `dwd-fast bench`

try:
    import cv2
except ImportError:
    cv2 = None
else:
    cv2.setNumThreads(1)

PAGE_SIZES = (250, 2000, 7664)
SLOW = os.environ.get("DWD_BENCH_SLOW", "") not in ("", "0")

# Name of the numpy floor in every group; scripts/bench_table.py finds it by this name.
FLOOR = "numpy energy > 7 (floor)"


# --------------------------------------------------------------------------------------------------
# Collection: the benchmark modules are named bench_*.py (DESIGN.md §1), which pytest does not
# collect by default.
# --------------------------------------------------------------------------------------------------

def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    # Collected already by pytest's own hook: given on the command line, or matched by python_files.
    if parent.session.isinitpath(file_path) or any(
            fnmatch.fnmatch(file_path.name, pat) for pat in parent.config.getini("python_files")):
        return None
    return pytest.Module.from_parent(parent, path=file_path)


# --------------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchPage:
    """A reference page and the inputs each pipeline takes, prepared outside the timed calls.

    ``energy`` uint8 (H, W), ``classes`` int32 (H, W), ``sizes`` float32 (2, H, W): what
    ``dwd_fast.decode`` takes. ``energy64`` int64 (H, W) and ``boxmap`` float32 (H, W, 2) (channel 0
    height, 1 width, C-contiguous): what the original DWD detector passed to ``perform_dws`` (an argmax
    and the box head's output). ``mask`` = ``energy >= 8``, the input of the labelling benchmarks.
    """

    n: int
    energy: np.ndarray
    classes: np.ndarray
    sizes: np.ndarray
    energy64: np.ndarray
    boxmap: np.ndarray
    mask: np.ndarray


@functools.lru_cache(maxsize=None)
def load_page(n):
    """The reference page with ``n`` objects (seed 0), built once per session."""
    p = dwd_fast.data.reference_page(n, seed=0)
    return BenchPage(n=n, energy=p.energy, classes=p.classes, sizes=p.sizes,
                     energy64=p.energy.astype(np.int64),
                     boxmap=np.ascontiguousarray(np.moveaxis(p.sizes, 0, -1)),
                     mask=p.energy >= 8)


@pytest.fixture(scope="session", params=PAGE_SIZES, ids=lambda n: f"n={n}")
def page(request):
    """Each reference page in turn (cached for the session)."""
    return load_page(request.param)


@pytest.fixture(scope="session")
def page250():
    return load_page(250)


@pytest.fixture(scope="session")
def page2000():
    return load_page(2000)


@pytest.fixture(scope="session")
def page7664():
    return load_page(7664)


def floor_call(page):
    """The floor: one numpy pass reading the uint8 page and writing a bool mask."""
    return np.greater, (page.energy, 7)


# --------------------------------------------------------------------------------------------------
# Machine facts and per-benchmark records
# --------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def machine_facts():
    """CPU, versions and thread settings, as a flat dict of JSON-able values."""
    cpu = dwd_fast.info()["cpu"]
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-image": _version("scikit-image"),
        "scipy": _version("scipy"),
        "opencv": cv2.__version__ if cv2 is not None else None,
        "cc3d": _version("connected-components-3d"),
        "dwd_fast": dwd_fast.__version__,
        "dwd_fast_simd": cpu.get("simd"),
        "threads": {
            "cv2": cv2.getNumThreads() if cv2 is not None else None,
            "dwd_fast_pool": cpu.get("pool_threads"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "dwd_fast": dwd_fast.get_num_threads(),
        },
    }


def pytest_benchmark_update_machine_info(config, machine_info):
    """Add the facts above to the ``machine_info`` of the ``--benchmark-json`` file."""
    machine_info["dwd_fast_bench"] = machine_facts()


def record(benchmark, implementation, page, **extra):
    """Record in ``benchmark.extra_info`` what ran, on which page, and on which machine.

    ``load_1min`` is the system load average when the benchmark started: on a shared machine a load
    above the core count means other processes competed for the CPU and the timings are inflated.
    """
    benchmark.extra_info.update({
        "implementation": implementation,
        "n": page.n,
        "foreground_e8": round(float(np.count_nonzero(page.mask)) / page.mask.size, 5),
        "floor": implementation == FLOOR,
        "load_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        **machine_facts(),
        **extra,
    })
