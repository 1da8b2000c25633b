// CPU rasterizer of DWD training targets (the sequential counterpart of dwd/encode.h).
#pragma once

#include "dwd/encode.h"

namespace dwd {
namespace cpu {

// Paints n objects, in order, into `out` (zero-initialized by the caller) with the geometry and
// overlap rules of dwd/encode.h: the same pixels and values as encode::encode_page.
void encode_page(const encode::EncodeObj* objs, index_t n, index_t rows, index_t cols, encode::Marker marker,
                 encode::Overlap overlap, const std::uint8_t* table, const std::int32_t* labels, const float* sizes,
                 encode::Outputs out);

}  // namespace cpu
}  // namespace dwd
