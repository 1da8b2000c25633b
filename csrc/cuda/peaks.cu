// peak_local_max on CUDA: the pipeline of dwd/peaks.h (candidate flags, compaction, stable radix sort,
// single-thread greedy spacing, coordinates) on the caller's stream.
#include "cuda/device_guard.cuh"
#include "cuda/ops.h"

namespace dwd {
namespace cuda_ops {

template <class T>
std::int64_t peak_local_max(int device, std::uintptr_t stream, const peaks::CandidateSpec<T>& s, index_t min_distance,
                            index_t num_peaks, const std::function<std::int64_t*(std::int64_t)>& alloc,
                            Counts* counts) {
  DeviceGuard guard(device);
  CudaExec ex(as_stream(stream));
  const std::int64_t k = peaks::peak_local_max(ex, s, min_distance, num_peaks, alloc);
  if (counts) *counts = Counts{ex.launches(), ex.workspace_bytes()};
  return k;
}

#define DWD_PEAKS_INSTANTIATE(T)                                                                                  \
  template std::int64_t peak_local_max<T>(int, std::uintptr_t, const peaks::CandidateSpec<T>&, index_t, index_t, \
                                          const std::function<std::int64_t*(std::int64_t)>&, Counts*);
DWD_PEAKS_INSTANTIATE(std::uint8_t)
DWD_PEAKS_INSTANTIATE(std::uint16_t)
DWD_PEAKS_INSTANTIATE(std::int32_t)
DWD_PEAKS_INSTANTIATE(std::int64_t)
DWD_PEAKS_INSTANTIATE(float)
DWD_PEAKS_INSTANTIATE(double)
#undef DWD_PEAKS_INSTANTIATE

}  // namespace cuda_ops
}  // namespace dwd
