// A small end-to-end check of CudaExec on the device: for_each, fill, exclusive_scan, to_host.
// It proves at build time that nvcc compiles the executor, and at run time (on a GPU) that
// launches, workspace and copies work. csrc/python/module_cuda.cpp exposes it as _cuda.selftest().
#include "cuda/cuda_exec.cuh"
#include "cuda/probe.h"

namespace dwd {
namespace {

struct IotaStep {
  std::int32_t* out;
  DWD_HD void operator()(index_t i) const { out[i] = static_cast<std::int32_t>(i % 3); }
};

}  // namespace

std::int64_t cuda_selftest(std::int64_t n) {
  cudaStream_t stream = nullptr;
  cuda_check(cudaStreamCreate(&stream), "cudaStreamCreate");
  std::int64_t total = -1;
  try {
    CudaExec ex(stream);
    std::int32_t* a = ex.alloc<std::int32_t>(n);
    std::int32_t* s = ex.alloc<std::int32_t>(n + 1);
    ex.fill<std::int32_t>(a, n, 7);
    ex.for_each(n, IotaStep{a});
    ex.exclusive_scan(a, s, n);
    std::int32_t t = 0;
    ex.to_host(&t, s + n, 1);
    total = t;
  } catch (...) {
    cudaStreamDestroy(stream);
    throw;
  }
  cuda_check(cudaStreamDestroy(stream), "cudaStreamDestroy");
  return total;
}

}  // namespace dwd
