// CPU rasterizer of DWD training targets.
//
// Objects are painted one after another, each over its clipped pixel rectangle only, writing
// straight into the output maps ("replace when the key is larger", which for a sequential painter
// is: max -> strictly higher level; last -> any non-zero level; nearest -> strictly nearer centre,
// tracked in an owner map). For the common axis-aligned marker the quantized local coordinates
// are separable (s depends on the column only, t on the row only), so they are computed once per
// column and once per row; the per-pixel work is then an add, a compare and a table look-up.
// Oriented markers evaluate the shared per-pixel functions of dwd/encode.h.
#include "cpu/encode.h"

#include <vector>

namespace dwd {
namespace cpu {

using encode::EncodeObj;
using encode::kBins;
using encode::kQ;
using encode::Marker;
using encode::Overlap;

namespace {

// floor(|d| 2^12 / a) for a > 0 and |d| 2^12 < 2^52: a double division (a few cycles) corrected to
// the exact integer quotient. For an axis-aligned marker (uy = vx = 0) this IS the local coordinate
// of dwd/encode.h: floor(|dx vy| 2^12 / |ux vy|) = floor(|dx| 2^12 / |ux|), the |vy| cancels exactly.
inline std::int64_t axis_q(std::int64_t d, std::int64_t a) {
  const std::int64_t n = (d < 0 ? -d : d) << 12;
  std::int64_t q = static_cast<std::int64_t>(static_cast<double>(n) / static_cast<double>(a));
  while (q * a > n) --q;
  while ((q + 1) * a <= n) ++q;
  return q;
}

struct Painter {
  const EncodeObj* objs;
  index_t rows, cols;
  Overlap overlap;
  const std::int32_t* labels;
  const float* sizes;
  encode::Outputs out;
  std::vector<std::int32_t> owner;  // nearest only: index of the object that holds each pixel, -1 none

  // Offer level `lvl` (> 0) of object i at (r, c).
  inline void offer(index_t i, index_t r, index_t c, int lvl) {
    if (overlap == Overlap::max) {
      if (lvl <= out.energy(r, c)) return;
    } else if (overlap == Overlap::nearest) {
      std::int32_t& who = owner[static_cast<std::size_t>(r * cols + c)];
      if (who >= 0 && encode::dist2_at(objs[i], r, c) >= encode::dist2_at(objs[who], r, c)) return;
      who = static_cast<std::int32_t>(i);
    }
    out.energy(r, c) = static_cast<std::uint8_t>(lvl);
    out.classes(r, c) = labels[i];
    out.height(r, c) = sizes[2 * i];
    out.width(r, c) = sizes[2 * i + 1];
  }
};

// Axis-aligned oval under "max": the hot path of the benchmarks, written out.
void paint_oval_max(const EncodeObj& o, const encode::Rect& rc, const std::uint8_t* table,
                    std::int32_t label, float h, float w, encode::Outputs& out, std::vector<std::int64_t>& s2) {
  const index_t nc = rc.c1 - rc.c0;
  const std::int64_t ux = encode::iabs(o.ux), vy = encode::iabs(o.vy);
  s2.resize(static_cast<std::size_t>(nc));
  for (index_t k = 0; k < nc; ++k) {
    const std::int64_t s = axis_q(kQ * (rc.c0 + k) + kQ / 2 - o.cx, ux);
    s2[k] = s < kBins ? s * s : (std::int64_t(1) << 24);
  }
  constexpr std::int64_t kIn = std::int64_t(1) << 24;
  for (index_t r = rc.r0; r < rc.r1; ++r) {
    const std::int64_t t = axis_q(kQ * r + kQ / 2 - o.cy, vy);
    if (t >= kBins) continue;
    const std::int64_t t2 = t * t;
    std::uint8_t* e = &out.energy(r, rc.c0);
    for (index_t k = 0; k < nc; ++k) {
      const std::int64_t r2 = s2[k] + t2;
      if (r2 >= kIn) continue;
      const std::uint8_t lvl = table[encode::isqrt(r2)];
      if (lvl <= e[k]) continue;
      e[k] = lvl;
      const index_t c = rc.c0 + k;
      out.classes(r, c) = label;
      out.height(r, c) = h;
      out.width(r, c) = w;
    }
  }
}

}  // namespace

void encode_page(const EncodeObj* objs, index_t n, index_t rows, index_t cols, Marker marker, Overlap overlap,
                 const std::uint8_t* table, const std::int32_t* labels, const float* sizes, encode::Outputs out) {
  Painter p{objs, rows, cols, overlap, labels, sizes, out, {}};
  if (overlap == Overlap::nearest) p.owner.assign(static_cast<std::size_t>(rows * cols), -1);
  std::vector<std::int64_t> s_col, s2;
  for (index_t i = 0; i < n; ++i) {
    const EncodeObj& o = objs[i];
    const encode::Rect rc = encode::rect_of(o, rows, cols);
    if (rc.area() == 0) continue;
    const bool aligned = o.uy == 0 && o.vx == 0;
    if (aligned && marker == Marker::oval && overlap == Overlap::max) {
      paint_oval_max(o, rc, table, labels[i], sizes[2 * i], sizes[2 * i + 1], out, s2);
      continue;
    }
    if (aligned) {
      s_col.resize(static_cast<std::size_t>(rc.c1 - rc.c0));
      const std::int64_t ux = encode::iabs(o.ux), vy = encode::iabs(o.vy);
      for (index_t c = rc.c0; c < rc.c1; ++c) s_col[c - rc.c0] = axis_q(kQ * c + kQ / 2 - o.cx, ux);
      for (index_t r = rc.r0; r < rc.r1; ++r) {
        const std::int64_t t = axis_q(kQ * r + kQ / 2 - o.cy, vy);
        if (t >= kBins) continue;
        for (index_t c = rc.c0; c < rc.c1; ++c) {
          const std::int64_t b = encode::bin_of_st(o, marker, s_col[c - rc.c0], t);
          if (b >= kBins || table[b] == 0) continue;
          p.offer(i, r, c, table[b]);
        }
      }
    } else {
      for (index_t r = rc.r0; r < rc.r1; ++r)
        for (index_t c = rc.c0; c < rc.c1; ++c) {
          const int lvl = encode::level_at(o, marker, table, r, c);
          if (lvl) p.offer(i, r, c, lvl);
        }
    }
  }
}

}  // namespace cpu
}  // namespace dwd
