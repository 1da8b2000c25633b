// dwd_fast._cpu: the CPU and host-executed kernels. Each op registers itself in bind_<op>.cpp.
#include <pybind11/stl.h>

#include "python/common.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace py = pybind11;

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "dwd_fast CPU kernels (private; use the dwd_fast package)";
  dwd::bind_label(m);
  dwd::bind_region_stats(m);
  dwd::bind_decode(m);
  dwd::bind_compat(m);
  dwd::bind_watershed(m);
  dwd::bind_peaks(m);
  dwd::bind_encode(m);
  dwd::bind_loss(m);
  m.def("build_info", []() {
    py::dict d;
#if defined(_OPENMP)
    d["openmp"] = true;
    d["omp_max_threads"] = omp_get_max_threads();
#else
    d["openmp"] = false;
    d["omp_max_threads"] = 1;
#endif
#if defined(__SSE2__)
    d["simd"] = "sse2";
#else
    d["simd"] = "none";
#endif
    d["compiler"] = __VERSION__;
    return d;
  });
}
