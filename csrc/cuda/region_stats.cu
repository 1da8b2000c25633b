// region_stats on CUDA: dwd/region_stats.h on the caller's stream.
#include "cuda/device_guard.cuh"
#include "cuda/ops.h"

namespace dwd {
namespace cuda_ops {

std::int64_t region_stats(int device, std::uintptr_t stream, const AnyView& labels, const AnyView& image,
                          const AnyView& classes, std::int64_t num_classes,
                          const std::function<rstats_dp::RegionOut(std::int64_t)>& alloc, Counts* counts) {
  DeviceGuard guard(device);
  CudaExec ex(as_stream(stream));
  const std::int64_t n = rstats_dp::region_stats(ex, labels, image, classes, num_classes, alloc);
  if (counts) *counts = Counts{ex.launches(), ex.workspace_bytes()};
  return n;
}

}  // namespace cuda_ops
}  // namespace dwd
