// Data-parallel per-region statistics (the GPU algorithm of region_stats), written once for every
// executor. research/algorithms.md §8 patterns only:
//   range      one element per pixel: the largest label (atomicMax), copied to the host (n)
//   geometry   one element per pixel: area, row / col sums (int64 atomicAdd), bbox (atomicMin/Max)
//   image      integer images: two int64 atomicAdds (high / low 32 bits) and an atomicMax per pixel. Float images: a float sum
//              depends on the order of its terms, so the labelled pixels are listed as sorted keys
//              (label << 32 | raster index), and one element per label sums its own segment in
//              raster order -- the order the CPU backend adds them in, so the sums are identical
//   classes    one element per pixel: the class range (atomicMin/Max); then one (label, class) bin
//              per pair counted with atomicAdd; one element per label picks the most frequent class
//              (ties to the smallest id)
//   finish     one element per label writes the caller's outputs (centroid = sum / area in float64)
// Every accumulator is an integer or is computed by one element in a fixed order, so the result does
// not depend on the order of the elements, and equals the CPU backend's exactly.
#pragma once

#include <limits>
#include <stdexcept>
#include <string>

#include "anyview.h"
#include "core.h"
#include "exec.h"

namespace dwd {
namespace rstats_dp {

constexpr std::int64_t kI64Max = 0x7fffffffffffffffLL;
constexpr std::int64_t kI64Min = -kI64Max - 1;
constexpr std::int64_t kMaxBins = std::int64_t(1) << 27;  // (label, class) vote bins

// The caller's outputs for n labels (nullptr: not wanted).
struct RegionOut {
  std::int64_t* area = nullptr;      // n
  std::int64_t* bbox = nullptr;      // n x 4
  double* centroid = nullptr;        // n x 2
  double* image_sum = nullptr;       // n
  double* image_max = nullptr;       // n
  std::int64_t* vote = nullptr;      // n
  std::int64_t* vote_count = nullptr;  // n
};

// Accumulators of the geometry, label l at index l - 1.
struct Geom {
  std::int64_t* area;
  std::int64_t* sum_r;
  std::int64_t* sum_c;
  std::int64_t* max_r;
  std::int64_t* max_c;
  std::int64_t* min_r;
  std::int64_t* min_c;
};

DWD_HD std::int64_t label_of(const AnyView& lab, index_t i) { return lab.label(0, i / lab.cols, i % lab.cols); }

struct MaxLabelStep {
  AnyView lab;
  std::int64_t* max_label;
  DWD_HD void operator()(index_t i) const {
    const std::int64_t l = label_of(lab, i);
    if (l > 0) atomic_max(max_label, l);
  }
};

struct GeomStep {
  AnyView lab;
  Geom g;
  DWD_HD void operator()(index_t i) const {
    const std::int64_t l = label_of(lab, i);
    if (l <= 0) return;
    const index_t k = l - 1, r = i / lab.cols, c = i % lab.cols;
    atomic_add(g.area + k, std::int64_t(1));
    atomic_add(g.sum_r + k, r);
    atomic_add(g.sum_c + k, c);
    atomic_min(g.min_r + k, r);
    atomic_min(g.min_c + k, c);
    atomic_max(g.max_r + k, r);
    atomic_max(g.max_c + k, c);
  }
};

struct GeomOutStep {
  Geom g;
  RegionOut out;
  DWD_HD void operator()(index_t k) const {
    const std::int64_t a = g.area[k];
    if (out.area) out.area[k] = a;
    if (out.bbox) {
      out.bbox[4 * k] = a ? g.min_r[k] : 0;
      out.bbox[4 * k + 1] = a ? g.min_c[k] : 0;
      out.bbox[4 * k + 2] = a ? g.max_r[k] + 1 : 0;
      out.bbox[4 * k + 3] = a ? g.max_c[k] + 1 : 0;
    }
    if (out.centroid) {
      const double nan = qnan();
      out.centroid[2 * k] = a ? static_cast<double>(g.sum_r[k]) / static_cast<double>(a) : nan;
      out.centroid[2 * k + 1] = a ? static_cast<double>(g.sum_c[k]) / static_cast<double>(a) : nan;
    }
  }
};

// Integer images: exact sums and max per label. A value v is summed as two int64 accumulators, its high
// 32 bits (v >> 32: signed for int64, unsigned for uint64) and its low 32 bits, which cannot overflow
// for < 2^31 pixels; the exact sum hi * 2^32 + lo is rounded to double once (sum_to_double). uint64
// maxima are kept as int64 keys v ^ 2^63 (same order), so values beyond 2^63 compare as unsigned.
constexpr std::uint64_t kSignBit = 0x8000000000000000ULL;

DWD_HD double sum_to_double(std::int64_t hi, std::int64_t lo) {
  hi += lo >> 32;  // lo >= 0
  lo &= 0xffffffffLL;
  const double a = static_cast<double>(hi);
  // |hi - a| <= 2^10, so r is exact (|r| < 2^43) and a * 2^32 + r is the exact sum: one rounding
  const std::int64_t r = (hi - static_cast<std::int64_t>(a)) * 4294967296LL + lo;
  return a * 4294967296.0 + static_cast<double>(r);
}

struct IntImageStep {
  AnyView lab, img;
  std::int64_t* sum_hi;
  std::int64_t* sum_lo;
  std::int64_t* max;
  DWD_HD void operator()(index_t i) const {
    const std::int64_t l = label_of(lab, i);
    if (l <= 0) return;
    const std::int64_t v = img.i64(0, i / img.cols, i % img.cols);  // uint64: the same bits
    const bool u = img.dt == Dt::u64;
    const std::int64_t hi = u ? static_cast<std::int64_t>(static_cast<std::uint64_t>(v) >> 32) : (v >> 32);
    atomic_add(sum_hi + (l - 1), hi);
    atomic_add(sum_lo + (l - 1), static_cast<std::int64_t>(static_cast<std::uint64_t>(v) & 0xffffffffULL));
    atomic_max(max + (l - 1), u ? static_cast<std::int64_t>(static_cast<std::uint64_t>(v) ^ kSignBit) : v);
  }
};

struct IntImageOutStep {
  const std::int64_t* area;
  const std::int64_t* sum_hi;
  const std::int64_t* sum_lo;
  const std::int64_t* max;
  bool is_u64;
  RegionOut out;
  DWD_HD void operator()(index_t k) const {
    out.image_sum[k] = sum_to_double(sum_hi[k], sum_lo[k]);
    const double mx = is_u64 ? static_cast<double>(static_cast<std::uint64_t>(max[k]) ^ kSignBit)
                             : static_cast<double>(max[k]);
    out.image_max[k] = area[k] ? mx : qnan();
  }
};

// Float images: NaN inside a region is an error (flag), then the labelled pixels as sorted keys.
struct NanStep {
  AnyView lab, img;
  std::int32_t* flag;
  DWD_HD void operator()(index_t i) const {
    if (label_of(lab, i) <= 0) return;
    const double v = img.f64(0, i / img.cols, i % img.cols);
    if (v != v) atomic_max(flag, std::int32_t(1));
  }
};

struct LabelledCountStep {
  AnyView lab;
  std::int32_t* count;
  DWD_HD void operator()(index_t i) const {
    if (label_of(lab, i) > 0) atomic_add(count, std::int32_t(1));
  }
};

// Appends key (label << 32 | i) for every labelled pixel (list order depends on the executor; the
// keys are sorted afterwards).
struct KeyStep {
  AnyView lab;
  std::uint64_t* keys;
  std::int32_t* count;
  DWD_HD void operator()(index_t i) const {
    const std::int64_t l = label_of(lab, i);
    if (l <= 0) return;
    const std::int32_t k = atomic_add(count, std::int32_t(1));
    keys[k] = (static_cast<std::uint64_t>(l) << 32) | static_cast<std::uint64_t>(i);
  }
};

// Start of label k's segment in the sorted keys: the number of keys with a smaller label.
DWD_HD index_t segment_start(const std::uint64_t* keys, index_t total, std::uint64_t label) {
  index_t lo = 0, hi = total;  // first key >= label << 32
  const std::uint64_t want = label << 32;
  while (lo < hi) {
    const index_t mid = (lo + hi) / 2;
    if (keys[mid] < want) lo = mid + 1; else hi = mid;
  }
  return lo;
}

struct FloatImageStep {
  AnyView img;
  const std::uint64_t* keys;
  index_t total;
  RegionOut out;
  DWD_HD void operator()(index_t k) const {
    const auto l = static_cast<std::uint64_t>(k + 1);
    const index_t a = segment_start(keys, total, l), b = segment_start(keys, total, l + 1);
    double sum = 0, mx = -inf();
    for (index_t j = a; j < b; ++j) {
      const auto i = static_cast<index_t>(keys[j] & 0xffffffffULL);
      const double v = img.f64(0, i / img.cols, i % img.cols);
      sum += v;
      mx = v > mx ? v : mx;
    }
    out.image_sum[k] = sum;
    out.image_max[k] = b > a ? mx : qnan();
  }
};

struct ClassRangeStep {
  AnyView lab, cls;
  std::int64_t* range;  // [min, max]
  DWD_HD void operator()(index_t i) const {
    if (label_of(lab, i) <= 0) return;
    const std::int64_t v = cls.i64(0, i / cls.cols, i % cls.cols);
    atomic_min(range, v);
    atomic_max(range + 1, v);
  }
};

struct VoteStep {
  AnyView lab, cls;
  std::int64_t classes;
  std::int32_t* bins;
  DWD_HD void operator()(index_t i) const {
    const std::int64_t l = label_of(lab, i);
    if (l <= 0) return;
    const std::int64_t v = cls.i64(0, i / cls.cols, i % cls.cols);
    atomic_add(bins + (l - 1) * classes + v, std::int32_t(1));
  }
};

struct VotePickStep {
  const std::int32_t* bins;
  std::int64_t classes;
  std::int64_t* vote;
  std::int64_t* vote_count;
  DWD_HD void operator()(index_t k) const {
    std::int64_t best = -1, best_n = 0;
    for (std::int64_t c = 0; c < classes; ++c) {
      const std::int64_t n = bins[k * classes + c];
      if (n > best_n) {  // ascending ids: the first maximum is the smallest id
        best = c;
        best_n = n;
      }
    }
    vote[k] = best;
    vote_count[k] = best_n;
  }
};

// Largest positive label of `lab` (0 when none); throws when it exceeds 2^31 - 1.
template <class Exec>
std::int64_t max_label(Exec& ex, const AnyView& lab) {
  const index_t npx = lab.rows * lab.cols;
  std::int64_t* m = ex.template alloc<std::int64_t>(1);
  ex.fill(m, 1, std::int64_t(0));
  ex.for_each(npx, MaxLabelStep{lab, m});
  std::int64_t n = 0;
  ex.to_host(&n, m, 1);
  if (n > 0x7fffffffLL) throw std::invalid_argument("labels hold a label larger than 2^31 - 1");
  return n;
}

// Geometry accumulators of labels 1..n.
template <class Exec>
Geom geometry(Exec& ex, const AnyView& lab, std::int64_t n) {
  std::int64_t* buf = ex.template alloc<std::int64_t>(7 * n);
  Geom g{buf, buf + n, buf + 2 * n, buf + 3 * n, buf + 4 * n, buf + 5 * n, buf + 6 * n};
  ex.fill(buf, 5 * n, std::int64_t(0));
  ex.fill(buf + 5 * n, 2 * n, kI64Max);
  ex.for_each(lab.rows * lab.cols, GeomStep{lab, g});
  return g;
}

// The labelled pixels as sorted keys (label << 32 | raster index); *total = their number.
template <class Exec>
const std::uint64_t* sorted_keys(Exec& ex, const AnyView& lab, index_t* total) {
  const index_t npx = lab.rows * lab.cols;
  std::int32_t* count = ex.template alloc<std::int32_t>(2);
  ex.fill(count, 2, std::int32_t(0));
  ex.for_each(npx, LabelledCountStep{lab, count});
  std::int32_t k = 0;
  ex.to_host(&k, count, 1);
  std::uint64_t* keys = ex.template alloc<std::uint64_t>(k);
  ex.for_each(npx, KeyStep{lab, keys, count + 1});
  *total = k;
  return ex.sort_keys(keys, k);
}

// Class votes of labels 1..n into vote / vote_count (executor or caller memory, n each).
template <class Exec>
void votes(Exec& ex, const AnyView& lab, const AnyView& cls, std::int64_t n, std::int64_t num_classes,
           std::int64_t* vote, std::int64_t* vote_count) {
  if (n == 0) return;
  std::int64_t* range = ex.template alloc<std::int64_t>(2);
  ex.fill(range, 1, kI64Max);
  ex.fill(range + 1, 1, kI64Min);
  ex.for_each(lab.rows * lab.cols, ClassRangeStep{lab, cls, range});
  std::int64_t r[2];
  ex.to_host(r, range, 2);
  std::int64_t classes = 1;
  if (r[1] >= r[0]) {  // some labelled pixel
    if (r[0] < 0) throw std::invalid_argument("classes must be non-negative class ids, got " + std::to_string(r[0]));
    if (num_classes >= 0 && r[1] >= num_classes)
      throw std::invalid_argument("classes holds id " + std::to_string(r[1]) + " >= num_classes = " +
                                  std::to_string(num_classes));
    if (r[1] > (std::int64_t(1) << 28))
      throw std::invalid_argument("classes holds class id " + std::to_string(r[1]) + ", too large (limit 2^28)");
    classes = r[1] + 1;
  }
  if (n * classes > kMaxBins)
    throw std::invalid_argument("the data-parallel class vote needs labels x classes <= 2^27 bins, got " +
                                std::to_string(n) + " x " + std::to_string(classes));
  std::int32_t* bins = ex.template alloc<std::int32_t>(n * classes);
  ex.fill(bins, n * classes, std::int32_t(0));
  ex.for_each(lab.rows * lab.cols, VoteStep{lab, cls, classes, bins});
  ex.for_each(n, VotePickStep{bins, classes, vote, vote_count});
}

// region_stats of `lab` (with optional `img` and `cls`, same shape; absent = data nullptr).
// alloc_out(n) returns the caller's outputs for labels 1..n. Returns n.
template <class Exec, class AllocOut>
std::int64_t region_stats(Exec& ex, const AnyView& lab, const AnyView& img, const AnyView& cls,
                          std::int64_t num_classes, AllocOut&& alloc_out) {
  const index_t npx = lab.rows * lab.cols;
  if (npx >= (index_t(1) << 31)) throw std::invalid_argument("labels have 2^31 pixels or more");
  const std::int64_t n = npx ? max_label(ex, lab) : 0;
  const RegionOut out = alloc_out(n);
  if (n == 0) return 0;
  const Geom g = geometry(ex, lab, n);
  ex.for_each(n, GeomOutStep{g, out});
  if (img.present()) {
    if (!img.is_float()) {
      std::int64_t* acc = ex.template alloc<std::int64_t>(3 * n);
      ex.fill(acc, 2 * n, std::int64_t(0));
      ex.fill(acc + 2 * n, n, kI64Min);
      ex.for_each(npx, IntImageStep{lab, img, acc, acc + n, acc + 2 * n});
      ex.for_each(n, IntImageOutStep{g.area, acc, acc + n, acc + 2 * n, img.dt == Dt::u64, out});
    } else {
      std::int32_t* flag = ex.template alloc<std::int32_t>(1);
      ex.fill(flag, 1, std::int32_t(0));
      ex.for_each(npx, NanStep{lab, img, flag});
      std::int32_t bad = 0;
      ex.to_host(&bad, flag, 1);
      if (bad) throw std::invalid_argument("image contains NaN inside a region");
      index_t total = 0;
      const std::uint64_t* keys = sorted_keys(ex, lab, &total);
      ex.for_each(n, FloatImageStep{img, keys, total, out});
    }
  }
  if (cls.present()) votes(ex, lab, cls, n, num_classes, out.vote, out.vote_count);
  return n;
}

}  // namespace rstats_dp
}  // namespace dwd
