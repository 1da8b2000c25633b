// Flooding machinery shared by watershed and decode: the canonical level-synchronous flood and the
// packed page that gives sparse masks cache locality.
#pragma once

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <memory>
#include <type_traits>
#include <vector>

#include "cpu/parallel.h"
#include "cpu/runs.h"

namespace dwd {
namespace cpu {

// The neighbour offsets (dr, dc) in scikit-image's order: sorted by length, then C order.
struct Neighbours {
  int n;
  int dr[8], dc[8];
  explicit Neighbours(int connectivity) {
    const int o4[4][2] = {{-1, 0}, {0, -1}, {0, 1}, {1, 0}};
    const int o8[4][2] = {{-1, -1}, {-1, 1}, {1, -1}, {1, 1}};
    n = 0;
    for (auto& o : o4) dr[n] = o[0], dc[n++] = o[1];
    if (connectivity == 2)
      for (auto& o : o8) dr[n] = o[0], dc[n++] = o[1];
  }
};

inline bool in_mask(const std::uint8_t* mask, index_t stride_r, index_t r, index_t c) {
  return mask == nullptr || mask[r * stride_r + c] != 0;
}

// ---- monotone radix heap (8-bit digits) -----------------------------------------------------------------
//
// The buckets of a monotone priority queue over unsigned value bits U (every value added is above the
// last value taken): bucket (d, x) holds the items whose bits first differ from the last value in byte
// d, where their byte d is x (> the last value's). The lowest non-empty bucket (lowest d, then lowest x)
// holds the smallest pending values; refill() makes its smallest value (tracked on add) the last value
// and moves its items to buckets of lower bytes (all empty then) or, equal to it, out to the caller,
// their order kept. An item only ever moves to a lower byte: at most sizeof(U) moves, and on n pending
// items of random values about log_256(n). A bucket receives moved items only while empty and is
// then appended to in add order, so every bucket keeps its items of one value in add order (and all
// pending items of one value lie in one bucket): equal values come out first in, first out.
template <class U>
struct RadixItem {
  U bits;
  std::int32_t index;
};
template <>
struct __attribute__((packed, aligned(4))) RadixItem<std::uint64_t> {
  std::uint64_t bits;
  std::int32_t index;
};
static_assert(sizeof(RadixItem<std::uint32_t>) == 8 && sizeof(RadixItem<std::uint64_t>) == 12,
              "radix heap items are packed");

template <class U>
class RadixBuckets {
 public:
  using Item = RadixItem<U>;
  static constexpr int kBytes = static_cast<int>(sizeof(U));

  U last() const { return last_; }
  void set_last(U b) { last_ = b; }  // only while empty
  bool empty() const { return level_mask_ == 0; }
  std::uint64_t moves() const { return moves_; }
  // Adds an item of bits b > last().
  void add(U b, std::int32_t index) {
    const int d = (63 - __builtin_clzll(static_cast<std::uint64_t>(b ^ last_))) >> 3;
    const int x = static_cast<int>((b >> (8 * d)) & 0xff);
    std::vector<Item>& v = b_[d][x];
    const std::uint64_t bit = std::uint64_t(1) << (x & 63);
    std::uint64_t& word = mask_[d][x >> 6];
    if (!(word & bit)) {
      word |= bit;
      level_mask_ |= 1u << d;
      min_[d][x] = b;
      min_at_[d][x] = 0;
    } else if (b < min_[d][x]) {
      min_[d][x] = b;
      min_at_[d][x] = v.size();
    }
    v.push_back(Item{b, index});
  }
  // The index of the first item of the smallest value (not empty()).
  std::int32_t peek() const {
    const int d = __builtin_ctz(level_mask_);
    const int x = lowest_digit(d);
    return b_[d][x][min_at_[d][x]].index;
  }
  // (not empty()) The smallest pending value becomes last(); its items are passed to equal(index) in
  // add order, the bucket's others move down.
  template <class Equal>
  void refill(Equal&& equal) {
    const int d = __builtin_ctz(level_mask_);
    const int x = lowest_digit(d);
    mask_[d][x >> 6] &= ~(std::uint64_t(1) << (x & 63));
    if (!(mask_[d][0] | mask_[d][1] | mask_[d][2] | mask_[d][3])) level_mask_ &= ~(1u << d);
    last_ = min_[d][x];
    std::vector<Item>& src = b_[d][x];
    moves_ += src.size();
    for (const Item& it : src) {
      if (it.bits == last_) equal(it.index);
      else add(it.bits, it.index);
    }
    src.clear();
  }

 private:
  int lowest_digit(int d) const {
    for (int w = 0;; ++w)
      if (mask_[d][w]) return 64 * w + __builtin_ctzll(mask_[d][w]);
  }
  U last_ = 0;
  std::uint32_t level_mask_ = 0;        // bit d: byte d holds a non-empty bucket
  std::uint64_t mask_[kBytes][4] = {};  // bit x of byte d's words: bucket (d, x) holds items
  std::uint64_t moves_ = 0;
  std::vector<Item> b_[kBytes][256];
  U min_[kBytes][256];            // while bucket (d, x) holds items: their smallest value bits,
  std::size_t min_at_[kBytes][256];  // first at min_at_
};

// An exact order-preserving map of values to unsigned bits (-0.0 and +0.0 alike), and back.
template <class T>
struct OrderBits {
  using U = typename std::conditional<sizeof(T) <= 4, std::uint32_t, std::uint64_t>::type;
  static U to(T v) {
    if constexpr (std::is_floating_point<T>::value) {
      if (v == T(0)) v = T(0);
      U b;
      std::memcpy(&b, &v, sizeof b);
      return (b >> (8 * sizeof(U) - 1)) ? ~b : (b | (U(1) << (8 * sizeof(U) - 1)));
    } else if constexpr (std::is_signed<T>::value) {
      return static_cast<U>(static_cast<U>(static_cast<typename std::make_signed<U>::type>(v)) ^ (U(1) << (8 * sizeof(U) - 1)));
    } else {
      return static_cast<U>(v);
    }
  }
  static T from(U b) {
    if constexpr (std::is_floating_point<T>::value) {
      b = (b >> (8 * sizeof(U) - 1)) ? (b & ~(U(1) << (8 * sizeof(U) - 1))) : ~b;
      T v;
      std::memcpy(&v, &b, sizeof v);
      return v;
    } else if constexpr (std::is_signed<T>::value) {
      return static_cast<T>(static_cast<typename std::make_signed<U>::type>(b ^ (U(1) << (8 * sizeof(U) - 1))));
    } else {
      return static_cast<T>(b);
    }
  }
};

// Buckets of pending items keyed by image value, popped in increasing value, a value's items in push
// order; every value pushed after a pop is above the popped one. Narrow integer types use one bucket per
// value (a bucket queue whose cursor only moves up); others a radix heap (a std::map of per-value lists
// before it: a few times slower on reliefs where nearly every pixel has a value of its own).
template <class T, class Item, bool Narrow = std::is_integral<T>::value && (sizeof(T) <= 2)>
class Levels {
  using B = OrderBits<T>;

 public:
  Levels() : q_(new RadixBuckets<typename B::U>()) {}
  void push(T v, Item item) {
    const typename B::U b = B::to(v);
    if (fresh_) {  // the first push after a drain sets the floor; markers may arrive in any order
      pre_.push_back(std::make_pair(b, item));
      return;
    }
    if (b == q_->last()) eq_.push_back(item);
    else q_->add(b, static_cast<std::int32_t>(item));
  }
  bool pop(T& v, std::vector<Item>& items) {
    if (fresh_) {  // the markers: sorted by value (stable: each value's in push order)
      if (pre_.empty()) return false;
      std::stable_sort(pre_.begin(), pre_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      fresh_ = false;
      q_->set_last(pre_[0].first);
      for (const auto& e : pre_) push(B::from(e.first), e.second);
      pre_.clear();
    }
    if (eq_.empty()) {
      if (q_->empty()) {  // drained: ready for the next component
        fresh_ = true;
        return false;
      }
      q_->refill([this](std::int32_t i) { eq_.push_back(static_cast<Item>(i)); });
    }
    v = B::from(q_->last());
    items.clear();
    items.swap(eq_);
    return true;
  }
  std::uint64_t moves() const { return q_->moves(); }

 private:
  std::unique_ptr<RadixBuckets<typename B::U>> q_;
  std::vector<std::pair<typename B::U, Item>> pre_;
  std::vector<Item> eq_;
  bool fresh_ = true;
};

template <class T, class Item>
class Levels<T, Item, true> {
 public:
  void push(T v, Item item) { at(v).push_back(item); }
  // The bucket table covers only the slots used so far (a flood uses a few of the 2^16 values).
  std::vector<Item>& at(T v) {
    const std::size_t k = slot(v);
    if (k >= cursor_ && k < end_) return buckets_[k - base_];  // within the slots in use (most pushes)
    if (buckets_.empty()) {
      base_ = k;
      buckets_.resize(1);
    } else if (k < base_) {  // only markers arrive below the table, before the first pop
      buckets_.insert(buckets_.begin(), base_ - k, std::vector<Item>());
      base_ = k;
    } else if (k >= base_ + buckets_.size()) {
      buckets_.resize(k - base_ + 1);
    }
    if (k < cursor_) cursor_ = k;
    if (k + 1 > end_) end_ = k + 1;
    return buckets_[k - base_];
  }
  bool pop(T& v, std::vector<Item>& items) {
    while (cursor_ < end_ && buckets_[cursor_ - base_].empty()) ++cursor_;
    if (cursor_ >= end_) {  // drained: ready for the next component
      cursor_ = std::numeric_limits<std::size_t>::max();
      end_ = 0;
      return false;
    }
    v = static_cast<T>(static_cast<std::int64_t>(cursor_) + std::numeric_limits<T>::lowest());
    items.clear();
    items.swap(buckets_[cursor_ - base_]);
    return true;
  }

 private:
  static std::size_t slot(T v) {
    return static_cast<std::size_t>(static_cast<std::int64_t>(v) - std::numeric_limits<T>::lowest());
  }
  std::vector<std::vector<Item>> buckets_;
  std::size_t base_ = 0;  // slot of buckets_[0]
  std::size_t cursor_ = std::numeric_limits<std::size_t>::max();
  std::size_t end_ = 0;  // one past the highest slot used
};

// ---- canonical: level-synchronous breadth-first flooding -------------------------------------------
//
// Levels are processed in increasing value. A level's first layer (d = 0) holds its markers and the
// pixels of that value entered from a lower level (each takes the label of its smallest-key lower
// neighbour); then layers d = 1, 2, ... spread over pixels of value <= the level, a pixel reached from
// several pixels of the previous layer taking the smallest label. Every (level, layer) step is a
// segment, numbered in key order. A pixel of a higher level reached from a segment is queued on its
// level once, with the segment and its tentative label: the first segment that reaches it decides
// (segments only grow), and among that segment's pixels the smallest label. Tentative labels are
// stored negated.

// Scratch space reused across the components of a page.
template <class T>
struct CanonicalWork {
  Levels<T, index_t> pending;
  std::vector<index_t> layer, next, entries;
  std::unique_ptr<std::int32_t[]> seg_of;  // segment that queued each pending pixel (read only for those)
  std::size_t seg_of_size = 0;
  std::int32_t seg = 0;
};

// Labels of pixels outside the mask in a bordered (packed) page: "already labelled" to both floods.
constexpr std::int32_t kOutside = std::numeric_limits<std::int32_t>::max();

// Bordered = true: `out` holds kOutside on every pixel outside the mask and the mask never reaches
// the page's edge (a packed page), so neighbours need neither bounds nor mask checks.
template <class T, bool Bordered = false>
void canonical(const ImageView<const T> img, const index_t* marker_px, const std::int32_t* marker_id,
               std::size_t n_markers, const std::uint8_t* mask, index_t mstride, int connectivity,
               ImageView<std::int32_t> out, CanonicalWork<T>& w) {
  const Neighbours nb(connectivity);
  const index_t rows = img.rows, cols = img.cols;
  if (rows * cols >= (index_t(1) << 31)) throw std::invalid_argument("image has 2^31 pixels or more");
  index_t delta[8];
  for (int k = 0; k < nb.n; ++k) delta[k] = nb.dr[k] * cols + nb.dc[k];
  const T* im = img.data;  // Bordered pages are contiguous
  std::int32_t* lab = out.data;  // contiguous rows x cols
  auto& pending = w.pending;
  auto& layer = w.layer;
  auto& next = w.next;
  auto& entries = w.entries;
  if (w.seg_of_size < static_cast<std::size_t>(rows * cols)) {  // never read before written: no zeroing
    w.seg_of_size = static_cast<std::size_t>(rows * cols);
    w.seg_of.reset(new std::int32_t[w.seg_of_size]);
  }
  std::int32_t* seg_of = w.seg_of.get();
  std::int32_t seg = w.seg;
  for (std::size_t k = 0; k < n_markers; ++k) {
    const index_t p = marker_px[k];
    lab[p] = marker_id[k];
    pending.push(img(p / cols, p % cols), p);
  }
  T level;
  while (pending.pop(level, entries)) {
    for (const index_t q : entries)
      if (lab[q] < 0) lab[q] = -lab[q];  // entered from below (markers are labelled already)
    layer.swap(entries);  // the level's first layer (entries' storage goes back to the buckets)
    while (!layer.empty()) {
      ++seg;
      next.clear();
      for (const index_t p : layer) {
        const std::int32_t lp = lab[p];
        auto visit = [&](index_t q, T v) {
          const std::int32_t lq = lab[q];
          if (level < v) {
            if (lq == 0) {
              lab[q] = -lp;
              seg_of[q] = seg;
              pending.push(v, q);
            } else if (seg_of[q] == seg && lp < -lq) {
              lab[q] = -lp;
            }
          } else if (lq == 0) {
            lab[q] = -lp;
            next.push_back(q);
          } else if (lp < -lq) {
            lab[q] = -lp;
          }
        };
        if constexpr (Bordered) {
          auto step = [&](index_t q) {
            if (lab[q] <= 0) visit(q, im[q]);  // > 0: labelled, or outside the mask (kOutside)
          };
          step(p + delta[0]);
          step(p + delta[1]);
          step(p + delta[2]);
          step(p + delta[3]);
          if (nb.n == 8) {
            step(p + delta[4]);
            step(p + delta[5]);
            step(p + delta[6]);
            step(p + delta[7]);
          }
        } else {
          const index_t r = p / cols, c = p % cols;
          for (int k = 0; k < nb.n; ++k) {
            const index_t rr = r + nb.dr[k], cc = c + nb.dc[k];
            if (rr < 0 || rr >= rows || cc < 0 || cc >= cols || !in_mask(mask, mstride, rr, cc)) continue;
            const index_t q = rr * cols + cc;
            if (lab[q] > 0) continue;
            visit(q, img(rr, cc));
          }
        }
      }
      for (const index_t q : next) lab[q] = -lab[q];
      layer.swap(next);
    }
  }
  w.seg = seg;
}

struct MaskRuns {
  const std::uint8_t* mask;
  index_t stride, cols;
  static constexpr bool kBitRuns = true;
  std::uint64_t bits64(index_t r, index_t c) const { return nonzero_bits64(mask + r * stride, c); }
  bool on(index_t r, index_t c) const { return mask[r * stride + c] != 0; }
  index_t next(index_t r, index_t c) const { return find_nonzero(mask + r * stride, c, cols); }
  index_t end(index_t r, index_t c) const { return find_zero(mask + r * stride, c, cols); }
  bool joined(const Run&, const Run&) const { return true; }
};

// The components of `comps` whose new_id (indexed by old id - 1) is positive, renumbered to new_id.
inline RunLabels subset(const RunLabels& comps, const std::vector<std::int32_t>& new_id, std::int32_t count) {
  RunLabels s;
  const index_t rows = static_cast<index_t>(comps.row_start.size()) - 1;
  s.row_start.assign(comps.row_start.size(), 0);
  s.count = count;
  for (index_t r = 0; r < rows; ++r) {
    s.row_start[r] = static_cast<index_t>(s.runs.size());
    for (index_t k = comps.row_start[r]; k < comps.row_start[r + 1]; ++k) {
      const Run& run = comps.runs[k];
      if (run.id > 0 && new_id[run.id - 1] > 0) s.runs.push_back(Run{run.row, run.c0, run.c1, new_id[run.id - 1]});
    }
  }
  s.row_start[rows] = static_cast<index_t>(s.runs.size());
  return s;
}

// Per component (1..count): the one marker label it holds (> 0), 0 if none, -1 if several; those with
// several are renumbered 1..several (new_id, 0 for the others) for a packed page. A flood never
// leaves its component, so a component holding one label is that label's whole, and only those
// holding several need flooding.
struct SoleLabels {
  std::vector<std::int32_t> only, new_id;
  std::int32_t several = 0;
  explicit SoleLabels(std::int32_t count) : only(static_cast<std::size_t>(count), 0) {}
  void add(std::int32_t comp, std::int32_t label) {
    std::int32_t& s = only[comp - 1];
    if (s == 0) s = label;
    else if (s != label) s = -1;
  }
  void number() {
    new_id.assign(only.size(), 0);
    for (std::size_t k = 0; k < only.size(); ++k)
      if (only[k] < 0) new_id[k] = ++several;
  }
};

// Both floods read a few bytes per pixel at scattered places of a page far larger than the caches, so
// on a sparse mask they are bound by memory latency. Flooding never crosses the mask's boundary, so
// each connected component of the mask can be moved, with its bounding box, into a small "packed
// page": component windows placed side by side on shelves, separated by one row / column of masked-out
// pixels. Neighbour offsets stay uniform, markers keep their raster order, so both floods give the
// same labels there, with all their reads in cache. The result is copied back along the mask's runs.
template <class T>
class Packed {
 public:
  index_t rows = 0, cols = 0;
  std::vector<T> img;
  std::vector<std::int32_t> lab;
  std::vector<index_t> px;  // markers, packed indices (original raster order)
  std::vector<std::int32_t> id;
  std::vector<std::int32_t> comp;  // component of each marker

  // Places the components' windows; returns false (nothing placed) when `only_if_smaller` and the
  // packed page would not be much smaller than the original.
  bool place(RunLabels comps, index_t src_rows, index_t src_cols, bool only_if_smaller) {
    comps_ = std::move(comps);
    const std::vector<Geometry> geo = geometry(comps_);
    index_t widest = 0, area = 0;
    for (const Geometry& g : geo) {
      widest = std::max<index_t>(widest, g.max_c - g.min_c + 1);
      area += (g.max_r - g.min_r + 2) * (g.max_c - g.min_c + 2);
    }
    if (only_if_smaller && area * 2 > src_rows * src_cols) return false;
    cols = std::max<index_t>(1024, widest + 2);
    // Shelf placement, tallest windows first (less height wasted on each shelf): window k's pixel
    // (r, c) goes to (r + oy[k], c + ox[k]). Where windows lie does not change either flood's result.
    std::vector<std::int32_t> order(geo.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = static_cast<std::int32_t>(k);
    auto height = [&](std::int32_t k) { return geo[k].max_r - geo[k].min_r + 1; };
    std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) { return height(a) > height(b); });
    oy_.resize(geo.size());
    ox_.resize(geo.size());
    win_.resize(geo.size());
    shelf_y0_.clear();
    shelf_start_.clear();
    placed_x0_.clear();
    placed_comp_.clear();
    index_t x = 1, y = 1, shelf_h = 0;
    for (const std::int32_t k : order) {
      const index_t w = geo[k].max_c - geo[k].min_c + 1, h = height(k);
      if (shelf_y0_.empty() || x + w + 1 > cols) {
        if (!shelf_y0_.empty()) y += shelf_h + 1;
        x = 1;
        shelf_h = 0;
        shelf_y0_.push_back(y);
        shelf_start_.push_back(static_cast<std::int32_t>(placed_x0_.size()));
      }
      oy_[k] = y - geo[k].min_r;
      ox_[k] = x - geo[k].min_c;
      win_[k] = Window{y, x, h, w};
      placed_x0_.push_back(x);
      placed_comp_.push_back(k + 1);
      x += w + 1;
      shelf_h = std::max(shelf_h, h);
    }
    shelf_start_.push_back(static_cast<std::int32_t>(placed_x0_.size()));
    rows = y + shelf_h + 1;
    img.assign(static_cast<std::size_t>(rows * cols), T(0));
    lab.assign(img.size(), kOutside);  // fill() opens the components' pixels
    return true;
  }

  // Writes convert(src pixel) into the packed image along the components' runs and marks the mask.
  // The runs of a sparse mask are short and rows apart: the source of later runs is fetched ahead.
  template <class S, class Convert>
  void fill(const ImageView<const S>& src, Convert&& convert) {
    const std::vector<Run>& runs = comps_.runs;
    const std::int64_t n = static_cast<std::int64_t>(runs.size());
    const int nt = phase_threads(n * 16, n);
    on_threads(nt, [&](int t) {
      constexpr std::int64_t kAhead = 16;
      const std::int64_t k0 = part_begin(n, t, nt), k1 = part_begin(n, t + 1, nt);
      for (std::int64_t k = k0; k < k1; ++k) {
        if (k + kAhead < k1) {
          const Run& a = runs[k + kAhead];
          __builtin_prefetch(src.row(a.row) + a.c0);
          __builtin_prefetch(src.row(a.row) + a.c1 - 1);
        }
        const Run& run = runs[k];
        const index_t at = offset(run);
        std::transform(src.row(run.row) + run.c0, src.row(run.row) + run.c1, img.data() + at + run.c0, convert);
        std::fill(lab.data() + at + run.c0, lab.data() + at + run.c1, 0);
      }
    });
  }

  // The markers in packed coordinates, from marker runs (row, c0, c1, id in the original page, each
  // inside one component): comp(k, run) gives run k's component (1..count), 0 to leave it out.
  template <class Runs, class Comp>
  void set_markers(const Runs& runs, Comp&& comp_of) {
    px.clear();
    id.clear();
    comp.clear();
    std::size_t n = 0;
    for (std::size_t k = 0; k < runs.size(); ++k)
      if (comp_of(k, runs[k]) > 0) n += static_cast<std::size_t>(runs[k].c1 - runs[k].c0);
    px.reserve(n);
    id.reserve(n);
    comp.reserve(n);
    for (std::size_t k = 0; k < runs.size(); ++k) {
      const auto& run = runs[k];
      const std::int32_t c = comp_of(k, run);
      if (c <= 0) continue;
      const index_t base = (run.row + oy_[c - 1]) * cols + ox_[c - 1];
      for (index_t col = run.c0; col < run.c1; ++col) {
        px.push_back(base + col);
        id.push_back(run.id);
        comp.push_back(c);
      }
    }
  }

  // The canonical flood, one component at a time (all of a component's levels and layers are done
  // while its window is in cache), from marker runs as for set_markers: each component's markers are
  // gathered straight from the runs (in raster order), in packed coordinates.
  template <class Runs, class Comp>
  void flood_canonical(const Runs& runs, Comp&& comp_of, int connectivity) {
    std::vector<std::int32_t> run_comp(runs.size());
    std::vector<index_t> start(static_cast<std::size_t>(comps_.count) + 1, 0);
    for (std::size_t k = 0; k < runs.size(); ++k) {
      const std::int32_t c = comp_of(k, runs[k]);
      run_comp[k] = c;
      if (c > 0) start[c] += static_cast<index_t>(runs[k].c1 - runs[k].c0);
    }
    for (std::int32_t l = 0; l < comps_.count; ++l) start[l + 1] += start[l];
    std::vector<index_t> gpx(static_cast<std::size_t>(start[comps_.count]));
    std::vector<std::int32_t> gid(gpx.size());
    {
      std::vector<index_t> pos(start.begin(), start.end() - 1);
      for (std::size_t k = 0; k < runs.size(); ++k) {
        const std::int32_t c = run_comp[k];
        if (c <= 0) continue;
        const auto& run = runs[k];
        const index_t base = (run.row + oy_[c - 1]) * cols + ox_[c - 1];
        index_t at = pos[c - 1];
        for (index_t col = run.c0; col < run.c1; ++col, ++at) {
          gpx[at] = base + col;
          gid[at] = run.id;
        }
        pos[c - 1] = at;
      }
    }
    // Components are independent: the threads take contiguous stretches of the placement order
    // (each walks through memory), of near-equal window area, each with its own scratch space.
    const std::vector<std::int32_t>& order = placement();
    const int nt = phase_threads(rows * cols, static_cast<std::int64_t>(order.size()));
    std::vector<std::int64_t> cut(static_cast<std::size_t>(nt) + 1);
    weighted_parts(
        static_cast<std::int64_t>(order.size()), nt,
        [&](std::int64_t i) { return window_area(order[i]); },
        [&](int t, std::int64_t i) { cut[static_cast<std::size_t>(t)] = i; });
    on_threads(nt, [&](int t) {
      CanonicalWork<T> work;
      const std::size_t i0 = static_cast<std::size_t>(cut[t]), i1 = static_cast<std::size_t>(cut[t + 1]);
      for (std::size_t i = i0; i < i1; ++i) {
        if (i + 1 < i1) prefetch(order[i + 1]);
        const std::int32_t l = order[i] - 1;
        if (start[l + 1] > start[l])
          canonical<T, true>(img_view(), gpx.data() + start[l], gid.data() + start[l],
                             static_cast<std::size_t>(start[l + 1] - start[l]), nullptr, cols, connectivity,
                             lab_view(), work);
      }
    });
  }

  // The components (1..count) in the order their windows lie in the packed page (shelf by shelf, left
  // to right): floods that take them in this order walk through memory.
  const std::vector<std::int32_t>& placement() const { return placed_comp_; }

  // Asks for component `comp`'s window (its image and labels) ahead of its flood: a component's first
  // reads would otherwise each miss the caches (its window was last touched when the page was filled).
  void prefetch(std::int32_t comp) const {
    const Window& w = win_[static_cast<std::size_t>(comp - 1)];
    for (index_t r = w.y; r < w.y + w.h; ++r) {
      const index_t p0 = r * cols + w.x, p1 = p0 + w.w;
      for (index_t p = p0; p < p1; p += 16) __builtin_prefetch(lab.data() + p);
      __builtin_prefetch(lab.data() + p1 - 1);
      for (index_t p = p0; p < p1; p += 32) __builtin_prefetch(img.data() + p);
      __builtin_prefetch(img.data() + p1 - 1);
    }
  }

  // Pixels of component `comp`'s window.
  std::int64_t window_area(std::int32_t comp) const {
    const Window& w = win_[static_cast<std::size_t>(comp - 1)];
    return w.h * w.w;
  }

  ImageView<const T> img_view() const { return ImageView<const T>{img.data(), rows, cols, cols, 1}; }
  ImageView<std::int32_t> lab_view() { return make_view(lab.data(), rows, cols); }
  const RunLabels& comps() const { return comps_; }
  // Packed labels of a component run's row, indexed by original column.
  const std::int32_t* lab_row(const Run& run) const { return lab.data() + offset(run); }

  // The component (1..count) whose window holds packed pixel p (p must lie in a component).
  std::int32_t component_at(index_t p) const {
    const index_t y = p / cols, x = p % cols;
    const std::size_t s = static_cast<std::size_t>(std::upper_bound(shelf_y0_.begin(), shelf_y0_.end(), y) - shelf_y0_.begin()) - 1;
    const auto first = placed_x0_.begin() + shelf_start_[s], last = placed_x0_.begin() + shelf_start_[s + 1];
    return placed_comp_[static_cast<std::size_t>(std::upper_bound(first, last, x) - placed_x0_.begin()) - 1];
  }

  // Copies the packed labels back to `out` along the components' runs.
  void unpack(ImageView<std::int32_t> out) const {
    for (const Run& run : comps_.runs) std::copy(lab_row(run) + run.c0, lab_row(run) + run.c1, out.row(run.row) + run.c0);
  }

 private:
  index_t offset(const Run& run) const { return (run.row + oy_[run.id - 1]) * cols + ox_[run.id - 1]; }
  RunLabels comps_;
  std::vector<index_t> oy_, ox_;
  std::vector<index_t> shelf_y0_, placed_x0_;  // shelves' first rows; windows' first columns, shelf by shelf
  std::vector<std::int32_t> shelf_start_, placed_comp_;
  struct Window {
    index_t y, x, h, w;  // first packed row and column, height, width
  };
  std::vector<Window> win_;
};

}  // namespace cpu
}  // namespace dwd
