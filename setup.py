"""Build of dwd_fast's compiled extensions.

* ``dwd_fast._cpu`` (always): the CPU kernels and the host-executed GPU algorithms, C++17 -O3,
  its own thread pool (std::thread, no OpenMP).
* ``dwd_fast._cuda`` (``DWD_FAST_CUDA=auto|0|1``, default auto = when ``nvcc`` is found): the CUDA
  kernels, compiled by nvcc for ``DWD_FAST_CUDA_ARCHS`` (default ``75;80;90``) with warnings as
  errors and linked against the static CUDA runtime, so importing it needs no GPU or driver.

Nothing from PyTorch or CuPy is needed to build.

``DWD_FAST_INCREMENTAL=1`` (development only): recompile only the C++ sources newer than their objects
(a header's edit is not noticed: touch the sources that include it).
"""

import glob
import os
import shutil
import subprocess
import sys

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext, naive_recompile, no_recompile
from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _setting(name, default="auto"):
    value = os.environ.get(name, default).strip().lower()
    if value not in ("auto", "0", "1"):
        sys.exit(f"{name} must be auto, 0 or 1, got {value!r}")
    return value


def _rel(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


def _find_nvcc():
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and os.path.exists(os.path.join(home, "bin", "nvcc")):
        return os.path.join(home, "bin", "nvcc")
    return shutil.which("nvcc")


def _cuda_archs():
    archs = os.environ.get("DWD_FAST_CUDA_ARCHS", "75;80;90")
    return [a.strip() for a in archs.replace(",", ";").split(";") if a.strip()]


CXX_FLAGS = ["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"]
CUDA_MODE = _setting("DWD_FAST_CUDA")
NVCC = _find_nvcc() if CUDA_MODE != "0" else None
if CUDA_MODE == "1" and NVCC is None:
    sys.exit("DWD_FAST_CUDA=1 but nvcc was not found (set CUDA_HOME or put nvcc on PATH)")


class BuildExt(build_ext):
    """build_ext that compiles .cu sources with nvcc."""

    def build_extensions(self):
        for ext in self.extensions:
            if ext.name == "dwd_fast._cpu":  # its thread pool (csrc/cpu/parallel.h) uses std::thread
                ext.extra_compile_args += ["-pthread"]
                ext.extra_link_args += ["-pthread"]
        print(f"dwd_fast build: CUDA={'on (' + NVCC + ')' if NVCC else 'off'}"
              + (f" archs={';'.join(_cuda_archs())}" if NVCC else ""))
        super().build_extensions()

    def build_extension(self, ext):
        cu_sources = [s for s in ext.sources if s.endswith(".cu")]
        if cu_sources:
            ext.sources = [s for s in ext.sources if not s.endswith(".cu")]
            ext.extra_objects = list(ext.extra_objects or []) + self._nvcc(ext, cu_sources)
            # the .cu objects are always rebuilt; rebuild the binding too (its arch-list macro and the
            # headers it shares with them are not tracked by setuptools)
            force, self.force = self.force, True
            try:
                super().build_extension(ext)
            finally:
                self.force = force
            return
        super().build_extension(ext)

    def _nvcc(self, ext, sources):
        out_dir = os.path.join(self.build_temp, "cuda")
        os.makedirs(out_dir, exist_ok=True)
        gencode = []
        for a in _cuda_archs():
            gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
        last = _cuda_archs()[-1]
        gencode += ["-gencode", f"arch=compute_{last},code=compute_{last}"]  # PTX for newer GPUs
        jobs = int(os.environ.get("DWD_FAST_BUILD_JOBS", "0") or 0) or os.cpu_count() or 1
        objects, cmds = [], []
        for src in sources:
            obj = os.path.join(out_dir, os.path.basename(src) + ".o")
            cmds.append([NVCC, "-c", src, "-o", obj, "-std=c++17", "-O3", "--fmad=false", "-Xcompiler", "-fPIC",
                         "-Werror", "all-warnings", "-Icsrc"] + gencode)
            objects.append(obj)
        for cmd in cmds:
            print(" ".join(cmd))
        # the .cu files compile in parallel (DWD_FAST_BUILD_JOBS at a time, default: the CPUs)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max(1, min(jobs, len(cmds)))) as pool:
            for f in [pool.submit(subprocess.check_call, cmd, cwd=ROOT) for cmd in cmds]:
                f.result()
        return objects


# headers and included kernel files: an edit to one rebuilds the extension (setuptools tracks sources only)
HEADERS = _rel(glob.glob(os.path.join(ROOT, "csrc", "**", "*.h"), recursive=True)
               + glob.glob(os.path.join(ROOT, "csrc", "**", "*.inc"), recursive=True)
               + glob.glob(os.path.join(ROOT, "csrc", "**", "*.cuh"), recursive=True))

ext_modules = [
    Pybind11Extension(
        "dwd_fast._cpu",
        _rel(glob.glob(os.path.join(ROOT, "csrc/cpu/*.cpp"))
             + glob.glob(os.path.join(ROOT, "csrc/host/*.cpp"))
             + glob.glob(os.path.join(ROOT, "csrc/python/bind_*.cpp"))
             + [os.path.join(ROOT, "csrc/python/module_cpu.cpp")]),
        include_dirs=["csrc"],
        depends=HEADERS,
        cxx_std=17,
        extra_compile_args=list(CXX_FLAGS),
    )
]

if NVCC:
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
             os.path.dirname(os.path.dirname(os.path.realpath(NVCC))), "/usr/local/cuda"]
    cuda_home = next((h for h in homes if h and os.path.exists(os.path.join(h, "include", "cuda_runtime.h"))), None)
    if cuda_home is None:
        sys.exit(f"CUDA headers not found (nvcc is {NVCC}); set CUDA_HOME")
    lib_dir = next((d for d in (os.path.join(cuda_home, "lib64"), os.path.join(cuda_home, "lib"),
                                os.path.join(cuda_home, "targets", "x86_64-linux", "lib"))
                    if os.path.exists(os.path.join(d, "libcudart_static.a"))), None)
    if lib_dir is None:
        sys.exit(f"libcudart_static.a not found under {cuda_home}")
    ext_modules.append(
        Pybind11Extension(
            "dwd_fast._cuda",
            _rel(glob.glob(os.path.join(ROOT, "csrc/cuda/*.cu"))
                 + [os.path.join(ROOT, "csrc/python/module_cuda.cpp")]),
            include_dirs=["csrc", os.path.join(cuda_home, "include")],
            depends=HEADERS,
            cxx_std=17,
            extra_compile_args=list(CXX_FLAGS),
            library_dirs=[lib_dir],
            libraries=["cudart_static", "dl", "rt", "pthread"],
            define_macros=[("DWD_FAST_CUDA_ARCHS", '"' + ";".join(_cuda_archs()) + '"')],
        )
    )

ParallelCompile("DWD_FAST_BUILD_JOBS", default=0,
                needs_recompile=naive_recompile if os.environ.get("DWD_FAST_INCREMENTAL") == "1" else no_recompile).install()

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
