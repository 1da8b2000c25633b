// Type-erased access to the caller's maps on the CPU.
//
// The hot loop of every op (the energy / label scan) is templated on the element type. Everything
// else reads only foreground pixels, one row segment at a time, so it goes through these readers
// and is compiled once instead of once per dtype combination.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dwd/core.h"

namespace dwd {
namespace cpu {

// dtype codes shared with the Python binding
enum class DType : int { u8, i8, u16, i16, u32, i32, u64, i64, f32, f64 };

// A stack of `planes` 2-D maps of one dtype (planes = 1 for a plain map). Strides in elements.
struct Planes {
  const void* data = nullptr;
  DType dtype = DType::u8;
  index_t planes = 0, rows = 0, cols = 0;
  index_t stride_p = 0, stride_r = 0;
  index_t stride_c = 1;  // only readers accept stride_c != 1; scans need contiguous rows
  bool present() const { return data != nullptr; }
};

class SegmentReader {
 public:
  virtual ~SegmentReader() = default;
  // Values of plane p, row r, columns [c0, c1).
  virtual void read_f64(index_t p, index_t r, index_t c0, index_t c1, double* out) const = 0;
  virtual void read_i64(index_t p, index_t r, index_t c0, index_t c1, std::int64_t* out) const = 0;
  // Asks for the line holding plane p, row r, column c (to be read soon).
  virtual void prefetch(index_t p, index_t r, index_t c) const = 0;
};

template <class T>
class TypedReader final : public SegmentReader {
 public:
  explicit TypedReader(const Planes& m) : m_(m) {}
  void read_f64(index_t p, index_t r, index_t c0, index_t c1, double* out) const override {
    const T* s = at(p, r);
    const index_t sc = m_.stride_c;
    for (index_t c = c0; c < c1; ++c) *out++ = static_cast<double>(s[c * sc]);
  }
  void read_i64(index_t p, index_t r, index_t c0, index_t c1, std::int64_t* out) const override {
    const T* s = at(p, r);
    const index_t sc = m_.stride_c;
    for (index_t c = c0; c < c1; ++c) *out++ = static_cast<std::int64_t>(s[c * sc]);
  }
  void prefetch(index_t p, index_t r, index_t c) const override { __builtin_prefetch(at(p, r) + c * m_.stride_c); }

 private:
  const T* at(index_t p, index_t r) const {
    return static_cast<const T*>(m_.data) + p * m_.stride_p + r * m_.stride_r;
  }
  Planes m_;
};

inline std::unique_ptr<SegmentReader> make_reader(const Planes& m) {
  switch (m.dtype) {
    case DType::u8: return std::make_unique<TypedReader<std::uint8_t>>(m);
    case DType::i8: return std::make_unique<TypedReader<std::int8_t>>(m);
    case DType::u16: return std::make_unique<TypedReader<std::uint16_t>>(m);
    case DType::i16: return std::make_unique<TypedReader<std::int16_t>>(m);
    case DType::u32: return std::make_unique<TypedReader<std::uint32_t>>(m);
    case DType::i32: return std::make_unique<TypedReader<std::int32_t>>(m);
    case DType::u64: return std::make_unique<TypedReader<std::uint64_t>>(m);
    case DType::i64: return std::make_unique<TypedReader<std::int64_t>>(m);
    case DType::f32: return std::make_unique<TypedReader<float>>(m);
    case DType::f64: return std::make_unique<TypedReader<double>>(m);
  }
  throw std::invalid_argument("unsupported dtype");
}

// Calls f(T{}) with T the element type of `d`.
template <class F>
auto dispatch(DType d, F&& f) {
  switch (d) {
    case DType::u8: return f(std::uint8_t{});
    case DType::i8: return f(std::int8_t{});
    case DType::u16: return f(std::uint16_t{});
    case DType::i16: return f(std::int16_t{});
    case DType::u32: return f(std::uint32_t{});
    case DType::i32: return f(std::int32_t{});
    case DType::u64: return f(std::uint64_t{});
    case DType::i64: return f(std::int64_t{});
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
  }
  throw std::invalid_argument("unsupported dtype");
}

inline bool is_float(DType d) { return d == DType::f32 || d == DType::f64; }

template <class T>
ImageView<const T> plane_view(const Planes& m, index_t p) {
  if (m.stride_c != 1) throw std::invalid_argument("internal error: a scanned map must have contiguous rows");
  ImageView<const T> v;
  v.data = static_cast<const T*>(m.data) + p * m.stride_p;
  v.rows = m.rows;
  v.cols = m.cols;
  v.stride_r = m.stride_r;
  v.stride_c = 1;
  return v;
}

// Majority vote over non-negative integer ids; ties go to the smallest id.
class ClassVote {
 public:
  void add(std::int64_t id) {
    if (id < 0) throw std::invalid_argument("classes must be non-negative class ids, got " + std::to_string(id));
    if (id >= static_cast<std::int64_t>(count_.size())) {
      if (id > (std::int64_t(1) << 28))
        throw std::invalid_argument("class id " + std::to_string(id) + " is too large (limit 2^28)");
      count_.resize(static_cast<std::size_t>(id) + 1, 0);
    }
    if (count_[id]++ == 0) touched_.push_back(id);
  }
  // Returns (winner, its count) and resets for the next object. (-1, 0) when nothing was added.
  std::pair<std::int64_t, std::int64_t> take() {
    std::int64_t best = -1, best_n = 0;
    for (std::int64_t id : touched_) {
      const std::int64_t n = count_[id];
      if (n > best_n || (n == best_n && id < best)) {
        best = id;
        best_n = n;
      }
      count_[id] = 0;
    }
    touched_.clear();
    return {best, best_n};
  }

 private:
  std::vector<std::int64_t> count_;
  std::vector<std::int64_t> touched_;
};

}  // namespace cpu
}  // namespace dwd
