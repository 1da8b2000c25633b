// Python binding of region_stats.
#include "cpu/region_stats.h"

#include "dwd/region_stats.h"
#include "host/host_exec.h"
#include "python/common.h"
#include "python/views.h"

namespace dwd {

namespace {

py::dict region_stats(const py::array& labels, const py::object& image, const py::object& classes,
                      std::int64_t num_classes) {
  const cpu::Planes lp = planes_of(labels, 0, "labels");
  cpu::Planes ip, cp;
  if (!image.is_none()) ip = planes_of(image.cast<py::array>(), 0, "image");
  if (!classes.is_none()) cp = planes_of(classes.cast<py::array>(), 0, "classes");
  cpu::RegionStats s;
  {
    py::gil_scoped_release nogil;
    s = cpu::region_stats(lp, ip, cp, num_classes);
  }
  const py::ssize_t n = s.n;
  py::dict d;
  d["area"] = to_numpy(s.area, {n});
  d["bbox"] = to_numpy(s.bbox, {n, 4});
  d["centroid"] = to_numpy(s.centroid, {n, 2});
  if (ip.present()) {
    d["image_sum"] = to_numpy(s.image_sum, {n});
    d["image_max"] = to_numpy(s.image_max, {n});
  }
  if (cp.present()) {
    d["vote"] = to_numpy(s.vote, {n});
    d["vote_count"] = to_numpy(s.vote_count, {n});
  }
  return d;
}

// The data-parallel algorithm (dwd/region_stats.h) run by HostExec in the given element order.
// `alloc(n)` allocates the outputs and returns their 7 pointers (area, bbox, centroid, image_sum,
// image_max, vote, vote_count; 0 = not wanted). Returns (n, counts).
py::tuple region_stats_host(const py::object& labels, const py::object& image, const py::object& classes,
                            std::int64_t num_classes, const py::function& alloc, int order, std::uint64_t seed) {
  const AnyView lab = anyview_of(labels, "labels"), img = anyview_of(image, "image"), cls = anyview_of(classes, "classes");
  std::int64_t n;
  ExecCounts c;
  {
    py::gil_scoped_release nogil;
    HostExec ex(static_cast<Order>(order), seed);
    n = rstats_dp::region_stats(ex, lab, img, cls, num_classes, [&](std::int64_t k) {
      return region_out(call_alloc(alloc, {k}));
    });
    c.launches = ex.launches();
    c.syncs = ex.syncs();
    c.workspace = ex.workspace_bytes();
  }
  return py::make_tuple(n, counts_dict(c));
}


// numpy's pairwise summation (the order np.add.reduce uses on a contiguous float array): below 8 items
// a plain loop from -0.0, up to 128 eight accumulators, above that two halves (the first a multiple of 8).
template <class T>
T pairwise_sum(const T* a, std::int64_t n) {
  if (n < 8) {
    T res = T(-0.0);
    for (std::int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    T r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    std::int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  std::int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

// Per label 1..n_labels of a contiguous 2-D label image (int32 or int64; other values ignored): the sum of
// `values` (float32 or float64, same shape) over the label's pixels in raster order, summed as
// np.add.reduce sums them (so np.mean's sums, bit for bit), as float64 (a float32 sum is exact in it).
template <class L, class T>
std::vector<double> grouped_sums(const L* lab, const T* val, std::int64_t n, std::int64_t n_labels) {
  std::vector<std::int64_t> start(static_cast<std::size_t>(n_labels) + 2, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const L l = lab[i];
    if (l > 0 && static_cast<std::int64_t>(l) <= n_labels) ++start[static_cast<std::size_t>(l) + 1];
  }
  for (std::int64_t l = 1; l <= n_labels + 1 && l < static_cast<std::int64_t>(start.size()); ++l) start[l] += start[l - 1];
  std::vector<T> grouped(static_cast<std::size_t>(start[static_cast<std::size_t>(n_labels) + 1]));
  std::vector<std::int64_t> pos(start.begin(), start.end());
  for (std::int64_t i = 0; i < n; ++i) {
    const L l = lab[i];
    if (l > 0 && static_cast<std::int64_t>(l) <= n_labels) grouped[static_cast<std::size_t>(pos[l]++)] = val[i];
  }
  std::vector<double> sums(static_cast<std::size_t>(n_labels));
  for (std::int64_t l = 1; l <= n_labels; ++l)
    sums[l - 1] = static_cast<double>(pairwise_sum(grouped.data() + start[l], start[l + 1] - start[l]));
  return sums;
}

py::array region_sums_pairwise(const py::array& labels, const py::array& values, std::int64_t n_labels) {
  if (!(labels.flags() & py::array::c_style) || !(values.flags() & py::array::c_style))
    throw std::invalid_argument("region_sums_pairwise: arrays must be C-contiguous");
  if (labels.size() != values.size()) throw std::invalid_argument("region_sums_pairwise: size mismatch");
  if (n_labels < 0) throw std::invalid_argument("region_sums_pairwise: n_labels must be >= 0");
  const std::int64_t n = labels.size();
  const char lk = labels.dtype().kind(), vk = values.dtype().kind();
  const auto ls = labels.itemsize(), vs = values.itemsize();
  if (lk != 'i' || (ls != 4 && ls != 8)) throw std::invalid_argument("region_sums_pairwise: labels must be int32 or int64");
  if (vk != 'f' || (vs != 4 && vs != 8)) throw std::invalid_argument("region_sums_pairwise: values must be float32 or float64");
  std::vector<double> out;
  {
    py::gil_scoped_release nogil;
    if (ls == 4 && vs == 4) out = grouped_sums(static_cast<const std::int32_t*>(labels.data()), static_cast<const float*>(values.data()), n, n_labels);
    else if (ls == 4) out = grouped_sums(static_cast<const std::int32_t*>(labels.data()), static_cast<const double*>(values.data()), n, n_labels);
    else if (vs == 4) out = grouped_sums(static_cast<const std::int64_t*>(labels.data()), static_cast<const float*>(values.data()), n, n_labels);
    else out = grouped_sums(static_cast<const std::int64_t*>(labels.data()), static_cast<const double*>(values.data()), n, n_labels);
  }
  return to_numpy(out, {static_cast<py::ssize_t>(out.size())});
}

}  // namespace

void bind_region_stats(py::module_& m) {
  m.def("region_stats", &region_stats, py::arg("labels"), py::arg("image"), py::arg("classes"),
        py::arg("num_classes"));
  m.def("region_stats_host", &region_stats_host, py::arg("labels"), py::arg("image"), py::arg("classes"),
        py::arg("num_classes"), py::arg("alloc"), py::arg("order"), py::arg("seed"));
  m.def("region_sums_pairwise", &region_sums_pairwise, py::arg("labels"), py::arg("values"), py::arg("n_labels"));
}

}  // namespace dwd
