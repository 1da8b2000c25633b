// encode on CUDA: the batched rasterizer of dwd/encode.h (one launch sequence per batch) on the
// caller's stream.
#include "cuda/cuda_exec.cuh"
#include "cuda/device_guard.cuh"
#include "cuda/ops.h"
#include "dwd/encode.h"

namespace dwd {
namespace cuda_ops {

namespace {

template <class Out>
bool encode_any(int device, std::uintptr_t stream, const encode::EncodeObj* objs, const std::int64_t* page_offset,
                std::int64_t M, std::int64_t B, std::int64_t rows, std::int64_t cols, encode::Marker marker,
                encode::Overlap overlap, const std::uint8_t* table, const std::int32_t* labels, const float* sizes,
                Out out, Counts* counts) {
  DeviceGuard guard(device);
  CudaExec ex(as_stream(stream));
  const bool ok = encode::encode_batch(ex, objs, page_offset, M, B, rows, cols, marker, overlap, table, labels, sizes,
                                       out);
  if (counts) *counts = Counts{ex.launches(), ex.workspace_bytes()};
  return ok;
}

struct HalfStep {
  const float* src;
  std::uint16_t* dst;
  DWD_HD void operator()(index_t k) const { dst[k] = encode::half_bits(src[k]); }
};

}  // namespace

bool encode(int device, std::uintptr_t stream, const encode::EncodeObj* objs, const std::int64_t* page_offset,
            std::int64_t M, std::int64_t B, std::int64_t rows, std::int64_t cols, encode::Marker marker,
            encode::Overlap overlap, const std::uint8_t* table, const std::int32_t* labels, const float* sizes,
            encode::dp::BatchOutputs out, Counts* counts) {
  return encode_any(device, stream, objs, page_offset, M, B, rows, cols, marker, overlap, table, labels, sizes, out,
                    counts);
}

bool encode(int device, std::uintptr_t stream, const encode::EncodeObj* objs, const std::int64_t* page_offset,
            std::int64_t M, std::int64_t B, std::int64_t rows, std::int64_t cols, encode::Marker marker,
            encode::Overlap overlap, const std::uint8_t* table, const std::int32_t* labels, const float* sizes,
            encode::dp::CompactBatchOutputs out, Counts* counts) {
  return encode_any(device, stream, objs, page_offset, M, B, rows, cols, marker, overlap, table, labels, sizes, out,
                    counts);
}

void half_bits(int device, std::uintptr_t stream, const float* src, std::uint16_t* dst, std::int64_t n) {
  DeviceGuard guard(device);
  CudaExec ex(as_stream(stream));
  if (n > 0) ex.for_each(n, HalfStep{src, dst});
}

}  // namespace cuda_ops
}  // namespace dwd
