// Exact euclidean distance transform of a 2-D binary image (distance of each non-zero pixel to the
// nearest zero pixel), equal to scipy.ndimage.distance_transform_edt's distances bit for bit.
#pragma once

#include <cstdint>

namespace dwd {
namespace cpu {

// in: rows x cols bytes (non-zero = foreground), row stride in_stride; out: rows x cols doubles,
// contiguous. Squared distances are computed exactly in integers (Meijster, Roerdink and Hesselink's
// two separable passes); each output is sqrt of the exact integer, correctly rounded as scipy's.
// An image without a zero pixel gets scipy's distances to the virtual pixel (-1, 0).
void distance_transform_edt(const std::uint8_t* in, std::int64_t in_stride, std::int64_t rows, std::int64_t cols,
                            double* out);

}  // namespace cpu
}  // namespace dwd
