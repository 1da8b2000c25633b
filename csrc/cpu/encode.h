// CPU rasterizer of DWD training targets (the sequential counterpart of dwd/encode.h).
#pragma once

#include "dwd/encode.h"

namespace dwd {
namespace cpu {

// Paints n objects, in order, with the geometry and overlap rules of dwd/encode.h into `out`: the
// same pixels and values as encode::encode_page gives on zeroed maps. zeroed: `out` is zero and only
// the markers' pixels are written (fresh, lazily zeroed maps keep their untouched pages unallocated);
// else every pixel of `out` is written, whatever it held. labels and sizes are per object, already in
// the maps' element types: C = int32 and S = float, or (the compact layout) C = uint8 and S = the bits
// of IEEE halves (uint16, see floats_to_half).
template <class C, class S>
void encode_page(const encode::EncodeObj* objs, index_t n, index_t rows, index_t cols, encode::Marker marker,
                 encode::Overlap overlap, const std::uint8_t* table, const C* labels, const S* sizes,
                 encode::OutputsT<C, S> out, bool zeroed);

// dst[k] = the bits of src[k] as an IEEE half, rounded to nearest even (encode::half_bits_portable's
// bits): with F16C (vcvtps2ph) when the CPU has it and f16c is true, else the portable scalar code.
// Returns whether F16C was used.
bool floats_to_half(const float* src, std::uint16_t* dst, index_t n, bool f16c = true);

}  // namespace cpu
}  // namespace dwd
