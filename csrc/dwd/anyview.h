// A type-erased strided view of a stack of 2-D maps, readable on the host and the device.
//
// The data-parallel algorithms read most maps only at object pixels; a switch on the dtype inside
// the functor costs little there and lets one kernel serve every dtype (instead of one template
// instantiation per dtype combination). The dtype codes are those of cpu::DType.
#pragma once

#include "core.h"

namespace dwd {

enum class Dt : int { u8, i8, u16, i16, u32, i32, u64, i64, f32, f64 };

struct AnyView {
  const void* data = nullptr;
  Dt dt = Dt::u8;
  index_t planes = 0, rows = 0, cols = 0;
  index_t stride_p = 0, stride_r = 0, stride_c = 1;  // in elements

  DWD_HD bool present() const { return data != nullptr; }
  DWD_HD bool is_float() const { return dt == Dt::f32 || dt == Dt::f64; }
  DWD_HD index_t offset(index_t p, index_t r, index_t c) const { return p * stride_p + r * stride_r + c * stride_c; }

  template <class T>
  DWD_HD T at(index_t p, index_t r, index_t c) const {
    return static_cast<const T*>(data)[offset(p, r, c)];
  }

  // The value as a double (exact for every dtype but 64-bit integers beyond 2^53).
  DWD_HD double f64(index_t p, index_t r, index_t c) const {
    switch (dt) {
      case Dt::u8: return static_cast<double>(at<std::uint8_t>(p, r, c));
      case Dt::i8: return static_cast<double>(at<std::int8_t>(p, r, c));
      case Dt::u16: return static_cast<double>(at<std::uint16_t>(p, r, c));
      case Dt::i16: return static_cast<double>(at<std::int16_t>(p, r, c));
      case Dt::u32: return static_cast<double>(at<std::uint32_t>(p, r, c));
      case Dt::i32: return static_cast<double>(at<std::int32_t>(p, r, c));
      case Dt::u64: return static_cast<double>(at<std::uint64_t>(p, r, c));
      case Dt::i64: return static_cast<double>(at<std::int64_t>(p, r, c));
      case Dt::f32: return static_cast<double>(at<float>(p, r, c));
      case Dt::f64: default: return at<double>(p, r, c);
    }
  }

  // The value as int64 (static_cast, like the CPU readers: uint64 wraps).
  DWD_HD std::int64_t i64(index_t p, index_t r, index_t c) const {
    switch (dt) {
      case Dt::u8: return at<std::uint8_t>(p, r, c);
      case Dt::i8: return at<std::int8_t>(p, r, c);
      case Dt::u16: return at<std::uint16_t>(p, r, c);
      case Dt::i16: return at<std::int16_t>(p, r, c);
      case Dt::u32: return at<std::uint32_t>(p, r, c);
      case Dt::i32: return at<std::int32_t>(p, r, c);
      case Dt::u64: return static_cast<std::int64_t>(at<std::uint64_t>(p, r, c));
      case Dt::i64: return at<std::int64_t>(p, r, c);
      case Dt::f32: return static_cast<std::int64_t>(at<float>(p, r, c));
      case Dt::f64: default: return static_cast<std::int64_t>(at<double>(p, r, c));
    }
  }

  // A label value: int64, with uint64 values beyond 2^63 saturated (so "too large" checks see them).
  DWD_HD std::int64_t label(index_t p, index_t r, index_t c) const {
    if (dt == Dt::u64) {
      const std::uint64_t v = at<std::uint64_t>(p, r, c);
      return v > 0x7fffffffffffffffULL ? 0x7fffffffffffffffLL : static_cast<std::int64_t>(v);
    }
    return i64(p, r, c);
  }
};

}  // namespace dwd
