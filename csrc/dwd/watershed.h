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

#include <cstring>
#include <stdexcept>

#include "anyview.h"
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

// Sweeps between two reads of the convergence flags. The sweep count is data-dependent (the longest
// path inside a level), so the host must learn when to stop; reading a flag after every sweep would cost
// a stream synchronization per sweep. Instead each group of kCheckEvery sweeps writes one change
// counter per sweep and the host reads them once per group: the sweeps after the first one that
// changed nothing are no-ops (at the fixed point nothing changes), so at most kCheckEvery - 1 launches
// are wasted, and the result and the reported sweep count do not depend on kCheckEvery.
constexpr int kCheckEvery = 4;

// Runs `step` (whose `changed` member is pointed at one counter per sweep) over all pixels until a
// sweep changes nothing; `changed` holds kCheckEvery counters. Returns the number of sweeps up to and
// including the first one that changed nothing. Launches: kCheckEvery + 1 per group of kCheckEvery
// sweeps (the sweeps and the counters' fill), one synchronization per group.
template <class Exec, class Step>
std::int64_t relax(Exec& ex, index_t n, std::int32_t* changed, Step step) {
  std::int64_t sweeps = 0;
  while (true) {
    ex.fill(changed, kCheckEvery, std::int32_t(0));
    for (int k = 0; k < kCheckEvery; ++k) {
      step.changed = changed + k;
      ex.for_each(n, step);
    }
    std::int32_t h[kCheckEvery];
    ex.to_host(h, changed, kCheckEvery);
    for (int k = 0; k < kCheckEvery; ++k) {
      ++sweeps;
      if (h[k] == 0) return sweeps;
    }
  }
}

// Floods `level` (rows x cols, ranks, -1 outside the mask) from `marker` (dense labels) into `out`
// (dense labels, 0 = unreached or outside). Returns the total number of sweeps of both phases (and,
// with `phase_sweeps`, those of the key phase and of the label phase).
// Executor memory: level, marker, out.
template <class Exec>
std::int64_t watershed(Exec& ex, const std::int32_t* level, const std::int32_t* marker, index_t rows, index_t cols,
                       int connectivity, std::int32_t* out, std::int64_t* phase_sweeps = nullptr) {
  const index_t n = rows * cols;
  if (n == 0) return 0;
  const Grid g{level, marker, rows, cols, connectivity};
  std::uint64_t* key = ex.template alloc<std::uint64_t>(n);
  std::int32_t* changed = ex.template alloc<std::int32_t>(kCheckEvery);
  ex.for_each(n, KeyInitStep{g, key});
  const std::int64_t s1 = relax(ex, n, changed, KeyRelaxStep{g, key, changed});
  ex.for_each(n, LabelInitStep{g, key, out});
  const std::int64_t s2 = relax(ex, n, changed, LabelRelaxStep{g, key, out, changed});
  ex.free(key);
  ex.free(changed);
  if (phase_sweeps) {
    phase_sweeps[0] = s1;
    phase_sweeps[1] = s2;
  }
  return s1 + s2;
}

// ---- the whole op on caller maps (any dtype, any strides): what the CUDA binding runs ------------
//   scan       one element per pixel: in-mask test, NaN flag, smallest / largest order key of the
//              in-mask image values and of the in-mask non-zero markers (atomicMin / atomicMax)
//   levels     order-preserving ranks of the in-mask values: key - smallest key when the keys span
//              less than 2^31 (every integer image of a sane range: no sort), else the general way:
//              radix sort of the keys, unique flags, scan, binary search
//   markers    dense labels that keep the markers' order (smallest label = smallest value, the
//              canonical tie rule): likewise key - smallest key + 1, or sort / unique / scan with a
//              table from label back to value
//   flood      watershed() above
//   output     one element per pixel writes the marker value of its label in the markers' dtype

// Order key of a value: ascending keys list the values in ascending order (floats: IEEE order with
// -0 == +0; signed integers: sign bit flipped; unsigned: as they are).
DWD_HD std::uint64_t value_key(const AnyView& v, index_t r, index_t c) {
  constexpr std::uint64_t sign = std::uint64_t(1) << 63;
  if (v.is_float()) {
    double x = v.f64(0, r, c);
    if (x == 0.0) x = 0.0;
    std::uint64_t b;
    std::memcpy(&b, &x, sizeof b);
    return (b & sign) ? ~b : (b | sign);
  }
  if (v.dt == Dt::u64) return v.at<std::uint64_t>(0, r, c);
  return static_cast<std::uint64_t>(v.i64(0, r, c)) ^ sign;
}

// The integer value of an integer map's order key (inverse of value_key), as int64 bits.
DWD_HD std::int64_t key_value(Dt dt, std::uint64_t key) {
  constexpr std::uint64_t sign = std::uint64_t(1) << 63;
  return static_cast<std::int64_t>(dt == Dt::u64 ? key : key ^ sign);
}

// out[i] = v converted to the map's dtype (integer maps; bool is u8).
DWD_HD void store(void* out, Dt dt, index_t i, std::int64_t v) {
  switch (dt) {
    case Dt::u8: static_cast<std::uint8_t*>(out)[i] = static_cast<std::uint8_t>(v); break;
    case Dt::i8: static_cast<std::int8_t*>(out)[i] = static_cast<std::int8_t>(v); break;
    case Dt::u16: static_cast<std::uint16_t*>(out)[i] = static_cast<std::uint16_t>(v); break;
    case Dt::i16: static_cast<std::int16_t*>(out)[i] = static_cast<std::int16_t>(v); break;
    case Dt::u32: static_cast<std::uint32_t*>(out)[i] = static_cast<std::uint32_t>(v); break;
    case Dt::i32: static_cast<std::int32_t*>(out)[i] = static_cast<std::int32_t>(v); break;
    case Dt::u64: static_cast<std::uint64_t*>(out)[i] = static_cast<std::uint64_t>(v); break;
    case Dt::i64: static_cast<std::int64_t*>(out)[i] = v; break;
    case Dt::f32: static_cast<float*>(out)[i] = static_cast<float>(v); break;
    case Dt::f64: default: static_cast<double*>(out)[i] = static_cast<double>(v); break;
  }
}

// stats: [0] smallest image key, [1] largest, [2] smallest marker key, [3] largest, [4] NaN seen.
struct StatsInitStep {
  std::uint64_t* stats;
  DWD_HD void operator()(index_t) const {
    stats[0] = stats[2] = ~std::uint64_t(0);
    stats[1] = stats[3] = stats[4] = 0;
  }
};

struct Maps {
  AnyView image, markers, mask;  // mask may be absent
  DWD_HD bool in(index_t r, index_t c) const { return !mask.present() || mask.i64(0, r, c) != 0; }
  DWD_HD bool has_marker(index_t r, index_t c) const { return markers.i64(0, r, c) != 0; }
};

struct ScanStep {
  Maps m;
  std::uint64_t* stats;
  DWD_HD void operator()(index_t i) const {
    const index_t cols = m.image.cols, r = i / cols, c = i % cols;
    if (!m.in(r, c)) return;
    if (m.image.is_float()) {
      const double x = m.image.f64(0, r, c);
      if (x != x) {
        atomic_max(stats + 4, std::uint64_t(1));
        return;
      }
    }
    const std::uint64_t k = value_key(m.image, r, c);
    atomic_min(stats, k);
    atomic_max(stats + 1, k);
    if (m.has_marker(r, c)) {
      const std::uint64_t mk = value_key(m.markers, r, c);
      atomic_min(stats + 2, mk);
      atomic_max(stats + 3, mk);
    }
  }
};

// level[i] = key - lo inside the mask, -1 outside (the keys span less than 2^31).
struct LevelOffsetStep {
  Maps m;
  std::uint64_t lo;
  std::int32_t* level;
  DWD_HD void operator()(index_t i) const {
    const index_t cols = m.image.cols, r = i / cols, c = i % cols;
    level[i] = m.in(r, c) ? static_cast<std::int32_t>(value_key(m.image, r, c) - lo) : -1;
  }
};

// Keys for the general rank computation (pixels that take no rank get the largest key); level[i] =
// 0 where a rank is wanted, -1 elsewhere.
struct LevelKeyStep {
  Maps m;
  std::uint64_t* keys;
  std::int32_t* level;
  DWD_HD void operator()(index_t i) const {
    const index_t cols = m.image.cols, r = i / cols, c = i % cols;
    const bool in = m.in(r, c);
    keys[i] = in ? value_key(m.image, r, c) : ~std::uint64_t(0);
    level[i] = in ? 0 : -1;
  }
};

struct MarkerKeyStep {
  Maps m;
  const std::int32_t* level;
  std::uint64_t* keys;
  DWD_HD void operator()(index_t i) const {
    const index_t cols = m.image.cols, r = i / cols, c = i % cols;
    keys[i] = level[i] >= 0 && m.has_marker(r, c) ? value_key(m.markers, r, c) : ~std::uint64_t(0);
  }
};

struct UniqueStep {
  const std::uint64_t* sorted;
  std::int32_t* flag;
  DWD_HD void operator()(index_t i) const { flag[i] = (i == 0 || sorted[i] != sorted[i - 1]) ? 1 : 0; }
};

// Rank of key k among the distinct sorted keys (exclusive scan `uniq` of the unique flags).
DWD_HD std::int32_t rank_of(const std::uint64_t* sorted, const std::int32_t* uniq, index_t n, std::uint64_t k) {
  index_t lo = 0, hi = n;  // first sorted key >= k (present: k is one of them)
  while (lo < hi) {
    const index_t mid = (lo + hi) / 2;
    if (sorted[mid] < k) lo = mid + 1;
    else hi = mid;
  }
  return uniq[lo];
}

// Order-preserving dense ranks of n 64-bit keys: the keys sorted, a flag on the first of each run of
// equal keys, and the flags' exclusive scan (uniq[j] = distinct keys before sorted[j]; uniq[n] = their
// count), so that rank_of(sorted, uniq, n, k) is the rank of any key k among them. Owns `keys` (taken
// from ex) and its buffers: all go back to ex when it goes out of scope.
template <class Exec>
struct KeyRanks {
  Exec& ex;
  std::uint64_t* keys;
  index_t n;
  const std::uint64_t* sorted;
  std::int32_t* flag;
  std::int32_t* uniq;
  KeyRanks(Exec& e, std::uint64_t* k, index_t count) : ex(e), keys(k), n(count) {
    sorted = ex.sort_keys(keys, n);
    flag = ex.template alloc<std::int32_t>(n);
    uniq = ex.template alloc<std::int32_t>(n + 1);
    ex.for_each(n, UniqueStep{sorted, flag});
    ex.exclusive_scan(flag, uniq, n);
  }
  KeyRanks(const KeyRanks&) = delete;
  KeyRanks& operator=(const KeyRanks&) = delete;
  ~KeyRanks() {
    ex.free(uniq);
    ex.free(flag);
    if (sorted != keys) ex.free(sorted);
    ex.free(keys);
  }
};

struct LevelRankStep {
  Maps m;
  const std::uint64_t* sorted;
  const std::int32_t* uniq;
  index_t n;
  std::int32_t* level;
  DWD_HD void operator()(index_t i) const {
    if (level[i] < 0) return;
    const index_t cols = m.image.cols;
    level[i] = rank_of(sorted, uniq, n, value_key(m.image, i / cols, i % cols));
  }
};

// marker[i] = dense label: key - lo + 1 (offset mode, table == nullptr) or rank + 1.
struct MarkerLabelStep {
  Maps m;
  const std::int32_t* level;
  std::uint64_t lo;
  const std::uint64_t* sorted;  // general mode
  const std::int32_t* uniq;
  index_t n;
  std::int32_t* marker;
  DWD_HD void operator()(index_t i) const {
    const index_t cols = m.image.cols, r = i / cols, c = i % cols;
    if (level[i] < 0 || !m.has_marker(r, c)) {
      marker[i] = 0;
      return;
    }
    const std::uint64_t k = value_key(m.markers, r, c);
    marker[i] = 1 + (sorted ? rank_of(sorted, uniq, n, k) : static_cast<std::int32_t>(k - lo));
  }
};

// table[rank] = key of each distinct sorted key.
struct ValueTableStep {
  const std::uint64_t* sorted;
  const std::int32_t* flag;
  const std::int32_t* uniq;
  std::uint64_t* table;
  DWD_HD void operator()(index_t i) const {
    if (flag[i]) table[uniq[i]] = sorted[i];
  }
};

struct OutputStep {
  const std::int32_t* lab;  // dense labels, or nullptr: nothing flooded
  Dt marker_dt;
  std::uint64_t lo;             // offset mode
  const std::uint64_t* table;   // general mode
  void* out;
  Dt out_dt;
  DWD_HD void operator()(index_t i) const {
    const std::int32_t l = lab ? lab[i] : 0;
    std::int64_t v = 0;
    if (l > 0) v = key_value(marker_dt, table ? table[l - 1] : lo + static_cast<std::uint64_t>(l - 1));
    store(out, out_dt, i, v);
  }
};

// What watershed_maps reports.
struct Report {
  std::int64_t key_sweeps = 0, label_sweeps = 0;
  bool level_sort = false, marker_sort = false;  // the general (sorting) rank path was taken
};

// The canonical watershed of `image` (any dtype; NaN rejected) from the non-zero values of `markers`
// (integer dtype) inside `mask` (optional; non-zero = inside), written into `out` (contiguous rows x
// cols, dtype out_dt: the markers' values, 0 for unreached pixels and outside the mask).
template <class Exec>
Report watershed_maps(Exec& ex, const AnyView& image, const AnyView& markers, const AnyView& mask, int connectivity,
                      void* out, Dt out_dt) {
  const index_t rows = image.rows, cols = image.cols, n = rows * cols;
  Report rep;
  if (n == 0) return rep;
  if (n >= (index_t(1) << 31)) throw std::invalid_argument("image has 2^31 pixels or more");
  if (markers.rows != rows || markers.cols != cols || (mask.present() && (mask.rows != rows || mask.cols != cols)))
    throw std::invalid_argument("markers and mask must have the shape of image");
  if (markers.is_float()) throw std::invalid_argument("markers must be an integer array");
  if (connectivity != 1 && connectivity != 2) throw std::invalid_argument("connectivity must be 1 or 2");
  const Maps m{image, markers, mask};
  std::uint64_t* stats = ex.template alloc<std::uint64_t>(5);
  ex.for_each(1, StatsInitStep{stats});
  ex.for_each(n, ScanStep{m, stats});
  std::uint64_t st[5];
  ex.to_host(st, stats, 5);
  ex.free(stats);
  if (st[4]) throw std::invalid_argument("image contains NaN");
  const bool any_in = st[0] <= st[1], any_marker = st[2] <= st[3];
  if (!any_in || !any_marker) {  // nothing to flood
    ex.for_each(n, OutputStep{nullptr, markers.dt, 0, nullptr, out, out_dt});
    return rep;
  }
  constexpr std::uint64_t kSpan = 0x7ffffffd;  // ranks and labels (key - lo + 1) stay below 2^31 - 1

  // level ranks
  std::int32_t* level = ex.template alloc<std::int32_t>(n);
  if (st[1] - st[0] <= kSpan) {
    ex.for_each(n, LevelOffsetStep{m, st[0], level});
  } else {
    rep.level_sort = true;
    std::uint64_t* keys = ex.template alloc<std::uint64_t>(n);
    ex.for_each(n, LevelKeyStep{m, keys, level});
    const KeyRanks<Exec> r(ex, keys, n);
    ex.for_each(n, LevelRankStep{m, r.sorted, r.uniq, n, level});
  }

  // dense marker labels
  std::int32_t* marker = ex.template alloc<std::int32_t>(n);
  std::uint64_t* table = nullptr;
  if (st[3] - st[2] <= kSpan) {
    ex.for_each(n, MarkerLabelStep{m, level, st[2], nullptr, nullptr, n, marker});
  } else {
    rep.marker_sort = true;
    std::uint64_t* keys = ex.template alloc<std::uint64_t>(n);
    ex.for_each(n, MarkerKeyStep{m, level, keys});
    const KeyRanks<Exec> r(ex, keys, n);
    ex.for_each(n, MarkerLabelStep{m, level, 0, r.sorted, r.uniq, n, marker});
    std::int32_t distinct = 0;
    ex.to_host(&distinct, r.uniq + n, 1);
    table = ex.template alloc<std::uint64_t>(distinct);
    ex.for_each(n, ValueTableStep{r.sorted, r.flag, r.uniq, table});
  }

  // flood, then the markers' values
  std::int32_t* lab = ex.template alloc<std::int32_t>(n);
  std::int64_t ph[2] = {0, 0};
  watershed(ex, level, marker, rows, cols, connectivity, lab, ph);
  rep.key_sweeps = ph[0];
  rep.label_sweeps = ph[1];
  ex.free(level);
  ex.free(marker);
  ex.for_each(n, OutputStep{lab, markers.dt, st[2], table, out, out_dt});
  ex.free(lab);
  if (table) ex.free(table);
  return rep;
}

}  // namespace watershed_dp
}  // namespace dwd
