// DWD training targets: marker geometry in exact integer arithmetic, and the data-parallel (GPU)
// rasterizer written once for every executor.
//
// Geometry (all integers, computed once per object in Python from float64 and passed as
// EncodeObj). Positions are fixed point with 8 fractional bits ("Q8", 1/256 px); the centre of
// pixel (r, c) is (256 c + 128, 256 r + 128). A marker is a parallelogram frame: centre (cx, cy)
// and half-axis vectors U = (ux, uy), V = (vx, vy) (Q8; an axis-aligned box of marker size
// w x h has U = (w/2, 0), V = (0, h/2)). A pixel's local coordinates are
//   s = |dx vy - dy vx| / |det|,  t = |ux dy - uy dx| / |det|,  det = ux vy - uy vx
// (dx, dy = pixel centre - marker centre), quantized exactly as s_q = floor(s 2^12),
// t_q = floor(t 2^12). The normalized distance d in [0, 1) to the marker's boundary, quantized to
// the bin b = floor(d 2^12) in [0, 4096), is:
//   oval  b = isqrt(s_q^2 + t_q^2)                     (inside iff s_q^2 + t_q^2 < 2^24)
//   box   b = max(s_q, t_q)                            (inside iff both < 4096)
//   hull  b = 4096 - floor(min((4096 - s_q) a, (4096 - t_q) bl) / min(a, bl))
//         (a, bl = |U|, |V| in Q8: depth to the nearest side along the box axes over the
//         inradius; inside as box)
// and the energy level is table[b] (a 4096-entry uint8 table built from the profile). Level 0
// is "not in the marker". Every step is integer arithmetic, so every backend writes the same pixels.
//
// Overlaps: each (object, pixel) with a non-zero level proposes a 64-bit key; the largest wins.
//   max      key = level << 24 | (2^24 - 1 - i)        highest level, then first drawn
//   nearest  key = (2^40 - 1 - dist2) << 24 | (2^24 - 1 - i)  nearest centre (dist2 = dx^2 + dy^2,
//            Q16), then first drawn
//   last     key = 1 << 24 | i                         last drawn
// A sequential painter in object order applying "replace when the key is larger" gives the same
// map, which is what the CPU backend does.
//
// Limits (checked by the caller): fewer than 2^24 - 1 objects per page, marker extent below
// 1024 px from its centre (so dist2 < 2^40 and every product fits in 64 bits), pages smaller
// than 2^20 px per side.
#pragma once

#include <cmath>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

#include "core.h"
#include "exec.h"

namespace dwd {
namespace encode {

enum class Marker : int { oval = 0, box = 1, hull = 2 };
enum class Overlap : int { max = 0, nearest = 1, last = 2 };

constexpr int kBins = 4096;          // distance bins (12 bits)
constexpr int kQ = 256;              // position fixed point (8 bits)
constexpr std::uint64_t kIndexBits = 24;
constexpr std::uint64_t kIndexMask = (std::uint64_t(1) << kIndexBits) - 1;

// One object's marker, all fixed point Q8 (see above). a, bl: |U|, |V| (used by "hull" only).
struct EncodeObj {
  std::int64_t cx, cy, ux, uy, vx, vy, a, bl;
};

// Clipped pixel rectangle [r0, r1) x [c0, c1) that holds every pixel centre of the marker (empty
// when r0 >= r1 or c0 >= c1).
struct Rect {
  std::int64_t r0, r1, c0, c1;
  DWD_HD std::int64_t area() const { return (r1 > r0 && c1 > c0) ? (r1 - r0) * (c1 - c0) : 0; }
};

DWD_HD std::int64_t iabs(std::int64_t v) { return v < 0 ? -v : v; }

// floor(a / b) for b > 0
DWD_HD std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

DWD_HD std::int64_t det_of(const EncodeObj& o) { return iabs(o.ux * o.vy - o.uy * o.vx); }

DWD_HD Rect rect_of(const EncodeObj& o, std::int64_t rows, std::int64_t cols) {
  Rect r{0, 0, 0, 0};
  if (det_of(o) == 0) return r;  // the marker vanished in the fixed point: draws nothing
  const std::int64_t ex = iabs(o.ux) + iabs(o.vx), ey = iabs(o.uy) + iabs(o.vy);
  // pixel c can be inside only if |256 c + 128 - cx| < ex
  r.c0 = dmax<std::int64_t>(floor_div(o.cx - ex - 128, kQ), 0);
  r.c1 = dmin<std::int64_t>(floor_div(o.cx + ex - 128, kQ) + 1, cols);
  r.r0 = dmax<std::int64_t>(floor_div(o.cy - ey - 128, kQ), 0);
  r.r1 = dmin<std::int64_t>(floor_div(o.cy + ey - 128, kQ) + 1, rows);
  return r;
}

// floor(sqrt(x)) for 0 <= x < 2^26
DWD_HD std::int64_t isqrt(std::int64_t x) {
  std::int64_t r = static_cast<std::int64_t>(sqrt(static_cast<double>(x)));
  while (r * r > x) --r;
  while ((r + 1) * (r + 1) <= x) ++r;
  return r;
}

// The quantized local coordinates of pixel centre (dx, dy) (Q8 offsets from the centre).
DWD_HD std::int64_t local_s(const EncodeObj& o, std::int64_t dx, std::int64_t dy, std::int64_t det) {
  return (iabs(dx * o.vy - dy * o.vx) << 12) / det;
}
DWD_HD std::int64_t local_t(const EncodeObj& o, std::int64_t dx, std::int64_t dy, std::int64_t det) {
  return (iabs(o.ux * dy - o.uy * dx) << 12) / det;
}

// Distance bin from the quantized local coordinates; kBins when outside.
DWD_HD std::int64_t bin_of_st(const EncodeObj& o, Marker m, std::int64_t s, std::int64_t t) {
  if (s >= kBins || t >= kBins) return kBins;
  if (m == Marker::oval) {
    const std::int64_t r2 = s * s + t * t;
    return r2 >= (std::int64_t(1) << 24) ? kBins : isqrt(r2);
  }
  if (m == Marker::box) return dmax(s, t);
  const std::int64_t ds = (kBins - s) * o.a, dt = (kBins - t) * o.bl;
  return kBins - dmin(ds, dt) / dmin(o.a, o.bl);
}

DWD_HD int level_at(const EncodeObj& o, Marker m, const std::uint8_t* table, std::int64_t r, std::int64_t c) {
  const std::int64_t det = det_of(o);
  const std::int64_t dx = kQ * c + kQ / 2 - o.cx, dy = kQ * r + kQ / 2 - o.cy;
  const std::int64_t b = bin_of_st(o, m, local_s(o, dx, dy, det), local_t(o, dx, dy, det));
  return b >= kBins ? 0 : table[b];
}

DWD_HD std::int64_t dist2_at(const EncodeObj& o, std::int64_t r, std::int64_t c) {
  const std::int64_t dx = kQ * c + kQ / 2 - o.cx, dy = kQ * r + kQ / 2 - o.cy;
  return dx * dx + dy * dy;
}

// The overlap key of object i with level `level` (> 0) at a pixel whose squared distance to the
// object's centre is dist2.
DWD_HD std::uint64_t key_of(Overlap ov, std::int64_t i, int level, std::int64_t dist2) {
  const std::uint64_t ui = static_cast<std::uint64_t>(i);
  switch (ov) {
    case Overlap::max:
      return (static_cast<std::uint64_t>(level) << kIndexBits) | (kIndexMask - ui);
    case Overlap::nearest:
      return ((std::uint64_t(1) << 40) - 1 - static_cast<std::uint64_t>(dist2)) << kIndexBits | (kIndexMask - ui);
    case Overlap::last:
    default:
      return (std::uint64_t(1) << kIndexBits) | ui;
  }
}

DWD_HD std::int64_t index_of_key(Overlap ov, std::uint64_t key) {
  const std::uint64_t low = key & kIndexMask;
  return static_cast<std::int64_t>(ov == Overlap::last ? low : kIndexMask - low);
}

// ---- float -> IEEE binary16, round to nearest even ------------------------------------------
// The bits of the half nearest to f (ties to even; beyond the largest half, 65504, values from 65520 on
// become inf; half subnormals are kept; NaN stays a quiet NaN with the top 10 bits of its payload, as
// x86's F16C gives). On the device it is CUDA's __float2half_rn; on the host this integer re-statement,
// which gives the same bits for every non-NaN float (tests/test_encode_compact.py checks the host
// function, F16C and the device on every float class: normals, ties, subnormals, overflow).
DWD_HD std::uint16_t half_bits_portable(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const std::uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u)  // inf, NaN
    return static_cast<std::uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (ax >= 0x38800000u) {  // a normal half: drop 13 mantissa bits, round half to even (a carry bumps the exponent)
    const std::uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | ((r - 0x38000000u) >> 13));
  }
  const std::uint32_t e = ax >> 23;  // a subnormal half (or zero): round(|f| / 2^-24), half to even
  if (e < 102) return static_cast<std::uint16_t>(sign);  // |f| < 2^-25
  const std::uint32_t m = (ax & 0x7fffffu) | 0x800000u, shift = 126 - e;  // |f| = m 2^(e - 150), shift in [14, 24]
  const std::uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
  return static_cast<std::uint16_t>(sign | (q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u)));
}

DWD_HD std::uint16_t half_bits(float f) {
#if DWD_ON_DEVICE
  return __half_as_ushort(__float2half_rn(f));
#else
  return half_bits_portable(f);
#endif
}

// Output maps of one page (caller memory reachable by the executor): classes C (int32, or uint8 in the
// compact layout), sizes S (float, or the bits of IEEE halves, uint16, in the compact layout).
template <class C, class S>
struct OutputsT {
  ImageView<std::uint8_t> energy;
  ImageView<C> classes;
  ImageView<S> height;  // sizes channel 0
  ImageView<S> width;   // sizes channel 1
};
using Outputs = OutputsT<std::int32_t, float>;
using CompactOutputs = OutputsT<std::uint8_t, std::uint16_t>;

// A size (float32, per object) as stored in a size map of element type S.
DWD_HD float size_as(float v, const float*) { return v; }
DWD_HD std::uint16_t size_as(float v, const std::uint16_t*) { return half_bits(v); }

// ---- the data-parallel algorithm -----------------------------------------------------------

namespace dp {

struct AreaStep {
  const EncodeObj* objs;
  index_t rows, cols;
  std::int32_t* area;
  DWD_HD void operator()(index_t i) const { area[i] = static_cast<std::int32_t>(rect_of(objs[i], rows, cols).area()); }
};

// Object of pair g: the last i with offset[i] <= g (offsets hold n + 1 entries).
DWD_HD index_t object_of(const std::int32_t* offset, index_t n, index_t g) {
  index_t lo = 0, hi = n;  // offset[lo] <= g < offset[hi]
  while (hi - lo > 1) {
    const index_t mid = (lo + hi) / 2;
    if (offset[mid] <= g) lo = mid; else hi = mid;
  }
  return lo;
}

// ---- batched: every page of a batch in one launch sequence ----------------------------------------

// Contiguous batch outputs: energy, classes (B, H, W), sizes (B, 2, H, W); classes C and sizes S as in
// OutputsT (int32 and float, or uint8 and half bits in the compact layout).
template <class C, class S>
struct BatchOutputsT {
  std::uint8_t* energy;
  C* classes;
  S* sizes;
};
using BatchOutputs = BatchOutputsT<std::int32_t, float>;
using CompactBatchOutputs = BatchOutputsT<std::uint8_t, std::uint16_t>;

// Page of object g: the last b with page_offset[b] <= g (page_offset holds B + 1 entries).
DWD_HD index_t page_of(const std::int64_t* page_offset, index_t B, index_t g) {
  index_t lo = 0, hi = B;
  while (hi - lo > 1) {
    const index_t mid = (lo + hi) / 2;
    if (page_offset[mid] <= g) lo = mid; else hi = mid;
  }
  return lo;
}

struct BatchSite {
  index_t page, local, obj, r, c;
};

struct BatchGeom {
  const EncodeObj* objs;
  const std::int32_t* offset;      // pair offsets of the M objects (M + 1)
  const std::int64_t* page_offset;  // object offsets of the B pages (B + 1)
  index_t M, B, rows, cols;
  DWD_HD BatchSite site(index_t g) const {
    const index_t i = object_of(offset, M, g);
    const Rect rc = rect_of(objs[i], rows, cols);
    const index_t k = g - offset[i], w = rc.c1 - rc.c0;
    const index_t b = page_of(page_offset, B, i);
    return BatchSite{b, i - page_offset[b], i, rc.r0 + k / w, rc.c0 + k % w};
  }
};

struct BatchProposeStep {
  BatchGeom bg;
  Marker marker;
  Overlap overlap;
  const std::uint8_t* table;
  std::uint64_t* key;  // B * rows * cols
  DWD_HD void operator()(index_t g) const {
    const BatchSite p = bg.site(g);
    const int lvl = level_at(bg.objs[p.obj], marker, table, p.r, p.c);
    if (lvl == 0) return;
    const std::int64_t d2 = overlap == Overlap::nearest ? dist2_at(bg.objs[p.obj], p.r, p.c) : 0;
    atomic_max(key + (p.page * bg.rows + p.r) * bg.cols + p.c, key_of(overlap, p.local, lvl, d2));
  }
};

template <class C, class S>
struct BatchWriteStep {
  BatchGeom bg;
  Marker marker;
  Overlap overlap;
  const std::uint8_t* table;
  const std::uint64_t* key;
  const std::int32_t* labels;
  const float* sizes;
  BatchOutputsT<C, S> out;
  DWD_HD void operator()(index_t g) const {
    const BatchSite p = bg.site(g);
    const index_t hw = bg.rows * bg.cols, px = p.r * bg.cols + p.c;
    const std::uint64_t k = key[p.page * hw + px];
    if (k == 0 || index_of_key(overlap, k) != p.local) return;
    out.energy[p.page * hw + px] = static_cast<std::uint8_t>(level_at(bg.objs[p.obj], marker, table, p.r, p.c));
    out.classes[p.page * hw + px] = static_cast<C>(labels[p.obj]);
    out.sizes[(2 * p.page) * hw + px] = size_as(sizes[2 * p.obj], out.sizes);
    out.sizes[(2 * p.page + 1) * hw + px] = size_as(sizes[2 * p.obj + 1], out.sizes);
  }
};

}  // namespace dp

// Rasterizes the M objects of a batch of B pages (page b holds objects page_offset[b] ..
// page_offset[b + 1] - 1) into `out` (zero-initialized by the caller), in one launch sequence for
// the whole batch: areas, one scan, one proposal step and one write step over every (object, pixel)
// pair of every page; each page gets what painting it alone would give. All pointers must be reachable by
// the executor. Returns false when the pairs of the batch reach 2^31 (nothing written). Compact outputs
// (uint8 classes, half sizes) get static_cast<uint8_t>(label) (the caller checks labels < 256) and
// half_bits(size).
template <class Exec, class C, class S>
bool encode_batch(Exec& ex, const EncodeObj* objs, const std::int64_t* page_offset, index_t M, index_t B,
                  index_t rows, index_t cols, Marker marker, Overlap overlap, const std::uint8_t* table,
                  const std::int32_t* labels, const float* sizes, dp::BatchOutputsT<C, S> out) {
  if (M == 0 || B == 0 || rows * cols == 0) return true;
  std::int32_t* area = ex.template alloc<std::int32_t>(M);
  std::int32_t* offset = ex.template alloc<std::int32_t>(M + 1);
  ex.for_each(M, dp::AreaStep{objs, rows, cols, area});
  ex.exclusive_scan(area, offset, M);
  std::int32_t total = 0;
  ex.to_host(&total, offset + M, 1);
  if (total < 0) return false;
  if (total == 0) return true;
  std::uint64_t* key = ex.template alloc<std::uint64_t>(B * rows * cols);
  ex.fill(key, B * rows * cols, std::uint64_t(0));
  const dp::BatchGeom bg{objs, offset, page_offset, M, B, rows, cols};
  ex.for_each(total, dp::BatchProposeStep{bg, marker, overlap, table, key});
  ex.for_each(total, dp::BatchWriteStep<C, S>{bg, marker, overlap, table, key, labels, sizes, out});
  return true;
}

}  // namespace encode
}  // namespace dwd
