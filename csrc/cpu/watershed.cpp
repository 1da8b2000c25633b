#include "cpu/watershed.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "cpu/flood.h"
#include "cpu/parallel.h"
#include "cpu/runs.h"
#include "cpu/sk_heap.h"

namespace dwd {
namespace cpu {
namespace {

// ---- method="skimage": scikit-image 0.26's priority flooding, its binary heap's tie rules included ----
//
// scikit-image orders heap items by (value as float64, age) with an int32 age. Here the float64 value
// is mapped to order-preserving unsigned bits; for types whose float64 values have 32-bit images
// (integers up to 32 bits, float32) value and age share one 64-bit key: one comparison per sift step.
struct SkItem {
  std::uint64_t key;  // value bits (and, when narrow, << 32 | age)
  std::uint32_t aux;  // wide keys: the age (pages hold fewer than 2^31 pixels, so ages never wrap);
                      // narrow keys: the pixel's component (1..), carried from seed to flooded pixels
  std::int32_t index;
};

template <class T>
constexpr bool kNarrowKey = sizeof(T) <= 4;

template <class T>
inline std::uint64_t value_bits(T v) {
  if constexpr (std::is_integral<T>::value && sizeof(T) <= 4) {
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(v) - static_cast<std::int64_t>(std::numeric_limits<T>::lowest()));
  } else if constexpr (std::is_same<T, float>::value) {
    const float f = v == 0.0f ? 0.0f : v;  // -0 == +0
    std::uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return (b >> 31) ? ~b : (b | 0x80000000u);
  } else {
    double d = static_cast<double>(v);  // scikit-image compares float64 values
    if (d == 0.0) d = 0.0;
    std::uint64_t b;
    std::memcpy(&b, &d, sizeof b);
    return (b >> 63) ? ~b : (b | (std::uint64_t(1) << 63));
  }
}

template <bool Narrow>
struct SkOrder {
  static std::uint64_t bits(const SkItem& it) { return Narrow ? it.key >> 32 : it.key; }
  static SkItem make(std::uint64_t bits, std::uint32_t age, std::int32_t index, std::uint32_t comp) {
    return Narrow ? SkItem{bits << 32 | age, comp, index} : SkItem{bits, age, index};
  }
  static std::uint32_t age(const SkItem& it) { return Narrow ? static_cast<std::uint32_t>(it.key) : it.aux; }
  static bool less(const SkItem& a, const SkItem& b) {
    if constexpr (Narrow) return a.key < b.key;
    else return a.key < b.key || (a.key == b.key && a.aux < b.aux);
  }
};

// scikit-image's array heap over SkItem (sk_heap.h).
template <bool Narrow>
struct SkLess {
  bool operator()(const SkItem& a, const SkItem& b) const { return SkOrder<Narrow>::less(a, b); }
};
template <bool Narrow>
using SkHeap = SkBinaryHeap<SkItem, SkLess<Narrow>>;

// The flood after the seeds' ties are settled: a monotone priority queue (every pushed value is at
// least the last popped one) in (value, push order): a radix heap with FIFO buckets and 8-bit digits
// (RadixBuckets, flood.h). The "equal" list holds the items whose value bits equal the last popped
// value's; when it runs dry, the lowest non-empty bucket's smallest value becomes the last popped value
// and its items move to the equal list or to lower buckets, their order kept. Among equal values every
// bucket stays in push order, so the equal list pops exactly the (value, age) order, and ages need not
// be stored. Items are 8 bytes for 32-bit value keys, 12 for 64-bit ones; each moves at most
// sizeof(key) times, about log_256(pending) on random values (1-bit digits before: about log_2). The
// equal list holds indices only and drops its popped prefix as it goes (on a plateau it is the flood's
// whole front: it stays in cache).
//
// (The per-value FIFO lists in an unsorted array before the radix heap cost O(distinct values pending)
// per push and pop: quadratic on float reliefs with fine noise, where nearly every pixel has a value
// of its own.)
template <bool Narrow>
class SkRadix {
 public:
  using Bits = typename std::conditional<Narrow, std::uint32_t, std::uint64_t>::type;

  // Operation counts (for tests of the queue's complexity): items pushed, moved between buckets, and
  // refills (the equal list run dry).
  struct Counts {
    std::uint64_t pushes = 0, moves = 0, refills = 0;
  };

  // Empty; every value pushed from now on must be at least `floor`.
  void reset(Bits floor) {
    q_.set_last(floor);
    eq_.clear();
    head_ = 0;
  }
  void push(Bits b, std::int32_t index) {
    ++pushes_;
    if (b != q_.last()) {
      q_.add(b, index);
      return;
    }
    if (head_ >= 4096 && 2 * head_ >= eq_.size()) {  // drop the popped prefix (amortised O(1))
      eq_.erase(eq_.begin(), eq_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    eq_.push_back(index);
  }
  // The index pop() returns k pops after the next one, if it lies in the equal list already (pushes go
  // after it), or -1.
  std::int32_t peek_equal(std::size_t k) const { return head_ + k < eq_.size() ? eq_[head_ + k] : -1; }
  // The index pop() returns next if nothing is pushed before (to fetch its neighbourhood ahead), or -1.
  std::int32_t peek() const {
    if (head_ < eq_.size()) return eq_[head_];
    return q_.empty() ? -1 : q_.peek();
  }
  // The next index, with its value bits (the last popped value) in `bits`.
  bool pop(std::int32_t& index, Bits& bits) {
    if (head_ == eq_.size()) {
      eq_.clear();
      head_ = 0;
      if (q_.empty()) return false;
      ++refills_;
      q_.refill([this](std::int32_t i) { eq_.push_back(i); });
    }
    index = eq_[head_++];
    bits = q_.last();
    return true;
  }
  Counts counts() const { return Counts{pushes_, q_.moves(), refills_}; }

 private:
  RadixBuckets<Bits> q_;
  std::vector<std::int32_t> eq_;
  std::size_t head_ = 0;
  std::uint64_t pushes_ = 0, refills_ = 0;
};

// comp_at: the component (1..n_comp) of a pixel (a packed page's), or all in one; marker_comp (or
// null: all in component 1) the markers'. Narrow keys carry the component in their items, wide keys
// look it up with comp_at. Bordered: see canonical() (pixels outside the mask hold kOutside in `out`).
// After the seeds, components are flooded in the order comp_order (n_comp ids; null: 1..n_comp), and
// warm(c) is called before the component before c is flooded (to fetch c's pixels meanwhile).
struct OneComponent {
  std::int32_t operator()(index_t) const { return 1; }
};
struct NoWarm {
  void operator()(std::int32_t) const {}
};
struct UnitWeight {
  std::int64_t operator()(std::int32_t) const { return 1; }
};

// An uninitialised array of n trivial T, on 2 MB pages where Linux allows it (transparent huge pages on
// request): the flood's reads are scattered over tens of MB, far beyond what the TLB maps in 4 KB pages,
// and each miss would add a page walk to the cache miss.
template <class T>
class HugeArray {
 public:
  explicit HugeArray(std::size_t n) {
#if defined(__linux__)
    constexpr std::size_t kHuge = std::size_t(2) << 20;
    const std::size_t bytes = (n * sizeof(T) + kHuge - 1) / kHuge * kHuge;
    p_ = static_cast<T*>(std::aligned_alloc(kHuge, bytes));
    if (p_ == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(p_, bytes, MADV_HUGEPAGE);  // a request: without huge pages the memory is as good
#endif
#else
    p_ = static_cast<T*>(std::malloc(n * sizeof(T)));
    if (p_ == nullptr) throw std::bad_alloc();
#endif
  }
  ~HugeArray() { std::free(p_); }
  HugeArray(const HugeArray&) = delete;
  HugeArray& operator=(const HugeArray&) = delete;
  T* get() const { return p_; }

 private:
  T* p_ = nullptr;
};

// A framed page's pixel, value and label side by side: a neighbour's test and value are one cache line.
template <class T>
struct Cell {
  T value;
  std::int32_t label;
};

// Cells (Interleaved, implies Bordered): the page is `cells` (value and label of each pixel, outside
// pixels labelled kOutside); img and out only give its shape.
template <class T, bool Bordered = false, class CompOf = OneComponent, class Warm = NoWarm, class Weight = UnitWeight,
          bool Interleaved = false>
void skimage_flood(const ImageView<const T> img, const index_t* marker_px, const std::int32_t* marker_id,
                   std::size_t n_markers, const std::uint8_t* mask, index_t mstride, int connectivity,
                   ImageView<std::int32_t> out, CompOf comp_at = CompOf(), std::int32_t n_comp = 1,
                   const std::int32_t* marker_comp = nullptr, const std::int32_t* comp_order = nullptr,
                   Warm warm = Warm(), Weight weight = Weight(), std::int64_t work = 0,
                   SkimageCounts* counts = nullptr, Cell<T>* cells = nullptr) {
  static_assert(!Interleaved || Bordered, "interleaved cells are a framed page");
  constexpr bool Narrow = kNarrowKey<T>;
  using O = SkOrder<Narrow>;
  const Neighbours nb(connectivity);
  const index_t rows = img.rows, cols = img.cols;
  if (rows * cols >= (index_t(1) << 31)) throw std::invalid_argument("image has 2^31 pixels or more");
  index_t delta[8];
  for (int k = 0; k < nb.n; ++k) delta[k] = nb.dr[k] * cols + nb.dc[k];
  std::int32_t* const lab = out.data;
  // The label and value of pixel p (of a contiguous page when Bordered).
  auto L = [&](index_t p) -> std::int32_t& {
    if constexpr (Interleaved) return cells[p].label;
    else return lab[p];
  };
  auto V = [&](index_t p) -> T {
    if constexpr (Interleaved) return cells[p].value;
    else if constexpr (Bordered) return img.data[p];
    else return img(p / cols, p % cols);
  };
  SkHeap<Narrow> heap;
  heap.reserve(n_markers * 2);
  for (std::size_t k = 0; k < n_markers; ++k) {  // raster order, like np.flatnonzero
    const index_t p = marker_px[k];
    L(p) = marker_id[k];
    const T value = V(p);
    heap.push(O::make(value_bits(value), 0, static_cast<std::int32_t>(p),
                      marker_comp ? static_cast<std::uint32_t>(marker_comp[k]) : 1u));
  }
  // Ties between equal keys exist only among the seeds (age 0): every other item has its own age.
  // So the binary heap, whose sift order decides those ties, is needed only while two seeds of one
  // value are in it; afterwards (value, age) is a total order and any exact priority queue pops the
  // same sequence: a radix heap with FIFO buckets (ages grow with every push, and a pushed value is
  // never below the popped one). Nor do components interact then: each one's items pop in the same
  // relative order when it is flooded alone, so each is finished while it is in cache.
  // Only ties inside one component matter: components never interact, so the order between seeds of
  // different components changes no label (only ages compared across components, never compared).
  // tied: the seeds that share their (component, value) with another seed still in the heap (counts in
  // seed_value / seed_count).
  using SeedKey = std::pair<std::uint32_t, std::uint64_t>;
  std::vector<SeedKey> seed_value(n_markers);
  for (std::size_t k = 0; k < n_markers; ++k) {
    const index_t p = marker_px[k];
    seed_value[k] = SeedKey(marker_comp ? static_cast<std::uint32_t>(marker_comp[k]) : 1u, value_bits(V(p)));
  }
  std::sort(seed_value.begin(), seed_value.end());
  std::vector<std::uint32_t> seed_count;
  std::size_t tied = count_seed_ties(seed_value, seed_count);
  // Labels with le every neighbour q of p not labelled yet (nor outside the mask), in scikit-image's
  // order, and calls f(q, value of q): a pixel is labelled when pushed.
  auto each_new = [&](index_t p, std::int32_t le, auto&& f) {
    if constexpr (Bordered) {
      for (int k = 0; k < nb.n; ++k) {
        const index_t q = p + delta[k];
        std::int32_t& lq = L(q);
        if (lq != 0) continue;  // labelled, or outside the mask
        lq = le;
        f(q, V(q));
      }
    } else {
      const index_t r = p / cols, c = p % cols;
      for (int k = 0; k < nb.n; ++k) {
        const index_t rr = r + nb.dr[k], cc = c + nb.dc[k];
        if (rr < 0 || rr >= rows || cc < 0 || cc >= cols || !in_mask(mask, mstride, rr, cc)) continue;
        const index_t q = rr * cols + cc;
        if (lab[q] != 0) continue;
        lab[q] = le;
        f(q, img(rr, cc));
      }
    }
  };
  // Fetches pixel p's neighbourhood (its labels and values, rows above and below) ahead of its expansion.
  auto prefetch_around = [&](index_t p) {
    if constexpr (Interleaved) {
      __builtin_prefetch(cells + p - cols);
      __builtin_prefetch(cells + p);
      __builtin_prefetch(cells + p + cols);
      return;
    }
    __builtin_prefetch(lab + p - cols);
    __builtin_prefetch(lab + p);
    __builtin_prefetch(lab + p + cols);
    if constexpr (Bordered) {
      __builtin_prefetch(img.data + p - cols);
      __builtin_prefetch(img.data + p);
      __builtin_prefetch(img.data + p + cols);
    } else {
      const index_t r = p / cols, c = p % cols;
      const T* at = &img(r, c);
      if (r > 0) __builtin_prefetch(at - img.stride_r);
      __builtin_prefetch(at);
      if (r + 1 < rows) __builtin_prefetch(at + img.stride_r);
    }
  };
  std::uint32_t age = 1;
  std::uint64_t heap_pops = 0;
  while (!heap.empty() && tied > 0) {
    const SkItem e = heap.pop();
    ++heap_pops;
    if (!heap.empty()) prefetch_around(heap.top().index);  // most often the next item to expand
    if (O::age(e) == 0) {
      const std::uint32_t comp =
          marker_comp ? (Narrow ? e.aux : static_cast<std::uint32_t>(comp_at(e.index))) : 1u;
      const std::size_t v = static_cast<std::size_t>(
          std::lower_bound(seed_value.begin(), seed_value.end(), SeedKey(comp, O::bits(e))) - seed_value.begin());
      if (seed_count[v]-- >= 2) --tied;  // its value's last seed was tied to this one
    }
    const std::uint64_t eb = O::bits(e);
    each_new(e.index, L(e.index), [&](index_t q, T value) {
      const std::uint64_t vb = value_bits(value);
      heap.push(O::make(vb < eb ? eb : vb, ++age, static_cast<std::int32_t>(q), e.aux));
    });
  }
  std::vector<SkItem> rest = heap.take();
  // Group the remaining items by component (a counting sort), each group in (value, age) order.
  std::vector<std::size_t> start(static_cast<std::size_t>(n_comp) + 1, 0);
  auto comp_of = [&](const SkItem& it) -> std::size_t {
    return static_cast<std::size_t>((Narrow ? static_cast<std::int32_t>(it.aux) : comp_at(it.index)) - 1);
  };
  for (const SkItem& it : rest) ++start[comp_of(it) + 1];
  for (std::size_t k = 0; k < static_cast<std::size_t>(n_comp); ++k) start[k + 1] += start[k];
  std::vector<SkItem> grouped(rest.size());
  {
    std::vector<std::size_t> pos(start.begin(), start.end() - 1);
    for (const SkItem& it : rest) grouped[pos[comp_of(it)]++] = it;
  }
  rest = std::vector<SkItem>();
  seed_value = std::vector<SeedKey>();
  seed_count = std::vector<std::uint32_t>();
  // The threads take contiguous stretches of comp_order (of near-equal weight(c)), each with its own
  // radix heap, whose FIFO buckets keep the ages' order without storing them.
  using Queue = SkRadix<Narrow>;
  constexpr std::size_t kAhead = 6;  // items of the equal list whose neighbourhoods are fetched ahead
  using Bits = typename Queue::Bits;
  auto comp_at_rank = [&](std::int64_t i) { return comp_order ? comp_order[i] : static_cast<std::int32_t>(i + 1); };
  const int nt = phase_threads(work, n_comp);
  std::vector<std::int64_t> cut(static_cast<std::size_t>(nt) + 1);
  weighted_parts(
      n_comp, nt, [&](std::int64_t i) { return weight(comp_at_rank(i)); },
      [&](int t, std::int64_t i) { cut[static_cast<std::size_t>(t)] = i; });
  std::vector<typename Queue::Counts> thread_counts(static_cast<std::size_t>(nt));
  on_threads(nt, [&](int t) {
    std::unique_ptr<Queue> queue(new Queue());  // ~50 KB of bucket headers: not on the stack
    for (std::int64_t i = cut[t]; i < cut[t + 1]; ++i) {
      const std::size_t g = static_cast<std::size_t>(comp_at_rank(i) - 1);
      if (i + 1 < cut[t + 1]) warm(comp_at_rank(i + 1));
      if (start[g] == start[g + 1]) continue;
      std::sort(grouped.begin() + static_cast<std::ptrdiff_t>(start[g]), grouped.begin() + static_cast<std::ptrdiff_t>(start[g + 1]),
                [](const SkItem& a, const SkItem& b) { return O::less(a, b); });
      queue->reset(static_cast<Bits>(O::bits(grouped[start[g]])));
      for (std::size_t k = start[g]; k < start[g + 1]; ++k)
        queue->push(static_cast<Bits>(O::bits(grouped[k])), grouped[k].index);
      std::int32_t p;
      Bits eb;
      while (queue->pop(p, eb)) {
        const std::int32_t n = queue->peek();
        if (n >= 0) prefetch_around(n);  // most often the next to expand
        const std::int32_t a = queue->peek_equal(kAhead);
        if (a >= 0) prefetch_around(a);  // sure to be expanded soon
        each_new(p, L(p), [&](index_t q, T value) {
          const Bits vb = static_cast<Bits>(value_bits(value));
          // Joins the equal list, so is expanded soon; wide (float64) keys only: there the list is
          // mostly empty and gives no look-ahead (measured: 5-7% on a noisy float page, none on ints).
          if constexpr (!Narrow)
            if (vb <= eb) prefetch_around(q);
          queue->push(vb < eb ? eb : vb, static_cast<std::int32_t>(q));
        });
      }
    }
    thread_counts[static_cast<std::size_t>(t)] = queue->counts();
  });
  if (counts != nullptr) {
    counts->heap_pops = heap_pops;
    for (const auto& c : thread_counts) {
      counts->queue_pushes += c.pushes;
      counts->queue_moves += c.moves;
      counts->queue_refills += c.refills;
    }
  }
}

template <class T>
void flood(const ImageView<const T> img, const index_t* px, const std::int32_t* id, std::size_t n,
           const std::uint8_t* mask, index_t mstride, int connectivity, WatershedMethod method,
           ImageView<std::int32_t> out, SkimageCounts* counts) {
  if (method == WatershedMethod::canonical) {
    CanonicalWork<T> work;
    canonical<T>(img, px, id, n, mask, mstride, connectivity, out, work);
  } else {
    skimage_flood<T>(img, px, id, n, mask, mstride, connectivity, out, OneComponent(), 1, nullptr, nullptr, NoWarm(),
                     UnitWeight(), 0, counts);
  }
}

const std::uint8_t* mask_data(const Planes& mask, index_t& stride) {
  if (!mask.present()) return nullptr;
  if (mask.dtype != DType::u8 && mask.dtype != DType::i8)
    throw std::invalid_argument("mask must be a bool array");
  stride = mask.stride_r;
  return static_cast<const std::uint8_t*>(mask.data);
}

// The marker runs (maximal stretches of one non-zero value) inside the mask runs [first, last) of a
// marker image (base, row stride), in order, into out_runs / out_val; returns their count. A sparse
// mask's runs are short and rows apart, so each one's markers are a cache miss of their own: those of
// later runs are fetched ahead.
template <class T>
std::size_t scan_marker_runs(const Run* first, const Run* last, const T* base, index_t stride, MarkerRun* out_runs,
                             T* out_val) {
  constexpr std::ptrdiff_t kAhead = 16;
  MarkerRun* o = out_runs;
  T* ov = out_val;
  for (const Run* run = first; run < last; ++run) {
    if (last - run > kAhead) {
      const Run& a = run[kAhead];
      const T* row = base + a.row * stride;
      __builtin_prefetch(row + a.c0);
      __builtin_prefetch(row + a.c1 - 1);
    }
    const T* row = base + run->row * stride;
    const std::int32_t end = run->c1, comp = run->id;
    std::int32_t c = run->c0;
    while (c < end) {
      const T value = row[c];
      const std::int32_t c0 = c;
      while (++c < end && row[c] == value) {
      }
      if (value != T(0)) {
        *o++ = MarkerRun{run->row, c0, c, 0, comp};
        *ov++ = value;
      }
    }
  }
  return static_cast<std::size_t>(o - out_runs);
}

}  // namespace

Markers find_markers(const Planes& markers, const Planes& mask, int connectivity) {
  index_t ms = 0;
  const std::uint8_t* mk = mask_data(mask, ms);
  Markers m;
  m.has_comps = mk != nullptr;
  dispatch(markers.dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point<T>::value) {
      throw std::invalid_argument("markers must be an integer array");
    } else {
      const ImageView<const T> v = plane_view<T>(markers, 0);
      std::vector<T> val;  // value of each run
      if (m.has_comps) {
        // Only the mask's pixels can hold markers: read just those, along the mask's runs. A sparse
        // mask's runs are short and rows apart, so each one's markers are a cache miss of their own:
        // the runs are all found first, then scanned with the markers of later runs fetched ahead,
        // the threads taking contiguous stretches of runs (their results concatenated in order).
        m.comps.build(MaskRuns{mk, ms, markers.cols}, markers.rows, markers.cols, connectivity);
        const std::vector<Run>& runs = m.comps.runs;
        const std::int64_t n_runs = static_cast<std::int64_t>(runs.size());
        const int nt = phase_threads(n_runs * 16, n_runs);
        std::vector<std::unique_ptr<MarkerRun[]>> part_runs(static_cast<std::size_t>(nt));
        std::vector<std::unique_ptr<T[]>> part_val(static_cast<std::size_t>(nt));
        std::vector<std::size_t> part_n(static_cast<std::size_t>(nt), 0);
        on_threads(nt, [&](int t) {
          const std::int64_t k0 = part_begin(n_runs, t, nt), k1 = part_begin(n_runs, t + 1, nt);
          std::size_t cap = 0;  // a stretch holds at most one marker run per pixel
          for (std::int64_t k = k0; k < k1; ++k) cap += static_cast<std::size_t>(runs[k].c1 - runs[k].c0);
          part_runs[t].reset(new MarkerRun[cap]);
          part_val[t].reset(new T[cap]);
          part_n[t] = scan_marker_runs(runs.data() + k0, runs.data() + k1, v.data, v.stride_r, part_runs[t].get(),
                                       part_val[t].get());
        });
        std::size_t total = 0;
        for (int t = 0; t < nt; ++t) total += part_n[t];
        m.runs.reserve(total);
        val.reserve(total);
        for (int t = 0; t < nt; ++t) {
          m.runs.insert(m.runs.end(), part_runs[t].get(), part_runs[t].get() + part_n[t]);
          val.insert(val.end(), part_val[t].get(), part_val[t].get() + part_n[t]);
        }
      } else {
        // A whole row: skip the background with the vectorised search.
        for (index_t r = 0; r < v.rows; ++r) {
          const T* row = v.row(r);
          for (index_t c = find_nonzero(row, 0, v.cols); c < v.cols; c = find_nonzero(row, c, v.cols)) {
            const T value = row[c];
            const index_t c0 = c;
            while (c < v.cols && row[c] == value) ++c;
            m.runs.push_back(MarkerRun{r, static_cast<std::int32_t>(c0), static_cast<std::int32_t>(c), 0, 0});
            val.push_back(value);
          }
        }
      }
      // Dense labels: the rank of each value among the distinct values. Label images (values 1..M,
      // the usual markers) take a direct table; other values a sort.
      if (val.empty()) return;
      const auto [lo_it, hi_it] = std::minmax_element(val.begin(), val.end());
      const T lo = *lo_it, hi = *hi_it;
      const double span = static_cast<double>(hi) - static_cast<double>(lo);
      std::vector<std::int32_t> rank;  // id of each run
      rank.reserve(val.size());
      std::size_t distinct = 0;
      if (span < 4.0 * static_cast<double>(val.size()) + 65536.0) {
        std::vector<std::int32_t> table(static_cast<std::size_t>(span) + 1, 0);
        for (const T x : val) table[static_cast<std::size_t>(x - lo)] = 1;
        for (std::int32_t& t : table) t = t ? static_cast<std::int32_t>(++distinct) : 0;
        for (const T x : val) rank.push_back(table[static_cast<std::size_t>(x - lo)]);
      } else {
        std::vector<T> uniq(val);
        std::sort(uniq.begin(), uniq.end());
        uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
        distinct = uniq.size();
        for (const T x : val)
          rank.push_back(static_cast<std::int32_t>(std::lower_bound(uniq.begin(), uniq.end(), x) - uniq.begin()) + 1);
      }
      if (distinct > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max() - 1))
        throw std::invalid_argument("markers hold more distinct labels than int32 can index");
      m.first_pixel.assign(distinct, -1);
      for (std::size_t k = 0; k < val.size(); ++k) {
        m.runs[k].id = rank[k];
        if (m.first_pixel[rank[k] - 1] < 0) m.first_pixel[rank[k] - 1] = m.runs[k].row * v.cols + m.runs[k].c0;
      }
    }
  });
  return m;
}

namespace {

// The pixels of the marker runs keep(run) accepts (raster indices, `cols` wide rows), with their
// labels and comp(run).
struct MarkerPixels {
  std::vector<index_t> px;
  std::vector<std::int32_t> ids, comps;
};

template <class Keep, class Comp>
MarkerPixels marker_pixels(const Markers& m, index_t cols, Keep&& keep, Comp&& comp) {
  std::size_t n = 0;
  for (const MarkerRun& run : m.runs)
    if (keep(run)) n += static_cast<std::size_t>(run.c1 - run.c0);
  MarkerPixels mp;
  mp.px.reserve(n);
  mp.ids.reserve(n);
  mp.comps.reserve(n);
  for (const MarkerRun& run : m.runs) {
    if (!keep(run)) continue;
    const std::int32_t c = comp(run);
    for (index_t col = run.c0; col < run.c1; ++col) {
      mp.px.push_back(run.row * cols + col);
      mp.ids.push_back(run.id);
      mp.comps.push_back(c);
    }
  }
  return mp;
}

// Canonical flood inside a mask: components holding one label take it whole; the others are moved
// into a packed page (when it is much smaller than the page) and flooded there.
template <class T>
void canonical_masked(const ImageView<const T> v, const Markers& m, const std::uint8_t* mk, index_t ms,
                      int connectivity, ImageView<std::int32_t> out) {
  const RunLabels& comps = m.comps;
  SoleLabels sole(comps.count);
  for (const MarkerRun& run : m.runs) sole.add(run.comp, run.id);
  sole.number();
  const std::vector<std::int32_t>& only = sole.only;
  const std::vector<std::int32_t>& new_id = sole.new_id;
  const std::int32_t several = sole.several;
  // The components holding several labels are flooded in a packed page (or, when it would not be
  // much smaller, in place on `out` first zeroed); then every pixel of `out` is written once.
  Packed<T> packed;
  bool packed_used = false;
  if (several > 0) {
    if (packed.place(subset(comps, new_id, several), v.rows, v.cols, true)) {
      packed.fill(v, [](T x) { return x; });
      // markers of the flooded components (new_id > 0), renumbered as the packed page's components
      packed.flood_canonical(
          m.runs, [&](std::size_t, const MarkerRun& run) { return new_id[run.comp - 1]; }, connectivity);
      packed_used = true;
    } else {
      const MarkerPixels mp = marker_pixels(
          m, v.cols, [&](const MarkerRun& run) { return only[run.comp - 1] < 0; },
          [&](const MarkerRun& run) { return new_id[run.comp - 1]; });
      const std::vector<index_t>& px = mp.px;
      const std::vector<std::int32_t>& ids = mp.ids;
      // Dense: flood in place, the single-label components written first (labelled, never entered).
      write_rows(out, comps, [&](std::size_t, const Run& run, std::int32_t* row) {
        std::fill(row + run.c0, row + run.c1, std::max<std::int32_t>(only[run.id - 1], 0));
      });
      CanonicalWork<T> work;
      canonical<T>(v, px.data(), ids.data(), px.size(), mk, ms, connectivity, out, work);
      return;
    }
  }
  // each run's labels: a packed row (indexed by column) for the flooded components, else nullptr
  std::vector<const std::int32_t*> src(comps.runs.size(), nullptr);
  if (packed_used) {
    std::size_t f = 0;
    for (std::size_t k = 0; k < src.size(); ++k)
      if (only[comps.runs[k].id - 1] < 0) src[k] = packed.lab_row(packed.comps().runs[f++]);
  }
  write_rows(
      out, comps,
      [&](std::size_t k, const Run& run, std::int32_t* row) {
        if (src[k]) std::copy(src[k] + run.c0, src[k] + run.c1, row + run.c0);
        else std::fill(row + run.c0, row + run.c1, only[run.id - 1]);
      },
      [&](std::size_t j) {
        if (src[j]) __builtin_prefetch(src[j] + comps.runs[j].c0);
      });
}

// scikit-image's flood without a mask, on a copy of the page framed by one row / column of "outside"
// pixels (kOutside, never entered): the flood then needs no bounds checks nor a division per pixel,
// and the copy is contiguous, each pixel's value and label side by side (a neighbour costs one cache
// line, not two: on a page far larger than the caches the flood waits on memory). Markers keep their
// raster order and neighbours their order, so the labels are those of the unframed flood.
template <class T>
void skimage_unmasked(const ImageView<const T> v, const Markers& m, int connectivity, ImageView<std::int32_t> out,
                      SkimageCounts* counts) {
  const index_t pr = v.rows + 2, pc = v.cols + 2;
  HugeArray<Cell<T>> cells(static_cast<std::size_t>(pr * pc));
  Cell<T>* const c = cells.get();
  std::fill(c, c + pc, Cell<T>{T(0), kOutside});
  std::fill(c + (pr - 1) * pc, c + pr * pc, Cell<T>{T(0), kOutside});
  for (index_t r = 0; r < v.rows; ++r) {
    Cell<T>* row = c + (r + 1) * pc;
    row[0] = row[pc - 1] = Cell<T>{T(0), kOutside};
    const T* src = v.row(r);
    if (v.stride_c == 1) for (index_t col = 0; col < v.cols; ++col) row[col + 1] = Cell<T>{src[col], 0};
    else for (index_t col = 0; col < v.cols; ++col) row[col + 1] = Cell<T>{v(r, col), 0};
  }
  std::vector<index_t> px;
  std::vector<std::int32_t> ids;
  for (const MarkerRun& run : m.runs)
    for (index_t col = run.c0; col < run.c1; ++col) {
      px.push_back((run.row + 1) * pc + col + 1);
      ids.push_back(run.id);
    }
  skimage_flood<T, true, OneComponent, NoWarm, UnitWeight, true>(
      ImageView<const T>{nullptr, pr, pc, pc, 1}, px.data(), ids.data(), px.size(), nullptr, pc, connectivity,
      ImageView<std::int32_t>{nullptr, pr, pc, pc, 1}, OneComponent(), 1, nullptr, nullptr, NoWarm(), UnitWeight(), 0,
      counts, c);
  for (index_t r = 0; r < v.rows; ++r) {
    const Cell<T>* src = c + (r + 1) * pc + 1;
    std::int32_t* dst = out.row(r);
    for (index_t col = 0; col < v.cols; ++col) dst[col] = src[col].label;
  }
}

}  // namespace

void watershed(const Planes& image, const Markers& m, const Planes& mask, int connectivity, WatershedMethod method,
               ImageView<std::int32_t> out, SkimageCounts* counts) {
  index_t ms = 0;
  const std::uint8_t* mk = mask_data(mask, ms);
  dispatch(image.dtype, [&](auto tag) {
    using T = decltype(tag);
    const ImageView<const T> v = plane_view<T>(image, 0);
    if (mk != nullptr && method == WatershedMethod::canonical) {
      canonical_masked<T>(v, m, mk, ms, connectivity, out);
      return;
    }
    if (mk != nullptr) {
      // scikit-image's heap order couples all markers of the page (ties among the seeds are broken by
      // the heap's layout), so every component is flooded, in one packed page.
      Packed<T> packed;
      if (packed.place(RunLabels(m.comps), v.rows, v.cols, true)) {
        packed.fill(v, [](T x) { return x; });
        packed.set_markers(m.runs, [](std::size_t, const MarkerRun& run) { return run.comp; });
        skimage_flood<T, true>(packed.img_view(), packed.px.data(), packed.id.data(), packed.px.size(), nullptr,
                               packed.cols, connectivity, packed.lab_view(),
                               [&packed](index_t p) { return packed.component_at(p); }, packed.comps().count,
                               packed.comp.data(), packed.placement().data(),
                               [&packed](std::int32_t c) { packed.prefetch(c); },
                               [&packed](std::int32_t c) { return packed.window_area(c); },
                               packed.rows * packed.cols, counts);
        const RunLabels& comps = packed.comps();
        write_rows(
            out, comps,
            [&](std::size_t k, const Run& run, std::int32_t* row) {
              std::copy(packed.lab_row(comps.runs[k]) + run.c0, packed.lab_row(comps.runs[k]) + run.c1, row + run.c0);
            },
            [&](std::size_t j) { __builtin_prefetch(packed.lab_row(comps.runs[j]) + comps.runs[j].c0); });
        return;
      }
    }
    if (mk == nullptr && method == WatershedMethod::skimage) {
      skimage_unmasked<T>(v, m, connectivity, out, counts);
      return;
    }
    std::fill(out.data, out.data + out.rows * out.cols, 0);
    const MarkerPixels mp =
        marker_pixels(m, v.cols, [](const MarkerRun&) { return true; }, [](const MarkerRun& run) { return run.comp; });
    flood<T>(v, mp.px.data(), mp.ids.data(), mp.px.size(), mk, ms, connectivity, method, out, counts);
  });
}

}  // namespace cpu
}  // namespace dwd
