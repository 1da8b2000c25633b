// Data-parallel marker watershed (the GPU algorithm): relaxation to the unique fixed point of the
// canonical definition (research/algorithms.md §5.4).
//
// Every in-mask pixel q carries a key K(q) = (c, d, l), compared lexicographically:
//   marker m:  K(m) = (level(m), 0, label(m))
//   other q:   p* = the in-mask neighbour with the smallest key;
//              c(q) = max(level(q), c(p*)),  d(q) = d(p*) + 1 if c(p*) >= level(q) else 0,  l(q) = l(p*)
// c is the minimax flood level, d the breadth-first distance inside that level, l breaks the remaining
// ties by the smallest label.
//
// The label part is not monotone in the parent's key (a smaller parent key can carry a larger label),
// so a single "only lower the key" relaxation of packed (c, d, l) keys can settle on the wrong label.
// The fixed point is therefore computed in two monotone phases, each with a unique fixed point that
// any schedule reaches (no atomics on data: a pixel is written only by its own step):
//   1. (c, d) keys, packed in 64 bits (level rank, distance): K(q) = f(min over neighbours), and
//      f is monotone in (c, d), so lowering keys from +inf converges to the fixed point;
//   2. labels: l(q) = min label over the neighbours whose (c, d) equals that minimum (q's parents,
//      whose keys are strictly smaller than q's): a min-propagation over a DAG.
// The caller passes level ranks (order-preserving, -1 outside the mask) and dense labels 1..M.
#pragma once

#include "core.h"
#include "exec.h"

namespace dwd {
namespace watershed_dp {

constexpr std::uint64_t kInf = ~std::uint64_t(0);

DWD_HD std::uint64_t pack(std::uint64_t c, std::uint64_t d) { return (c << 32) | d; }
DWD_HD std::uint64_t level_of(std::uint64_t k) { return k >> 32; }

struct Grid {
  const std::int32_t* level;   // rank, -1 outside the mask
  const std::int32_t* marker;  // dense label 1..M, 0 = none (0 outside the mask)
  index_t rows, cols;
  int connectivity;

  // Calls f(j) for each in-mask neighbour j of pixel i.
  template <class F>
  DWD_HD void neighbours(index_t i, F&& f) const {
    const index_t r = i / cols, c = i % cols;
    for (int dr = -1; dr <= 1; ++dr)
      for (int dc = -1; dc <= 1; ++dc) {
        if ((dr == 0 && dc == 0) || (connectivity == 1 && dr != 0 && dc != 0)) continue;
        const index_t rr = r + dr, cc = c + dc;
        if (rr < 0 || rr >= rows || cc < 0 || cc >= cols) continue;
        const index_t j = rr * cols + cc;
        if (level[j] >= 0) f(j);
      }
  }
  DWD_HD bool free_pixel(index_t i) const { return level[i] >= 0 && marker[i] == 0; }
};

struct KeyInitStep {
  Grid g;
  std::uint64_t* key;
  DWD_HD void operator()(index_t i) const {
    key[i] = (g.level[i] >= 0 && g.marker[i] > 0) ? pack(static_cast<std::uint64_t>(g.level[i]), 0) : kInf;
  }
};

// Phase 1: key(q) = f(smallest neighbour key), lowered only.
struct KeyRelaxStep {
  Grid g;
  std::uint64_t* key;
  std::int32_t* changed;
  DWD_HD void operator()(index_t i) const {
    if (!g.free_pixel(i)) return;
    std::uint64_t best = kInf;
    g.neighbours(i, [&](index_t j) { best = dmin(best, load_relaxed(key + j)); });
    if (best == kInf) return;
    const auto lv = static_cast<std::uint64_t>(g.level[i]);
    const std::uint64_t nk = level_of(best) >= lv ? best + 1 : pack(lv, 0);
    if (nk < key[i]) {
      key[i] = nk;
      atomic_add(changed, 1);
    }
  }
};

struct LabelInitStep {
  Grid g;
  const std::uint64_t* key;
  std::int32_t* label;
  DWD_HD void operator()(index_t i) const {
    label[i] = g.marker[i] > 0 && g.level[i] >= 0 ? g.marker[i] : (key[i] == kInf ? 0 : 0x7fffffff);
  }
};

// Phase 2: label(q) = smallest label among the neighbours holding the smallest key, lowered only.
struct LabelRelaxStep {
  Grid g;
  const std::uint64_t* key;
  std::int32_t* label;
  std::int32_t* changed;
  DWD_HD void operator()(index_t i) const {
    if (!g.free_pixel(i) || key[i] == kInf) return;
    std::uint64_t best = kInf;
    std::int32_t l = 0x7fffffff;
    g.neighbours(i, [&](index_t j) {
      const std::uint64_t k = key[j];
      if (k > best) return;
      const std::int32_t lj = load_relaxed(label + j);
      if (k < best) {
        best = k;
        l = lj;
      } else if (lj < l) {
        l = lj;
      }
    });
    if (l < label[i]) {
      label[i] = l;
      atomic_add(changed, 1);
    }
  }
};

// Runs `step` over all pixels until a sweep changes nothing; returns the number of sweeps.
template <class Exec, class Step>
std::int64_t relax(Exec& ex, index_t n, std::int32_t* changed, Step step) {
  std::int64_t sweeps = 0;
  std::int32_t h = 1;
  while (h != 0) {
    ex.fill(changed, 1, std::int32_t(0));
    ex.for_each(n, step);
    ex.to_host(&h, changed, 1);
    ++sweeps;
  }
  return sweeps;
}

// Floods `level` (rows x cols, ranks, -1 outside the mask) from `marker` (dense labels) into `out`
// (dense labels, 0 = unreached or outside). Returns the total number of sweeps of both phases.
// Executor memory: level, marker, out.
template <class Exec>
std::int64_t watershed(Exec& ex, const std::int32_t* level, const std::int32_t* marker, index_t rows, index_t cols,
                       int connectivity, std::int32_t* out) {
  const index_t n = rows * cols;
  if (n == 0) return 0;
  const Grid g{level, marker, rows, cols, connectivity};
  std::uint64_t* key = ex.template alloc<std::uint64_t>(n);
  std::int32_t* changed = ex.template alloc<std::int32_t>(1);
  ex.for_each(n, KeyInitStep{g, key});
  std::int64_t sweeps = relax(ex, n, changed, KeyRelaxStep{g, key, changed});
  ex.for_each(n, LabelInitStep{g, key, out});
  sweeps += relax(ex, n, changed, LabelRelaxStep{g, key, out, changed});
  ex.free(key);
  ex.free(changed);
  return sweeps;
}

}  // namespace watershed_dp
}  // namespace dwd
