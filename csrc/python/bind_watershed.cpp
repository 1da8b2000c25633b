// Python binding of watershed: canonical and scikit-image flooding on the CPU, and the data-parallel
// op (what the CUDA binding runs) through HostExec.
#include "cpu/watershed.h"

#include "dwd/watershed.h"
#include "host/host_exec.h"
#include "python/common.h"
#include "python/views.h"

namespace dwd {

namespace {

// Floods into `out` (int32, rows x cols, contiguous; every pixel is written) and returns the first pixel of
// each dense label. stats (a dict, or None): method skimage's operation counts are added to it.
py::array watershed(const py::array& image, const py::array& markers, const py::object& mask, int connectivity,
                    int method, py::array_t<std::int32_t> out, const py::object& stats) {
  const cpu::Planes ip = planes_of(image, 0, "image");
  const cpu::Planes mp = planes_of(markers, 0, "markers");
  cpu::Planes kp;
  if (!mask.is_none()) kp = planes_of(mask.cast<py::array>(), 0, "mask");
  ImageView<std::int32_t> ov = make_view(out.mutable_data(), ip.rows, ip.cols);
  cpu::Markers m;
  cpu::SkimageCounts counts;
  {
    py::gil_scoped_release nogil;
    m = cpu::find_markers(mp, kp, connectivity);
    cpu::watershed(ip, m, kp, connectivity, static_cast<cpu::WatershedMethod>(method), ov, &counts);
  }
  if (!stats.is_none()) {
    py::dict d = stats.cast<py::dict>();
    d["heap_pops"] = counts.heap_pops;
    d["queue_pushes"] = counts.queue_pushes;
    d["queue_moves"] = counts.queue_moves;
    d["queue_refills"] = counts.queue_refills;
  }
  return to_numpy(m.first_pixel, {static_cast<py::ssize_t>(m.first_pixel.size())});
}

// The whole data-parallel op (dwd/watershed.h watershed_maps: level ranks, dense markers, flood, marker
// values) run by HostExec in the given element order: what the CUDA binding runs. Maps are view
// descriptors (python/views.h); out is the contiguous output's. Returns the counts (launches, syncs,
// workspace bytes, sweeps per phase).
py::dict watershed_exec_host(const py::object& image, const py::object& markers, const py::object& mask,
                             int connectivity, const py::object& out, int order, std::uint64_t seed) {
  const AnyView img = anyview_of(image, "image"), mk = anyview_of(markers, "markers"), ms = anyview_of(mask, "mask");
  const AnyView ov = anyview_of(out, "out");
  ExecCounts k;
  watershed_dp::Report r;
  {
    py::gil_scoped_release nogil;
    HostExec ex(static_cast<Order>(order), seed);
    r = watershed_dp::watershed_maps(ex, img, mk, ms, connectivity, const_cast<void*>(ov.data), ov.dt);
    k.launches = ex.launches();
    k.syncs = ex.syncs();
    k.workspace = ex.workspace_bytes();
  }
  py::dict d = counts_dict(k);
  watershed_report(d, r);
  return d;
}

}  // namespace

void bind_watershed(py::module_& m) {
  m.def("watershed", &watershed, py::arg("image"), py::arg("markers"), py::arg("mask"), py::arg("connectivity"),
        py::arg("method"), py::arg("out"), py::arg("stats") = py::none());
  m.def("watershed_exec_host", &watershed_exec_host, py::arg("image"), py::arg("markers"), py::arg("mask"),
        py::arg("connectivity"), py::arg("out"), py::arg("order"), py::arg("seed"));
}

}  // namespace dwd
