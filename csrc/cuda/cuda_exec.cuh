// CudaExec: the executor of csrc/dwd/exec.h as CUDA kernels on the caller's stream.
//
// for_each launches one generic kernel over a DWD_HD functor (one thread per element). Workspace is
// allocated with cudaMallocAsync on the stream (stream-ordered) from the device's default memory
// pool, whose release threshold is raised once per device so that freed workspace stays in the pool:
// in steady state a call reuses the previous call's memory instead of reaching the driver's
// allocator. Workspace is freed (back to the pool) when the executor is destroyed. Every CUDA call is checked; errors become
// std::runtime_error with the call and the CUDA message.
#pragma once

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "dwd/exec.h"

namespace dwd {

inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

template <class F>
__global__ void for_each_kernel(index_t n, F f) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) f(i);
}

template <class T>
__global__ void fill_kernel(T* p, index_t n, T v) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) p[i] = v;
}

class CudaExec {
 public:
  static constexpr int kBlock = 256;

  explicit CudaExec(cudaStream_t stream) : stream_(stream) { keep_pool(); }
  CudaExec(const CudaExec&) = delete;
  CudaExec& operator=(const CudaExec&) = delete;
  ~CudaExec() {
    for (void* p : blocks_) cudaFreeAsync(p, stream_);  // errors here cannot be reported
  }

  template <class F>
  void for_each(index_t n, F f) {
    if (n <= 0) return;
    const index_t grid = (n + kBlock - 1) / kBlock;
    for_each_kernel<<<static_cast<unsigned>(grid), kBlock, 0, stream_>>>(n, f);
    cuda_check(cudaGetLastError(), "for_each launch");
    ++launches_;
  }

  template <class T>
  T* alloc(index_t n) {
    void* p = nullptr;
    cuda_check(cudaMallocAsync(&p, sizeof(T) * static_cast<std::size_t>(n > 0 ? n : 1), stream_), "cudaMallocAsync");
    blocks_.push_back(p);
    sizes_.push_back(static_cast<std::int64_t>(sizeof(T) * static_cast<std::size_t>(n > 0 ? n : 1)));
    live_ += sizes_.back();
    if (live_ > peak_) peak_ = live_;
    return static_cast<T*>(p);
  }

  // Returns workspace to the pool in stream order (kernels queued before still see it).
  void free(const void* p) {
    for (std::size_t k = blocks_.size(); k-- > 0;)
      if (blocks_[k] == p) {
        cuda_check(cudaFreeAsync(blocks_[k], stream_), "cudaFreeAsync");
        live_ -= sizes_[k];
        blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(k));
        sizes_.erase(sizes_.begin() + static_cast<std::ptrdiff_t>(k));
        return;
      }
  }

  template <class T>
  void fill(T* p, index_t n, T v) {
    if (n <= 0) return;
    fill_kernel<<<static_cast<unsigned>((n + kBlock - 1) / kBlock), kBlock, 0, stream_>>>(p, n, v);
    cuda_check(cudaGetLastError(), "fill launch");
    ++launches_;
  }

  // out[i] = sum(in[0..i)) for i <= n (out holds n + 1 elements).
  void exclusive_scan(const std::int32_t* in, std::int32_t* out, index_t n) {
    std::size_t bytes = 0;
    cuda_check(cub::DeviceScan::InclusiveSum(nullptr, bytes, in, out + 1, static_cast<int>(n), stream_),
               "DeviceScan size");
    void* tmp = alloc<unsigned char>(static_cast<index_t>(bytes));
    fill<std::int32_t>(out, 1, 0);
    cuda_check(cub::DeviceScan::InclusiveSum(tmp, bytes, in, out + 1, static_cast<int>(n), stream_),
               "DeviceScan");
    ++launches_;
  }

  // Sorts keys[0..n) ascending (CUB radix sort); returns the buffer holding the sorted keys.
  std::uint64_t* sort_keys(std::uint64_t* keys, index_t n) {
    if (n <= 1) return keys;
    std::uint64_t* out = alloc<std::uint64_t>(n);
    std::size_t bytes = 0;
    cuda_check(cub::DeviceRadixSort::SortKeys(nullptr, bytes, keys, out, static_cast<int>(n), 0, 64, stream_),
               "DeviceRadixSort size");
    void* tmp = alloc<unsigned char>(static_cast<index_t>(bytes));
    cuda_check(cub::DeviceRadixSort::SortKeys(tmp, bytes, keys, out, static_cast<int>(n), 0, 64, stream_),
               "DeviceRadixSort");
    ++launches_;
    return out;
  }

  // Stable sort of (key, value) pairs by key (CUB radix sort); returns the buffer of sorted values.
  std::int64_t* sort_pairs(std::uint64_t* keys, std::int64_t* vals, index_t n) {
    if (n <= 1) return vals;
    std::uint64_t* kout = alloc<std::uint64_t>(n);
    std::int64_t* vout = alloc<std::int64_t>(n);
    std::size_t bytes = 0;
    cuda_check(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, kout, vals, vout, static_cast<int>(n), 0, 64,
                                               stream_),
               "DeviceRadixSort pairs size");
    void* tmp = alloc<unsigned char>(static_cast<index_t>(bytes));
    cuda_check(cub::DeviceRadixSort::SortPairs(tmp, bytes, keys, kout, vals, vout, static_cast<int>(n), 0, 64, stream_),
               "DeviceRadixSort pairs");
    ++launches_;
    return vout;
  }

  // Copies device -> host and waits for it (the one place a data-dependent count reaches the host).
  template <class T>
  void to_host(T* dst, const T* src, index_t n) {
    cuda_check(cudaMemcpyAsync(dst, src, sizeof(T) * static_cast<std::size_t>(n), cudaMemcpyDeviceToHost, stream_),
               "cudaMemcpyAsync");
    sync();
  }

  void sync() { cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

  cudaStream_t stream() const { return stream_; }
  std::int64_t launches() const { return launches_; }
  // Peak workspace bytes live at once (CUB's temporary storage included).
  std::int64_t workspace_bytes() const { return peak_; }

 private:
  // Raise the release threshold of the current device's default pool (once per device), so that
  // memory freed by cudaFreeAsync stays cached for the next call.
  static void keep_pool() {
    static bool done[64] = {};
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64 || done[dev]) return;
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
      std::uint64_t threshold = ~std::uint64_t(0);
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
    }
    done[dev] = true;
  }

  cudaStream_t stream_;
  std::vector<void*> blocks_;
  std::vector<std::int64_t> sizes_;
  std::int64_t launches_ = 0;
  std::int64_t live_ = 0;
  std::int64_t peak_ = 0;
};

}  // namespace dwd
