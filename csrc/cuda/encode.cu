// encode on CUDA: the batched rasterizer of dwd/encode.h (one launch sequence per batch) on the
// caller's stream.
#include "cuda/cuda_exec.cuh"
#include "cuda/device_guard.cuh"
#include "cuda/ops.h"
#include "dwd/encode.h"

namespace dwd {
namespace cuda_ops {

bool encode(int device, std::uintptr_t stream, const encode::EncodeObj* objs, const std::int64_t* page_offset,
            std::int64_t M, std::int64_t B, std::int64_t rows, std::int64_t cols, encode::Marker marker,
            encode::Overlap overlap, const std::uint8_t* table, const std::int32_t* labels, const float* sizes,
            encode::dp::BatchOutputs out, Counts* counts) {
  DeviceGuard guard(device);
  CudaExec ex(as_stream(stream));
  const bool ok = encode::encode_batch(ex, objs, page_offset, M, B, rows, cols, marker, overlap, table, labels, sizes,
                                       out);
  if (counts) *counts = Counts{ex.launches(), ex.workspace_bytes()};
  return ok;
}

}  // namespace cuda_ops
}  // namespace dwd
