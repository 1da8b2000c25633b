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

#include <algorithm>

#include <cmath>
#include <cstring>
#include <memory>
#include <vector>


#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DWD_HAVE_F16C_PATH 1
#endif

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

// Paints the page band by band of kBand rows: every object touching a band is painted there, in
// object order, so each pixel sees the objects in the order of painting them one after another.
// Into zeroed maps, the painter writes the markers' pixels only. Into maps of any content, it paints
// a zeroed band buffer that stays in cache and streams the finished band to the maps with
// non-temporal stores (the maps are written exactly once, without being read or zeroed first).
constexpr index_t kBand = 16;

// Copies n bytes to dst with non-temporal stores where aligned, and zeroes the source.
inline void stream_out_and_zero(void* dst_, void* src_, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dst_);
  auto* s = static_cast<unsigned char*>(src_);
#if defined(__SSE2__)
  while (n > 0 && (reinterpret_cast<std::uintptr_t>(d) & 15) != 0) {
    *d++ = *s;
    *s++ = 0;
    --n;
  }
  const __m128i zero = _mm_setzero_si128();
  for (; n >= 16; n -= 16, d += 16, s += 16) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(d), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(s), zero);
  }
#endif
  std::memcpy(d, s, n);
  std::memset(s, 0, n);
}

template <class C, class S>
struct Painter {
  const EncodeObj* objs;
  index_t rows, cols;
  Marker marker;
  Overlap overlap;
  const std::uint8_t* table;
  const C* labels;
  const S* sizes;
  encode::OutputsT<C, S> out;
  // nearest only: the object holding each pixel, valid where the energy is non-zero (never read
  // elsewhere, so never initialised)
  std::int32_t* owner;  // shared by the threads: each writes the rows of its own bands
  std::vector<std::int64_t> s_col;
  index_t r_off = 0;  // `out` holds rows r_off, r_off + 1, ... of the page (a band)

  // Offer level `lvl` (> 0) of object i at (r, c).
  inline void offer(index_t i, index_t r, index_t c, int lvl) {
    const index_t rb = r - r_off;
    if (overlap == Overlap::max) {
      if (lvl <= out.energy(rb, c)) return;
    } else if (overlap == Overlap::nearest) {
      std::int32_t& who = owner[static_cast<std::size_t>(r * cols + c)];
      if (out.energy(rb, c) != 0 && encode::dist2_at(objs[i], r, c) >= encode::dist2_at(objs[who], r, c)) return;
      who = static_cast<std::int32_t>(i);
    }
    out.energy(rb, c) = static_cast<std::uint8_t>(lvl);
    out.classes(rb, c) = labels[i];
    out.height(rb, c) = sizes[2 * i];
    out.width(rb, c) = sizes[2 * i + 1];
  }

  // Axis-aligned oval under "max", rows [ra, rb) of its rectangle: the hot path, written out.
  void oval_max(index_t i, const encode::Rect& rc, index_t ra, index_t rb) {
    const EncodeObj& o = objs[i];
    const index_t nc = rc.c1 - rc.c0;
    const std::int64_t ux = encode::iabs(o.ux), vy = encode::iabs(o.vy);
    constexpr std::int64_t kIn = std::int64_t(1) << 24;
    s_col.resize(static_cast<std::size_t>(nc));
    for (index_t k = 0; k < nc; ++k) {
      const std::int64_t s = axis_q(kQ * (rc.c0 + k) + kQ / 2 - o.cx, ux);
      s_col[k] = s < kBins ? s * s : kIn;
    }
    const C label = labels[i];
    const S h = sizes[2 * i], w = sizes[2 * i + 1];
    for (index_t r = ra; r < rb; ++r) {
      const std::int64_t t = axis_q(kQ * r + kQ / 2 - o.cy, vy);
      if (t >= kBins) continue;
      const std::int64_t t2 = t * t;
      std::uint8_t* e = &out.energy(r - r_off, rc.c0);
      C* cl = &out.classes(r - r_off, rc.c0);
      S* hh = &out.height(r - r_off, rc.c0);
      S* ww = &out.width(r - r_off, rc.c0);
      // s_col is non-increasing then non-decreasing along the row (it grows with |dx|), so the columns
      // inside the oval (s_col[k] + t2 < 2^24) are one interval [ka, kb): found from both ends
      index_t ka = 0, kb = nc;
      while (ka < kb && s_col[ka] + t2 >= kIn) ++ka;
      while (kb > ka && s_col[kb - 1] + t2 >= kIn) --kb;
      for (index_t k = ka; k < kb; ++k) {
        const std::int64_t r2 = s_col[k] + t2;
        // r2 < 2^24: the double square root truncates to the exact integer square root
        const std::uint8_t lvl = table[static_cast<std::int64_t>(std::sqrt(static_cast<double>(r2)))];
        if (lvl <= e[k]) continue;
        e[k] = lvl;
        cl[k] = label;
        hh[k] = h;
        ww[k] = w;
      }
    }
  }

  // Any object, rows [ra, rb) of its rectangle.
  void paint(index_t i, const encode::Rect& rc, index_t ra, index_t rb) {
    const EncodeObj& o = objs[i];
    const bool aligned = o.uy == 0 && o.vx == 0;
    if (aligned && marker == Marker::oval && overlap == Overlap::max) {
      oval_max(i, rc, ra, rb);
      return;
    }
    if (aligned) {
      s_col.resize(static_cast<std::size_t>(rc.c1 - rc.c0));
      const std::int64_t ux = encode::iabs(o.ux), vy = encode::iabs(o.vy);
      for (index_t c = rc.c0; c < rc.c1; ++c) s_col[c - rc.c0] = axis_q(kQ * c + kQ / 2 - o.cx, ux);
      for (index_t r = ra; r < rb; ++r) {
        const std::int64_t t = axis_q(kQ * r + kQ / 2 - o.cy, vy);
        if (t >= kBins) continue;
        for (index_t c = rc.c0; c < rc.c1; ++c) {
          const std::int64_t b = encode::bin_of_st(o, marker, s_col[c - rc.c0], t);
          if (b >= kBins || table[b] == 0) continue;
          offer(i, r, c, table[b]);
        }
      }
    } else {
      for (index_t r = ra; r < rb; ++r)
        for (index_t c = rc.c0; c < rc.c1; ++c) {
          const int lvl = encode::level_at(o, marker, table, r, c);
          if (lvl) offer(i, r, c, lvl);
        }
    }
  }
};

// Objects by row band: list[start[b] .. start[b + 1]) are the objects whose rectangle meets band b,
// in object order.
struct Bands {
  std::vector<encode::Rect> rect;
  std::vector<std::int32_t> start, list;
  Bands(const EncodeObj* objs, index_t n, index_t rows, index_t cols) : rect(static_cast<std::size_t>(n)) {
    const index_t nb = (rows + kBand - 1) / kBand;
    start.assign(static_cast<std::size_t>(nb) + 1, 0);
    for (index_t i = 0; i < n; ++i) {
      rect[i] = encode::rect_of(objs[i], rows, cols);
      if (rect[i].area() == 0) continue;
      for (index_t b = rect[i].r0 / kBand; b <= (rect[i].r1 - 1) / kBand; ++b) ++start[b + 1];
    }
    for (index_t b = 0; b < nb; ++b) start[b + 1] += start[b];
    list.resize(static_cast<std::size_t>(start[nb]));
    std::vector<std::int32_t> pos(start.begin(), start.end() - 1);
    for (index_t i = 0; i < n; ++i) {
      if (rect[i].area() == 0) continue;
      for (index_t b = rect[i].r0 / kBand; b <= (rect[i].r1 - 1) / kBand; ++b) list[pos[b]++] = static_cast<std::int32_t>(i);
    }
  }
};

}  // namespace

// Writes n zero bytes to dst with non-temporal stores where aligned (a band no marker touches).
inline void stream_zero(void* dst_, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dst_);
#if defined(__SSE2__)
  while (n > 0 && (reinterpret_cast<std::uintptr_t>(d) & 15) != 0) {
    *d++ = 0;
    --n;
  }
  const __m128i zero = _mm_setzero_si128();
  for (; n >= 16; n -= 16, d += 16) _mm_stream_si128(reinterpret_cast<__m128i*>(d), zero);
#endif
  std::memset(d, 0, n);
}

// Copies the rows [lo, hi) of a band buffer (kBand rows of `cols`) to the same rows of `dst` and zeroes
// them in the buffer: one stretch when dst's rows are contiguous (the non-temporal stores then leave a
// partly written cache line only at the band's two ends, not at every row's), else row by row.
// empty: no marker was painted in the band (the buffer is all zero): zeroes are streamed without reading it.
template <class T>
void stream_band(const ImageView<T>& dst, T* buf, index_t lo, index_t hi, index_t cols, bool empty) {
  if (dst.stride_c == 1 && dst.stride_r == cols) {
    const std::size_t n = static_cast<std::size_t>((hi - lo) * cols) * sizeof(T);
    if (empty)
      stream_zero(dst.row(lo), n);
    else
      stream_out_and_zero(dst.row(lo), buf, n);
    return;
  }
  for (index_t r = lo; r < hi; ++r) {
    if (empty)
      stream_zero(dst.row(r), static_cast<std::size_t>(cols) * sizeof(T));
    else
      stream_out_and_zero(dst.row(r), buf + (r - lo) * cols, static_cast<std::size_t>(cols) * sizeof(T));
  }
}

template <class C, class S>
void encode_page(const EncodeObj* objs, index_t n, index_t rows, index_t cols, Marker marker, Overlap overlap,
                 const std::uint8_t* table, const C* labels, const S* sizes, encode::OutputsT<C, S> out,
                 bool zeroed) {
  std::unique_ptr<std::int32_t[]> owner;
  if (overlap == Overlap::nearest) owner.reset(new std::int32_t[static_cast<std::size_t>(rows * cols)]);
  const Bands bands(objs, n, rows, cols);
  const index_t nb = (rows + kBand - 1) / kBand;
  // One thread per page: splitting a page's bands over the threads (they are independent) was measured
  // slower than one thread on a loaded 2-core machine with the OpenMP fork-join of the time (docs/encode.md;
  // not re-measured on the pool that replaced it); a batch
  // is split over its pages by the binding.
  [&] {
    Painter<C, S> p{objs, rows, cols, marker, overlap, table, labels, sizes, out, owner.get(), {}, 0};
    const index_t b0 = 0, b1 = nb;
    if (zeroed) {
      // Paint straight into the maps, band by band (objects' rows near each other in time), fetching
      // the next object's rows while one is painted: only the markers' lines are touched, so freshly
      // allocated maps keep their untouched pages unallocated.
      for (index_t b = b0; b < b1; ++b) {
        const index_t lo = b * kBand, hi = std::min(rows, lo + kBand);
        for (std::int32_t k = bands.start[b]; k < bands.start[b + 1]; ++k) {
          if (k + 1 < bands.start[b + 1]) {
            const encode::Rect& nx = bands.rect[bands.list[k + 1]];
            for (index_t r = std::max(nx.r0, lo); r < std::min(nx.r1, hi); ++r) {
              __builtin_prefetch(&out.energy(r, nx.c0), 1);
              __builtin_prefetch(&out.classes(r, nx.c0), 1);
              __builtin_prefetch(&out.classes(r, nx.c1 - 1), 1);
              __builtin_prefetch(&out.height(r, nx.c0), 1);
              __builtin_prefetch(&out.height(r, nx.c1 - 1), 1);
              __builtin_prefetch(&out.width(r, nx.c0), 1);
              __builtin_prefetch(&out.width(r, nx.c1 - 1), 1);
            }
          }
          const index_t i = bands.list[k];
          const encode::Rect& rc = bands.rect[i];
          p.paint(i, rc, std::max(rc.r0, lo), std::min(rc.r1, hi));
        }
      }
      return;
    }
    const std::size_t band_px = static_cast<std::size_t>(kBand * cols);
    std::vector<std::uint8_t> e_buf(band_px, 0);
    std::vector<C> c_buf(band_px, 0);
    std::vector<S> h_buf(band_px, 0), w_buf(band_px, 0);
    p.out = encode::OutputsT<C, S>{make_view(e_buf.data(), kBand, cols), make_view(c_buf.data(), kBand, cols),
                                   make_view(h_buf.data(), kBand, cols), make_view(w_buf.data(), kBand, cols)};
    for (index_t b = b0; b < b1; ++b) {
      const index_t lo = b * kBand, hi = std::min(rows, lo + kBand);
      p.r_off = lo;
      for (std::int32_t k = bands.start[b]; k < bands.start[b + 1]; ++k) {
        const index_t i = bands.list[k];
        const encode::Rect& rc = bands.rect[i];
        p.paint(i, rc, std::max(rc.r0, lo), std::min(rc.r1, hi));
      }
      const bool empty = bands.start[b] == bands.start[b + 1];
      stream_band(out.energy, e_buf.data(), lo, hi, cols, empty);
      stream_band(out.classes, c_buf.data(), lo, hi, cols, empty);
      stream_band(out.height, h_buf.data(), lo, hi, cols, empty);
      stream_band(out.width, w_buf.data(), lo, hi, cols, empty);
    }
#if defined(__SSE2__)
    _mm_sfence();  // the non-temporal stores, visible before the call returns
#endif
  }();
}

template void encode_page<std::int32_t, float>(const EncodeObj*, index_t, index_t, index_t, Marker, Overlap,
                                               const std::uint8_t*, const std::int32_t*, const float*,
                                               encode::Outputs, bool);
template void encode_page<std::uint8_t, std::uint16_t>(const EncodeObj*, index_t, index_t, index_t, Marker, Overlap,
                                                       const std::uint8_t*, const std::uint8_t*,
                                                       const std::uint16_t*, encode::CompactOutputs, bool);

#if defined(DWD_HAVE_F16C_PATH)
namespace {
__attribute__((target("avx,f16c"))) void floats_to_half_f16c(const float* src, std::uint16_t* dst, index_t n) {
  index_t k = 0;
  for (; k + 8 <= n; k += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + k),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + k), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  if (k < n) {  // the tail through a zero-padded block
    alignas(32) float in[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    alignas(16) std::uint16_t o[8];
    std::memcpy(in, src + k, static_cast<std::size_t>(n - k) * sizeof(float));
    _mm_store_si128(reinterpret_cast<__m128i*>(o),
                    _mm256_cvtps_ph(_mm256_load_ps(in), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    std::memcpy(dst + k, o, static_cast<std::size_t>(n - k) * sizeof(std::uint16_t));
  }
}
}  // namespace
#endif

bool floats_to_half(const float* src, std::uint16_t* dst, index_t n, bool f16c) {
#if defined(DWD_HAVE_F16C_PATH)
  static const bool has_f16c = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  if (f16c && has_f16c) {
    floats_to_half_f16c(src, dst, n);
    return true;
  }
#endif
  for (index_t k = 0; k < n; ++k) dst[k] = encode::half_bits_portable(src[k]);
  return false;
}

}  // namespace cpu
}  // namespace dwd
