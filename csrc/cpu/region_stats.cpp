#include "cpu/region_stats.h"

#include <cmath>
#include <limits>
#include <string>

#include "cpu/runs.h"

namespace dwd {
namespace cpu {
namespace {

// Runs of equal positive labels, and the largest label seen.
template <class T>
void find_label_runs(const Planes& labels, std::vector<Run>& runs, std::int64_t& max_label) {
  const ImageView<const T> v = plane_view<T>(labels, 0);
  EqualRuns<T> scan{v};
  max_label = 0;
  for (index_t r = 0; r < v.rows; ++r) {
    index_t c = scan.next(r, 0);
    while (c < v.cols) {
      const index_t e = scan.end(r, c);
      const T value = v(r, c);
      if (value > T(0)) {
        if (static_cast<double>(value) > static_cast<double>(std::numeric_limits<std::int32_t>::max()))
          throw std::invalid_argument("labels hold a label larger than 2^31 - 1");
        const auto l = static_cast<std::int32_t>(value);
        max_label = std::max<std::int64_t>(max_label, l);
        runs.push_back(Run{static_cast<std::int32_t>(r), static_cast<std::int32_t>(c),
                           static_cast<std::int32_t>(e), l});
      }
      c = e < v.cols ? scan.next(r, e) : v.cols;
    }
  }
}

}  // namespace

RegionStats region_stats(const Planes& labels, const Planes& image, const Planes& classes,
                         std::int64_t num_classes) {
  std::vector<Run> runs;
  std::int64_t n = 0;
  dispatch(labels.dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point<T>::value) {
      throw std::invalid_argument("labels must be an integer array");
    } else {
      find_label_runs<T>(labels, runs, n);
    }
  });
  RegionStats s;
  s.n = n;
  std::vector<Geometry> g(static_cast<std::size_t>(n));
  for (const Run& run : runs) g[run.id - 1].add(run);
  s.area.resize(n);
  s.bbox.resize(n * 4);
  s.centroid.resize(n * 2);
  for (std::int64_t i = 0; i < n; ++i) {
    const Geometry& gi = g[i];
    s.area[i] = gi.area;
    if (gi.area == 0) {
      s.bbox[4 * i] = s.bbox[4 * i + 1] = s.bbox[4 * i + 2] = s.bbox[4 * i + 3] = 0;
      s.centroid[2 * i] = s.centroid[2 * i + 1] = std::numeric_limits<double>::quiet_NaN();
      continue;
    }
    s.bbox[4 * i] = gi.min_r;
    s.bbox[4 * i + 1] = gi.min_c;
    s.bbox[4 * i + 2] = gi.max_r + 1;
    s.bbox[4 * i + 3] = gi.max_c + 1;
    s.centroid[2 * i] = static_cast<double>(gi.sum_r) / static_cast<double>(gi.area);
    s.centroid[2 * i + 1] = static_cast<double>(gi.sum_c) / static_cast<double>(gi.area);
  }
  if (image.present()) {
    s.image_sum.assign(n, 0.0);
    s.image_max.assign(n, -std::numeric_limits<double>::infinity());
    auto reader = make_reader(image);
    std::vector<double> buf;
    if (is_float(image.dtype)) {
      for (const Run& run : runs) {
        buf.resize(run.c1 - run.c0);
        reader->read_f64(0, run.row, run.c0, run.c1, buf.data());
        double sum = s.image_sum[run.id - 1], mx = s.image_max[run.id - 1];
        for (double x : buf) {
          if (std::isnan(x)) throw std::invalid_argument("image contains NaN inside a region");
          sum += x;
          mx = std::max(mx, x);
        }
        s.image_sum[run.id - 1] = sum;
        s.image_max[run.id - 1] = mx;
      }
    } else {
      // Integer images: exact sums in 128 bits, rounded to double once (identical on every backend:
      // dwd/region_stats.h rounds the same exact sum); uint64 compared as unsigned.
      const bool u64 = image.dtype == DType::u64;
      std::vector<__int128> isum(n, 0);
      std::vector<std::int64_t> imax(n, std::numeric_limits<std::int64_t>::min());
      std::vector<std::uint64_t> umax(u64 ? n : 0, 0);
      std::vector<std::int64_t> ibuf;
      for (const Run& run : runs) {
        ibuf.resize(run.c1 - run.c0);
        reader->read_i64(0, run.row, run.c0, run.c1, ibuf.data());  // uint64: the same bits
        if (u64) {
          for (std::int64_t x : ibuf) {
            const auto ux = static_cast<std::uint64_t>(x);
            isum[run.id - 1] += static_cast<__int128>(ux);
            umax[run.id - 1] = std::max(umax[run.id - 1], ux);
          }
        } else {
          for (std::int64_t x : ibuf) {
            isum[run.id - 1] += x;
            imax[run.id - 1] = std::max(imax[run.id - 1], x);
          }
        }
      }
      for (std::int64_t i = 0; i < n; ++i) {
        s.image_sum[i] = static_cast<double>(isum[i]);
        const double mx = u64 ? static_cast<double>(umax[i]) : static_cast<double>(imax[i]);
        s.image_max[i] = s.area[i] ? mx : std::numeric_limits<double>::quiet_NaN();
      }
    }
    for (std::int64_t i = 0; i < n; ++i)
      if (s.area[i] == 0) s.image_max[i] = std::numeric_limits<double>::quiet_NaN();
  }
  if (classes.present()) {
    s.vote.assign(n, -1);
    s.vote_count.assign(n, 0);
    auto reader = make_reader(classes);
    // Runs of one label are not contiguous in `runs`: group them.
    std::vector<index_t> offset;
    std::vector<std::int32_t> order;
    group_runs(runs, n, order, offset);
    ClassVote vote;
    std::vector<std::int64_t> ibuf;
    for (std::int64_t l = 0; l < n; ++l) {
      for (index_t k = offset[l]; k < offset[l + 1]; ++k) {
        const Run& run = runs[order[k]];
        ibuf.resize(run.c1 - run.c0);
        reader->read_i64(0, run.row, run.c0, run.c1, ibuf.data());
        for (std::int64_t id : ibuf) {
          if (num_classes >= 0 && id >= num_classes)
            throw std::invalid_argument("classes holds id " + std::to_string(id) + " >= num_classes = " +
                                        std::to_string(num_classes));
          vote.add(id);
        }
      }
      const auto win = vote.take();
      s.vote[l] = win.first;
      s.vote_count[l] = win.second;
    }
  }
  return s;
}

}  // namespace cpu
}  // namespace dwd
