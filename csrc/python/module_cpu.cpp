// dwd_fast._cpu: the CPU and host-executed kernels. Each op registers itself in bind_<op>.cpp.
#include <pybind11/stl.h>

#include "cpu/parallel.h"
#include "python/common.h"

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
  dwd::bind_evaluate(m);
  m.def(
      "page_threads",
      [](int threads, std::int64_t min_work) {
        if (threads < 0 || threads > dwd::cpu::kMaxThreads)
          throw py::value_error("threads must be in 0.." + std::to_string(dwd::cpu::kMaxThreads) +
                                " (0: the default count), got " + std::to_string(threads));
        const py::tuple old = py::make_tuple(dwd::cpu::g_threads.load(), dwd::cpu::g_parallel_min_work.load());
        dwd::cpu::g_threads = threads;
        if (min_work >= 0) dwd::cpu::g_parallel_min_work = min_work;
        return old;
      },
      py::arg("threads"), py::arg("min_work") = -1,
      "The CPU kernels' thread count (0: the default) and, when min_work >= 0 (tests), the work below which a "
      "phase of one page stays on one thread; returns the previous (threads, min_work).");
  m.def(
      "spawn_limit", [](int limit) { return dwd::cpu::detail::g_spawn_limit.exchange(limit); }, py::arg("limit"),
      "Tests: thread creation fails once `limit` helpers exist (-1: never); returns the previous limit.");
  m.def("get_num_threads", []() { return dwd::cpu::configured_threads(); });
  m.def("build_info", []() {
    py::dict d;
    d["threads"] = dwd::cpu::configured_threads();
    d["pool_threads"] = dwd::cpu::pool_threads();
    d["max_threads"] = dwd::cpu::kMaxThreads;
#if defined(__SSE2__)
    d["simd"] = "sse2";
#else
    d["simd"] = "none";
#endif
    d["compiler"] = __VERSION__;
    return d;
  });
}
