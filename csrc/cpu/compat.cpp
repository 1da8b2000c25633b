#include "cpu/compat.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cpu/above.h"
#include "cpu/runs.h"

namespace dwd {
namespace cpu {
namespace {

// np.amax: a NaN anywhere makes the maximum NaN.
inline double nan_max(double m, double x) { return (x != x || x > m) ? x : m; }

// numpy's float64 -> int64 cast (x86-64 cvttsd2si): truncation, int64's minimum when out of range or NaN.
inline std::int64_t astype_int(double x) {
  if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0)) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(x);
}


// 8-connected components of energy > cut (or of every pixel).
void components(const Planes& e, double cut, bool all, RunLabels& lab) {
  if (all) lab.build(AllRuns{e.cols}, e.rows, e.cols, 2);
  else label_above(e, cut, 2, lab);
}

// Renumbers lab's labels in OpenCV's 8-connected order: by the component's first 2x2 block.
void to_block_order(RunLabels& lab) {
  std::vector<std::int64_t> key(lab.count, std::numeric_limits<std::int64_t>::max());
  for (const Run& run : lab.runs) {
    const std::int64_t k = (static_cast<std::int64_t>(run.row / 2) << 32) | static_cast<std::int64_t>(run.c0 / 2);
    key[run.id - 1] = std::min(key[run.id - 1], k);
  }
  std::vector<std::int32_t> idx(lab.count);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](std::int32_t a, std::int32_t b) { return key[a] < key[b]; });
  std::vector<std::int32_t> rank(lab.count);
  for (std::int32_t i = 0; i < lab.count; ++i) rank[idx[i]] = i + 1;
  for (Run& run : lab.runs) run.id = rank[run.id - 1];
}

// Per-row sorted, disjoint column intervals: the pixels already claimed by objects.
class Claimed {
 public:
  explicit Claimed(index_t rows) : rows_(static_cast<std::size_t>(rows)) {}
  bool overlaps(const Run& r) const {
    const auto& v = rows_[r.row];
    auto it = std::upper_bound(v.begin(), v.end(), r.c0, [](std::int32_t c, const std::pair<std::int32_t, std::int32_t>& iv) {
      return c < iv.second;
    });
    return it != v.end() && it->first < r.c1;
  }
  void add(const Run& r) { pending_.push_back(r); }
  // Each touched row is sorted once (sorting it once per added run was quadratic in the runs of a row:
  // a noisy page's rows hold hundreds).
  void commit() {
    std::vector<index_t> touched;
    touched.reserve(pending_.size());
    for (const Run& r : pending_) {
      rows_[r.row].emplace_back(r.c0, r.c1);
      if (touched.empty() || touched.back() != r.row) touched.push_back(r.row);
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (const index_t row : touched) std::sort(rows_[row].begin(), rows_[row].end());
    pending_.clear();
  }

 private:
  std::vector<std::vector<std::pair<std::int32_t, std::int32_t>>> rows_;
  std::vector<Run> pending_;
};

}  // namespace

DwsBoxes perform_dws(const Planes& energy, const Planes& classes, const Planes& sizes, const DwsParams& p) {
  // Objects as runs with the label value the original gives them (order of the output).
  std::vector<Run> objs;
  std::int64_t max_label = 0;
  Claimed claimed(energy.rows);
  for (std::size_t k = 0; k < p.cutoffs.size(); ++k) {
    const double cut = p.cutoffs[k];
    RunLabels lab;
    components(energy, cut, p.neg_all && cut < 0, lab);
    if (p.block_order) to_block_order(lab);
    if (k == 0) {
      for (const Run& run : lab.runs) claimed.add(run);
      objs = lab.runs;
      max_label = lab.count;
    } else {
      // A component is added whole if none of its pixels belongs to an earlier object.
      std::vector<char> tainted(lab.count, 0);
      for (const Run& run : lab.runs)
        if (!tainted[run.id - 1] && claimed.overlaps(run)) tainted[run.id - 1] = 1;
      const std::int64_t next = max_label + 1;
      std::int64_t top = max_label;
      for (Run run : lab.runs) {
        if (tainted[run.id - 1]) continue;
        claimed.add(run);
        const std::int64_t value = run.id + next;
        top = std::max(top, value);
        if (value > std::numeric_limits<std::int32_t>::max())
          throw std::invalid_argument("too many components for the original's label arithmetic");
        run.id = static_cast<std::int32_t>(value);
        objs.push_back(run);
      }
      max_label = top;
    }
    claimed.commit();
  }

  // Dense object ids in increasing label value; the original keeps area > min (2020) or >= min (2018).
  std::vector<std::int32_t> values;
  values.reserve(objs.size());
  for (const Run& run : objs) values.push_back(run.id);
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  for (Run& run : objs) run.id = static_cast<std::int32_t>(std::lower_bound(values.begin(), values.end(), run.id) - values.begin()) + 1;
  const auto n_all = static_cast<std::int64_t>(values.size());
  std::vector<Geometry> geo(n_all);
  for (const Run& run : objs) geo[run.id - 1].add(run);
  std::vector<std::int32_t> keep_id(n_all, 0);
  std::int32_t n = 0;
  for (std::int64_t i = 0; i < n_all; ++i) {
    const bool keep = p.keep_equal ? geo[i].area >= p.min_size : geo[i].area > p.min_size;
    if (keep) keep_id[i] = ++n;
  }
  for (Run& run : objs) run.id = keep_id[run.id - 1];
  std::vector<std::int32_t> order;
  std::vector<index_t> offset;
  group_runs(objs, n, order, offset);

  DwsBoxes out;
  out.n = n;
  out.boxes.resize(5 * static_cast<std::size_t>(n));
  const auto class_reader = classes.present() ? make_reader(classes) : nullptr;
  const auto size_reader = make_reader(sizes);
  ClassVote vote;
  std::vector<std::int64_t> ibuf;
  std::vector<double> dbuf;
  std::int64_t i_all = 0;
  for (std::int32_t o = 0; o < n; ++o) {
    while (keep_id[i_all] != o + 1) ++i_all;
    const Geometry& g = geo[i_all];
    // int(np.mean(rows)): the mean of non-negative integers, truncated.
    const auto cy = static_cast<std::int64_t>(static_cast<double>(g.sum_r) / static_cast<double>(g.area));
    const auto cx = static_cast<std::int64_t>(static_cast<double>(g.sum_c) / static_cast<double>(g.area));
    double hmax = -std::numeric_limits<double>::infinity(), wmax = hmax;
    for (index_t k = offset[o]; k < offset[o + 1]; ++k) {
      const Run& run = objs[order[k]];
      const index_t len = run.c1 - run.c0;
      if (class_reader) {
        ibuf.resize(len);
        class_reader->read_i64(0, run.row, run.c0, run.c1, ibuf.data());
        for (std::int64_t id : ibuf) vote.add(id);
      }
      dbuf.resize(len);
      size_reader->read_f64(0, run.row, run.c0, run.c1, dbuf.data());
      for (double x : dbuf) hmax = nan_max(hmax, x);
      size_reader->read_f64(1, run.row, run.c0, run.c1, dbuf.data());
      for (double x : dbuf) wmax = nan_max(wmax, x);
    }
    const std::int64_t cls = class_reader ? vote.take().first : 0;
    // np.amax(...).astype(int): truncation toward zero; NaN, +-inf and values beyond int64 give int64's
    // minimum, as numpy's cast does on x86-64 (the original's garbage box, reproduced)
    const std::int64_t h = astype_int(hmax);
    const std::int64_t w = astype_int(wmax);
    std::int64_t* b = out.boxes.data() + 5 * o;
    // np.round (half to even) of the float corners; nearbyint rounds half to even in the default mode
    b[0] = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(cx) - static_cast<double>(w) / 2));
    b[1] = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(cy) - static_cast<double>(h) / 2));
    b[2] = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(cx) + static_cast<double>(w) / 2));
    b[3] = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(cy) + static_cast<double>(h) / 2));
    b[4] = cls;
  }
  return out;
}

std::vector<std::int64_t> perform_dws_fatten(const Planes& energy, double cutoff, std::int64_t min_size,
                                             double fatten_cutoff) {
  const index_t rows = energy.rows, cols = energy.cols;
  // L: components at the cut-off, OpenCV order, small ones erased (size == min_size is kept).
  RunLabels lab;
  components(energy, cutoff, false, lab);
  to_block_order(lab);
  {
    const std::vector<Geometry> g = geometry(lab);
    for (Run& run : lab.runs)
      if (g[run.id - 1].area < min_size) run.id = 0;
  }
  std::vector<std::int32_t> L(static_cast<std::size_t>(rows * cols));
  lab.paint(make_view(L.data(), rows, cols));

  // L0: components at the fatten cut-off, in OpenCV order, processed one after the other.
  RunLabels low;
  components(energy, fatten_cutoff, false, low);
  to_block_order(low);
  std::vector<std::uint8_t> low_fg(static_cast<std::size_t>(rows * cols), 0);
  for (const Run& run : low.runs) std::fill(&low_fg[run.row * cols + run.c0], &low_fg[run.row * cols + run.c1], 1);
  const std::vector<Geometry> lg = geometry(low);
  std::vector<std::int32_t> order;
  std::vector<index_t> offset;
  low.group(order, offset);

  constexpr std::int32_t kNoSeed = 1000000;  // the original's distance for a label absent from the window
  std::vector<std::int32_t> support, dist, best_d, best_l;
  for (std::int32_t i = 0; i < low.count; ++i) {
    support.clear();
    for (index_t k = offset[i]; k < offset[i + 1]; ++k) {
      const Run& run = low.runs[order[k]];
      for (index_t c = run.c0; c < run.c1; ++c)
        if (const std::int32_t l = L[run.row * cols + c]) support.push_back(l);
    }
    std::sort(support.begin(), support.end());
    support.erase(std::unique(support.begin(), support.end()), support.end());
    if (support.size() == 1) {
      for (index_t k = offset[i]; k < offset[i + 1]; ++k) {
        const Run& run = low.runs[order[k]];
        std::fill(&L[run.row * cols + run.c0], &L[run.row * cols + run.c1], support[0]);
      }
      continue;
    }
    if (support.empty()) continue;
    // Window rows [min_r, max_r), cols [min_c, max_c): the original's slice excludes the last row and column.
    const Geometry& g = lg[i];
    const index_t r0 = g.min_r, r1 = g.max_r, c0 = g.min_c, c1 = g.max_c;
    const index_t ph = r1 - r0, pw = c1 - c0;
    if (ph <= 0 || pw <= 0) continue;
    best_d.assign(static_cast<std::size_t>(ph * pw), std::numeric_limits<std::int32_t>::max());
    best_l.assign(static_cast<std::size_t>(ph * pw), 0);
    dist.resize(static_cast<std::size_t>(ph * pw));
    for (const std::int32_t s : support) {  // ascending: ties keep the smaller label (argmin)
      bool any = false;
      for (index_t r = 0; r < ph; ++r)
        for (index_t c = 0; c < pw; ++c) {
          const bool seed = L[(r0 + r) * cols + c0 + c] == s;
          any |= seed;
          dist[r * pw + c] = seed ? 0 : kNoSeed;
        }
      if (any) {  // exact taxicab distance inside the window: two raster passes
        for (index_t r = 0; r < ph; ++r)
          for (index_t c = 0; c < pw; ++c) {
            std::int32_t& d = dist[r * pw + c];
            if (r > 0) d = std::min(d, dist[(r - 1) * pw + c] + 1);
            if (c > 0) d = std::min(d, dist[r * pw + c - 1] + 1);
          }
        for (index_t r = ph; r-- > 0;)
          for (index_t c = pw; c-- > 0;) {
            std::int32_t& d = dist[r * pw + c];
            if (r + 1 < ph) d = std::min(d, dist[(r + 1) * pw + c] + 1);
            if (c + 1 < pw) d = std::min(d, dist[r * pw + c + 1] + 1);
          }
      }
      for (index_t j = 0; j < ph * pw; ++j)
        if (dist[j] < best_d[j]) {
          best_d[j] = dist[j];
          best_l[j] = s;
        }
    }
    for (index_t r = 0; r < ph; ++r)
      for (index_t c = 0; c < pw; ++c) {
        const index_t at = (r0 + r) * cols + c0 + c;
        if (low_fg[at]) L[at] = best_l[r * pw + c];
      }
  }

  // Boxes of the remaining labels, ascending.
  const std::int32_t nl = lab.count;
  std::vector<std::int64_t> ext(4 * static_cast<std::size_t>(nl));
  for (std::int32_t l = 0; l < nl; ++l) {
    ext[4 * l] = ext[4 * l + 1] = std::numeric_limits<std::int64_t>::max();
    ext[4 * l + 2] = ext[4 * l + 3] = -1;
  }
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c)
      if (const std::int32_t l = L[r * cols + c]) {
        std::int64_t* e = &ext[4 * (l - 1)];
        e[0] = std::min<std::int64_t>(e[0], c);
        e[1] = std::min<std::int64_t>(e[1], r);
        e[2] = std::max<std::int64_t>(e[2], c);
        e[3] = std::max<std::int64_t>(e[3], r);
      }
  std::vector<std::int64_t> out;
  for (std::int32_t l = 0; l < nl; ++l)
    if (ext[4 * l + 2] >= 0) out.insert(out.end(), &ext[4 * l], &ext[4 * l] + 4);
  return out;
}

}  // namespace cpu
}  // namespace dwd
