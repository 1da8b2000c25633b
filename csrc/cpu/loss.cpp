// The DWD loss on the CPU (see loss.h).
#include "cpu/loss.h"
#include "cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 intrinsics (their undefined pass-through)

namespace dwd {
namespace cpu {
namespace loss {

namespace {

typedef float v8f __attribute__((vector_size(32)));
typedef std::int32_t v8i __attribute__((vector_size(32)));

constexpr int kGroups = 512;                // most groups of 8 pixels per chunk
constexpr std::int64_t kChunkLines = 8192;  // a chunk's groups times channels: 256 KB of logits, in L2
constexpr std::int64_t kUnit = 16384;        // pixels per unit of parallel work (a multiple of 8)
constexpr std::int64_t kMaxValue = 1 << 24;  // largest value a weight table covers

// A chunk: up to kChunkLines / C (at most kGroups) groups of 8 consecutive pixels of one image, each holding at least one weighted
// pixel, in increasing order, with their weights and targets (t = 0 where w = 0). Groups without weights
// are never read. A chunk spans many rows of a sparse mask, so each channel is read as one increasing
// sequence of lines (the hardware prefetcher follows it), and all channels of it stay in L2 between the
// kernels' passes.
struct Chunk {
  const float* x;  // the image's maps: channel k of pixel p at x[k * hw + p]
  std::int64_t C, hw;
  int n;                     // groups
  std::int64_t gp[kGroups];  // first pixel of each group
  alignas(32) float w[kGroups * 8];
  alignas(32) std::int32_t t[kGroups * 8];
};

// A range of whole groups of one image whose pixels all carry weight: w0 where the uint8 target is 0,
// w1 elsewhere (the fg_bg_balanced and none masks of an energy map). Read without staging.
struct DenseCe {
  const float* x;  // the image's logits (C, hw)
  std::int64_t C, hw;
  const std::uint8_t* t;  // the image's targets (hw)
  std::int64_t p, groups;  // first pixel, groups of 8
  float w0, w1;
};

struct Kernels {
  double (*ce_forward)(const Chunk&);
  void (*ce_backward)(const Chunk&, float, float*);
  double (*size_forward)(const Chunk&, const float*, const float*, bool);
  void (*size_backward)(const Chunk&, const float*, const float*, bool, float, float*);
  bool (*ce_dense)(const DenseCe&, double&);
};

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512vl,prefer-vector-width=256")
#define DWD_LOSS_AVX 1
#define DWD_LOSS_WIDE 1
namespace avx512 {
#include "cpu/loss_kernels.inc"
}  // namespace avx512
#undef DWD_LOSS_WIDE
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define DWD_LOSS_WIDE 0
namespace avx2 {
#include "cpu/loss_kernels.inc"
}  // namespace avx2
#undef DWD_LOSS_AVX
#pragma GCC pop_options
#endif

#define DWD_LOSS_AVX 0
namespace generic {
#include "cpu/loss_kernels.inc"
}  // namespace generic
#undef DWD_LOSS_AVX
#undef DWD_LOSS_WIDE

// The kernel sets, best first: AVX-512 (dense kernel 16 lanes wide, 32 vector registers everywhere),
// AVX2 + FMA, the baseline target.
struct KernelSet {
  const char* name;
  const Kernels* kernels;
  bool supported;
};

const std::vector<KernelSet>& kernel_sets() {
  static const std::vector<KernelSet> sets = {
#if defined(__x86_64__) || defined(__i386__)
      {"avx512", &avx512::kernels, __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")},
      {"avx2", &avx2::kernels, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")},
#endif
      {"baseline", &generic::kernels, true},
  };
  return sets;
}

std::atomic<int> best_allowed{0};  // index of the best set the tests let the kernels use

const KernelSet& kernel_set() {
  const auto& sets = kernel_sets();
  for (std::size_t i = static_cast<std::size_t>(best_allowed.load()); i < sets.size(); ++i)
    if (sets[i].supported) return sets[i];
  return sets.back();
}

const Kernels& kernels() { return *kernel_set().kernels; }

// Units on up to `threads` threads of dwd_fast's pool (PyTorch's count is passed in).
template <class F>
void run_units(std::int64_t n, int threads, F&& f) {
  parallel_items(n, threads > 0 ? threads : 1, f);
}

// ---- weight tables ----------------------------------------------------------------------------------

template <class F>
decltype(auto) with_labels(const Labels& l, F&& f) {
  switch (l.dtype) {
    case DType::u8: return f(static_cast<const std::uint8_t*>(l.data));
    case DType::i32: return f(static_cast<const std::int32_t*>(l.data));
    default: return f(static_cast<const std::int64_t*>(l.data));
  }
}

// Whether eight values are all zero.
template <class T>
bool all_zero(const T* v) {
  std::uint64_t acc = 0;
  for (std::size_t k = 0; k < sizeof(T); ++k) {
    std::uint64_t word;
    std::memcpy(&word, reinterpret_cast<const char*>(v) + 8 * k, 8);
    acc |= word;
  }
  return acc == 0;
}

// Histogram of one image's values; false if one is negative or above kMaxValue. Four interleaved
// sub-histograms, so that runs of one value (the background) do not chain increments of one counter.
// Wider types first try a 1024-bin histogram in the same pass that looks for larger values.
template <class T>
bool histogram(const T* v, std::int64_t n, std::vector<std::int64_t>& counts) {
  std::size_t bins = 256;
  if constexpr (sizeof(T) > 1) bins = 1024;
  std::vector<std::int32_t> sub(4 * bins, 0);  // n < 2^31 (checked by the caller)
  std::int64_t zero_groups = 0;  // groups of eight zeros (the background), counted apart
  auto count = [&](std::int64_t from, std::int64_t to) {
    std::int64_t i = from;
    for (; i + 8 <= to; i += 8) {
      if (all_zero(v + i)) {
        ++zero_groups;
        continue;
      }
      for (int j = 0; j < 8; j += 4) {
        ++sub[static_cast<std::size_t>(v[i + j])];
        ++sub[bins + static_cast<std::size_t>(v[i + j + 1])];
        ++sub[2 * bins + static_cast<std::size_t>(v[i + j + 2])];
        ++sub[3 * bins + static_cast<std::size_t>(v[i + j + 3])];
      }
    }
    for (; i + 4 <= to; i += 4) {
      ++sub[static_cast<std::size_t>(v[i])];
      ++sub[bins + static_cast<std::size_t>(v[i + 1])];
      ++sub[2 * bins + static_cast<std::size_t>(v[i + 2])];
      ++sub[3 * bins + static_cast<std::size_t>(v[i + 3])];
    }
    for (; i < to; ++i) ++sub[static_cast<std::size_t>(v[i])];
  };
  if constexpr (sizeof(T) > 1) {
    using U = std::make_unsigned_t<T>;
    constexpr std::int64_t kStep = 4096;
    for (std::int64_t i0 = 0; i0 < n; i0 += kStep) {  // a block's values in [0, bins)? then count them
      const std::int64_t i1 = std::min(n, i0 + kStep);
      U big = 0;
      for (std::int64_t i = i0; i < i1; ++i) big |= static_cast<U>(v[i]) & ~static_cast<U>(bins - 1);
      if (big) {  // a negative value or one of at least `bins`: the exact range, then a wide histogram
        T lo = 0, top = 0;
        for (std::int64_t i = 0; i < n; ++i) {
          lo = v[i] < lo ? v[i] : lo;
          top = v[i] > top ? v[i] : top;
        }
        if (lo < 0 || top > kMaxValue) return false;
        bins = static_cast<std::size_t>(top) + 1;
        sub.assign(4 * bins, 0);
        zero_groups = 0;
        count(0, n);
        break;
      }
      count(i0, i1);
    }
  } else {
    count(0, n);
  }
  counts.assign(bins, 0);
  for (std::size_t b = 0; b < bins; ++b)
    counts[b] = std::int64_t(sub[b]) + sub[bins + b] + sub[2 * bins + b] + sub[3 * bins + b];
  counts[0] += 8 * zero_groups;
  while (counts.size() > 1 && counts.back() == 0) counts.pop_back();
  return true;
}

// counts[0] = the zeros of a uint8 map, counts[1] = the rest (all the foreground / background modes read).
bool count_zeros(const std::uint8_t* v, std::int64_t n, std::vector<std::int64_t>& counts) {
  std::int64_t zeros = 0;
  for (std::int64_t i0 = 0; i0 < n; i0 += 65536) {  // byte counters, summed per block
    const std::int64_t i1 = std::min(n, i0 + 65536);
    std::int64_t z = 0;
    for (std::int64_t i = i0; i < i1; ++i) z += v[i] == 0;
    zeros += z;
  }
  counts.assign(256, 0);
  counts[0] = zeros;
  counts[1] = n - zeros;
  return true;
}

// The original's weights (minibatch.py, dwd_fast.torch.ops.loss_mask) of every value of an image of
// n pixels and `rows` rows, from its histogram: float64 arithmetic, rounded to float32.
std::vector<float> weight_table(const std::vector<std::int64_t>& counts, std::int64_t n, std::int64_t rows,
                                Mask mode) {
  std::vector<float> w(counts.size(), 1.0f);
  const double N = static_cast<double>(n);
  const std::int64_t nfg = n - counts[0];
  switch (mode) {
    case Mask::none: break;
    case Mask::mask_bg:
    case Mask::mask_zeros: {
      const double v = 1.0 / static_cast<double>(nfg + 1) * (mode == Mask::mask_zeros ? double(rows + 1) : 1.0);
      std::fill(w.begin(), w.end(), static_cast<float>(v));
      w[0] = 0.0f;
      break;
    }
    case Mask::fg_bg_balanced: {
      const double fg = nfg ? N / double(nfg) : 0.0, bg = nfg < n ? N / double(n - nfg) : 0.0;
      std::fill(w.begin(), w.end(), static_cast<float>(fg));
      w[0] = static_cast<float>(bg);
      break;
    }
    case Mask::by_class:
    case Mask::by_class_no_bg: {
      for (std::size_t v = 0; v < counts.size(); ++v)
        w[v] = counts[v] ? static_cast<float>(N / double(counts[v])) : 0.0f;
      if (mode == Mask::by_class_no_bg) {
        std::size_t first = 0;
        while (first < counts.size() && counts[first] == 0) ++first;
        if (first < counts.size()) w[first] = static_cast<float>(first);
      }
      break;
    }
  }
  return w;
}

// Whether a weight table has one weight for every value above 0 (and at least two entries).
bool is_binary(const std::vector<float>& table) {
  if (table.size() < 2) return false;
  for (std::size_t v = 2; v < table.size(); ++v)
    if (table[v] != table[1]) return false;
  return true;
}

// Tables of one batch of maps for up to two modes (the energy map serves two masks).
struct Tables {
  std::vector<std::vector<float>> a, b;  // per image
  std::vector<char> binary_a, binary_b;  // per image: is_binary of its table
};

bool build_tables(const Labels& values, Shape s, Mask mode_a, const Mask* mode_b, Tables& out, int threads) {
  const std::int64_t hw = s.hw();
  if (hw >= (std::int64_t(1) << 31)) return false;
  out.a.assign(static_cast<std::size_t>(s.B), {});
  out.binary_a.assign(static_cast<std::size_t>(s.B), 0);
  if (mode_b) out.b.assign(static_cast<std::size_t>(s.B), {});
  if (mode_b) out.binary_b.assign(static_cast<std::size_t>(s.B), 0);
  std::atomic<bool> ok{true};
  // the foreground / background modes need the count of zeros only (a uint8 map's table covers 0..255)
  const auto fg_only = [](Mask m) { return m == Mask::none || m == Mask::mask_bg || m == Mask::mask_zeros ||
                                           m == Mask::fg_bg_balanced; };
  const bool zeros_only = values.dtype == DType::u8 && fg_only(mode_a) && (!mode_b || fg_only(*mode_b));
  run_units(s.B, threads, [&](std::int64_t b) {
    std::vector<std::int64_t> counts;
    const bool fine = zeros_only ? count_zeros(static_cast<const std::uint8_t*>(values.data) + b * hw, hw, counts)
                                 : with_labels(values, [&](auto* base) { return histogram(base + b * hw, hw, counts); });
    if (!fine) {
      ok = false;
      return;
    }
    if (counts.empty() || hw == 0) counts.assign(1, 0);
    const std::size_t i = static_cast<std::size_t>(b);
    out.a[i] = weight_table(counts, hw, s.H, mode_a);
    out.binary_a[i] = is_binary(out.a[i]);
    if (mode_b) {
      out.b[i] = weight_table(counts, hw, s.H, *mode_b);
      out.binary_b[i] = is_binary(out.b[i]);
    }
  });
  return ok;
}

// ---- chunks -------------------------------------------------------------------------------------------

std::int64_t units_per_image(Shape s) { return (s.hw() + kUnit - 1) / kUnit; }
std::int64_t units_of(Shape s) { return s.B * units_per_image(s); }

// A zero-padded copy of the last, partial group of an image (hw % 8 pixels) for the kernels, which read
// whole groups: `chunk` is that group over copies of the maps with channel stride 8.
struct Tail {
  Chunk chunk;
  std::int64_t src = 0;  // the group's first pixel in the image
  int lanes = 0;         // its pixels (1..7)
  std::vector<float> x, s, ts, out;

  void pad(const float* maps, std::int64_t hw, std::int64_t channels, std::vector<float>& buf) const {
    buf.assign(static_cast<std::size_t>(channels * 8), 0.0f);
    for (std::int64_t c = 0; c < channels; ++c)
      std::memcpy(&buf[static_cast<std::size_t>(c * 8)], maps + c * hw + src, sizeof(float) * lanes);
  }
  void unpad(const std::vector<float>& buf, float* maps, std::int64_t hw, std::int64_t channels) const {
    for (std::int64_t c = 0; c < channels; ++c)
      std::memcpy(maps + c * hw + src, &buf[static_cast<std::size_t>(c * 8)], sizeof(float) * lanes);
  }
};


// Weights and targets of the pixels of one image: from a table indexed by the map `vt` (the target, or
// the energy map for the sizes) or from a weight map; targets (when `t`) must be in [0, C) where weighted.
template <class T>
struct Source {
  const T* t;          // targets, or nullptr (sizes)
  const T* vt;         // table index of each pixel
  const float* table;  // or nullptr: wmap
  const float* wmap;
  std::int64_t C;

  bool zero_unweighted;  // table[0] == 0: a group of eight 0 values has no weight
  bool binary;           // table[v] is the same for every v > 0 (the foreground / background masks)

  // Stages pixels p .. p + lanes - 1 into w[0..7], tt[0..7]; returns whether one is weighted.
  bool group(std::int64_t p, int lanes, float* w, std::int32_t* tt, bool& bad) const {
    if (zero_unweighted && lanes == 8 && all_zero(vt + p)) return false;
    if (lanes == 8) {
      if (wmap) return stage8(p, w, tt, bad, [&](int i) { return wmap[p + i]; });
      if (binary) {
        const float w0 = table[0], w1 = table[1];
        return stage8(p, w, tt, bad, [&](int i) { return vt[p + i] != 0 ? w1 : w0; });
      }
      return stage8(p, w, tt, bad, [&](int i) { return table[static_cast<std::size_t>(vt[p + i])]; });
    }
    bool any = false;
    for (int i = 0; i < 8; ++i) {
      float v = 0.0f;
      std::int32_t tv = 0;
      if (i < lanes) {
        v = wmap ? wmap[p + i] : table[static_cast<std::size_t>(vt[p + i])];
        if (v != 0.0f && t) {
          const std::int64_t target = static_cast<std::int64_t>(t[p + i]);
          if (target < 0 || target >= C) {
            v = 0.0f;
            bad = true;
          }
          tv = static_cast<std::int32_t>(target);
        }
      }
      w[i] = v;
      tt[i] = v != 0.0f ? tv : 0;
      any |= v != 0.0f;
    }
    return any;
  }

  // The same for 8 pixels, without branches.
  template <class Weight>
  bool stage8(std::int64_t p, float* w, std::int32_t* tt, bool& bad, Weight&& weight) const {
    bool any = false, oob_any = false;
    for (int i = 0; i < 8; ++i) {
      const float v = weight(i);
      const std::int64_t target = t ? static_cast<std::int64_t>(t[p + i]) : 0;
      const bool oob = v != 0.0f && static_cast<std::uint64_t>(target) >= static_cast<std::uint64_t>(C);
      const bool live = v != 0.0f && !oob;
      w[i] = live ? v : 0.0f;
      tt[i] = live ? static_cast<std::int32_t>(target) : 0;
      any |= live;
      oob_any |= oob;
    }
    bad |= oob_any;
    return any;
  }
};

// Walks the pixels [q0, q1) of an image (q0 a multiple of 8) in order: chunk(c) for each full chunk and the
// last one, skip(p0, p1) for each range of pixels without weights, and tail(t) for the image's partial
// last group when it has weights. Returns whether a weighted pixel had a target outside [0, C).
template <class T, class FC, class FS, class FT>
bool walk_range(const Source<T>& src, const float* x, std::int64_t C, std::int64_t hw, std::int64_t q0, std::int64_t q1,
                FC&& chunk, FS&& skip, FT&& tail) {
  bool bad = false;
  const int limit = static_cast<int>(std::clamp<std::int64_t>(kChunkLines / C, 8, kGroups));
  Chunk c;
  c.x = x;
  c.C = C;
  c.hw = hw;
  c.n = 0;
  std::int64_t skip_from = q0;
  for (std::int64_t p = q0; p < q1; p += 8) {
    const int lanes = static_cast<int>(std::min<std::int64_t>(8, q1 - p));
    if (lanes < 8) {
      if (c.n) chunk(c);
      Tail tl;
      tl.src = p;
      tl.lanes = lanes;
      Chunk& k = tl.chunk;
      k.C = C;
      k.hw = 8;
      k.gp[0] = 0;
      k.n = src.group(p, lanes, k.w, k.t, bad) ? 1 : 0;
      if (k.n) {
        if (skip_from < p) skip(skip_from, p);
        tail(tl);
      } else {
        skip(skip_from, q1);
      }
      return bad;
    }
    if (src.group(p, 8, c.w + 8 * c.n, c.t + 8 * c.n, bad)) {
      if (skip_from < p) skip(skip_from, p);
      skip_from = p + 8;
      c.gp[c.n++] = p;
      if (c.n == limit) {
        chunk(c);
        c.n = 0;
      }
    }
  }
  if (c.n) chunk(c);
  if (skip_from < q1) skip(skip_from, q1);
  return bad;
}

// Unit u's pixels [q0, q1) of its image.
std::int64_t unit_begin(Shape s, std::int64_t u) { return (u % units_per_image(s)) * kUnit; }
std::int64_t unit_end(Shape s, std::int64_t u) { return std::min(s.hw(), unit_begin(s, u) + kUnit); }

template <class T, class FC, class FS, class FT>
bool walk_unit(const Source<T>& src, const float* x, std::int64_t C, Shape s, std::int64_t u, FC&& chunk, FS&& skip,
               FT&& tail) {
  return walk_range(src, x, C, s.hw(), unit_begin(s, u), unit_end(s, u), chunk, skip, tail);
}

// Runs body(u, b, source) over every unit; make(b, typed map base) gives image b's Source. Returns
// whether a body reported a bad target.
template <class Make, class Body>
bool each_unit(const Labels& labels, Shape s, int threads, Make&& make, Body&& body) {
  std::atomic<bool> bad{false};
  run_units(units_of(s), threads, [&](std::int64_t u) {
    const std::int64_t b = u / units_per_image(s);
    with_labels(labels, [&](auto* base) {
      if (body(u, b, make(b, base))) bad = true;
      return 0;
    });
  });
  return bad;
}

// Cross-entropy units: weights from `tables` (indexed by the target) or the map `weight`.
template <class Body>
bool each_ce_unit(std::int64_t C, const Labels& target, const Tables* tables, const float* weight, Shape s,
                  int threads, Body&& body) {
  const std::int64_t hw = s.hw();
  return each_unit(
      target, s, threads,
      [&](std::int64_t b, auto* base) {
        using T = std::remove_cv_t<std::remove_pointer_t<decltype(base)>>;
        const T* t = base + b * hw;
        const std::size_t i = static_cast<std::size_t>(b);
        const float* table = tables ? tables->a[i].data() : nullptr;
        return Source<T>{t, t, table, weight ? weight + b * hw : nullptr, C, table && table[0] == 0.0f,
                         tables && tables->binary_a[i]};
      },
      body);
}

void zero_range(float* maps, std::int64_t hw, std::int64_t channels, std::int64_t p0, std::int64_t p1) {
  for (std::int64_t c = 0; c < channels; ++c) std::memset(maps + c * hw + p0, 0, sizeof(float) * (p1 - p0));
}

// Cross-entropy sums of each unit into part[u * width + slot].
Status ce_sums(const float* logits, std::int64_t C, const Labels& target, const Tables* tables, const float* weight,
               Shape s, std::vector<double>& part, int slot, int width, int threads) {
  const Kernels& K = kernels();
  const std::int64_t hw = s.hw();
  const bool bad = each_ce_unit(C, target, tables, weight, s, threads, [&](std::int64_t u, std::int64_t b,
                                                                          const auto& src) {
    const float* x = logits + b * C * hw;
    double sum = 0;
    std::int64_t q0 = unit_begin(s, u);
    const std::int64_t q1 = unit_end(s, u);
    bool bad_unit = false;
    if constexpr (std::is_same_v<std::remove_cv_t<std::remove_reference_t<decltype(*src.t)>>, std::uint8_t>) {
      if (src.table && src.binary && !src.zero_unweighted && src.table[1] != 0.0f) {  // every pixel weighted
        const DenseCe d{x, C, hw, src.t, q0, (q1 - q0) / 8, src.table[0], src.table[1]};
        bad_unit = !K.ce_dense(d, sum);
        q0 += 8 * d.groups;
      }
    }
    bad_unit |= walk_range(
        src, x, C, hw, q0, q1, [&](const Chunk& c) { sum += K.ce_forward(c); }, [](std::int64_t, std::int64_t) {},
        [&](Tail& tl) {
          tl.pad(x, hw, C, tl.x);
          tl.chunk.x = tl.x.data();
          sum += K.ce_forward(tl.chunk);
        });
    part[static_cast<std::size_t>(u * width + slot)] = sum;
    return bad_unit;
  });
  return bad ? Status::bad_target : Status::ok;
}

// Cross-entropy gradient into out (every element written); grad[b * grad_stride] is image b's.
Status ce_grads(const float* logits, std::int64_t C, const Labels& target, const Tables* tables, const float* weight,
                Shape s, const float* grad, std::int64_t grad_stride, float* out, int threads) {
  const Kernels& K = kernels();
  const std::int64_t hw = s.hw();
  const bool bad = each_ce_unit(C, target, tables, weight, s, threads, [&](std::int64_t u, std::int64_t b,
                                                                          const auto& src) {
    const float* x = logits + b * C * hw;
    float* o = out + b * C * hw;
    const float scale = grad[b * grad_stride] / static_cast<float>(hw);
    return walk_unit(
        src, x, C, s, u, [&](const Chunk& c) { K.ce_backward(c, scale, o); },
        [&](std::int64_t p0, std::int64_t p1) { zero_range(o, hw, C, p0, p1); },
        [&](Tail& tl) {
          tl.pad(x, hw, C, tl.x);
          tl.chunk.x = tl.x.data();
          tl.out.assign(static_cast<std::size_t>(C * 8), 0.0f);
          K.ce_backward(tl.chunk, scale, tl.out.data());
          tl.unpad(tl.out, o, hw, C);
        });
  });
  return bad ? Status::bad_target : Status::ok;
}

// Per-image sums of the per-unit partials, in unit order, over norm.
void reduce(Shape s, const std::vector<double>& part, int width, double* out, double norm) {
  const std::int64_t per = units_per_image(s);
  for (std::int64_t b = 0; b < s.B; ++b)
    for (int c = 0; c < width; ++c) {
      double t = 0;
      for (std::int64_t u = b * per; u < (b + 1) * per; ++u) t += part[static_cast<std::size_t>(u * width + c)];
      out[b * width + c] = t / norm;
    }
}

struct LossTables {
  Tables energy;  // a: energy mask, b: size mask (both from t_energy)
  Tables classes;
};

bool loss_tables(const DwdLoss& a, Shape s, LossTables& t, int threads) {
  return build_tables(a.t_energy, s, a.energy_mask, &a.size_mask, t.energy, threads) &&
         build_tables(a.t_classes, s, a.class_mask, nullptr, t.classes, threads);
}

// Size units: weights from table energy.b indexed by t_energy; body(u, b, source).
template <class Body>
void each_size_unit(const DwdLoss& a, const LossTables& tab, Shape s, int threads, Body&& body) {
  const std::int64_t hw = s.hw();
  each_unit(
      a.t_energy, s, threads,
      [&](std::int64_t b, auto* base) {
        using T = std::remove_cv_t<std::remove_pointer_t<decltype(base)>>;
        const std::size_t i = static_cast<std::size_t>(b);
        const float* table = tab.energy.b[i].data();
        return Source<T>{nullptr, base + b * hw, table, nullptr, 2, table[0] == 0.0f, tab.energy.binary_b[i] != 0};
      },
      [&](std::int64_t u, std::int64_t b, const auto& src) {
        body(u, b, src);
        return false;
      });
}

}  // namespace

// ---- entry points ----------------------------------------------------------------------------------------

const char* use_kernels(const std::string& best) {
  const auto& sets = kernel_sets();
  int i = 0;
  if (best != "best") {
    while (i < static_cast<int>(sets.size()) && best != sets[static_cast<std::size_t>(i)].name) ++i;
    if (i == static_cast<int>(sets.size())) return nullptr;
  }
  best_allowed = i;
  return kernel_set().name;
}

Status mask(const Labels& values, Shape s, Mask mode, float* out, int threads) {
  Tables tab;
  if (!build_tables(values, s, mode, nullptr, tab, threads)) return Status::fallback;
  const std::int64_t hw = s.hw(), per = units_per_image(s);
  run_units(units_of(s), threads, [&](std::int64_t u) {
    const std::int64_t b = u / per, q0 = unit_begin(s, u), q1 = unit_end(s, u);
    const float* table = tab.a[static_cast<std::size_t>(b)].data();
    float* o = out + b * hw;
    with_labels(values, [&](auto* base) {
      const auto* v = base + b * hw;
      for (std::int64_t p = q0; p < q1; ++p) o[p] = table[static_cast<std::size_t>(v[p])];
      return 0;
    });
  });
  return Status::ok;
}

Status masked_ce(const float* logits, std::int64_t channels, const Labels& target, const float* weight, Shape s,
                 double* out, int threads) {
  std::vector<double> part(static_cast<std::size_t>(units_of(s)), 0.0);
  const Status st = ce_sums(logits, channels, target, nullptr, weight, s, part, 0, 1, threads);
  if (st != Status::ok) return st;
  reduce(s, part, 1, out, static_cast<double>(s.hw()));
  return Status::ok;
}

Status masked_ce_backward(const float* logits, std::int64_t channels, const Labels& target, const float* weight,
                          Shape s, const float* grad, float* grad_out, int threads) {
  return ce_grads(logits, channels, target, nullptr, weight, s, grad, 1, grad_out, threads);
}

Status dwd_loss(const DwdLoss& a, Shape s, double* out, int threads) {
  LossTables tab;
  if (!loss_tables(a, s, tab, threads)) return Status::fallback;
  const std::int64_t hw = s.hw();
  std::vector<double> part(static_cast<std::size_t>(units_of(s) * 3), 0.0);
  Status st = ce_sums(a.energy, a.levels, a.t_energy, &tab.energy, nullptr, s, part, 0, 3, threads);
  if (st != Status::ok) return st;
  st = ce_sums(a.classes, a.num_classes, a.t_classes, &tab.classes, nullptr, s, part, 1, 3, threads);
  if (st != Status::ok) return st;
  const Kernels& K = kernels();
  each_size_unit(a, tab, s, threads, [&](std::int64_t u, std::int64_t b, const auto& src) {
    const float* sz = a.sizes + b * 2 * hw;
    const float* ts = a.t_sizes + b * 2 * hw;
    double sum = 0;
    walk_unit(
        src, nullptr, 2, s, u, [&](const Chunk& c) { sum += K.size_forward(c, sz, ts, a.l1); },
        [](std::int64_t, std::int64_t) {},
        [&](Tail& tl) {
          tl.pad(sz, hw, 2, tl.s);
          tl.pad(ts, hw, 2, tl.ts);
          sum += K.size_forward(tl.chunk, tl.s.data(), tl.ts.data(), a.l1);
        });
    part[static_cast<std::size_t>(u * 3 + 2)] = sum;
  });
  reduce(s, part, 3, out, static_cast<double>(hw));
  for (std::int64_t b = 0; b < s.B; ++b) out[b * 3 + 2] /= 2.0;
  return Status::ok;
}

Status dwd_loss_backward(const DwdLoss& a, Shape s, const float* grad, float* g_energy, float* g_classes,
                         float* g_sizes, int threads) {
  LossTables tab;
  if (!loss_tables(a, s, tab, threads)) return Status::fallback;
  Status st = ce_grads(a.energy, a.levels, a.t_energy, &tab.energy, nullptr, s, grad, 3, g_energy, threads);
  if (st != Status::ok) return st;
  st = ce_grads(a.classes, a.num_classes, a.t_classes, &tab.classes, nullptr, s, grad + 1, 3, g_classes, threads);
  if (st != Status::ok) return st;
  const Kernels& K = kernels();
  const std::int64_t hw = s.hw();
  each_size_unit(a, tab, s, threads, [&](std::int64_t u, std::int64_t b, const auto& src) {
    const float* sz = a.sizes + b * 2 * hw;
    const float* ts = a.t_sizes + b * 2 * hw;
    float* o = g_sizes + b * 2 * hw;
    const float scale = grad[b * 3 + 2] / static_cast<float>(2 * hw);
    walk_unit(
        src, nullptr, 2, s, u, [&](const Chunk& c) { K.size_backward(c, sz, ts, a.l1, scale, o); },
        [&](std::int64_t p0, std::int64_t p1) { zero_range(o, hw, 2, p0, p1); },
        [&](Tail& tl) {
          tl.pad(sz, hw, 2, tl.s);
          tl.pad(ts, hw, 2, tl.ts);
          tl.out.assign(16, 0.0f);
          K.size_backward(tl.chunk, tl.s.data(), tl.ts.data(), a.l1, scale, tl.out.data());
          tl.unpad(tl.out, o, hw, 2);
        });
  });
  return Status::ok;
}

}  // namespace loss
}  // namespace cpu
}  // namespace dwd
