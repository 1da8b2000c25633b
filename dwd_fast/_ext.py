"""Loading of the compiled extensions, with a clear message when they are missing."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def cpu_ext():
    try:
        from . import _cpu
    except ImportError as e:  # pragma: no cover - only on a broken install
        raise ImportError("dwd_fast._cpu is not built: install dwd_fast with `pip install .` "
                          f"(the import failed with: {e})") from e
    return _cpu


@functools.lru_cache(maxsize=None)
def cuda_ext():
    """The CUDA extension module, or None when it was not built."""
    try:
        from . import _cuda
    except ImportError:
        return None
    return _cuda
