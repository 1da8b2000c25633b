// watershed on CUDA: the canonical watershed of dwd/watershed.h (order keys, level ranks, dense marker
// labels, two-phase relaxation, marker values) on the caller's stream.
#include "cuda/device_guard.cuh"
#include "cuda/ops.h"

namespace dwd {
namespace cuda_ops {

watershed_dp::Report watershed(int device, std::uintptr_t stream, const AnyView& image, const AnyView& markers,
                               const AnyView& mask, int connectivity, void* out, Dt out_dt, Counts* counts) {
  DeviceGuard guard(device);
  CudaExec ex(as_stream(stream));
  const watershed_dp::Report r = watershed_dp::watershed_maps(ex, image, markers, mask, connectivity, out, out_dt);
  if (counts) *counts = Counts{ex.launches(), ex.workspace_bytes()};
  return r;
}

}  // namespace cuda_ops
}  // namespace dwd
