// Data-parallel DWD decoder (the GPU algorithm of decode), written once for every executor.
//
// One page, seeds = components of energy > cutoff, or plateau-merged peaks (the CPU backend's
// cpu/decode.cpp is the contract; the result is identical):
//   levels     logits: argmax over the K planes fused into one step (first maximum wins, NaN flagged)
//   seeds      union-find labelling of `level > cutoff` (label.h); component areas by atomicAdd;
//              components of at least min_size pixels renumbered 1..n by a scan (raster order).
//              Peak seeds: peaks.h's pipeline, plateaus by labelling equal values above the cut-off,
//              plateaus holding a peak numbered by a scan (peak_seeds below); after growth, objects
//              under min_size pixels are dropped and the rest renumbered by a scan
//   grow       (grow_to) labelling of `level > grow_to`; canonical watershed (watershed.h) over the
//              relief -level inside it from the seeds; components that no seed reaches become
//              objects n+1.. in raster order (if they have at least max(min_size, 1) pixels, areas by
//              atomicAdd, numbers by a scan); an object's core is its part above the cut-off, or its
//              whole region when it has none (flag by atomicMax)
//   stats      the statistics pixels (core, or region with reduce_over_region) listed as sorted keys
//              (object << 32 | raster index); one element per object walks its pixels in raster
//              order -- the order the CPU backend adds them in -- for the centre, peak level,
//              softmax sums, class-probability sums and sizes (max / mean / median); class ids are
//              voted with (object, class) bins (region_stats.h); region extents by atomicMin/Max
//   outputs    one element per object writes its box, label, score, class score, centre and area
// With logits, the softmax uses the executor's exp: HostExec's is the CPU backend's (identical
// results), CUDA's exp may differ from glibc's in the last bit, so CUDA scores from logits can differ
// from cpu's by rounding. Everything else is integer or ordered arithmetic and identical.
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>

#include "anyview.h"
#include "core.h"
#include "exec.h"
#include "label.h"
#include "peaks.h"
#include "region_stats.h"
#include "watershed.h"

namespace dwd {
namespace decode_dp {

enum class SizeReduce : int { max = 0, mean = 1, median = 2 };

struct Params {
  double cutoff = 7;
  std::int64_t min_size = 1;
  int connectivity = 2;
  SizeReduce size_reduce = SizeReduce::max;
  std::int64_t levels = 20;
  bool energy_logits = false;
  bool class_logits = false;
  bool grow = false;
  double grow_to = 0;
  bool reduce_over_region = false;
  bool peak_seeds = false;        // seeds are plateau-merged local maxima (else components of energy > cutoff)
  std::int64_t min_distance = 1;  // peak spacing for peak seeds
};

// The caller's outputs for n objects.
struct DecodeOut {
  float* boxes = nullptr;           // n x 4
  std::int64_t* labels = nullptr;   // n
  float* scores = nullptr;          // n
  float* class_scores = nullptr;    // n
  double* centers = nullptr;        // n x 2
  std::int64_t* areas = nullptr;    // n
};

// ---- thresholds ------------------------------------------------------------------------------

// `v > cut` exactly as the CPU backend tests it (cpu/above.h): in the map's dtype, integer maps
// against floor(cut), cut-offs outside the dtype's range make every pixel (or none) pass.
struct Cut {
  int mode = 0;  // 0 none pass, 1 all pass, 2 f32, 3 f64, 4 signed int, 5 unsigned 64-bit
  float f32 = 0;
  double f64 = 0;
  std::int64_t i = 0;
  std::uint64_t u = 0;
};

inline Cut make_cut(Dt dt, double cut) {
  Cut k;
  if (dt == Dt::f32) { k.mode = 2; k.f32 = static_cast<float>(cut); return k; }
  if (dt == Dt::f64) { k.mode = 3; k.f64 = cut; return k; }
  const double f = std::floor(cut);
  double lo = 0, hi = 0;
  switch (dt) {
    case Dt::u8: hi = 255; break;
    case Dt::i8: lo = -128; hi = 127; break;
    case Dt::u16: hi = 65535; break;
    case Dt::i16: lo = -32768; hi = 32767; break;
    case Dt::u32: hi = 4294967295.0; break;
    case Dt::i32: lo = -2147483648.0; hi = 2147483647.0; break;
    case Dt::u64: hi = 18446744073709551615.0; break;
    default: lo = -9223372036854775808.0; hi = 9223372036854775807.0; break;
  }
  if (f >= hi) { k.mode = 0; return k; }
  if (f < lo) { k.mode = 1; return k; }
  if (dt == Dt::u64) { k.mode = 5; k.u = static_cast<std::uint64_t>(f); return k; }
  k.mode = 4;
  k.i = static_cast<std::int64_t>(f);
  return k;
}

DWD_HD bool above(const AnyView& v, index_t r, index_t c, const Cut& k) {
  switch (k.mode) {
    case 0: return false;
    case 1: return true;
    case 2: return v.at<float>(0, r, c) > k.f32;
    case 3: return v.at<double>(0, r, c) > k.f64;
    case 5: return v.at<std::uint64_t>(0, r, c) > k.u;
    default: return v.i64(0, r, c) > k.i;
  }
}

// label_dp pixel policy: pixels above the cut, joined when both are.
struct AboveJoin {
  AnyView v;
  Cut cut;
  DWD_HD bool fg(index_t r, index_t c) const { return above(v, r, c, cut); }
  DWD_HD bool joined(index_t, index_t, index_t r2, index_t c2) const { return above(v, r2, c2, cut); }
};

// Peak plateaus: pixels above the cut joined when their values are equal (compared as doubles, like the
// CPU backend's plateau flood).
struct PlateauJoin {
  AnyView v;
  Cut cut;
  DWD_HD bool fg(index_t r, index_t c) const { return above(v, r, c, cut); }
  DWD_HD bool joined(index_t r, index_t c, index_t r2, index_t c2) const {
    return above(v, r2, c2, cut) && v.f64(0, r, c) == v.f64(0, r2, c2);
  }
};

// ---- steps -----------------------------------------------------------------------------------

// Energy logits -> uint8 levels (first maximum wins, like numpy.argmax); NaN or +-inf sets *bad.
DWD_HD bool not_finite(double x) { return !(x - x == 0.0); }

struct ArgmaxStep {
  AnyView e;
  std::uint8_t* out;
  std::int32_t* bad;
  DWD_HD void operator()(index_t i) const {
    const index_t r = i / e.cols, c = i % e.cols;
    double best = e.f64(0, r, c);
    bool nan = not_finite(best);
    std::uint8_t k = 0;
    for (index_t p = 1; p < e.planes; ++p) {
      const double x = e.f64(p, r, c);
      nan |= not_finite(x);
      if (x > best) {
        best = x;
        k = static_cast<std::uint8_t>(p);
      }
    }
    out[i] = k;
    if (nan) atomic_max(bad, std::int32_t(1));
  }
};

struct NanMapStep {
  AnyView e;
  std::int32_t* bad;
  DWD_HD void operator()(index_t i) const {
    const double x = e.f64(0, i / e.cols, i % e.cols);
    if (x != x) atomic_max(bad, std::int32_t(1));
  }
};

// Peaks per plateau: one element per peak (coords: K x 2 (row, col)).
struct PeakCountStep {
  const std::int64_t* coords;
  index_t cols;
  const std::int32_t* plateau;
  std::int32_t* count;
  DWD_HD void operator()(index_t k) const {
    const std::int32_t l = plateau[coords[2 * k] * cols + coords[2 * k + 1]];
    if (l > 0) atomic_add(count + (l - 1), std::int32_t(1));
  }
};

// Pixel counts per component (labels 1..m at index l - 1).
struct CountStep {
  const std::int32_t* lab;
  std::int32_t* area;
  DWD_HD void operator()(index_t i) const {
    const std::int32_t l = lab[i];
    if (l > 0) atomic_add(area + (l - 1), std::int32_t(1));
  }
};

struct KeepStep {
  const std::int32_t* area;
  std::int64_t min_area;
  std::int32_t* keep;
  DWD_HD void operator()(index_t k) const { keep[k] = area[k] >= min_area ? 1 : 0; }
};

// id[i] = rank + 1 of the pixel's component among the kept ones (+ base), or 0.
struct RenumberStep {
  const std::int32_t* lab;
  const std::int32_t* keep;
  const std::int32_t* rank;
  std::int32_t base;
  std::int32_t* id;
  DWD_HD void operator()(index_t i) const {
    const std::int32_t l = lab[i];
    id[i] = (l > 0 && keep[l - 1]) ? base + rank[l - 1] + 1 : 0;
  }
};

// Watershed input: relief ranks of -level inside the mask (u8 levels: 255 - v), -1 outside.
struct ReliefU8Step {
  AnyView lv;
  const std::int32_t* comp;  // components of level > grow_to (the mask)
  std::int32_t* rank;
  DWD_HD void operator()(index_t i) const {
    rank[i] = comp[i] > 0 ? 255 - static_cast<std::int32_t>(lv.at<std::uint8_t>(0, i / lv.cols, i % lv.cols)) : -1;
  }
};

// Ascending keys of -level as double (the relief's order), for the general rank computation.
DWD_HD std::uint64_t relief_key(double v) {
  double x = -v;
  if (x == 0.0) x = 0.0;
  std::uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  const std::uint64_t sign = std::uint64_t(1) << 63;
  return (b & sign) ? ~b : (b | sign);
}

struct ReliefKeyStep {
  AnyView lv;
  const std::int32_t* comp;
  std::uint64_t* keys;
  DWD_HD void operator()(index_t i) const {
    keys[i] = comp[i] > 0 ? relief_key(lv.f64(0, i / lv.cols, i % lv.cols)) : ~std::uint64_t(0);
  }
};

struct RankStep {
  AnyView lv;
  const std::int32_t* comp;
  const std::uint64_t* sorted;
  const std::int32_t* uniq_rank;  // exclusive scan of the unique flags
  index_t n;
  std::int32_t* rank;
  DWD_HD void operator()(index_t i) const {
    if (comp[i] <= 0) {
      rank[i] = -1;
      return;
    }
    rank[i] = watershed_dp::rank_of(sorted, uniq_rank, n, relief_key(lv.f64(0, i / lv.cols, i % lv.cols)));
  }
};

// Pixels of each component that no seed reached (watershed output 0 inside the mask).
struct UnseededCountStep {
  const std::int32_t* comp;
  const std::int32_t* grown;
  std::int32_t* area;
  DWD_HD void operator()(index_t i) const {
    if (comp[i] > 0 && grown[i] == 0) atomic_add(area + (comp[i] - 1), std::int32_t(1));
  }
};

struct RegionStep {
  const std::int32_t* comp;
  const std::int32_t* keep;
  const std::int32_t* rank;
  std::int32_t base;
  std::int32_t* grown;  // in: watershed labels; out: object ids
  DWD_HD void operator()(index_t i) const {
    if (grown[i] > 0 || comp[i] <= 0) return;
    const std::int32_t l = comp[i];
    grown[i] = keep[l - 1] ? base + rank[l - 1] + 1 : 0;
  }
};

struct HasCoreStep {
  AnyView lv;
  double cutoff;
  const std::int32_t* region;
  std::int32_t* has_core;
  DWD_HD void operator()(index_t i) const {
    const std::int32_t o = region[i];
    if (o > 0 && lv.f64(0, i / lv.cols, i % lv.cols) > cutoff) atomic_max(has_core + (o - 1), std::int32_t(1));
  }
};

// The statistics pixels: the core (level > cutoff, or the whole region of an object without core).
struct CoreStep {
  AnyView lv;
  double cutoff;
  const std::int32_t* region;
  const std::int32_t* has_core;
  std::int32_t* core;
  DWD_HD void operator()(index_t i) const {
    const std::int32_t o = region[i];
    core[i] = (o > 0 && (!has_core[o - 1] || lv.f64(0, i / lv.cols, i % lv.cols) > cutoff)) ? o : 0;
  }
};

struct LabelMapStep {
  const std::int32_t* region;
  ImageView<std::int32_t> out;
  DWD_HD void operator()(index_t i) const { out(i / out.cols, i % out.cols) = region[i]; }
};

// Region extents (boxes without a size map, and the areas).
struct ExtentStep {
  const std::int32_t* region;
  index_t cols;
  std::int64_t* area;
  std::int64_t* ext;  // n x 4: min_r, min_c, max_r, max_c
  DWD_HD void operator()(index_t i) const {
    const std::int32_t o = region[i];
    if (o <= 0) return;
    const index_t k = o - 1, r = i / cols, c = i % cols;
    atomic_add(area + k, std::int64_t(1));
    atomic_min(ext + 4 * k, r);
    atomic_min(ext + 4 * k + 1, c);
    atomic_max(ext + 4 * k + 2, r);
    atomic_max(ext + 4 * k + 3, c);
  }
};

struct ExtentInitStep {
  std::int64_t* area;
  std::int64_t* ext;
  DWD_HD void operator()(index_t k) const {
    area[k] = 0;
    ext[4 * k] = ext[4 * k + 1] = rstats_dp::kI64Max;
    ext[4 * k + 2] = ext[4 * k + 3] = -1;
  }
};

DWD_HD double exp_of(double x) { return ::exp(x); }

// Sorts v[0..n) ascending in place (heapsort: one thread, no extra memory).
DWD_HD void heap_sort(double* v, index_t n) {
  auto sift = [&](index_t root, index_t end) {
    while (true) {
      index_t child = 2 * root + 1;
      if (child >= end) return;
      if (child + 1 < end && v[child] < v[child + 1]) ++child;
      if (!(v[root] < v[child])) return;
      const double t = v[root];
      v[root] = v[child];
      v[child] = t;
      root = child;
    }
  };
  for (index_t s = n / 2; s-- > 0;) sift(s, n);
  for (index_t end = n; end-- > 1;) {
    const double t = v[0];
    v[0] = v[end];
    v[end] = t;
    sift(0, end);
  }
}

// One element per object: walks the object's statistics pixels in raster order.
struct ObjectStep {
  AnyView lv;       // levels
  AnyView energy;   // logits (planes K) when p.energy_logits
  AnyView classes;  // class logits (planes C) when p.class_logits (ids are voted separately)
  AnyView sizes;    // (2, H, W) or absent
  Params p;
  const std::uint64_t* keys;
  index_t total;
  const std::int64_t* area;   // region areas
  const std::int64_t* ext;    // region extents
  const std::int64_t* vote;   // class-id votes (or nullptr)
  const std::int64_t* vote_count;
  double* cls_sum;            // n x C workspace (class logits)
  double* size_buf;           // 2 x total workspace (median)
  std::int32_t* bad;          // [0] class logits NaN, [1] sizes NaN
  DecodeOut out;
  DWD_HD void operator()(index_t k) const {
    const auto o = static_cast<std::uint64_t>(k + 1);
    const index_t a = rstats_dp::segment_start(keys, total, o), b = rstats_dp::segment_start(keys, total, o + 1);
    const index_t cols = lv.cols, K = energy.planes, C = classes.planes;
    std::int64_t sum_r = 0, sum_c = 0;
    double peak = -inf(), energy_p = 0, hmax = -inf(), wmax = -inf(), hsum = 0, wsum = 0;
    bool size_nan = false;
    double* cs = p.class_logits ? cls_sum + k * C : nullptr;
    if (cs)
      for (index_t c = 0; c < C; ++c) cs[c] = 0;
    for (index_t j = a; j < b; ++j) {
      const auto i = static_cast<index_t>(keys[j] & 0xffffffffULL);
      const index_t r = i / cols, c = i % cols;
      sum_r += r;
      sum_c += c;
      peak = dmax(peak, lv.f64(0, r, c));
      if (p.energy_logits) {  // mean probability of the levels above the cut-off (softmax as the CPU's)
        double m = -inf();
        for (index_t q = 0; q < K; ++q) m = dmax(m, energy.f64(q, r, c));
        double den = 0;
        for (index_t q = 0; q < K; ++q) den += exp_of(energy.f64(q, r, c) - m);
        for (index_t q = 0; q < K; ++q)
          if (static_cast<double>(q) > p.cutoff) energy_p += exp_of(energy.f64(q, r, c) - m) / den;
      }
      if (cs) {
        double m = -inf();
        bool nan = false;
        for (index_t q = 0; q < C; ++q) {
          const double x = classes.f64(q, r, c);
          nan |= not_finite(x);
          m = dmax(m, x);
        }
        if (nan) {
          atomic_max(bad, std::int32_t(1));
        } else {
          double den = 0;
          for (index_t q = 0; q < C; ++q) den += exp_of(classes.f64(q, r, c) - m);
          for (index_t q = 0; q < C; ++q) cs[q] += exp_of(classes.f64(q, r, c) - m) / den;
        }
      }
      if (sizes.present()) {
        const double h = sizes.f64(0, r, c), w = sizes.f64(1, r, c);
        size_nan |= not_finite(h) || not_finite(w);
        hmax = dmax(hmax, h);
        wmax = dmax(wmax, w);
        hsum += h;
        wsum += w;
        if (p.size_reduce == SizeReduce::median) {
          size_buf[j] = h;
          size_buf[total + j] = w;
        }
      }
    }
    const std::int64_t g_area = b - a;
    const double cy = static_cast<double>(sum_r) / static_cast<double>(g_area);
    const double cx = static_cast<double>(sum_c) / static_cast<double>(g_area);
    out.centers[2 * k] = cy;
    out.centers[2 * k + 1] = cx;
    out.areas[k] = area[k];
    if (p.energy_logits) {
      out.scores[k] = static_cast<float>(energy_p / static_cast<double>(g_area));
    } else {
      double s = peak / static_cast<double>(p.levels - 1);
      s = s < 0.0 ? 0.0 : (s > 1.0 ? 1.0 : s);
      out.scores[k] = static_cast<float>(s);
    }
    out.labels[k] = -1;
    out.class_scores[k] = 0.f;
    if (vote) {
      out.labels[k] = vote[k];
      out.class_scores[k] = static_cast<float>(static_cast<double>(vote_count[k]) / static_cast<double>(g_area));
    } else if (cs) {
      index_t best = 0;
      for (index_t q = 1; q < C; ++q)
        if (cs[q] > cs[best]) best = q;  // first maximum: smallest id
      out.labels[k] = best;
      out.class_scores[k] = static_cast<float>(cs[best] / static_cast<double>(g_area));
    }
    float* bx = out.boxes + 4 * k;
    if (sizes.present()) {
      if (size_nan) atomic_max(bad + 1, std::int32_t(1));
      double h = 0, w = 0;
      const index_t len = b - a;
      switch (p.size_reduce) {
        case SizeReduce::max: h = hmax; w = wmax; break;
        case SizeReduce::mean: h = hsum / static_cast<double>(len); w = wsum / static_cast<double>(len); break;
        case SizeReduce::median: {
          double* hs = size_buf + a;
          double* ws = size_buf + total + a;
          heap_sort(hs, len);
          heap_sort(ws, len);
          const index_t half = len / 2;
          h = len % 2 ? hs[half] : (hs[half - 1] + hs[half]) / 2;
          w = len % 2 ? ws[half] : (ws[half - 1] + ws[half]) / 2;
          break;
        }
      }
      h = dmax(0.0, h);
      w = dmax(0.0, w);
      bx[0] = static_cast<float>(cx + 0.5 - w / 2);
      bx[1] = static_cast<float>(cy + 0.5 - h / 2);
      bx[2] = static_cast<float>(cx + 0.5 + w / 2);
      bx[3] = static_cast<float>(cy + 0.5 + h / 2);
    } else {
      bx[0] = static_cast<float>(ext[4 * k + 1]);
      bx[1] = static_cast<float>(ext[4 * k]);
      bx[2] = static_cast<float>(ext[4 * k + 3] + 1);
      bx[3] = static_cast<float>(ext[4 * k + 2] + 1);
    }
  }
};

// ---- the algorithm -------------------------------------------------------------------------

// Keeps the components 1..m of `lab` with at least min_area pixels (counted by `count`), numbered
// base + 1.. in label order, into `id`. Returns the number kept.
template <class Exec, class Count>
std::int32_t keep_components(Exec& ex, index_t npx, std::int32_t m, std::int64_t min_area, Count count,
                             const std::int32_t* lab, std::int32_t base, std::int32_t* id,
                             std::int32_t** keep_out = nullptr, std::int32_t** rank_out = nullptr) {
  std::int32_t* area = ex.template alloc<std::int32_t>(m);
  std::int32_t* keep = ex.template alloc<std::int32_t>(m);
  std::int32_t* rank = ex.template alloc<std::int32_t>(m + 1);
  ex.fill(area, m, std::int32_t(0));
  count(area);
  ex.for_each(m, KeepStep{area, min_area, keep});
  ex.exclusive_scan(keep, rank, m);
  std::int32_t kept = 0;
  ex.to_host(&kept, rank + m, 1);
  if (id) ex.for_each(npx, RenumberStep{lab, keep, rank, base, id});
  ex.free(area);
  if (keep_out) *keep_out = keep; else ex.free(keep);
  if (rank_out) *rank_out = rank; else ex.free(rank);
  return kept;
}

// Peak seeds (p.peak_seeds): the local maxima of the level map above the cut-off (peaks.h's
// peak_local_max pipeline with min_distance, no border exclusion, no limit), each extended to its
// plateau (the connected pixels of its value: labelling of equal values above the cut-off, label.h),
// plateaus holding a peak kept -- several peaks on one plateau merge -- and numbered 1..n in the raster
// order of their first pixel, into `seeds` (0 elsewhere). `plateau` (npx) is scratch. Returns n.
template <class Exec>
std::int32_t peak_seeds(Exec& ex, const AnyView& lv, const Params& p, std::int32_t* plateau, std::int32_t* seeds) {
  const index_t rows = lv.rows, cols = lv.cols, npx = rows * cols;
  std::int64_t* coords = nullptr;
  std::int64_t K = 0;
  auto find = [&](auto tag) {
    using T = decltype(tag);
    peaks::CandidateSpec<T> s;
    s.img = ImageView<const T>{static_cast<const T*>(lv.data), rows, cols, lv.stride_r, lv.stride_c};
    s.radius = p.min_distance;
    s.plain = p.min_distance == 0 || npx == 1;
    s.r0 = 0;
    s.r1 = rows;
    s.c0 = 0;
    s.c1 = cols;
    s.above = peaks::above_cut<T>(p.cutoff);
    K = peaks::peak_local_max(ex, s, p.min_distance, -1, [&](std::int64_t k) {
      coords = ex.template alloc<std::int64_t>(2 * k);
      return coords;
    });
  };
  switch (lv.dt) {
    case Dt::u8: find(std::uint8_t()); break;
    case Dt::i8: find(std::int8_t()); break;
    case Dt::u16: find(std::uint16_t()); break;
    case Dt::i16: find(std::int16_t()); break;
    case Dt::u32: find(std::uint32_t()); break;
    case Dt::i32: find(std::int32_t()); break;
    case Dt::u64: find(std::uint64_t()); break;
    case Dt::i64: find(std::int64_t()); break;
    case Dt::f32: find(float()); break;
    case Dt::f64: find(double()); break;
  }
  std::int32_t n = 0;
  if (K > 0) {
    const std::int32_t m = label_dp::label(ex, PlateauJoin{lv, make_cut(lv.dt, p.cutoff)}, rows, cols,
                                           p.connectivity, make_view(plateau, rows, cols));
    n = keep_components(
        ex, npx, m, 1, [&](std::int32_t* count) { ex.for_each(K, PeakCountStep{coords, cols, plateau, count}); },
        plateau, 0, seeds);
  } else {
    ex.fill(seeds, npx, std::int32_t(0));
  }
  if (coords) ex.free(coords);
  return n;
}

// Decodes one page. `energy`: the level map (planes 1) or logits (planes K); `classes`: ids (planes
// 1), logits (planes C, p.class_logits) or absent; `sizes`: (2, H, W) or absent; `label_map`
// (optional, data nullptr when not wanted) receives the object ids. alloc_out(n) returns the
// caller's outputs for n objects. Returns n.
template <class Exec, class AllocOut>
std::int32_t decode(Exec& ex, const AnyView& energy, const AnyView& classes, const AnyView& sizes, const Params& p,
                    ImageView<std::int32_t> label_map, AllocOut&& alloc_out) {
  const index_t rows = energy.rows, cols = energy.cols, npx = rows * cols;
  if (npx >= (index_t(1) << 31)) throw std::invalid_argument("energy has 2^31 pixels or more");
  std::int32_t* bad = ex.template alloc<std::int32_t>(2);
  ex.fill(bad, 2, std::int32_t(0));
  std::int32_t flags[2] = {0, 0};

  // 1. levels
  AnyView lv = energy;
  lv.planes = 1;
  if (p.energy_logits) {
    if (energy.planes > 255) throw std::invalid_argument("energy logits have more than 255 levels");
    if (!energy.is_float()) throw std::invalid_argument("energy logits must be float32 or float64");
    std::uint8_t* lev = ex.template alloc<std::uint8_t>(npx);
    ex.for_each(npx, ArgmaxStep{energy, lev, bad});
    lv = AnyView{lev, Dt::u8, 1, rows, cols, npx, cols, 1};
  } else if (energy.is_float()) {
    ex.for_each(npx, NanMapStep{energy, bad});
  }
  ex.to_host(flags, bad, 1);
  if (flags[0])
    throw std::invalid_argument(p.energy_logits ? "energy contains NaN or infinity (logits must be finite)"
                                                : "energy contains NaN");

  // 2. seeds: components of level > cutoff with at least min_size pixels
  std::int32_t* comp = ex.template alloc<std::int32_t>(npx);
  // Without growth the seeds are renumbered in place (each element reads and writes its own pixel).
  std::int32_t* region = p.grow ? ex.template alloc<std::int32_t>(npx) : comp;
  std::int32_t n = 0;
  const std::int32_t m = p.peak_seeds ? 0 : label_dp::label(ex, AboveJoin{lv, make_cut(lv.dt, p.cutoff)}, rows, cols,
                                                            p.connectivity, make_view(comp, rows, cols));
  if (p.peak_seeds) {
    n = peak_seeds(ex, lv, p, comp, region);
  } else if (m > 0) {
    n = keep_components(
        ex, npx, m, p.min_size, [&](std::int32_t* area) { ex.for_each(npx, CountStep{comp, area}); }, comp, 0, region);
  } else {
    ex.fill(region, npx, std::int32_t(0));
  }
  const std::int32_t* core = region;

  // 3. growth
  if (p.grow) {
    std::int32_t* mask = comp;  // reuse: components of level > grow_to
    const std::int32_t m2 = label_dp::label(ex, AboveJoin{lv, make_cut(lv.dt, p.grow_to)}, rows, cols,
                                            p.connectivity, make_view(mask, rows, cols));
    if (m2 > 0) {
      std::int32_t* rank = ex.template alloc<std::int32_t>(npx);
      if (lv.dt == Dt::u8) {
        ex.for_each(npx, ReliefU8Step{lv, mask, rank});
      } else {
        std::uint64_t* keys = ex.template alloc<std::uint64_t>(npx);
        ex.for_each(npx, ReliefKeyStep{lv, mask, keys});
        const watershed_dp::KeyRanks<Exec> r(ex, keys, npx);
        ex.for_each(npx, RankStep{lv, mask, r.sorted, r.uniq, npx, rank});
      }
      std::int32_t* grown = ex.template alloc<std::int32_t>(npx);
      watershed_dp::watershed(ex, rank, region, rows, cols, p.connectivity, grown);
      ex.free(rank);
      ex.free(region);
      std::int32_t* keep = nullptr;
      std::int32_t* krank = nullptr;
      const std::int32_t extra = keep_components(
          ex, npx, m2, p.min_size > 1 ? p.min_size : 1,
          [&](std::int32_t* area) { ex.for_each(npx, UnseededCountStep{mask, grown, area}); }, mask, n, nullptr, &keep,
          &krank);
      ex.for_each(npx, RegionStep{mask, keep, krank, n, grown});
      ex.free(keep);
      ex.free(krank);
      ex.free(comp);  // the mask
      n += extra;
      region = grown;
      if (p.peak_seeds && p.min_size > 1 && n > 0)  // peak seeds: objects below min_size are dropped after growth
        n = keep_components(
            ex, npx, n, p.min_size, [&](std::int32_t* area) { ex.for_each(npx, CountStep{region, area}); }, region, 0,
            region);
      std::int32_t* has_core = ex.template alloc<std::int32_t>(n > 0 ? n : 1);
      ex.fill(has_core, n, std::int32_t(0));
      ex.for_each(npx, HasCoreStep{lv, p.cutoff, region, has_core});
      std::int32_t* core_ids = ex.template alloc<std::int32_t>(npx);
      ex.for_each(npx, CoreStep{lv, p.cutoff, region, has_core, core_ids});
      core = core_ids;
    } else {
      core = region;
    }
  }
  if (label_map.data) ex.for_each(npx, LabelMapStep{region, label_map});

  // 4. per-object statistics and outputs
  const DecodeOut out = alloc_out(n);
  if (n == 0) return 0;
  const std::int32_t* stat = p.reduce_over_region ? region : core;
  std::int64_t* acc = ex.template alloc<std::int64_t>(5 * static_cast<index_t>(n));  // area, then n x 4 extents
  ex.for_each(n, ExtentInitStep{acc, acc + n});
  ex.for_each(npx, ExtentStep{region, cols, acc, acc + n});
  const AnyView sv{stat, Dt::i32, 1, rows, cols, npx, cols, 1};
  index_t total = 0;  // the object pixels as sorted keys (object << 32 | raster index)
  const std::uint64_t* sorted = rstats_dp::sorted_keys(ex, sv, &total);
  std::int64_t* vote = nullptr;
  std::int64_t* vote_count = nullptr;
  if (classes.present() && !p.class_logits) {
    vote = ex.template alloc<std::int64_t>(2 * static_cast<index_t>(n));
    vote_count = vote + n;
    rstats_dp::votes(ex, sv, classes, n, -1, vote, vote_count);
  }
  double* cls_sum = p.class_logits ? ex.template alloc<double>(static_cast<index_t>(n) * classes.planes) : nullptr;
  double* size_buf = (sizes.present() && p.size_reduce == SizeReduce::median)
                         ? ex.template alloc<double>(2 * static_cast<index_t>(total)) : nullptr;
  ex.for_each(n, ObjectStep{lv, energy, p.class_logits ? classes : AnyView{}, sizes, p, sorted, total, acc, acc + n,
                            vote, vote_count, cls_sum, size_buf, bad, out});
  ex.to_host(flags, bad, 2);
  if (flags[0]) throw std::invalid_argument("classes contains NaN or infinity (logits must be finite)");
  if (flags[1]) throw std::invalid_argument("sizes contains NaN or infinity");
  return n;
}

}  // namespace decode_dp
}  // namespace dwd
