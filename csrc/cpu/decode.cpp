#include "cpu/decode.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "cpu/runs.h"

namespace dwd {
namespace cpu {
namespace {

// Every pixel is foreground (a cut-off below the dtype's range).
struct AllRuns {
  index_t cols;
  index_t next(index_t, index_t c) const { return c; }
  index_t end(index_t, index_t) const { return cols; }
  bool joined(const Run&, const Run&) const { return true; }
};

template <class T>
void check_finite(const Planes& m, const char* what) {
  if constexpr (std::is_floating_point<T>::value) {
    for (index_t p = 0; p < m.planes; ++p)
      for (index_t r = 0; r < m.rows; ++r) {
        const T* s = static_cast<const T*>(m.data) + p * m.stride_p + r * m.stride_r;
        bool bad = false;
        for (index_t c = 0; c < m.cols; ++c) bad |= s[c] != s[c];
        if (bad) throw std::invalid_argument(std::string(what) + " contains NaN");
      }
  }
}

// Labels `energy > cutoff` (plane 0 of a level map).
void label_above(const Planes& e, double cutoff, int connectivity, RunLabels& lab) {
  dispatch(e.dtype, [&](auto tag) {
    using T = decltype(tag);
    check_finite<T>(e, "energy");
    const ImageView<const T> v = plane_view<T>(e, 0);
    if constexpr (std::is_floating_point<T>::value) {
      lab.build(AboveRuns<T>{v, static_cast<T>(cutoff)}, e.rows, e.cols, connectivity);
    } else {
      const double lo = static_cast<double>(std::numeric_limits<T>::lowest());
      const double hi = static_cast<double>(std::numeric_limits<T>::max());
      const double f = std::floor(cutoff);  // integer v > cutoff  <=>  v > floor(cutoff)
      if (f >= hi) {
        lab.build(AboveRuns<T>{v, std::numeric_limits<T>::max()}, e.rows, e.cols, connectivity);
      } else if (f < lo) {
        lab.build(AllRuns{e.cols}, e.rows, e.cols, connectivity);
      } else {
        lab.build(AboveRuns<T>{v, static_cast<T>(f)}, e.rows, e.cols, connectivity);
      }
    }
  });
}

// argmax over the K planes of energy logits, into a uint8 level map.
template <class T>
void argmax_levels(const Planes& e, std::vector<std::uint8_t>& out) {
  out.resize(static_cast<std::size_t>(e.rows * e.cols));
  std::vector<T> best(static_cast<std::size_t>(e.cols));
  for (index_t r = 0; r < e.rows; ++r) {
    std::uint8_t* o = out.data() + r * e.cols;
    const T* s0 = static_cast<const T*>(e.data) + r * e.stride_r;
    bool bad = false;
    for (index_t c = 0; c < e.cols; ++c) {
      best[c] = s0[c];
      o[c] = 0;
      bad |= s0[c] != s0[c];
    }
    for (index_t k = 1; k < e.planes; ++k) {
      const T* s = s0 + k * e.stride_p;
      const auto kk = static_cast<std::uint8_t>(k);
      for (index_t c = 0; c < e.cols; ++c) {
        const T x = s[c];
        bad |= x != x;
        const bool gt = x > best[c];  // first maximum wins, like numpy.argmax
        best[c] = gt ? x : best[c];
        o[c] = gt ? kk : o[c];
      }
    }
    if (bad) throw std::invalid_argument("energy contains NaN");
  }
}

// Softmax of the `planes` values of one pixel (`vals` holds them, plane-major with stride `len`).
inline void softmax(const double* vals, index_t planes, index_t len, double* prob) {
  double m = -std::numeric_limits<double>::infinity();
  for (index_t k = 0; k < planes; ++k) m = std::max(m, vals[k * len]);
  double den = 0;
  for (index_t k = 0; k < planes; ++k) {
    prob[k] = std::exp(vals[k * len] - m);
    den += prob[k];
  }
  for (index_t k = 0; k < planes; ++k) prob[k] /= den;
}

double reduce_sizes(std::vector<double>& v, SizeReduce how) {
  if (v.empty()) return 0;
  switch (how) {
    case SizeReduce::max: return *std::max_element(v.begin(), v.end());
    case SizeReduce::mean: {
      double s = 0;
      for (double x : v) s += x;
      return s / static_cast<double>(v.size());
    }
    case SizeReduce::median: {
      const std::size_t h = v.size() / 2;
      std::nth_element(v.begin(), v.begin() + h, v.end());
      const double hi = v[h];
      if (v.size() % 2) return hi;
      const double lo = *std::max_element(v.begin(), v.begin() + h);
      return (lo + hi) / 2;  // numpy.median's convention
    }
  }
  return 0;
}

}  // namespace

Detections decode(const Planes& energy, const Planes& classes, const Planes& sizes, const DecodeParams& p,
                  ImageView<std::int32_t>* label_map) {
  const index_t rows = energy.rows, cols = energy.cols;
  std::vector<std::uint8_t> level_buf;
  Planes levels = energy;
  levels.planes = 1;
  if (p.energy_logits) {
    if (energy.planes > 255) throw std::invalid_argument("energy logits have more than 255 levels");
    dispatch(energy.dtype, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_floating_point<T>::value) argmax_levels<T>(energy, level_buf);
      else throw std::invalid_argument("energy logits must be float32 or float64");
    });
    levels = Planes{level_buf.data(), DType::u8, 1, rows, cols, rows * cols, cols};
  }

  RunLabels lab;
  label_above(levels, p.cutoff, p.connectivity, lab);

  // Size filter: objects are the components of at least min_size pixels, renumbered 1..n.
  const std::vector<Geometry> geo = geometry(lab);
  std::vector<std::int32_t> new_id(geo.size(), 0);
  std::int32_t n = 0;
  for (std::size_t i = 0; i < geo.size(); ++i)
    if (geo[i].area >= p.min_size) new_id[i] = ++n;
  for (Run& run : lab.runs) run.id = run.id > 0 ? new_id[run.id - 1] : 0;
  lab.count = n;
  if (label_map) lab.paint(*label_map);

  std::vector<std::int32_t> order;
  std::vector<index_t> offset;
  lab.group(order, offset);

  Detections d;
  d.n = n;
  d.boxes.resize(4 * n);
  d.labels.assign(n, -1);
  d.scores.resize(n);
  d.class_scores.assign(n, 0.f);
  d.centers.resize(2 * n);
  d.areas.resize(n);

  const auto level_reader = make_reader(levels);
  const auto logit_reader = p.energy_logits ? make_reader(energy) : nullptr;
  const auto class_reader = classes.present() ? make_reader(classes) : nullptr;
  const auto size_reader = sizes.present() ? make_reader(sizes) : nullptr;
  const index_t K = energy.planes, C = classes.planes;
  ClassVote vote;
  std::vector<double> dbuf, prob, cls_sum, hs, ws;
  std::vector<std::int64_t> ibuf;

  std::int32_t old = 0;  // walks the unfiltered components alongside the objects
  for (std::int32_t o = 0; o < n; ++o) {
    while (new_id[old] != o + 1) ++old;
    const Geometry& g = geo[old];
    const double cy = static_cast<double>(g.sum_r) / static_cast<double>(g.area);
    const double cx = static_cast<double>(g.sum_c) / static_cast<double>(g.area);
    d.centers[2 * o] = cy;
    d.centers[2 * o + 1] = cx;
    d.areas[o] = g.area;

    double peak = -std::numeric_limits<double>::infinity(), energy_p = 0;
    if (class_reader && p.class_logits) cls_sum.assign(static_cast<std::size_t>(C), 0.0);
    hs.clear();
    ws.clear();
    for (index_t k = offset[o]; k < offset[o + 1]; ++k) {
      const Run& run = lab.runs[order[k]];
      const index_t len = run.c1 - run.c0;
      dbuf.resize(static_cast<std::size_t>(len));
      level_reader->read_f64(0, run.row, run.c0, run.c1, dbuf.data());
      for (double x : dbuf) peak = std::max(peak, x);
      if (logit_reader) {  // score: mean probability of the levels above the cut-off
        dbuf.resize(static_cast<std::size_t>(K * len));
        prob.resize(static_cast<std::size_t>(K));
        for (index_t kk = 0; kk < K; ++kk) logit_reader->read_f64(kk, run.row, run.c0, run.c1, dbuf.data() + kk * len);
        for (index_t c = 0; c < len; ++c) {
          softmax(dbuf.data() + c, K, len, prob.data());
          for (index_t kk = 0; kk < K; ++kk)
            if (static_cast<double>(kk) > p.cutoff) energy_p += prob[kk];
        }
      }
      if (class_reader && !p.class_logits) {
        ibuf.resize(static_cast<std::size_t>(len));
        class_reader->read_i64(0, run.row, run.c0, run.c1, ibuf.data());
        for (std::int64_t id : ibuf) vote.add(id);
      } else if (class_reader) {
        dbuf.resize(static_cast<std::size_t>(C * len));
        prob.resize(static_cast<std::size_t>(C));
        for (index_t kk = 0; kk < C; ++kk) class_reader->read_f64(kk, run.row, run.c0, run.c1, dbuf.data() + kk * len);
        for (index_t i = 0; i < C * len; ++i)
          if (std::isnan(dbuf[i])) throw std::invalid_argument("classes contains NaN");
        for (index_t c = 0; c < len; ++c) {
          softmax(dbuf.data() + c, C, len, prob.data());
          for (index_t kk = 0; kk < C; ++kk) cls_sum[kk] += prob[kk];
        }
      }
      if (size_reader) {
        const std::size_t at = hs.size();
        hs.resize(at + len);
        ws.resize(at + len);
        size_reader->read_f64(0, run.row, run.c0, run.c1, hs.data() + at);
        size_reader->read_f64(1, run.row, run.c0, run.c1, ws.data() + at);
      }
    }

    if (logit_reader) d.scores[o] = static_cast<float>(energy_p / static_cast<double>(g.area));
    else d.scores[o] = static_cast<float>(std::clamp(peak / static_cast<double>(p.levels - 1), 0.0, 1.0));

    if (class_reader && !p.class_logits) {
      const auto win = vote.take();
      d.labels[o] = win.first;
      d.class_scores[o] = static_cast<float>(static_cast<double>(win.second) / static_cast<double>(g.area));
    } else if (class_reader) {
      const auto best = std::max_element(cls_sum.begin(), cls_sum.end());  // first maximum: smallest id
      d.labels[o] = best - cls_sum.begin();
      d.class_scores[o] = static_cast<float>(*best / static_cast<double>(g.area));
    }

    float* b = d.boxes.data() + 4 * o;
    if (size_reader) {
      for (double x : hs)
        if (std::isnan(x)) throw std::invalid_argument("sizes contains NaN");
      for (double x : ws)
        if (std::isnan(x)) throw std::invalid_argument("sizes contains NaN");
      const double h = std::max(0.0, reduce_sizes(hs, p.size_reduce));
      const double w = std::max(0.0, reduce_sizes(ws, p.size_reduce));
      // Pixel (r, c) covers [c, c + 1) x [r, r + 1): its centre is at (c + 0.5, r + 0.5).
      b[0] = static_cast<float>(cx + 0.5 - w / 2);
      b[1] = static_cast<float>(cy + 0.5 - h / 2);
      b[2] = static_cast<float>(cx + 0.5 + w / 2);
      b[3] = static_cast<float>(cy + 0.5 + h / 2);
    } else {  // the object's own extent
      b[0] = static_cast<float>(g.min_c);
      b[1] = static_cast<float>(g.min_r);
      b[2] = static_cast<float>(g.max_c + 1);
      b[3] = static_cast<float>(g.max_r + 1);
    }
  }
  return d;
}

}  // namespace cpu
}  // namespace dwd
