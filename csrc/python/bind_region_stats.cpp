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

}  // namespace

void bind_region_stats(py::module_& m) {
  m.def("region_stats", &region_stats, py::arg("labels"), py::arg("image"), py::arg("classes"),
        py::arg("num_classes"));
  m.def("region_stats_host", &region_stats_host, py::arg("labels"), py::arg("image"), py::arg("classes"),
        py::arg("num_classes"), py::arg("alloc"), py::arg("order"), py::arg("seed"));
}

}  // namespace dwd
