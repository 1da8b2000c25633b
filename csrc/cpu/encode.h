// CPU rasterizer of DWD training targets (the sequential counterpart of dwd/encode.h).
#pragma once

#include "dwd/encode.h"

namespace dwd {
namespace cpu {

// Paints n objects, in order, with the geometry and overlap rules of dwd/encode.h into `out`: the
// same pixels and values as encode::encode_page gives on zeroed maps. zeroed: `out` is zero and only
// the markers' pixels are written (fresh, lazily zeroed maps keep their untouched pages unallocated);
// else every pixel of `out` is written, whatever it held.
void encode_page(const encode::EncodeObj* objs, index_t n, index_t rows, index_t cols, encode::Marker marker,
                 encode::Overlap overlap, const std::uint8_t* table, const std::int32_t* labels, const float* sizes,
                 encode::Outputs out, bool zeroed);

}  // namespace cpu
}  // namespace dwd
