// Makes `device` current for the lifetime of the guard (restores the previous device).
#pragma once

#include <cuda_runtime.h>

#include "cuda/cuda_exec.cuh"

namespace dwd {

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    cuda_check(cudaGetDevice(&prev_), "cudaGetDevice");
    if (device >= 0 && device != prev_) {
      cuda_check(cudaSetDevice(device), "cudaSetDevice");
      set_ = true;
    }
  }
  ~DeviceGuard() {
    if (set_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool set_ = false;
};

inline cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

}  // namespace dwd
