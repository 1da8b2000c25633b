// Threads inside one page's kernel. A batch is already split over pages (parallel_for in the
// bindings); a single page's memory-bound phases (scanning the mask, copying, writing the label
// image) and its independent parts (the mask's components) are split over the cores here. Inside
// another parallel region (a batch) these run on the calling thread alone.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace dwd {
namespace cpu {

// Work (in pixels or bytes touched) below which a phase stays on one thread (a fork costs a few
// microseconds), and the thread count (0: OpenMP's, i.e. OMP_NUM_THREADS or the cores): set by
// dwd_fast.set_num_threads, and by the tests (_cpu.page_threads), which run small inputs on several
// threads to check the seams.
inline std::atomic<std::int64_t> g_parallel_min_work{std::int64_t(1) << 16};
inline std::atomic<int> g_threads{0};

// The threads the CPU kernels use: dwd_fast.set_num_threads's count, else OpenMP's (OMP_NUM_THREADS,
// or the cores); 1 without OpenMP.
inline int configured_threads() {
#if defined(_OPENMP)
  const int set = g_threads.load(std::memory_order_relaxed);
  return set > 0 ? set : std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

// How many threads (1 .. parts) a phase of `work` units split in at most `parts` pieces takes: 1
// inside a parallel region (a batch), for small work, or without OpenMP.
inline int phase_threads(std::int64_t work, std::int64_t parts) {
  int n = 1;
#if defined(_OPENMP)
  if (work >= g_parallel_min_work.load(std::memory_order_relaxed) && !omp_in_parallel()) n = configured_threads();
#else
  (void)work;
#endif
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(n, parts)));
}

// Runs body(t) for t in [0, n) on n threads (the caller's among them). If bodies throw, the exception
// of the lowest t is rethrown on the caller's thread: when each body walks a stretch of work in order
// and stops at its first error, that is the error one thread walking all of it would have met first.
template <class F>
void on_threads(int n, F&& body) {
  if (n <= 1) {
    body(0);
    return;
  }
  std::vector<std::exception_ptr> err(static_cast<std::size_t>(n));
#if defined(_OPENMP)
#pragma omp parallel for schedule(static, 1) num_threads(n)
#endif
  for (int t = 0; t < n; ++t) {
    try {
      body(t);
    } catch (...) {
      err[static_cast<std::size_t>(t)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : err)
    if (e) std::rethrow_exception(e);
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
