// Host-callable entry points of the CUDA probe (compiled by nvcc, called from the g++ binding).
#pragma once

#include <cstdint>

namespace dwd {

// Runs fill + for_each + exclusive_scan over n elements on a new stream and returns the scan total
// (sum of i % 3 for i < n). Throws std::runtime_error when CUDA is unusable.
std::int64_t cuda_selftest(std::int64_t n);

}  // namespace dwd
