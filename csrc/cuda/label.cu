// label on CUDA: the union-find labelling of dwd/label.h, one kernel per step on the caller's stream.
#include "cuda/device_guard.cuh"
#include "cuda/ops.h"
#include "dwd/label.h"

namespace dwd {
namespace {

// skimage's label on any integer dtype: equal non-zero values are joined (compared as int64).
struct AnyValueJoin {
  AnyView v;
  DWD_HD bool fg(index_t r, index_t c) const { return v.i64(0, r, c) != 0; }
  DWD_HD bool joined(index_t r, index_t c, index_t r2, index_t c2) const { return v.i64(0, r, c) == v.i64(0, r2, c2); }
};

}  // namespace

namespace cuda_ops {

std::int32_t label(int device, std::uintptr_t stream, const AnyView& image, int connectivity,
                   ImageView<std::int32_t> out, Counts* counts) {
  if (image.rows * image.cols >= (index_t(1) << 31)) throw std::invalid_argument("image has 2^31 pixels or more");
  DeviceGuard guard(device);
  CudaExec ex(as_stream(stream));
  const std::int32_t n = label_dp::label(ex, AnyValueJoin{image}, image.rows, image.cols, connectivity, out);
  if (counts) *counts = Counts{ex.launches(), ex.workspace_bytes()};
  return n;
}

}  // namespace cuda_ops
}  // namespace dwd
