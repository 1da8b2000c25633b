// scikit-image 0.26's _watershed_cy.watershed_raveled, replayed exactly and faster.
//
// Items are ordered by (value as float64, age); every push takes the next age, seeds have age 0, and
// a pushed value is raised to the popped item's value, so the values popped never decrease. Ties of
// (value, age) exist only among seeds sharing a value, and only there does the layout of
// scikit-image's binary heap (heap_general.pxi) decide the order. So, as in watershed.cpp: that binary
// heap, sift rules included, runs while two seeds of one value are still in it; afterwards (value,
// age) is a total order and a radix heap over the value bits with FIFO buckets pops the same sequence
// in near-linear time.
//
// Modes (as scikit-image): without compactness or line, a pixel is labelled when pushed; with either,
// when popped (a pixel may be pushed several times; pops of labelled non-seed pixels are skipped).
// With compactness > 0 a pushed value is image + compactness * euclidean distance to the item's seed
// and the watershed line is ignored. With the line only, a popped pixel whose in-mask neighbours
// hold another non-zero label is left 0 and leaves the mask; it still pushes its neighbours.
#include "cpu/watershed_raveled.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "cpu/flood.h"
#include "cpu/sk_heap.h"

namespace dwd {
namespace cpu {
namespace {

struct Item {
  std::uint64_t key;  // order-preserving bits of the float64 value
  std::uint32_t age;
  std::int64_t index;
  std::int64_t source;
};

inline std::uint64_t key_of(double d) { return OrderBits<double>::to(d); }  // -0 == +0
inline double value_of(std::uint64_t k) { return OrderBits<double>::from(k); }

struct ItemLess {
  bool operator()(const Item& a, const Item& b) const { return a.key < b.key || (a.key == b.key && a.age < b.age); }
};
// scikit-image's array heap (sk_heap.h).
using BinaryHeap = SkBinaryHeap<Item, ItemLess>;

// Monotone priority queue in (value, push order): radix heap over the 64 value bits, FIFO buckets
// (see SkRadix in watershed.cpp for the argument that it pops exact (value, age) order).
class RadixHeap {
 public:
  void reset(std::uint64_t floor) {
    last_ = floor;
    for (auto& b : b_) b.clear();
    head0_ = 0;
    nonempty_ = 0;
  }
  void push(const Item& it) {
    const std::uint64_t b = it.key;
    if (b == last_) {
      b_[0].push_back(it);
      return;
    }
    if (b < last_) throw std::logic_error("watershed_raveled: a pushed value is below the last popped one");
    const int k = 64 - __builtin_clzll(b ^ last_);  // 1..64
    const std::uint64_t bit = std::uint64_t(1) << (k - 1);
    if (!(nonempty_ & bit) || b < min_[k]) min_[k] = b;
    b_[k].push_back(it);
    nonempty_ |= bit;
  }
  bool pop(Item& out) {
    if (head0_ == b_[0].size()) {
      b_[0].clear();
      head0_ = 0;
      if (nonempty_ == 0) return false;
      const int k = __builtin_ctzll(nonempty_) + 1;
      nonempty_ &= nonempty_ - 1;
      std::vector<Item> src;
      src.swap(b_[k]);
      last_ = min_[k];
      for (const Item& it : src) push(it);  // into buckets below k, all empty
      src.clear();
      src.swap(b_[k]);  // keep the capacity
      b_[k].clear();
    }
    out = b_[0][head0_++];
    return true;
  }

 private:
  std::vector<Item> b_[65];
  std::size_t head0_ = 0;
  std::uint64_t last_ = 0;
  std::uint64_t nonempty_ = 0;
  std::uint64_t min_[65] = {};
};

}  // namespace

std::int64_t watershed_raveled(const RaveledFlood& f) {
  const double* image = f.image;
  std::int32_t* out = f.out;
  std::uint8_t* mask = f.mask;
  const std::int64_t n = f.n;
  const bool compact = f.compactness > 0.0;  // NaN and negative values: plain watershed, as scikit-image
  const bool wsl = f.watershed_line;
  const bool at_pop = compact || wsl;
  const std::vector<std::int64_t> off(f.offsets, f.offsets + f.n_offsets);
  std::int64_t pushes = 0;
  std::uint32_t age = 1;

  auto dist = [&](std::int64_t p0, std::int64_t p1) {
    double result = 0.0;
    for (int i = 0; i < f.ndim; ++i) {
      const std::int64_t s = f.strides[i];
      const double curr = static_cast<double>(p0 / s - p1 / s);
      result += curr * curr;
      p0 %= s;
      p1 %= s;
    }
    return std::sqrt(result);
  };
  // scikit-image's _diff_neighbors: true (and the pixel leaves the mask) when an in-mask neighbour holds
  // a non-zero label other than `label`.
  auto diff_neighbours = [&](std::int64_t index, std::int32_t label) {
    if (!mask[index]) return true;
    for (const std::int64_t o : off) {
      const std::int64_t q = index + o;
      if (q < 0 || q >= n) continue;
      if (mask[q]) {
        const std::int32_t l = out[q];
        if (l != 0 && l != label) {
          mask[index] = 0;
          return true;
        }
      }
    }
    return false;
  };
  // Pops item e: labels it when the mode labels at pop time, then pushes its neighbours.
  auto expand = [&](const Item& e, auto&& push) {
    if (at_pop) {
      if (out[e.index] != 0 && e.index != e.source) return;  // reached already from another neighbour
      const std::int32_t ls = out[e.source];
      if (compact || !diff_neighbours(e.index, ls)) out[e.index] = ls;
    }
    const double ev = value_of(e.key);
    for (const std::int64_t o : off) {
      const std::int64_t q = e.index + o;
      if (q < 0 || q >= n) continue;  // scikit-image reads out of its array here: undefined there
      if (!mask[q] || out[q] != 0) continue;
      ++age;
      ++pushes;
      double v = image[q];
      if (compact) {
        v += f.compactness * dist(q, e.source);
      } else if (!wsl) {
        out[q] = out[e.index];
      }
      if (v < ev) v = ev;
      push(Item{key_of(v), age, q, e.source});
    }
  };

  // Seeds: the multiplicities of their (component, value) (only while two seeds of one value in one
  // component are queued can the heap's layout decide an order that changes a label).
  using SeedKey = std::pair<std::int32_t, std::uint64_t>;
  auto comp_of = [&](std::int64_t p) { return f.comp ? f.comp[p] : 0; };
  std::vector<SeedKey> seed_value(static_cast<std::size_t>(f.n_seeds));
  BinaryHeap heap;
  for (std::int64_t k = 0; k < f.n_seeds; ++k) {
    const std::int64_t p = f.seeds[k];
    seed_value[k] = SeedKey(comp_of(p), key_of(image[p]));
    heap.push(Item{seed_value[k].second, 0, p, p});
  }
  std::sort(seed_value.begin(), seed_value.end());
  std::vector<std::uint32_t> seed_count;
  std::size_t tied = count_seed_ties(seed_value, seed_count);
  auto heap_push = [&](const Item& it) { heap.push(it); };
  while (!heap.empty() && tied > 0) {
    const Item e = heap.pop();
    if (e.age == 0) {
      const std::size_t v = static_cast<std::size_t>(
          std::lower_bound(seed_value.begin(), seed_value.end(), SeedKey(comp_of(e.index), e.key)) - seed_value.begin());
      if (seed_count[v]-- >= 2) --tied;
    }
    expand(e, heap_push);
  }
  std::vector<Item> rest = heap.take();
  if (rest.empty()) return pushes;
  std::sort(rest.begin(), rest.end(), ItemLess());
  RadixHeap queue;
  queue.reset(rest.front().key);
  for (const Item& it : rest) queue.push(it);
  rest = std::vector<Item>();
  auto queue_push = [&](const Item& it) { queue.push(it); };
  Item e;
  while (queue.pop(e)) {
    expand(e, queue_push);
    if (age >= 0x7fffffffu) throw std::invalid_argument("watershed: more than 2^31 heap pushes");
  }
  return pushes;
}

}  // namespace cpu
}  // namespace dwd
