// decode on CUDA: dwd/decode.h on the caller's stream (one launch sequence per page).
#include "cuda/device_guard.cuh"
#include "cuda/ops.h"

namespace dwd {
namespace cuda_ops {

std::int32_t decode(int device, std::uintptr_t stream, const AnyView& energy, const AnyView& classes,
                    const AnyView& sizes, const decode_dp::Params& p, ImageView<std::int32_t> label_map,
                    const std::function<decode_dp::DecodeOut(std::int64_t)>& alloc, Counts* counts) {
  DeviceGuard guard(device);
  CudaExec ex(as_stream(stream));
  const std::int32_t n = decode_dp::decode(ex, energy, classes, sizes, p, label_map, alloc);
  if (counts) *counts = Counts{ex.launches(), ex.workspace_bytes()};
  return n;
}

}  // namespace cuda_ops
}  // namespace dwd
