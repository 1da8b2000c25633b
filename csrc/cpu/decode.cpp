#include "cpu/decode.h"
#include "cpu/parallel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>

#include "cpu/above.h"
#include "cpu/flood.h"
#include "cpu/peaks.h"
#include "cpu/runs.h"

namespace dwd {
namespace cpu {
namespace {

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
      bad |= !(s0[c] - s0[c] == T(0));  // NaN or +-inf
    }
    for (index_t k = 1; k < e.planes; ++k) {
      const T* s = s0 + k * e.stride_p;
      const auto kk = static_cast<std::uint8_t>(k);
      for (index_t c = 0; c < e.cols; ++c) {
        const T x = s[c];
        bad |= !(x - x == T(0));
        const bool gt = x > best[c];  // first maximum wins, like numpy.argmax
        best[c] = gt ? x : best[c];
        o[c] = gt ? kk : o[c];
      }
    }
    if (bad) throw std::invalid_argument("energy contains NaN or infinity (logits must be finite)");
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

// Objects as runs with ids 1..n.
struct Objects {
  std::vector<Run> runs;
  std::int32_t n = 0;
};

// The value type of the packed relief -energy: wide enough to negate the energy's type exactly.
template <class T>
using Relief = typename std::conditional<
    std::is_floating_point<T>::value, double,
    typename std::conditional<(sizeof(T) == 1), std::int16_t, std::int64_t>::type>::type;

// Grows `seeds` by the canonical watershed over -energy inside energy > t. Returns the regions as
// runs with ids (0 = a component of energy > t that holds no seed).
std::vector<Run> grow(const Planes& e, double t, const Objects& seeds, int connectivity) {
  RunLabels comps;
  label_above(e, t, connectivity, comps, /*check_nan=*/false);  // the seeds' pass checked it
  // Each seed lies inside one component (grow_to <= cutoff); see SoleLabels.
  std::vector<std::int32_t> seed_comp(seeds.runs.size());
  SoleLabels sole(comps.count);
  for (std::size_t k = 0; k < seeds.runs.size(); ++k) {
    const Run& sr = seeds.runs[k];
    const auto first = comps.runs.begin() + comps.row_start[sr.row];
    const auto last = comps.runs.begin() + comps.row_start[sr.row + 1];
    seed_comp[k] = std::upper_bound(first, last, sr.c0, [](index_t col, const Run& run) { return col < run.c1; })->id;
    sole.add(seed_comp[k], sr.id);
  }
  sole.number();
  const std::vector<std::int32_t>& only = sole.only;
  const std::vector<std::int32_t>& new_id = sole.new_id;
  const std::int32_t several = sole.several;
  std::vector<Run> out;
  out.reserve(comps.runs.size());
  if (several == 0) {
    for (const Run& run : comps.runs) out.push_back(Run{run.row, run.c0, run.c1, only[run.id - 1] > 0 ? only[run.id - 1] : -run.id});
    return out;
  }
  dispatch(e.dtype, [&](auto tag) {
    using T = decltype(tag);
    using V = Relief<T>;
    const ImageView<const T> v = plane_view<T>(e, 0);
    Packed<V> packed;
    packed.place(subset(comps, new_id, several), e.rows, e.cols, false);
    packed.fill(v, [](T x) { return -static_cast<V>(x); });
    packed.flood_canonical(
        seeds.runs, [&](std::size_t k, const Run&) { return new_id[seed_comp[k] - 1]; }, connectivity);
    // The components' runs in raster order; the flooded ones split where the label changes.
    const std::vector<Run>& flooded = packed.comps().runs;
    std::size_t f = 0;
    for (const Run& run : comps.runs) {
      const std::int32_t s = only[run.id - 1];
      if (s >= 0) {
        out.push_back(Run{run.row, run.c0, run.c1, s > 0 ? s : -run.id});
        continue;
      }
      const std::int32_t* lab = packed.lab_row(flooded[f++]);
      index_t c = run.c0;
      while (c < run.c1) {
        const std::int32_t l = lab[c];
        index_t e2 = c + 1;
        while (e2 < run.c1 && lab[e2] == l) ++e2;
        // unseeded pixels keep their component, encoded as -component until numbered
        out.push_back(Run{run.row, static_cast<std::int32_t>(c), static_cast<std::int32_t>(e2), l > 0 ? l : -run.id});
        c = e2;
      }
    }
  });
  return out;
}

// Seeds from local maxima: the peaks of the level map above the cut-off (peak_local_max with
// min_distance, no border exclusion), each grown to its plateau (the connected pixels of its value);
// peaks on one plateau merge. Numbered 1..n in raster order of each plateau's first pixel.
std::vector<Run> peak_plateaus(const Planes& levels, double cutoff, std::int64_t min_distance, int connectivity,
                               std::int32_t& n) {
  PeakParams pp;
  pp.min_distance = min_distance;
  pp.set_cut(static_cast<std::int64_t>(std::floor(cutoff)));
  pp.cut_f = cutoff;
  const std::vector<index_t> peaks = peak_local_max(levels, pp);
  const auto reader = make_reader(levels);
  const index_t rows = levels.rows, cols = levels.cols;
  auto value = [&](index_t i) {
    double v;
    reader->read_f64(0, i / cols, i % cols, i % cols + 1, &v);
    return v;
  };
  const Neighbours nb(connectivity);
  std::unordered_map<index_t, std::int32_t> plateau_of;
  std::vector<std::vector<index_t>> plateaus;
  std::vector<index_t> stack;
  for (const index_t pk : peaks) {
    if (plateau_of.count(pk)) continue;  // on the plateau of an earlier peak
    const double v = value(pk);
    const auto id = static_cast<std::int32_t>(plateaus.size());
    plateaus.emplace_back();
    plateau_of[pk] = id;
    stack.assign(1, pk);
    while (!stack.empty()) {
      const index_t q = stack.back();
      stack.pop_back();
      plateaus[id].push_back(q);
      const index_t r = q / cols, c = q % cols;
      for (int k = 0; k < nb.n; ++k) {
        const index_t rr = r + nb.dr[k], cc = c + nb.dc[k];
        if (rr < 0 || rr >= rows || cc < 0 || cc >= cols) continue;
        const index_t j = rr * cols + cc;
        if (plateau_of.count(j) || value(j) != v) continue;
        plateau_of[j] = id;
        stack.push_back(j);
      }
    }
  }
  for (auto& pl : plateaus) std::sort(pl.begin(), pl.end());
  std::sort(plateaus.begin(), plateaus.end(), [](const auto& a, const auto& b) { return a[0] < b[0]; });
  std::vector<Run> runs;
  n = static_cast<std::int32_t>(plateaus.size());
  for (std::int32_t k = 0; k < n; ++k) {
    const auto& pl = plateaus[k];
    for (std::size_t a = 0; a < pl.size();) {
      std::size_t b = a + 1;
      while (b < pl.size() && pl[b] == pl[b - 1] + 1 && pl[b] / cols == pl[a] / cols) ++b;
      runs.push_back(Run{static_cast<std::int32_t>(pl[a] / cols), static_cast<std::int32_t>(pl[a] % cols),
                         static_cast<std::int32_t>(pl[b - 1] % cols + 1), k + 1});
      a = b;
    }
  }
  return runs;
}

// Keeps the objects with at least min_size pixels, renumbered in order.
void drop_small(Objects& o, std::int64_t min_size) {
  std::vector<std::int64_t> area(static_cast<std::size_t>(o.n) + 1, 0);
  for (const Run& run : o.runs) area[run.id] += run.c1 - run.c0;
  std::vector<std::int32_t> id(area.size(), 0);
  std::int32_t n = 0;
  for (std::int32_t k = 1; k <= o.n; ++k)
    if (area[k] >= min_size) id[k] = ++n;
  std::vector<Run> kept;
  for (Run run : o.runs)
    if (id[run.id]) kept.push_back(Run{run.row, run.c0, run.c1, id[run.id]});
  o.runs.swap(kept);
  o.n = n;
}

// The pixels of `runs` whose level is above the cut-off, as runs with the same ids.
std::vector<Run> above(const std::vector<Run>& runs, const SegmentReader& levels, double cutoff) {
  std::vector<Run> out;
  std::vector<double> buf;
  for (const Run& run : runs) {
    buf.resize(static_cast<std::size_t>(run.c1 - run.c0));
    levels.read_f64(0, run.row, run.c0, run.c1, buf.data());
    index_t c = 0;
    const index_t n = run.c1 - run.c0;
    while (c < n) {
      while (c < n && !(buf[c] > cutoff)) ++c;
      index_t e2 = c;
      while (e2 < n && buf[e2] > cutoff) ++e2;
      if (e2 > c) out.push_back(Run{run.row, static_cast<std::int32_t>(run.c0 + c), static_cast<std::int32_t>(run.c0 + e2), run.id});
      c = e2;
    }
  }
  return out;
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
  const auto level_reader = make_reader(levels);

  // 1. Seeds: components of energy > cutoff with at least min_size pixels, numbered 1..n in raster
  //    order of their first pixel (or plateau-merged peaks).
  Objects seeds;
  if (p.peak_seeds) {
    seeds.runs = peak_plateaus(levels, p.cutoff, p.min_distance, p.connectivity, seeds.n);
  } else {
    RunLabels lab;
    label_above(levels, p.cutoff, p.connectivity, lab);
    const std::vector<Geometry> geo = geometry(lab);
    std::vector<std::int32_t> new_id(geo.size(), 0);
    for (std::size_t i = 0; i < geo.size(); ++i)
      if (geo[i].area >= p.min_size) new_id[i] = ++seeds.n;
    for (const Run& run : lab.runs)
      if (new_id[run.id - 1]) seeds.runs.push_back(Run{run.row, run.c0, run.c1, new_id[run.id - 1]});
  }

  // 2. Objects: the seeds, or their grown regions plus the seedless components of energy > grow_to
  //    (numbered after the seeds, in raster order, if they have at least min_size pixels). An
  //    object's core is its part above the cut-off (its whole region if it has none).
  Objects core, region;
  if (!p.grow) {
    core = seeds;
    region = seeds;
  } else {
    region.runs = grow(levels, p.grow_to, seeds, p.connectivity);
    region.n = seeds.n;
    std::int32_t ncomp = 0;
    for (const Run& run : region.runs) ncomp = std::max(ncomp, run.id < 0 ? -run.id : 0);
    std::vector<std::int64_t> area(static_cast<std::size_t>(ncomp) + 1, 0);
    for (const Run& run : region.runs)
      if (run.id < 0) area[-run.id] += run.c1 - run.c0;
    std::vector<std::int32_t> comp_id(area.size(), 0);
    for (std::int32_t k = 1; k <= ncomp; ++k)
      if (area[k] > 0 && area[k] >= std::max<std::int64_t>(p.min_size, 1)) comp_id[k] = ++region.n;
    for (Run& run : region.runs)
      if (run.id < 0) run.id = comp_id[-run.id];
    {
      std::vector<Run> kept;
      for (const Run& run : region.runs)
        if (run.id > 0) kept.push_back(run);
      region.runs.swap(kept);
    }
    if (p.peak_seeds) drop_small(region, p.min_size);
    core.runs = above(region.runs, *level_reader, p.cutoff);
    core.n = region.n;
    std::vector<char> has_core(static_cast<std::size_t>(region.n) + 1, 0);
    for (const Run& run : core.runs) has_core[run.id] = 1;
    for (const Run& run : region.runs)
      if (run.id > 0 && !has_core[run.id]) core.runs.push_back(run);
  }
  const std::int32_t n = region.n;
  if (label_map) {
    RunLabels painter;
    painter.runs = region.runs;
    painter.row_start.assign(static_cast<std::size_t>(rows) + 1, 0);
    std::sort(painter.runs.begin(), painter.runs.end(),
              [](const Run& a, const Run& b) { return a.row != b.row ? a.row < b.row : a.c0 < b.c0; });
    for (const Run& run : painter.runs) ++painter.row_start[run.row + 1];
    for (index_t r = 0; r < rows; ++r) painter.row_start[r + 1] += painter.row_start[r];
    painter.paint(*label_map);
  }

  const Objects& stat = p.reduce_over_region ? region : core;
  std::vector<Geometry> sgeo(static_cast<std::size_t>(n)), rgeo(static_cast<std::size_t>(n));
  for (const Run& run : stat.runs)
    if (run.id > 0) sgeo[run.id - 1].add(run);
  for (const Run& run : region.runs)
    if (run.id > 0) rgeo[run.id - 1].add(run);
  std::vector<std::int32_t> order;
  std::vector<index_t> offset;
  group_runs(stat.runs, n, order, offset);

  Detections d;
  d.n = n;
  d.boxes.resize(4 * n);
  d.labels.assign(n, -1);
  d.scores.resize(n);
  d.class_scores.assign(n, 0.f);
  d.centers.resize(2 * n);
  d.areas.resize(n);

  const auto logit_reader = p.energy_logits ? make_reader(energy) : nullptr;
  const auto class_reader = classes.present() ? make_reader(classes) : nullptr;
  const auto size_reader = sizes.present() ? make_reader(sizes) : nullptr;
  const index_t K = energy.planes, C = classes.planes;
  // Objects are independent: the threads take contiguous stretches of them, of near-equal area. Each
  // object's runs lie rows apart (a cache miss each): the maps under later runs are fetched ahead.
  // The first bad value in object order is reported, as one thread would.
  std::int64_t stat_px = 0;
  for (const Geometry& g : sgeo) stat_px += g.area;
  const int nt = phase_threads(stat_px * 8, n);
  std::vector<std::int64_t> cut(static_cast<std::size_t>(nt) + 1);
  weighted_parts(
      n, nt, [&](std::int64_t o) { return sgeo[static_cast<std::size_t>(o)].area + 8; },
      [&](int t, std::int64_t o) { cut[static_cast<std::size_t>(t)] = o; });
  on_threads(nt, [&](int t) {
    constexpr index_t kAhead = 8;
    const index_t k_end = offset[static_cast<std::size_t>(cut[t + 1])];
    ClassVote vote;
    std::vector<double> dbuf, prob, cls_sum, hs, ws;
    std::vector<std::int64_t> ibuf;
    for (std::int32_t o = static_cast<std::int32_t>(cut[t]); o < static_cast<std::int32_t>(cut[t + 1]); ++o) {
      const Geometry& g = sgeo[o];
      const Geometry& rg = rgeo[o];
      const double cy = static_cast<double>(g.sum_r) / static_cast<double>(g.area);
      const double cx = static_cast<double>(g.sum_c) / static_cast<double>(g.area);
      d.centers[2 * o] = cy;
      d.centers[2 * o + 1] = cx;
      d.areas[o] = rg.area;
      double peak = -std::numeric_limits<double>::infinity(), energy_p = 0;
      if (class_reader && p.class_logits) cls_sum.assign(static_cast<std::size_t>(C), 0.0);
      hs.clear();
      ws.clear();
      for (index_t k = offset[o]; k < offset[o + 1]; ++k) {
        if (k + kAhead < k_end) {
          const Run& a = stat.runs[order[k + kAhead]];
          level_reader->prefetch(0, a.row, a.c0);
          if (class_reader) class_reader->prefetch(0, a.row, a.c0);
          if (size_reader) {
            size_reader->prefetch(0, a.row, a.c0);
            size_reader->prefetch(1, a.row, a.c0);
          }
        }
        const Run& run = stat.runs[order[k]];
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
            if (!std::isfinite(dbuf[i])) throw std::invalid_argument("classes contains NaN or infinity (logits must be finite)");
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
          if (!std::isfinite(x)) throw std::invalid_argument("sizes contains NaN or infinity");
        for (double x : ws)
          if (!std::isfinite(x)) throw std::invalid_argument("sizes contains NaN or infinity");
        const double h = std::max(0.0, reduce_sizes(hs, p.size_reduce));
        const double w = std::max(0.0, reduce_sizes(ws, p.size_reduce));
        // Pixel (r, c) covers [c, c + 1) x [r, r + 1): its centre is at (c + 0.5, r + 0.5).
        b[0] = static_cast<float>(cx + 0.5 - w / 2);
        b[1] = static_cast<float>(cy + 0.5 - h / 2);
        b[2] = static_cast<float>(cx + 0.5 + w / 2);
        b[3] = static_cast<float>(cy + 0.5 + h / 2);
      } else {  // the object's own extent (its grown region's, when grown)
        b[0] = static_cast<float>(rg.min_c);
        b[1] = static_cast<float>(rg.min_r);
        b[2] = static_cast<float>(rg.max_c + 1);
        b[3] = static_cast<float>(rg.max_r + 1);
      }
    }
  });
  return d;
}

}  // namespace cpu
}  // namespace dwd
