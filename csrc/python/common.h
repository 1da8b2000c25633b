// Shared pieces of the pybind11 layer: array -> Planes conversion, results -> numpy, errors.
// Arrays reach C++ already validated by dwd_fast (dtype, shape, NaN where cheap); the checks here
// are the last line of defence and throw std::invalid_argument (-> ValueError in Python).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <exception>
#include <string>
#include <vector>

#include "cpu/parallel.h"
#include "cpu/maps.h"

namespace dwd {
namespace py = pybind11;

inline cpu::DType dtype_of(const py::array& a, const char* name) {
  const py::dtype dt = a.dtype();
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'b' && size == 1) return cpu::DType::u8;
  if (kind == 'u') {
    if (size == 1) return cpu::DType::u8;
    if (size == 2) return cpu::DType::u16;
    if (size == 4) return cpu::DType::u32;
    if (size == 8) return cpu::DType::u64;
  }
  if (kind == 'i') {
    if (size == 1) return cpu::DType::i8;
    if (size == 2) return cpu::DType::i16;
    if (size == 4) return cpu::DType::i32;
    if (size == 8) return cpu::DType::i64;
  }
  if (kind == 'f') {
    if (size == 4) return cpu::DType::f32;
    if (size == 8) return cpu::DType::f64;
  }
  throw std::invalid_argument(std::string(name) + " has unsupported dtype " + std::string(py::str(dt)));
}

// View of batch element b of a 4-D array (B, P, H, W). Scanned maps need a contiguous last axis;
// maps that are only read at object pixels may be strided (strided_cols = true).
inline cpu::Planes planes_of(const py::array& a, py::ssize_t b, const char* name, bool strided_cols = false) {
  if (a.ndim() != 4) throw std::invalid_argument(std::string(name) + ": internal error, expected a 4-D array");
  const auto item = a.itemsize();
  if (!strided_cols && a.shape(3) > 1 && a.strides(3) != item)
    throw std::invalid_argument(std::string(name) + ": the last axis must be contiguous");
  for (int k = 0; k < 4; ++k)
    if (a.strides(k) % item != 0) throw std::invalid_argument(std::string(name) + ": misaligned strides");
  cpu::Planes p;
  p.dtype = dtype_of(a, name);
  p.data = static_cast<const char*>(a.data()) + b * a.strides(0);
  p.planes = a.shape(1);
  p.rows = a.shape(2);
  p.cols = a.shape(3);
  p.stride_p = a.strides(1) / item;
  p.stride_r = a.strides(2) / item;
  p.stride_c = a.shape(3) > 1 ? a.strides(3) / item : 1;
  return p;
}

template <class T>
py::array_t<T> to_numpy(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), sizeof(T) * v.size());
  return out;
}

// Runs body(b) for b in [0, n) (a batch's pages) on the thread pool (cpu/parallel.h), one page per
// part; the exception of the lowest b is rethrown.
template <class F>
void parallel_for(std::int64_t n, F body) {
  cpu::parallel_items(n, 0, body);
}

// One registration function per op (bind_<op>.cpp).
void bind_label(py::module_& m);
void bind_region_stats(py::module_& m);
void bind_decode(py::module_& m);
void bind_compat(py::module_& m);
void bind_watershed(py::module_& m);
void bind_peaks(py::module_& m);
void bind_encode(py::module_& m);
void bind_loss(py::module_& m);
void bind_evaluate(py::module_& m);

}  // namespace dwd
