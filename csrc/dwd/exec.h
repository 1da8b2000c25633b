// The executor concept: how a data-parallel algorithm in csrc/dwd/*.h reaches the hardware.
//
// Every data-parallel algorithm is written once as `template <class Exec> void algo(Exec& ex, ...)`
// whose steps are `ex.for_each(n, Functor{...})` with DWD_HD functors: one call per element, global
// memory and the atomics of core.h only — no shared memory, no barriers inside a step, no warp
// intrinsics, no spin-waits. A step must give the same result whatever order its elements run in;
// HostExec (csrc/host/host_exec.h) checks that by running them forward, reversed and shuffled, and
// CudaExec (csrc/cuda/cuda_exec.cuh) runs them as one CUDA thread per element.
//
// An executor provides:
//   void for_each(index_t n, F f)            f(i) for every i in [0, n); returns when all are done
//                                            (in stream order for CUDA)
//   T*   alloc<T>(index_t n)                 workspace visible to the functors, owned by the executor,
//                                            valid until the executor is destroyed
//   void free(const void* p)                 returns workspace from alloc early (stream-ordered on CUDA)
//   void fill<T>(T* p, index_t n, T v)       p[0..n) = v
//   void to_host<T>(T* dst, const T* src, n) copy workspace -> host memory (synchronizes as needed)
//   void exclusive_scan(const int32_t* in, int32_t* out, index_t n)
//                                            out[i] = sum(in[0..i)), out[n] = total (out holds n + 1)
//   uint64_t* sort_keys(uint64_t* k, n)      sorts k[0..n) ascending; returns the sorted keys (in place
//                                            on the host, a workspace buffer on CUDA)
//   int64_t* sort_pairs(uint64_t* k, int64_t* v, n)
//                                            stable sort of the pairs by key; returns the sorted values
//   void sync()                              wait for all submitted work
//
// Keep algorithms to the patterns listed in research/algorithms.md §8 (union-find with atomicMin
// roots, integer atomic statistics, packed-key atomicMax, relaxation to a unique fixed point,
// compaction followed by a sort): those are the ones whose result is independent of the order.
#pragma once

#include "core.h"

namespace dwd {

// Element order used by HostExec; CUDA ignores it.
enum class Order : int { forward = 0, reversed = 1, shuffled = 2 };

}  // namespace dwd
