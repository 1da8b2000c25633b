// dwd-fast core: definitions shared by every backend (g++ and nvcc).
//
// Header-only, no allocation, no Python. Everything a data-parallel step needs: the host/device
// qualifier, a strided 2-D view, index types, and an atomics shim whose host branch is plain
// sequential code (the host executor runs one element at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define DWD_HD __host__ __device__ __forceinline__
#define DWD_DEVICE_CODE 1
#else
#define DWD_HD inline
#endif

// True while nvcc compiles the device side of a translation unit.
#if defined(__CUDA_ARCH__)
#define DWD_ON_DEVICE 1
#else
#define DWD_ON_DEVICE 0
#endif

namespace dwd {

using index_t = std::int64_t;   // pixel counts and linear indices (pages up to 2^63 px)
using label_t = std::int32_t;   // component labels (int32, like skimage's bool path)

// A strided 2-D view of caller memory. Strides are in elements, not bytes.
template <class T>
struct ImageView {
  T* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t stride_r = 0;
  index_t stride_c = 1;

  DWD_HD T& operator()(index_t r, index_t c) const { return data[r * stride_r + c * stride_c]; }
  DWD_HD T* row(index_t r) const { return data + r * stride_r; }
  DWD_HD index_t size() const { return rows * cols; }
};

template <class T>
DWD_HD ImageView<T> make_view(T* data, index_t rows, index_t cols) {
  ImageView<T> v;
  v.data = data;
  v.rows = rows;
  v.cols = cols;
  v.stride_r = cols;
  v.stride_c = 1;
  return v;
}

// ---- atomics shim --------------------------------------------------------------------------
// On the device these are the hardware atomics; on the host, where HostExec runs one element at a
// time, they are plain read-modify-write. Each returns the old value, like CUDA's.
template <class T>
DWD_HD T atomic_min(T* addr, T v) {
#if DWD_ON_DEVICE
  return atomicMin(addr, v);
#else
  T old = *addr;
  if (v < old) *addr = v;
  return old;
#endif
}

template <class T>
DWD_HD T atomic_max(T* addr, T v) {
#if DWD_ON_DEVICE
  return atomicMax(addr, v);
#else
  T old = *addr;
  if (v > old) *addr = v;
  return old;
#endif
}

// 64-bit unsigned max (packed keys). CUDA's overload takes unsigned long long, which is not
// std::uint64_t (unsigned long) on Linux, so the template above would not find it.
DWD_HD std::uint64_t atomic_max(std::uint64_t* addr, std::uint64_t v) {
#if DWD_ON_DEVICE
  return static_cast<std::uint64_t>(
      atomicMax(reinterpret_cast<unsigned long long*>(addr), static_cast<unsigned long long>(v)));
#else
  std::uint64_t old = *addr;
  if (v > old) *addr = v;
  return old;
#endif
}

// 64-bit unsigned min (order keys), for the same reason as atomic_max above.
DWD_HD std::uint64_t atomic_min(std::uint64_t* addr, std::uint64_t v) {
#if DWD_ON_DEVICE
  return static_cast<std::uint64_t>(
      atomicMin(reinterpret_cast<unsigned long long*>(addr), static_cast<unsigned long long>(v)));
#else
  std::uint64_t old = *addr;
  if (v < old) *addr = v;
  return old;
#endif
}

template <class T>
DWD_HD T atomic_add(T* addr, T v) {
#if DWD_ON_DEVICE
  return atomicAdd(addr, v);
#else
  T old = *addr;
  *addr = old + v;
  return old;
#endif
}

// Signed 64-bit atomics (sums, coordinates). CUDA's overloads take long long, which is not
// std::int64_t (long) on Linux; the add goes through the unsigned overload (two's complement).
DWD_HD std::int64_t atomic_add(std::int64_t* addr, std::int64_t v) {
#if DWD_ON_DEVICE
  return static_cast<std::int64_t>(atomicAdd(reinterpret_cast<unsigned long long*>(addr),
                                             static_cast<unsigned long long>(v)));
#else
  std::int64_t old = *addr;
  *addr = static_cast<std::int64_t>(static_cast<std::uint64_t>(old) + static_cast<std::uint64_t>(v));
  return old;
#endif
}

DWD_HD std::int64_t atomic_min(std::int64_t* addr, std::int64_t v) {
#if DWD_ON_DEVICE
  return static_cast<std::int64_t>(atomicMin(reinterpret_cast<long long*>(addr), static_cast<long long>(v)));
#else
  std::int64_t old = *addr;
  if (v < old) *addr = v;
  return old;
#endif
}

DWD_HD std::int64_t atomic_max(std::int64_t* addr, std::int64_t v) {
#if DWD_ON_DEVICE
  return static_cast<std::int64_t>(atomicMax(reinterpret_cast<long long*>(addr), static_cast<long long>(v)));
#else
  std::int64_t old = *addr;
  if (v > old) *addr = v;
  return old;
#endif
}

// A load that the compiler may not cache in a register: other threads may have written `addr`.
template <class T>
DWD_HD T load_relaxed(const T* addr) {
#if DWD_ON_DEVICE
  return *reinterpret_cast<const volatile T*>(addr);
#else
  return *addr;
#endif
}

// quiet NaN and +infinity as doubles (bit patterns: usable on the host and the device alike).
DWD_HD double qnan() {
  const std::uint64_t b = 0x7ff8000000000000ULL;
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}
DWD_HD double inf() {
  const std::uint64_t b = 0x7ff0000000000000ULL;
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}

template <class T>
DWD_HD T dmin(T a, T b) { return b < a ? b : a; }
template <class T>
DWD_HD T dmax(T a, T b) { return a < b ? b : a; }

}  // namespace dwd
