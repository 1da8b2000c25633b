// scikit-image 0.26's array heap (heap_general.pxi), its sift rules exactly: the order in which it pops
// items with equal keys is what decides scikit-image's watershed among tied seeds, so both replays of
// that watershed (watershed.cpp's method="skimage", watershed_raveled.cpp's whole signature) use this one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace dwd {
namespace cpu {

// Less(a, b): the strict order of the items (value, then age). Push sifts the new item up while it is
// strictly smaller than its parent; pop moves the last item to the root and sifts it down, the smaller
// child (ties to the left) moving up while it is smaller than that item.
template <class Item, class Less>
class SkBinaryHeap {
 public:
  bool empty() const { return v_.empty(); }
  const Item& top() const { return v_[0]; }
  std::vector<Item> take() { return std::move(v_); }
  void reserve(std::size_t n) { v_.reserve(n); }
  void push(const Item& it) {
    const Less less;
    v_.push_back(it);
    std::size_t child = v_.size() - 1;
    while (child > 0) {
      const std::size_t parent = (child + 1) / 2 - 1;
      if (!less(it, v_[parent])) break;
      v_[child] = v_[parent];
      child = parent;
    }
    v_[child] = it;
  }
  Item pop() {
    const Less less;
    const Item top = v_[0];
    const Item last = v_.back();
    v_.pop_back();
    const std::size_t n = v_.size();
    if (n == 0) return top;
    // The hole at i waits for `last`. scikit-image's rule (left child if smaller than the item, then the
    // right if smaller than that) is: the smaller child, ties to the left, moves up if smaller than
    // `last`. The child is chosen without a branch; the great-grandchildren are fetched ahead.
    Item* v = v_.data();
    std::size_t i = 0;
    while (true) {
      const std::size_t l = 2 * i + 1;
      if (l >= n) break;
      __builtin_prefetch(v + 8 * i + 7);  // the great-grandchildren, on a few cache lines
      __builtin_prefetch(v + 8 * i + 11);
      __builtin_prefetch(v + 8 * i + 14);
      std::size_t c = l;
      if (l + 1 < n) c += less(v[l + 1], v[l]) ? 1 : 0;
      if (!less(v[c], last)) break;
      v[i] = v[c];
      i = c;
    }
    v[i] = last;
    return top;
  }

 private:
  std::vector<Item> v_;
};

// The seeds' keys sorted, then made unique in place, each with how many seeds share it (counts); returns
// the seeds tied to an earlier one of the same key (the count of pops during which the array heap's
// layout still decides an order).
template <class Key>
std::size_t count_seed_ties(std::vector<Key>& keys, std::vector<std::uint32_t>& counts) {
  std::size_t tied = 0, d = 0;
  counts.clear();
  for (std::size_t k = 0; k < keys.size(); ++k) {
    if (k > 0 && keys[k] == keys[d - 1]) {
      ++counts[d - 1];
      ++tied;
    } else {
      keys[d++] = keys[k];
      counts.push_back(1);
    }
  }
  keys.resize(d);
  return tied;
}

}  // namespace cpu
}  // namespace dwd
