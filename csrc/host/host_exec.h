// HostExec: runs the data-parallel (GPU) algorithms of csrc/dwd on the CPU, one element at a time,
// in forward, reversed or shuffled order. It exists so that a machine without a GPU executes the
// GPU algorithms' real code, and so that tests can show their results do not depend on the order
// in which the elements of a step run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "dwd/exec.h"

namespace dwd {

class HostExec {
 public:
  explicit HostExec(Order order = Order::forward, std::uint64_t seed = 0) : order_(order), rng_(seed) {}

  template <class F>
  void for_each(index_t n, F f) {
    switch (order_) {
      case Order::forward:
        for (index_t i = 0; i < n; ++i) f(i);
        break;
      case Order::reversed:
        for (index_t i = n; i-- > 0;) f(i);
        break;
      case Order::shuffled: {
        perm_.resize(static_cast<std::size_t>(n));
        std::iota(perm_.begin(), perm_.end(), index_t(0));
        std::shuffle(perm_.begin(), perm_.end(), rng_);
        for (index_t i : perm_) f(i);
        break;
      }
    }
    ++steps_;
  }

  template <class T>
  T* alloc(index_t n) {
    blocks_.emplace_back(new unsigned char[sizeof(T) * static_cast<std::size_t>(n > 0 ? n : 1)]);
    return reinterpret_cast<T*>(blocks_.back().get());
  }

  template <class T>
  void fill(T* p, index_t n, T v) {
    std::fill(p, p + n, v);
  }

  template <class T>
  void to_host(T* dst, const T* src, index_t n) {
    std::memcpy(dst, src, sizeof(T) * static_cast<std::size_t>(n));
  }

  void exclusive_scan(const std::int32_t* in, std::int32_t* out, index_t n) {
    std::int32_t acc = 0;
    for (index_t i = 0; i < n; ++i) {
      out[i] = acc;
      acc += in[i];
    }
    out[n] = acc;
  }

  void sync() {}

  // Number of for_each steps run so far (the kernel-launch count on a GPU).
  std::int64_t steps() const { return steps_; }

 private:
  Order order_;
  std::mt19937_64 rng_;
  std::vector<index_t> perm_;
  std::vector<std::unique_ptr<unsigned char[]>> blocks_;
  std::int64_t steps_ = 0;
};

}  // namespace dwd
