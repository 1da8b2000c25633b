// Data-parallel local-maximum extraction (the GPU algorithm of peak_local_max), written once for
// every executor, and the per-pixel pieces the CPU algorithm shares with it.
//
// A pixel is a candidate peak when it lies inside the border-excluded interior, passes the threshold
// and no pixel of its (2d+1)^2 window, clamped to the image, is larger (i.e. it equals the window
// maximum of scikit-image's maximum_filter with mode='nearest'). research/algorithms.md §6:
//   candidates  one element per interior pixel: threshold + window test; survivors are appended to a
//               list with atomicAdd on a counter (the list order depends on the thread order)
//   differs     one element per pixel: flags a pixel different from pixel 0. With a window larger
//               than one pixel, "every pixel equals its window maximum" happens exactly when the
//               image is constant, and scikit-image then reports no peak at all
// The caller copies the list to the host and sorts it by (key, index), which makes the order
// deterministic: intensity descending as numpy's stable argsort(-v) sees it (the negation wraps for
// integers), ties in raster order. Greedy spacing is sequential and runs on the host.
// "Equals the window maximum" follows scipy exactly, including its rounding of 64-bit integers
// (filter_round below).
#pragma once

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core.h"
#include "exec.h"

namespace dwd {
namespace peaks {

// A candidate: its sort key and its linear index r * cols + c in the full image.
struct Candidate {
  std::uint64_t key;
  index_t index;
};

DWD_HD bool candidate_less(const Candidate& a, const Candidate& b) {
  return a.key < b.key || (a.key == b.key && a.index < b.index);
}

// Sort key of value v: ascending keys list the values in the order of numpy's argsort(-v), i.e. with
// the negation computed in v's own type. For unsigned types -v wraps (0 comes first, then the
// largest values); for signed types -min == min comes first; floats negate exactly, -0 == +0.
template <class T>
DWD_HD std::uint64_t order_key(T v) {
  if constexpr (std::is_floating_point<T>::value) {
    double x = -static_cast<double>(v);  // exact for float and double
    if (x == 0.0) x = 0.0;               // -0.0 and +0.0 compare equal: one key
    std::uint64_t b;
    std::memcpy(&b, &x, sizeof b);
    const std::uint64_t sign = std::uint64_t(1) << 63;
    return (b & sign) ? ~b : (b | sign);  // IEEE order -> unsigned order
  } else {
    using U = typename std::make_unsigned<T>::type;
    const U w = static_cast<U>(U(0) - static_cast<U>(v));  // -v, wrapped, as its bit pattern
    if constexpr (std::is_signed<T>::value) {
      const U sign = static_cast<U>(U(1) << (8 * sizeof(U) - 1));
      return static_cast<std::uint64_t>(static_cast<U>(w ^ sign));  // signed order -> unsigned order
    } else {
      return static_cast<std::uint64_t>(w);
    }
  }
}

// The threshold test: all_pass, or v > cut with the comparison in T (the Python layer turns
// scikit-image's `image > threshold`, with numpy's promotion rules, into this exact form).
template <class T>
struct Above {
  T cut;
  bool all_pass;
  DWD_HD bool operator()(T v) const { return all_pass || v > cut; }
};

// The threshold of decode's peak seeds: v > floor(cut) for integer T (a cut below T's range lets every
// value pass, one above it none), v > T(cut) for floats -- cpu::PeakParams::set_cut(floor(cut)) with
// cut_f = cut, written for the data-parallel decoder (which does not include the CPU headers).
template <class T>
Above<T> above_cut(double cut) {
  Above<T> a;
  a.all_pass = false;
  if constexpr (std::is_floating_point<T>::value) {
    a.cut = static_cast<T>(cut);
  } else {
    const auto ci = static_cast<std::int64_t>(std::floor(cut));
    if constexpr (std::is_signed<T>::value) {
      const auto lo = static_cast<std::int64_t>(std::numeric_limits<T>::min());
      const auto hi = static_cast<std::int64_t>(std::numeric_limits<T>::max());
      a.all_pass = ci < lo;
      a.cut = ci > hi ? std::numeric_limits<T>::max() : (ci < lo ? std::numeric_limits<T>::min() : static_cast<T>(ci));
    } else {
      const std::uint64_t cu = ci < 0 ? 0 : static_cast<std::uint64_t>(ci);
      a.all_pass = ci < 0;
      a.cut = cu > static_cast<std::uint64_t>(std::numeric_limits<T>::max()) ? std::numeric_limits<T>::max()
                                                                             : static_cast<T>(cu);
    }
  }
  return a;
}

// True when no pixel of the (2d+1)^2 window around (r, c), clamped to the image, exceeds img(r, c).
template <class T>
DWD_HD bool is_window_max(const ImageView<const T>& img, index_t r, index_t c, index_t d) {
  const T v = img(r, c);
  const index_t r0 = r - d < 0 ? 0 : r - d, r1 = r + d >= img.rows ? img.rows - 1 : r + d;
  const index_t c0 = c - d < 0 ? 0 : c - d, c1 = c + d >= img.cols ? img.cols - 1 : c + d;
  for (index_t rr = r0; rr <= r1; ++rr)
    for (index_t cc = c0; cc <= c1; ++cc)
      if (img(rr, cc) > v) return false;
  return true;
}

// scipy.ndimage's maximum_filter carries 64-bit integers through double line buffers: every 1-D pass
// (axis 0, then axis 1) writes T(double(max)), with x86's conversion of out-of-range doubles
// (int64: INT64_MIN, uint64: 0). Values beyond 2^53 thus compare with a rounded maximum; the
// candidate test of 64-bit integer images reproduces that. Other dtypes round-trip exactly.
template <class T>
constexpr bool filter_rounds = std::is_integral<T>::value && sizeof(T) == 8;

template <class T>
DWD_HD T filter_round(T v) {
  if constexpr (filter_rounds<T>) {
    const double x = static_cast<double>(v);
    if constexpr (std::is_signed<T>::value) {
      return x >= 9223372036854775808.0 ? T(-9223372036854775807LL - 1) : static_cast<T>(x);
    } else {
      return x >= 18446744073709551616.0 ? T(0) : static_cast<T>(x);
    }
  } else {
    return v;
  }
}

// img(r, c) equals scipy's separable maximum_filter (mode='nearest') at (r, c), with the rounding of
// filter_round: the column maxima of the window (axis 0 pass) rounded, their maximum rounded.
template <class T>
DWD_HD bool is_filter_max(const ImageView<const T>& img, index_t r, index_t c, index_t d) {
  const index_t r0 = r - d < 0 ? 0 : r - d, r1 = r + d >= img.rows ? img.rows - 1 : r + d;
  const index_t c0 = c - d < 0 ? 0 : c - d, c1 = c + d >= img.cols ? img.cols - 1 : c + d;
  T m = T(0);
  for (index_t cc = c0; cc <= c1; ++cc) {
    T col = img(r0, cc);
    for (index_t rr = r0 + 1; rr <= r1; ++rr) col = dmax(col, img(rr, cc));
    col = filter_round(col);
    m = cc == c0 ? col : dmax(m, col);
  }
  return img(r, c) == filter_round(m);
}

// The candidate window test: exact for every dtype, scipy's rounding for 64-bit integers.
template <class T>
DWD_HD bool is_candidate(const ImageView<const T>& img, index_t r, index_t c, index_t d) {
  if constexpr (filter_rounds<T>) {
    return is_filter_max(img, r, c, d);
  } else {
    return is_window_max(img, r, c, d);
  }
}

// What the candidate step needs to know about the call.
template <class T>
struct CandidateSpec {
  ImageView<const T> img;
  index_t radius;      // window half-size (min_distance)
  bool plain;          // footprint of one pixel (min_distance 0) or a 1-pixel image: threshold only
  index_t r0, r1;      // interior rows [r0, r1)
  index_t c0, c1;      // interior cols [c0, c1)
  Above<T> above;
};

template <class T>
struct CandidateStep {
  CandidateSpec<T> s;
  Candidate* list;
  std::int32_t* count;
  DWD_HD void operator()(index_t i) const {
    const index_t w = s.c1 - s.c0;
    const index_t r = s.r0 + i / w, c = s.c0 + i % w;
    const T v = s.img(r, c);
    if (!s.above(v)) return;
    if (!s.plain && !is_candidate(s.img, r, c, s.radius)) return;
    const std::int32_t k = atomic_add(count, std::int32_t(1));
    list[k] = Candidate{order_key(v), r * s.img.cols + c};
  }
};

template <class T>
struct DiffersStep {
  ImageView<const T> img;
  std::int32_t* flag;
  DWD_HD void operator()(index_t i) const {
    if (img(i / img.cols, i % img.cols) != img(0, 0)) atomic_max(flag, std::int32_t(1));
  }
};

// Runs the candidate step. Returns the number of candidates; *list (executor memory) holds them in
// an order that depends on the executor: sort them by candidate_less on the host. The image must
// hold fewer than 2^31 pixels (checked by the caller).
template <class Exec, class T>
std::int32_t candidates(Exec& ex, const CandidateSpec<T>& s, Candidate** list) {
  *list = nullptr;
  const index_t n = (s.r1 > s.r0 && s.c1 > s.c0) ? (s.r1 - s.r0) * (s.c1 - s.c0) : 0;
  if (n == 0) return 0;
  Candidate* out = ex.template alloc<Candidate>(n);
  std::int32_t* count = ex.template alloc<std::int32_t>(2);
  ex.fill(count, 2, std::int32_t(0));
  ex.for_each(n, CandidateStep<T>{s, out, count});
  std::int32_t k = 0;
  ex.to_host(&k, count, 1);
  if (k > 0 && !s.plain) {
    ex.for_each(s.img.size(), DiffersStep<T>{s.img, count + 1});
    std::int32_t differs = 0;
    ex.to_host(&differs, count + 1, 1);
    if (!differs) k = 0;  // constant image: scikit-image's "trivial image", no peaks
  }
  *list = out;
  return k;
}

// ---- the whole pipeline on the executor ----------------------------------------------------------
//   flags      one element per interior pixel: candidate or not
//   compact    exclusive scan of the flags; candidates written at their rank: raster order,
//              whatever the thread order
//   sort       stable sort of (key, position) pairs by key: (key, raster index) order, i.e.
//              scikit-image's order
//   spacing    greedy spacing is sequential by definition (each decision depends on the earlier
//              ones): ONE element walks the sorted candidates, with a grid of cells of side
//              min_distance holding the kept point of each cell (at most one), so each test looks
//              at 9 cells. It is the only single-thread step of the GPU code; it touches only the
//              candidates (thousands on a DWD page), not the page.
//   coords     one element per kept peak writes (row, col)

template <class T>
struct CandidateFlagStep {
  CandidateSpec<T> s;
  std::int32_t* flag;
  DWD_HD void operator()(index_t i) const {
    const index_t w = s.c1 - s.c0;
    const index_t r = s.r0 + i / w, c = s.c0 + i % w;
    const T v = s.img(r, c);
    flag[i] = (s.above(v) && (s.plain || is_candidate(s.img, r, c, s.radius))) ? 1 : 0;
  }
};

template <class T>
struct CompactStep {
  CandidateSpec<T> s;
  const std::int32_t* flag;
  const std::int32_t* rank;
  std::uint64_t* keys;
  std::int64_t* index;
  DWD_HD void operator()(index_t i) const {
    if (!flag[i]) return;
    const index_t w = s.c1 - s.c0;
    const index_t r = s.r0 + i / w, c = s.c0 + i % w;
    keys[rank[i]] = order_key(s.img(r, c));
    index[rank[i]] = r * s.img.cols + c;
  }
};

struct SpacingStep {
  const std::int64_t* sorted_index;  // candidates in (key, index) order
  index_t n, cols, min_distance, limit;
  std::int64_t* cell;                // (rows / s + 1) x (cols / s + 1), -1 = empty
  index_t nrc, ncc;
  std::int64_t* out;                 // kept linear indices
  std::int32_t* count;
  DWD_HD void operator()(index_t) const {
    index_t kept = 0;
    const index_t s = min_distance;
    for (index_t k = 0; k < n && kept < limit; ++k) {
      const index_t i = sorted_index[k];
      if (s > 1) {
        const index_t r = i / cols, c = i % cols, cr = r / s, cc = c / s;
        bool ok = true;
        for (index_t dr = -1; dr <= 1 && ok; ++dr)
          for (index_t dc = -1; dc <= 1 && ok; ++dc) {
            const index_t nr = cr + dr, nc = cc + dc;
            if (nr < 0 || nr >= nrc || nc < 0 || nc >= ncc) continue;
            const std::int64_t j = cell[nr * ncc + nc];
            if (j < 0) continue;
            const index_t jr = j / cols, jc = j % cols;
            if ((jr > r ? jr - r : r - jr) < s && (jc > c ? jc - c : c - jc) < s) ok = false;
          }
        if (!ok) continue;
        cell[cr * ncc + cc] = i;
      }
      out[kept++] = i;
    }
    *count = static_cast<std::int32_t>(kept);
  }
};

struct CoordStep {
  const std::int64_t* idx;
  index_t cols;
  std::int64_t* out;  // K x 2
  DWD_HD void operator()(index_t k) const {
    out[2 * k] = idx[k] / cols;
    out[2 * k + 1] = idx[k] % cols;
  }
};

// scikit-image's peak_local_max (no labels) on the executor. alloc_out(K) returns the caller's (K, 2)
// int64 output. Returns K. num_peaks < 0: no limit.
template <class Exec, class T, class AllocOut>
std::int64_t peak_local_max(Exec& ex, const CandidateSpec<T>& s, index_t min_distance, index_t num_peaks,
                            AllocOut&& alloc_out) {
  const index_t n = (s.r1 > s.r0 && s.c1 > s.c0) ? (s.r1 - s.r0) * (s.c1 - s.c0) : 0;
  std::int32_t k = 0;
  std::int32_t* flag = nullptr;
  std::int32_t* rank = nullptr;
  if (n > 0) {
    flag = ex.template alloc<std::int32_t>(n);
    rank = ex.template alloc<std::int32_t>(n + 1);
    ex.for_each(n, CandidateFlagStep<T>{s, flag});
    ex.exclusive_scan(flag, rank, n);
    ex.to_host(&k, rank + n, 1);
  }
  if (k > 0 && !s.plain) {
    std::int32_t* differs = ex.template alloc<std::int32_t>(1);
    ex.fill(differs, 1, std::int32_t(0));
    ex.for_each(s.img.size(), DiffersStep<T>{s.img, differs});
    std::int32_t d = 0;
    ex.to_host(&d, differs, 1);
    ex.free(differs);
    if (!d) k = 0;  // constant image: scikit-image's "trivial image", no peaks
  }
  if (k == 0) {
    if (flag) ex.free(flag);
    if (rank) ex.free(rank);
    alloc_out(0);
    return 0;
  }
  std::uint64_t* keys = ex.template alloc<std::uint64_t>(k);
  std::int64_t* index = ex.template alloc<std::int64_t>(k);
  ex.for_each(n, CompactStep<T>{s, flag, rank, keys, index});
  ex.free(flag);
  ex.free(rank);
  const std::int64_t* sorted = ex.sort_pairs(keys, index, k);
  const index_t sd = min_distance > 1 ? min_distance : 1;
  const index_t nrc = s.img.rows / sd + 1, ncc = s.img.cols / sd + 1, ncells = nrc * ncc;
  std::int64_t* cell = ex.template alloc<std::int64_t>(min_distance > 1 ? ncells : 1);
  if (min_distance > 1) ex.fill(cell, ncells, std::int64_t(-1));
  std::int64_t* kept = ex.template alloc<std::int64_t>(k);
  std::int32_t* count = ex.template alloc<std::int32_t>(1);
  const index_t limit = num_peaks < 0 ? k : (num_peaks < k ? num_peaks : k);
  ex.for_each(1, SpacingStep{sorted, k, s.img.cols, min_distance, limit, cell, nrc, ncc, kept, count});
  std::int32_t K = 0;
  ex.to_host(&K, count, 1);
  std::int64_t* out = alloc_out(K);
  ex.for_each(K, CoordStep{kept, s.img.cols, out});
  // workspace back to the executor (stream-ordered): callers such as decode run on after this
  ex.free(count);
  ex.free(kept);
  ex.free(cell);
  if (sorted != index) ex.free(sorted);
  ex.free(index);
  ex.free(keys);
  return K;
}

}  // namespace peaks
}  // namespace dwd
