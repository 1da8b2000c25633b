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
    ++launches_;
  }

  template <class T>
  T* alloc(index_t n) {
    const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(n > 0 ? n : 1);
    blocks_.emplace_back(new unsigned char[bytes]);
    sizes_.push_back(static_cast<std::int64_t>(bytes));
    live_ += static_cast<std::int64_t>(bytes);
    if (live_ > peak_) peak_ = live_;
    return reinterpret_cast<T*>(blocks_.back().get());
  }

  // Returns workspace from alloc before the executor ends (stream-ordered on CUDA).
  void free(const void* p) {
    for (std::size_t k = blocks_.size(); k-- > 0;)
      if (blocks_[k].get() == p) {
        live_ -= sizes_[k];
        blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(k));
        sizes_.erase(sizes_.begin() + static_cast<std::ptrdiff_t>(k));
        return;
      }
  }

  template <class T>
  void fill(T* p, index_t n, T v) {
    if (n <= 0) return;
    std::fill(p, p + n, v);
    ++launches_;
  }

  template <class T>
  void to_host(T* dst, const T* src, index_t n) {
    std::memcpy(dst, src, sizeof(T) * static_cast<std::size_t>(n));
    ++syncs_;
  }

  void exclusive_scan(const std::int32_t* in, std::int32_t* out, index_t n) {
    std::int32_t acc = 0;
    for (index_t i = 0; i < n; ++i) {
      out[i] = acc;
      acc += in[i];
    }
    out[n] = acc;
    ++launches_;
  }

  // Sorts keys[0..n) ascending; returns where the sorted keys are (here: in place).
  std::uint64_t* sort_keys(std::uint64_t* keys, index_t n) {
    if (n <= 1) return keys;
    std::sort(keys, keys + n);
    ++launches_;
    return keys;
  }

  // Stable sort of (keys[i], vals[i]) pairs by key; returns where the sorted values are (in place).
  std::int64_t* sort_pairs(std::uint64_t* keys, std::int64_t* vals, index_t n) {
    if (n <= 1) return vals;
    std::vector<index_t> perm(static_cast<std::size_t>(n));
    std::iota(perm.begin(), perm.end(), index_t(0));
    std::stable_sort(perm.begin(), perm.end(), [&](index_t a, index_t b) { return keys[a] < keys[b]; });
    std::vector<std::uint64_t> k2(perm.size());
    std::vector<std::int64_t> v2(perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i) {
      k2[i] = keys[perm[i]];
      v2[i] = vals[perm[i]];
    }
    std::copy(k2.begin(), k2.end(), keys);
    std::copy(v2.begin(), v2.end(), vals);
    ++launches_;
    return vals;
  }

  void sync() {}

  // Number of for_each steps run so far (the kernel-launch count on a GPU).
  std::int64_t steps() const { return steps_; }
  // Executor calls that are device work on a GPU (for_each, fill, exclusive_scan, sort_keys): the
  // count CudaExec::launches() gives for the same algorithm (CUB's scan and sort launch a few
  // kernels each internally).
  std::int64_t launches() const { return launches_; }
  // Device -> host copies (each one a stream synchronization on a GPU).
  std::int64_t syncs() const { return syncs_; }
  // Peak workspace bytes live at once (device memory on a GPU, excluding the caller's inputs and
  // outputs and CUB's temporary storage).
  std::int64_t workspace_bytes() const { return peak_; }

 private:
  Order order_;
  std::mt19937_64 rng_;
  std::vector<index_t> perm_;
  std::vector<std::unique_ptr<unsigned char[]>> blocks_;
  std::vector<std::int64_t> sizes_;
  std::int64_t steps_ = 0;
  std::int64_t launches_ = 0;
  std::int64_t syncs_ = 0;
  std::int64_t live_ = 0;
  std::int64_t peak_ = 0;
};

}  // namespace dwd
