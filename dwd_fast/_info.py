"""dwd_fast.info(): what was built and what is usable on this machine."""

from __future__ import annotations

from ._ext import cpu_ext, cuda_ext


def info():
    """Build and runtime facts as a dict.

    Keys: ``version``, ``cpu`` (compiler, SIMD, ``threads`` (the count the kernels use), ``pool_threads`` (the pool's threads that exist), ``max_threads``), ``cuda_built`` (whether the CUDA
    extension was compiled), ``cuda_archs``, ``cuda`` (runtime / driver versions as CUDA's integers,
    e.g. 13000 = 13.0, 0 = no driver; devices as (name, compute capability); the ops with a CUDA
    implementation; and ``usable`` with the ``error`` that says why not).

    Examples
    --------
    >>> import dwd_fast
    >>> sorted(dwd_fast.info())
    ['cpu', 'cuda', 'cuda_archs', 'cuda_built', 'version']
    """
    from . import __version__

    out = {"version": __version__, "cpu": dict(cpu_ext().build_info())}
    cu = cuda_ext()
    out["cuda_built"] = cu is not None
    out["cuda_archs"] = cu.archs.split(";") if cu is not None else []
    out["cuda"] = dict(cu.device_info()) if cu is not None else {
        "usable": False, "error": "dwd_fast was built without CUDA (no nvcc at build time, or DWD_FAST_CUDA=0)"}
    if cu is not None:
        out["cuda"]["ops"] = list(getattr(cu, "ops", ()))
        for k in ("runtime_version", "driver_version"):
            v = out["cuda"].get(k, 0)
            out["cuda"][k.replace("_version", "")] = f"{v // 1000}.{(v % 1000) // 10}" if v else None
    return out
