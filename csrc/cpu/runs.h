// Run-based connected components on the CPU: the engine behind label, decode and compat.
//
// One pass over the page finds the runs of each row (maximal horizontal stretches of joined
// foreground pixels), skipping background with a vectorised search, and unites each run with the
// runs of the row above that it touches. Union links the larger root under the smaller, so a
// component's root is its first run in raster order and numbering roots in run order gives
// skimage's labels (raster order of each component's first pixel). Per-component geometry
// (area, bbox, coordinate sums) comes from the runs alone; anything that needs pixel values
// (class votes, sizes, sums) walks the runs of a component, i.e. only foreground pixels.
//
// Work is O(pixels read + foreground runs); nothing page-sized is allocated.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cpu/parallel.h"
#include "dwd/core.h"

namespace dwd {
namespace cpu {

struct Run {
  std::int32_t row;
  std::int32_t c0;  // first column
  std::int32_t c1;  // one past the last column
  std::int32_t id;  // union-find parent while labelling, then the final label (0 = dropped)
};

// ---- background skipping --------------------------------------------------------------------

// First column in [c, n) where row[col] != 0, or n.
template <class T>
inline index_t find_nonzero(const T* row, index_t c, index_t n);

// Integers wider than a byte are non-zero exactly when one of their bytes is: scan the bytes.
template <class T>
inline index_t find_nonzero_wide(const T* row, index_t c, index_t n) {
  const auto* b = reinterpret_cast<const std::uint8_t*>(row);
  const index_t k = find_nonzero(b, c * index_t(sizeof(T)), n * index_t(sizeof(T)));
  return k / index_t(sizeof(T));
}

template <class T>
inline index_t find_nonzero(const T* row, index_t c, index_t n) {
  if constexpr (std::is_integral<T>::value && sizeof(T) > 1) {
    return find_nonzero_wide(row, c, n);
  }
#if defined(__SSE2__)
  if constexpr (sizeof(T) == 1) {
    const __m128i zero = _mm_setzero_si128();
    // 64 bytes per step while nothing is found (the common case on a sparse page) ...
    while (c + 64 <= n) {
      const __m128i* q = reinterpret_cast<const __m128i*>(row + c);
      const __m128i v = _mm_or_si128(_mm_or_si128(_mm_loadu_si128(q), _mm_loadu_si128(q + 1)),
                                     _mm_or_si128(_mm_loadu_si128(q + 2), _mm_loadu_si128(q + 3)));
      if (_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)) != 0xFFFF) break;
      c += 64;
    }
    // ... then 16 at a time to locate it
    while (c + 16 <= n) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c));
      const int m = _mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)) ^ 0xFFFF;
      if (m) return c + __builtin_ctz(static_cast<unsigned>(m));
      c += 16;
    }
  }
#endif
  constexpr index_t B = 64 / sizeof(T) > 8 ? 64 / sizeof(T) : 8;
  while (c + B <= n) {
    bool any = false;
    for (index_t k = 0; k < B; ++k) any |= row[c + k] != T(0);
    if (any) break;
    c += B;
  }
  while (c < n && row[c] == T(0)) ++c;
  return c;
}

// First column in [c, n) where row[col] == 0, or n (the end of a run of non-zero bytes).
inline index_t find_zero(const std::uint8_t* row, index_t c, index_t n) {
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  while (c + 16 <= n) {
    const int m = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c)), zero));
    if (m) return c + __builtin_ctz(static_cast<unsigned>(m));
    c += 16;
  }
#endif
  while (c < n && row[c] != 0) ++c;
  return c;
}

// First column in [c, n) where row[col] > cut, or n.
template <class T>
inline index_t find_above(const T* row, index_t c, index_t n, T cut) {
#if defined(__SSE2__)
  if constexpr (std::is_same<T, std::uint8_t>::value) {
    if (cut < 255) {
      const __m128i c1 = _mm_set1_epi8(static_cast<char>(cut + 1));
      while (c + 64 <= n) {  // any of 64 bytes > cut  <=>  their maximum > cut
        const __m128i* q = reinterpret_cast<const __m128i*>(row + c);
        const __m128i v = _mm_max_epu8(_mm_max_epu8(_mm_loadu_si128(q), _mm_loadu_si128(q + 1)),
                                       _mm_max_epu8(_mm_loadu_si128(q + 2), _mm_loadu_si128(q + 3)));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, c1), v))) break;
        c += 64;
      }
      while (c + 16 <= n) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c));
        // v > cut  <=>  max(v, cut + 1) == v
        const int m = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, c1), v));
        if (m) return c + __builtin_ctz(static_cast<unsigned>(m));
        c += 16;
      }
    } else {
      return n;
    }
  }
#endif
  constexpr index_t B = 64 / sizeof(T) > 8 ? 64 / sizeof(T) : 8;
  while (c + B <= n) {
    bool any = false;
    for (index_t k = 0; k < B; ++k) any |= row[c + k] > cut;
    if (any) break;
    c += B;
  }
  while (c < n && !(row[c] > cut)) ++c;
  return c;
}

// Bit i of the result: whether byte c + i of `row` is non-zero (i < 64; the caller keeps c + 64 <= n).
inline std::uint64_t nonzero_bits64(const std::uint8_t* row, index_t c) {
  std::uint64_t m = 0;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  const __m128i* q = reinterpret_cast<const __m128i*>(row + c);
  const __m128i v0 = _mm_loadu_si128(q), v1 = _mm_loadu_si128(q + 1), v2 = _mm_loadu_si128(q + 2),
                v3 = _mm_loadu_si128(q + 3);
  // all zero (most blocks of a sparse mask): one test
  if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_or_si128(_mm_or_si128(v0, v1), _mm_or_si128(v2, v3)), zero)) == 0xFFFF)
    return 0;
  const auto bits = [&](__m128i v) {
    return static_cast<std::uint64_t>(~_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)) & 0xFFFF);
  };
  m = bits(v0) | bits(v1) << 16 | bits(v2) << 32 | bits(v3) << 48;
#else
  for (int i = 0; i < 64; ++i) m |= static_cast<std::uint64_t>(row[c + i] != 0) << i;
#endif
  return m;
}

// The same for row[c + i] > cut.
inline std::uint64_t above_bits64(const std::uint8_t* row, index_t c, std::uint8_t cut) {
  if (cut == 255) return 0;
  std::uint64_t m = 0;
#if defined(__SSE2__)
  const __m128i c1 = _mm_set1_epi8(static_cast<char>(cut + 1));
  const __m128i* q = reinterpret_cast<const __m128i*>(row + c);
  const __m128i v0 = _mm_loadu_si128(q), v1 = _mm_loadu_si128(q + 1), v2 = _mm_loadu_si128(q + 2),
                v3 = _mm_loadu_si128(q + 3);
  // v > cut  <=>  max(v, cut + 1) == v; none of the 64 (most blocks of a sparse page): one test
  const __m128i top = _mm_max_epu8(_mm_max_epu8(v0, v1), _mm_max_epu8(v2, v3));
  if (!_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(top, c1), top))) return 0;
  const auto bits = [&](__m128i v) {
    return static_cast<std::uint64_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, c1), v)) & 0xFFFF);
  };
  m = bits(v0) | bits(v1) << 16 | bits(v2) << 32 | bits(v3) << 48;
#else
  for (int i = 0; i < 64; ++i) m |= static_cast<std::uint64_t>(row[c + i] > cut) << i;
#endif
  return m;
}

// Calls emit(c0, c1) for each maximal run [c0, c1) of columns of [0, n) where on(c) holds, given
// bits(c) = on(c + i) as bit i for 64 columns at a time: runs come from the bit transitions, so a
// run costs a few instructions and no unpredictable branch of its own (short runs of a sparse mask).
template <class Bits, class On, class Emit>
inline void bit_runs(index_t n, Bits&& bits, On&& on, Emit&& emit) {
  index_t open = -1;  // first column of the run still open at the block's start, or -1
  auto block = [&](std::uint64_t m, index_t c) {
    if (open >= 0) {
      const std::uint64_t z = ~m;
      if (z == 0) return;
      const int b = __builtin_ctzll(z);
      emit(open, c + b);
      open = -1;
      m &= ~std::uint64_t(0) << b;
    }
    while (m) {
      const int b = __builtin_ctzll(m);
      const std::uint64_t z = ~m & (~std::uint64_t(0) << b);
      if (z == 0) {
        open = c + b;
        return;
      }
      const int e = __builtin_ctzll(z);
      emit(c + b, c + e);
      m &= ~std::uint64_t(0) << e;
    }
  };
  index_t c = 0;
  for (; c + 64 <= n; c += 64) block(bits(c), c);
  if (c < n) {  // the last, partial block: columns past n read as off
    std::uint64_t m = 0;
    for (index_t i = 0; c + i < n; ++i) m |= static_cast<std::uint64_t>(on(c + i) ? 1 : 0) << i;
    block(m, c);
  }
  if (open >= 0) emit(open, n);
}

// Scanners whose runs are "pixels where a byte predicate holds" provide bits64(r, c) and on(r, c)
// (kBitRuns): build() then finds a row's runs with bit_runs.
template <class S, class = void>
struct HasBitRuns : std::false_type {};
template <class S>
struct HasBitRuns<S, std::void_t<decltype(S::kBitRuns)>> : std::bool_constant<S::kBitRuns> {};

// ---- streaming writes ------------------------------------------------------------------------

// Copies n int32 values to dst with non-temporal stores where possible: for outputs written once and
// not read soon (a page-sized label image), this skips reading the destination into the caches
// first. Call stream_fence() after the last one. The widest stores the CPU has are used (chosen at
// run time: 64-byte stores write a page a third faster than 16-byte ones). In stream.cpp.
void stream_copy(std::int32_t* dst, const std::int32_t* src, index_t n);

inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// ---- row scanners: what a run is ---------------------------------------------------------------

// Runs of equal non-zero values; runs join only if their values are equal (skimage's label on
// bool and integer images).
template <class T>
struct EqualRuns {
  ImageView<const T> img;
  index_t next(index_t r, index_t c) const { return find_nonzero(img.row(r), c, img.cols); }
  index_t end(index_t r, index_t c) const {
    const T* p = img.row(r);
    const T v = p[c];
    ++c;
    while (c < img.cols && p[c] == v) ++c;
    return c;
  }
  bool joined(const Run& a, const Run& b) const { return img(a.row, a.c0) == img(b.row, b.c0); }
};

// Runs of pixels above a cut-off; all such runs join when they touch (energy > cutoff).
template <class T>
struct AboveRuns {
  ImageView<const T> img;
  T cut;
  static constexpr bool kBitRuns = std::is_same<T, std::uint8_t>::value;
  std::uint64_t bits64(index_t r, index_t c) const { return above_bits64(img.row(r), c, cut); }
  bool on(index_t r, index_t c) const { return img(r, c) > cut; }
  index_t next(index_t r, index_t c) const { return find_above(img.row(r), c, img.cols, cut); }
  index_t end(index_t r, index_t c) const {
    const T* p = img.row(r);
    ++c;
    while (c < img.cols && p[c] > cut) ++c;
    return c;
  }
  bool joined(const Run&, const Run&) const { return true; }
};

// ---- labelling -----------------------------------------------------------------------------

class RunLabels {
 public:
  std::vector<Run> runs;
  std::vector<index_t> row_start;  // runs of row r: [row_start[r], row_start[r + 1])
  std::int32_t count = 0;          // number of components

  // Finds the runs of `scan` and labels them 1..count in raster order of each component's first
  // pixel. connectivity: 1 (4-neighbourhood) or 2 (8-neighbourhood).
  template <class Scanner>
  void build(const Scanner& scan, index_t rows, index_t cols, int connectivity) {
    runs.clear();
    row_start.assign(static_cast<std::size_t>(rows) + 1, 0);
    const std::int32_t touch = connectivity == 2 ? 1 : 0;  // 8-conn runs touch diagonally
    // Row r's runs, appended to `to` with id = their index there.
    auto scan_row = [&](index_t r, std::vector<Run>& to) {
      auto emit = [&](index_t c0, index_t c1) {
        to.push_back(Run{static_cast<std::int32_t>(r), static_cast<std::int32_t>(c0), static_cast<std::int32_t>(c1),
                         static_cast<std::int32_t>(to.size())});
      };
      if constexpr (HasBitRuns<Scanner>::value) {
        bit_runs(
            cols, [&](index_t c) { return scan.bits64(r, c); }, [&](index_t c) { return scan.on(r, c); }, emit);
      } else {
        index_t c = scan.next(r, 0);
        while (c < cols) {
          const index_t e = scan.end(r, c);
          emit(c, e);
          c = e < cols ? scan.next(r, e) : cols;
        }
      }
    };
    // Unites row r's runs with those of the row above (two-pointer sweep; both lists are sorted by
    // column). Parents only ever point to earlier runs.
    auto unite_rows = [&](index_t r) {
      index_t p = row_start[r - 1];
      const index_t pe = row_start[r], end = row_start[r + 1];
      for (index_t k = pe; k < end && p < pe; ++k) {
        const Run& cur = runs[k];
        while (p < pe && runs[p].c1 + touch <= cur.c0) ++p;
        for (index_t q = p; q < pe && runs[q].c0 < cur.c1 + touch; ++q) {
          if (scan.joined(runs[q], cur)) unite(static_cast<std::int32_t>(q), static_cast<std::int32_t>(k));
        }
      }
    };
    const int nt = phase_threads(rows * cols / 8, rows);
    if (nt <= 1) {
      for (index_t r = 0; r < rows; ++r) {
        row_start[r] = static_cast<index_t>(runs.size());
        scan_row(r, runs);
        row_start[r + 1] = static_cast<index_t>(runs.size());
        if (r > 0) unite_rows(r);
      }
    } else {
      // The threads scan contiguous stretches of rows into their own lists (row_start relative to
      // them), which are then placed one after the other; each stretch's rows are united on its own
      // thread (its runs' parents stay inside it), then the seams between stretches.
      std::vector<std::vector<Run>> part(static_cast<std::size_t>(nt));
      std::vector<index_t> offset(static_cast<std::size_t>(nt) + 1, 0);
      on_threads(nt, [&](int t) {
        for (index_t r = part_begin(rows, t, nt); r < part_begin(rows, t + 1, nt); ++r) {
          row_start[r] = static_cast<index_t>(part[t].size());
          scan_row(r, part[t]);
        }
      });
      for (int t = 0; t < nt; ++t) offset[t + 1] = offset[t] + static_cast<index_t>(part[t].size());
      if (offset[nt] >= static_cast<index_t>(std::numeric_limits<std::int32_t>::max()))
        throw std::invalid_argument("image has too many foreground runs for 32-bit labels");
      runs.resize(static_cast<std::size_t>(offset[nt]));
      row_start[rows] = offset[nt];  // the last stretch's last row ends here (read by unite_rows)
      for (int t = 1; t < nt; ++t)
        for (index_t r = part_begin(rows, t, nt); r < part_begin(rows, t + 1, nt); ++r) row_start[r] += offset[t];
      on_threads(nt, [&](int t) {
        const index_t off = offset[t];
        Run* to = runs.data() + off;
        for (const Run& run : part[t]) *to++ = Run{run.row, run.c0, run.c1, run.id + static_cast<std::int32_t>(off)};
        std::vector<Run>().swap(part[t]);
        for (index_t r = part_begin(rows, t, nt) + 1; r < part_begin(rows, t + 1, nt); ++r) unite_rows(r);
      });
      for (int t = 1; t < nt; ++t) unite_rows(part_begin(rows, t, nt));
    }
    row_start[rows] = static_cast<index_t>(runs.size());
    if (runs.size() >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
      throw std::invalid_argument("image has too many foreground runs for 32-bit labels");
    // Final labels: a root (the first run of its component) opens a new label; any other run copies
    // its root's label (the root comes earlier, so it is already numbered).
    // Parents only ever point to earlier runs, so one forward pass compresses every run to its root.
    for (std::size_t k = 0; k < runs.size(); ++k) runs[k].id = find(static_cast<std::int32_t>(k));
    count = 0;
    for (std::size_t k = 0; k < runs.size(); ++k) {
      const std::int32_t root = runs[k].id;  // negative once numbered
      runs[k].id = root == static_cast<std::int32_t>(k) ? -(++count) : runs[root].id;
    }
    for (Run& run : runs) run.id = -run.id;
  }

  // Writes the label image (every pixel, background 0).
  void paint(ImageView<std::int32_t> out) const;

  // Runs grouped by label (see group_runs).
  void group(std::vector<std::int32_t>& order, std::vector<index_t>& offset) const;

 private:
  std::int32_t find(std::int32_t x) {
    while (runs[x].id != x) {
      runs[x].id = runs[runs[x].id].id;  // path halving
      x = runs[x].id;
    }
    return x;
  }
  void unite(std::int32_t a, std::int32_t b) {
    a = find(a);
    b = find(b);
    if (a == b) return;
    if (a < b) runs[b].id = a;
    else runs[a].id = b;
  }
};

// ---- writing label images ------------------------------------------------------------------

// Writes every pixel of `out` once (composed in a cached buffer and streamed out): 0, except on the
// runs of `comps`, which set(k, run, row) fills (k: the run's index). Rows are composed a band at a
// time; a contiguous output takes each band as one stream, so that row boundaries (rarely aligned)
// do not break its whole-line stores.
template <class Set>
void write_rows(ImageView<std::int32_t> out, const RunLabels& comps, Set&& set) {
  write_rows(out, comps, set, [](std::size_t) {});
}

// The same, calling ahead(j) before the run j - kAhead is set (to fetch what run j will read).
template <class Set, class Ahead>
void write_rows(ImageView<std::int32_t> out, const RunLabels& comps, Set&& set, Ahead&& ahead) {
  constexpr std::size_t kAhead = 16;
  const std::size_t n_runs = comps.runs.size();
  const index_t band = out.stride_r == out.cols ? std::max<index_t>(1, 32768 / std::max<index_t>(out.cols, 1)) : 1;
  const index_t n_bands = (out.rows + band - 1) / band;
  // The threads take contiguous stretches of bands, each composing in its own buffer.
  const int nt = phase_threads(out.rows * out.cols, n_bands);
  on_threads(nt, [&](int t) {
    std::vector<std::int32_t> buf(static_cast<std::size_t>(band * out.cols), 0);
    const index_t b0 = part_begin(n_bands, t, nt), b1 = part_begin(n_bands, t + 1, nt);
    for (index_t r0 = b0 * band; r0 < std::min(out.rows, b1 * band); r0 += band) {
      const index_t r1 = std::min(out.rows, r0 + band);
      for (index_t r = r0; r < r1; ++r) {
        std::int32_t* row = buf.data() + (r - r0) * out.cols;
        for (index_t k = comps.row_start[r]; k < comps.row_start[r + 1]; ++k) {
          if (static_cast<std::size_t>(k) + kAhead < n_runs) ahead(static_cast<std::size_t>(k) + kAhead);
          set(static_cast<std::size_t>(k), comps.runs[k], row);
        }
      }
      if (band > 1) {
        stream_copy(out.row(r0), buf.data(), (r1 - r0) * out.cols);
      } else {
        stream_copy(out.row(r0), buf.data(), out.cols);
      }
      for (index_t r = r0; r < r1; ++r) {
        std::int32_t* row = buf.data() + (r - r0) * out.cols;
        for (index_t k = comps.row_start[r]; k < comps.row_start[r + 1]; ++k)
          std::fill(row + comps.runs[k].c0, row + comps.runs[k].c1, 0);
      }
    }
    stream_fence();
  });
}

inline void RunLabels::paint(ImageView<std::int32_t> out) const {
  write_rows(out, *this, [](std::size_t, const Run& run, std::int32_t* row) {
    if (run.id > 0) std::fill(row + run.c0, row + run.c1, run.id);
  });
}

// Runs grouped by label (run.id, 1..count; 0 = dropped): order[offset[l - 1] .. offset[l]) are the
// indices of the runs of label l, in raster order (a counting sort by label).
inline void group_runs(const std::vector<Run>& runs, std::int64_t count, std::vector<std::int32_t>& order,
                       std::vector<index_t>& offset) {
  offset.assign(static_cast<std::size_t>(count) + 1, 0);
  for (const Run& run : runs)
    if (run.id > 0) ++offset[run.id];
  for (std::int64_t l = 0; l < count; ++l) offset[l + 1] += offset[l];
  order.resize(static_cast<std::size_t>(offset[count]));
  std::vector<index_t> pos(offset.begin(), offset.end() - 1);
  for (std::size_t k = 0; k < runs.size(); ++k)
    if (runs[k].id > 0) order[static_cast<std::size_t>(pos[runs[k].id - 1]++)] = static_cast<std::int32_t>(k);
}

inline void RunLabels::group(std::vector<std::int32_t>& order, std::vector<index_t>& offset) const {
  group_runs(runs, count, order, offset);
}

// Per-component geometry from runs: exact integer accumulators.
struct Geometry {
  std::int64_t area = 0;
  std::int64_t sum_r = 0;
  std::int64_t sum_c = 0;
  std::int32_t min_r = std::numeric_limits<std::int32_t>::max();
  std::int32_t min_c = std::numeric_limits<std::int32_t>::max();
  std::int32_t max_r = -1;  // inclusive
  std::int32_t max_c = -1;  // inclusive

  void add(const Run& run) {
    const std::int64_t len = run.c1 - run.c0;
    area += len;
    sum_r += static_cast<std::int64_t>(run.row) * len;
    sum_c += (static_cast<std::int64_t>(run.c0) + run.c1 - 1) * len / 2;
    min_r = std::min(min_r, run.row);
    max_r = std::max(max_r, run.row);
    min_c = std::min(min_c, run.c0);
    max_c = std::max(max_c, run.c1 - 1);
  }
};

inline std::vector<Geometry> geometry(const RunLabels& lab) {
  std::vector<Geometry> g(static_cast<std::size_t>(lab.count));
  for (const Run& run : lab.runs)
    if (run.id > 0) g[run.id - 1].add(run);
  return g;
}

}  // namespace cpu
}  // namespace dwd
