// Threads inside one page's kernel. A batch is already split over pages (parallel_for in the
// bindings); a single page's memory-bound phases (scanning the mask, copying, writing the label
// image) and its independent parts (the mask's components) are split over the cores here. Inside
// another parallel region (a batch) these run on the calling thread alone.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace dwd {
namespace cpu {

// Work (in pixels or bytes touched) below which a phase stays on one thread (a fork costs a few
// microseconds), and the thread count (0: OpenMP's, i.e. OMP_NUM_THREADS or the cores). Settable
// for the tests (_cpu.page_threads), which run small inputs on several threads to check the seams.
inline std::atomic<std::int64_t> g_parallel_min_work{std::int64_t(1) << 16};
inline std::atomic<int> g_page_threads{0};

// How many threads a phase of `work` units takes: 1 inside a parallel region (a batch), for small
// work, or without OpenMP.
inline int phase_threads(std::int64_t work) {
#if defined(_OPENMP)
  if (work < g_parallel_min_work.load(std::memory_order_relaxed) || omp_in_parallel()) return 1;
  const int n = g_page_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : std::max(1, omp_get_max_threads());
#else
  (void)work;
  return 1;
#endif
}

// Runs body(t) for t in [0, n) on n threads (the caller's among them); the first exception is
// rethrown on the caller's thread.
template <class F>
void on_threads(int n, F&& body) {
  if (n <= 1) {
    body(0);
    return;
  }
  std::exception_ptr err = nullptr;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static, 1) num_threads(n)
#endif
  for (int t = 0; t < n; ++t) {
    try {
      body(t);
    } catch (...) {
#if defined(_OPENMP)
#pragma omp critical(dwd_on_threads_error)
#endif
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}

// The t-th of n contiguous, near-equal parts of [0, total).
inline std::int64_t part_begin(std::int64_t total, int t, int n) {
  return total / n * t + std::min<std::int64_t>(t, total % n);
}

// Splits [0, total) into parts of near-equal weight: boundary t (0 <= t <= n) is the first index
// whose prefix weight reaches t/n of the whole. weight(i) >= 0; cut(t) receives the boundaries.
template <class Weight, class Cut>
void weighted_parts(std::int64_t total, int n, Weight&& weight, Cut&& cut) {
  double sum = 0;
  for (std::int64_t i = 0; i < total; ++i) sum += static_cast<double>(weight(i));
  cut(0, 0);
  double acc = 0;
  int t = 1;
  for (std::int64_t i = 0; i < total && t < n; ++i) {
    while (t < n && acc >= sum * t / n) cut(t++, i);
    acc += static_cast<double>(weight(i));
  }
  while (t < n) cut(t++, total);
  cut(n, total);
}

}  // namespace cpu
}  // namespace dwd
