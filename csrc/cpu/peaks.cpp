// CPU peak_local_max: the window maximum is evaluated only at pixels above the threshold (background
// is skipped with the vectorised search of runs.h), candidates are sorted by (key, raster index) and
// thinned by a greedy pass over a uniform grid hash of cell size min_distance (O(K)).
// research/algorithms.md §6; semantics in research/dwd-and-skimage-semantics.md §6.2.
#include "cpu/peaks.h"

#include <algorithm>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cpu/runs.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace dwd {
namespace cpu {

using peaks::Candidate;

namespace {

template <class T>
inline T tmax(T a, T b) {
  return a < b ? b : a;
}

void check_params(const PeakParams& p) {
  if (p.min_distance < 0) throw std::invalid_argument("min_distance must be >= 0, got " + std::to_string(p.min_distance));
  if (p.window < -1) throw std::invalid_argument("window must be >= 0");
  if (p.border_r < 0 || p.border_c < 0) throw std::invalid_argument("exclude_border widths must be >= 0");
}

template <class T>
bool is_constant(const ImageView<const T>& img) {
  const T v = img(0, 0);
  for (index_t r = 0; r < img.rows; ++r) {
    const T* p = img.row(r);
    bool differs = false;
    for (index_t c = 0; c < img.cols; ++c) differs |= p[c] != v;
    if (differs) return false;
  }
  return true;
}

// No pixel of the clamped (2d+1)^2 window around (r, c) exceeds v = img(r, c)? Rows of the window
// are scanned nearest first, each with a branch-free inner loop; the first larger pixel ends it.
template <class T>
inline bool window_max(const ImageView<const T>& img, index_t r, index_t c, index_t d, T v) {
  const index_t c0 = c > d ? c - d : 0, c1 = c + d < img.cols - 1 ? c + d : img.cols - 1;
  // the diagonal neighbours first: with the 4-neighbours checked by the caller, they settle the 3x3
  const index_t ru = r > 0 ? r - 1 : 0, rd = r < img.rows - 1 ? r + 1 : r;
  const index_t cl = c > 0 ? c - 1 : 0, cr = c < img.cols - 1 ? c + 1 : c;
  if (img(ru, cl) > v || img(ru, cr) > v || img(rd, cl) > v || img(rd, cr) > v) return false;
  const index_t reach = std::min(d, std::max(r, img.rows - 1 - r));  // farther rows are all clamped away
  for (index_t k = 0; k <= 2 * reach; ++k) {
    const index_t rr = (k & 1) ? r - (k + 1) / 2 : r + k / 2;  // r, r-1, r+1, r-2, r+2, ...
    if (rr < 0 || rr >= img.rows) continue;
    const T* p = img.row(rr);
    bool larger = false;
    for (index_t cc = c0; cc <= c1; ++cc) larger |= p[cc] > v;
    if (larger) return false;
  }
  return true;
}

// Candidates of the plain (label-free) call in raster order. Pixels above the threshold come in runs,
// found with the vectorised search of runs.h; runs of a row closer than kGap columns are merged into
// a segment. Over a segment, a branch-free pass flags the pixels above the threshold that no
// 4-neighbour exceeds (on DWD energy maps about one in ten: most pixels lie on a slope); a vectorised
// skip finds the flags, and only those pixels get the full window test.
constexpr index_t kGap = 16;

template <class T>
void scan_candidates(const ImageView<const T>& img, const PeakParams& p, std::vector<Candidate>& out) {
  const peaks::Above<T> above = p.above<T>();
  const index_t r0 = p.border_r, r1 = img.rows - p.border_r;
  const index_t c0 = p.border_c, c1 = img.cols - p.border_c;
  if (r1 <= r0 || c1 <= c0) return;
  const bool plain = p.radius() == 0 || img.size() == 1;
  const index_t d = p.radius(), H = img.rows, W = img.cols;
  std::vector<std::uint8_t> flag(static_cast<std::size_t>(W + 16));
  auto run_end = [&](const T* row, index_t a) {
    if (above.all_pass) return c1;
    index_t b = a + 1;
    while (b < c1 && row[b] > above.cut) ++b;
    return b;
  };
  for (index_t r = r0; r < r1; ++r) {
    const T* row = img.row(r);
    const T* up = img.row(r > 0 ? r - 1 : 0);  // clamped: a pixel is never below itself
    const T* dn = img.row(r < H - 1 ? r + 1 : H - 1);
    for (index_t c = c0; c < c1;) {
      // next segment [a, b): runs above the threshold with gaps below kGap
      const index_t a = above.all_pass ? c : find_above(row, c, c1, above.cut);
      if (a >= c1) break;
      index_t b = run_end(row, a);
      while (b < c1) {
        const index_t stop = b + kGap < c1 ? b + kGap : c1;
        const index_t next = find_above(row, b, stop, above.cut);
        if (next >= stop) break;
        b = run_end(row, next);
      }
      c = b;
      if (plain) {
        for (index_t k = a; k < b; ++k)
          if (above(row[k])) out.push_back(Candidate{peaks::order_key(row[k]), r * W + k});
        continue;
      }
      if constexpr (peaks::filter_rounds<T>) {
        for (index_t k = a; k < b; ++k)
          if (above(row[k]) && peaks::is_filter_max(img, r, k, d))
            out.push_back(Candidate{peaks::order_key(row[k]), r * W + k});
      } else {
        std::uint8_t* f = flag.data();
        index_t k = a;
#if defined(__SSE2__)
        if constexpr (std::is_same<T, std::uint8_t>::value) {
          // 16 pixels at a time while the loads of the left and right neighbours stay in the row
          const __m128i cut1 = _mm_set1_epi8(static_cast<char>(above.all_pass ? 0 : above.cut + 1));
          for (; k < b && k >= 1 && k + 16 <= W - 1; k += 16) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k));
            const __m128i n4 = _mm_max_epu8(
                _mm_max_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k - 1)),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k + 1))),
                _mm_max_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(up + k)),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(dn + k))));
            const __m128i top = _mm_cmpeq_epi8(_mm_max_epu8(v, n4), v);     // v >= every 4-neighbour
            const __m128i abv = _mm_cmpeq_epi8(_mm_max_epu8(v, cut1), v);   // v > cut (v >= cut + 1)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(f + (k - a)), _mm_and_si128(top, abv));
          }
        }
#endif
        for (; k < b; ++k) {
          const T v = row[k];
          const T l = row[k > 0 ? k - 1 : 0], rt = row[k < W - 1 ? k + 1 : W - 1];
          f[k - a] = static_cast<std::uint8_t>(above(v) & !(up[k] > v) & !(dn[k] > v) & !(l > v) & !(rt > v));
        }
        const index_t m = b - a;
        for (index_t k = find_nonzero(f, 0, m); k < m; k = find_nonzero(f, k + 1, m)) {
          const T v = row[a + k];
          if (window_max(img, r, a + k, d, v)) out.push_back(Candidate{peaks::order_key(v), r * W + a + k});
        }
      }
    }
  }
  // With a window larger than one pixel, all pixels equal their window maximum exactly when the
  // image is constant; scikit-image then reports no peak.
  if (!plain && !out.empty()) {
    const index_t i = out.front().index;
    if (img(i / img.cols, i % img.cols) == img(0, 0) && is_constant(img)) out.clear();
  }
}

// Sort of candidates listed in raster order whose keys are below 256 (1-byte dtypes): counting sort.
void counting_sort_bytes(std::vector<Candidate>& c) {
  index_t count[257] = {0};
  for (const Candidate& k : c) ++count[k.key + 1];
  for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
  std::vector<Candidate> out(c.size());
  for (const Candidate& k : c) out[static_cast<std::size_t>(count[k.key]++)] = k;
  c.swap(out);
}

template <class T>
void sort_raster_candidates(std::vector<Candidate>& c) {
  if constexpr (sizeof(T) == 1) {
    counting_sort_bytes(c);
  } else {
    // listed in raster order, so a stable sort by key is the (key, index) order
    std::stable_sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) { return a.key < b.key; });
  }
}

// ---- labels -------------------------------------------------------------------------------------

struct Box {
  index_t r0 = std::numeric_limits<index_t>::max(), r1 = -1;  // rows [r0, r1]
  index_t c0 = std::numeric_limits<index_t>::max(), c1 = -1;  // cols [c0, c1]
  bool empty() const { return r1 < 0; }
  void add(index_t r, index_t c) {
    r0 = std::min(r0, r);
    r1 = std::max(r1, r);
    c0 = std::min(c0, c);
    c1 = std::max(c1, c);
  }
};

template <class T>
T background_value() {
  return std::numeric_limits<T>::lowest();  // numpy's iinfo(t).min / finfo(t).min
}

// scipy's maximum_filter (mode='nearest', (2d+1)^2 ones) over a (h, w) buffer: two separable passes,
// axis 0 then axis 1, each writing filter_round(max) as scipy's double line buffers do.
template <class T>
void max_filter(const std::vector<T>& in, index_t h, index_t w, index_t d, std::vector<T>& tmp, std::vector<T>& out) {
  tmp.resize(in.size());
  out.resize(in.size());
  for (index_t r = 0; r < h; ++r) {
    const index_t a = r > d ? r - d : 0, b = r + d < h - 1 ? r + d : h - 1;
    T* q = tmp.data() + r * w;
    std::copy(in.data() + a * w, in.data() + (a + 1) * w, q);
    for (index_t k = a + 1; k <= b; ++k) {
      const T* s = in.data() + k * w;
      for (index_t c = 0; c < w; ++c) q[c] = tmax(q[c], s[c]);
    }
    for (index_t c = 0; c < w; ++c) q[c] = peaks::filter_round(q[c]);
  }
  for (index_t r = 0; r < h; ++r) {
    const T* p = tmp.data() + r * w;
    T* q = out.data() + r * w;
    for (index_t c = 0; c < w; ++c) {
      const index_t a = c > d ? c - d : 0, b = c + d < w - 1 ? c + d : w - 1;
      T m = p[a];
      for (index_t k = a + 1; k <= b; ++k) m = tmax(m, p[k]);
      q[c] = peaks::filter_round(m);
    }
  }
}

// mask & !opening(mask): the pixels of `mask` that a binary opening with the 4-neighbourhood cross
// (outside the buffer counts as background) removes -- thin or isolated parts.
void removed_by_opening(const std::vector<std::uint8_t>& mask, index_t h, index_t w, std::vector<std::uint8_t>& out) {
  std::vector<std::uint8_t> er(mask.size(), 0);
  auto m = [&](index_t r, index_t c) -> bool { return r >= 0 && r < h && c >= 0 && c < w && mask[r * w + c]; };
  for (index_t r = 0; r < h; ++r)
    for (index_t c = 0; c < w; ++c)
      er[r * w + c] = m(r, c) && m(r - 1, c) && m(r + 1, c) && m(r, c - 1) && m(r, c + 1);
  auto e = [&](index_t r, index_t c) -> bool { return r >= 0 && r < h && c >= 0 && c < w && er[r * w + c]; };
  out.assign(mask.size(), 0);
  for (index_t r = 0; r < h; ++r)
    for (index_t c = 0; c < w; ++c) {
      const bool opened = e(r, c) || e(r - 1, c) || e(r + 1, c) || e(r, c - 1) || e(r, c + 1);
      out[r * w + c] = mask[r * w + c] && !opened;
    }
}

template <class T>
std::vector<index_t> labels_impl(const ImageView<const T>& img, const Planes& lp, const PeakParams& p,
                                 index_t per_label) {
  const auto reader = make_reader(lp);
  const index_t H = img.rows, W = img.cols, d = p.radius();
  const peaks::Above<T> above = p.above<T>();
  const T bg = background_value<T>();

  // Boxes of the positive labels of the border-excluded label map (scipy's find_objects), in label order.
  const index_t ir0 = p.border_r, ir1 = H - p.border_r, ic0 = p.border_c, ic1 = W - p.border_c;
  std::vector<Box> dense;
  std::map<std::int64_t, Box> sparse;
  const std::int64_t dense_limit = H * W + 1;
  std::vector<std::int64_t> lbuf(static_cast<std::size_t>(W > 0 ? W : 1));
  if (ir1 > ir0 && ic1 > ic0) {
    for (index_t r = ir0; r < ir1; ++r) {
      reader->read_i64(0, r, ic0, ic1, lbuf.data());
      for (index_t c = ic0; c < ic1; ++c) {
        const std::int64_t l = lbuf[c - ic0];
        if (l <= 0) continue;
        if (l < dense_limit) {
          if (l >= static_cast<std::int64_t>(dense.size()))
            dense.resize(static_cast<std::size_t>(std::max<std::int64_t>(l + 1, 2 * static_cast<std::int64_t>(dense.size()))));
          dense[l].add(r, c);
        } else {
          sparse[l].add(r, c);
        }
      }
    }
  }
  std::vector<std::pair<std::int64_t, Box>> boxes;
  for (std::size_t l = 1; l < dense.size(); ++l)
    if (!dense[l].empty()) boxes.emplace_back(static_cast<std::int64_t>(l), dense[l]);
  for (const auto& kv : sparse) boxes.push_back(kv);

  std::vector<index_t> result;
  std::vector<T> vals, tmp, mx;
  std::vector<std::uint8_t> mask, cand, iso;
  std::vector<Candidate> cands;
  for (const auto& lb : boxes) {
    const std::int64_t l = lb.first;
    const Box& b = lb.second;
    const index_t h = b.r1 - b.r0 + 1, w = b.c1 - b.c0 + 1, n = h * w;
    vals.resize(static_cast<std::size_t>(n));
    mask.resize(static_cast<std::size_t>(n));
    cand.resize(static_cast<std::size_t>(n));
    for (index_t r = 0; r < h; ++r) {
      reader->read_i64(0, b.r0 + r, b.c0, b.c1 + 1, lbuf.data());
      const T* src = img.row(b.r0 + r) + b.c0;
      for (index_t c = 0; c < w; ++c) {
        const bool in = lbuf[c] == l;
        mask[r * w + c] = in;
        vals[r * w + c] = in ? src[c] : bg;
      }
    }
    if (d == 0 || n == 1) {
      for (index_t i = 0; i < n; ++i) cand[i] = above(vals[i]);
    } else {
      max_filter(vals, h, w, d, tmp, mx);
      bool trivial = true;
      for (index_t i = 0; i < n; ++i) {
        cand[i] = vals[i] == mx[i];
        if (mask[i] && !cand[i]) trivial = false;
      }
      if (trivial) {  // every pixel of the label is a window maximum: keep only its thin parts
        removed_by_opening(mask, h, w, iso);
        cand.swap(iso);
      }
      for (index_t i = 0; i < n; ++i) cand[i] = cand[i] && above(vals[i]);
    }
    cands.clear();
    for (index_t r = 0; r < h; ++r)
      for (index_t c = 0; c < w; ++c)
        if (cand[r * w + c]) cands.push_back(Candidate{peaks::order_key(vals[r * w + c]), (b.r0 + r) * W + b.c0 + c});
    sort_raster_candidates<T>(cands);
    const std::vector<index_t> kept = ensure_spacing(cands, W, p.min_distance, per_label);
    result.insert(result.end(), kept.begin(), kept.end());
  }

  if (p.num_peaks >= 0 && static_cast<index_t>(result.size()) > p.num_peaks) {
    // Too many in total: select again over the union, by the image's own values.
    std::sort(result.begin(), result.end());
    result.erase(std::unique(result.begin(), result.end()), result.end());
    cands.clear();
    for (index_t i : result) cands.push_back(Candidate{peaks::order_key(img(i / W, i % W)), i});
    sort_raster_candidates<T>(cands);
    result = ensure_spacing(cands, W, p.min_distance, p.num_peaks);
  }
  return result;
}

}  // namespace

void sort_candidates(std::vector<Candidate>& c) { std::sort(c.begin(), c.end(), peaks::candidate_less); }

std::vector<index_t> ensure_spacing(const std::vector<Candidate>& sorted, index_t cols, index_t min_distance,
                                    index_t max_out) {
  const std::size_t limit =
      max_out < 0 ? sorted.size() : std::min(sorted.size(), static_cast<std::size_t>(max_out));
  std::vector<index_t> out;
  out.reserve(limit);
  if (min_distance <= 1) {
    for (std::size_t k = 0; k < limit; ++k) out.push_back(sorted[k].index);
    return out;
  }
  // Uniform grid of cell size s = min_distance. Two kept points are at Chebyshev distance >= s, so a
  // cell holds at most one, and a point closer than s to p lies in p's cell or one of its 8
  // neighbours: an open-addressing table keyed by cell holds the kept points.
  const index_t s = min_distance;
  const index_t ncc = cols / s + 1;
  struct Slot {
    index_t cell, r, c;
  };
  std::size_t cap = 16;
  int bits = 4;
  while (cap < 2 * limit + 2) {
    cap <<= 1;
    ++bits;
  }
  std::vector<Slot> table(cap, Slot{-1, 0, 0});
  const std::size_t mask = cap - 1;
  auto slot_of = [&](index_t cell) -> std::size_t {
    std::size_t h = static_cast<std::size_t>((static_cast<std::uint64_t>(cell) * 0x9E3779B97F4A7C15ull) >> (64 - bits));
    while (table[h].cell != -1 && table[h].cell != cell) h = (h + 1) & mask;
    return h;
  };
  for (const Candidate& k : sorted) {
    if (out.size() >= limit) break;
    const index_t r = k.index / cols, c = k.index % cols;
    const index_t cr = r / s, cc = c / s;
    bool ok = true;
    for (index_t dr = -1; dr <= 1 && ok; ++dr) {
      const index_t nr = cr + dr;
      if (nr < 0) continue;
      for (index_t dc = -1; dc <= 1; ++dc) {
        const index_t nc = cc + dc;
        if (nc < 0 || nc >= ncc) continue;
        const Slot& sl = table[slot_of(nr * ncc + nc)];
        if (sl.cell != -1 && std::abs(sl.r - r) < s && std::abs(sl.c - c) < s) {
          ok = false;
          break;
        }
      }
    }
    if (!ok) continue;
    Slot& sl = table[slot_of(cr * ncc + cc)];
    sl = Slot{cr * ncc + cc, r, c};
    out.push_back(k.index);
  }
  return out;
}

std::vector<index_t> peak_local_max(const Planes& img, const PeakParams& p) {
  check_params(p);
  if (img.rows <= 0 || img.cols <= 0) return {};
  return dispatch(img.dtype, [&](auto tag) -> std::vector<index_t> {
    using T = decltype(tag);
    std::vector<Candidate> cands;
    scan_candidates(plane_view<T>(img, 0), p, cands);
    sort_raster_candidates<T>(cands);
    return ensure_spacing(cands, img.cols, p.min_distance, p.num_peaks);
  });
}

std::vector<index_t> peak_local_max_labels(const Planes& img, const Planes& labels, const PeakParams& p,
                                           index_t num_peaks_per_label) {
  check_params(p);
  if (labels.rows != img.rows || labels.cols != img.cols)
    throw std::invalid_argument("labels must have the shape of image");
  if (is_float(labels.dtype)) throw std::invalid_argument("labels must be an integer array");
  if (img.rows <= 0 || img.cols <= 0) return {};
  return dispatch(img.dtype, [&](auto tag) -> std::vector<index_t> {
    using T = decltype(tag);
    return labels_impl(plane_view<T>(img, 0), labels, p, num_peaks_per_label);
  });
}

}  // namespace cpu
}  // namespace dwd
