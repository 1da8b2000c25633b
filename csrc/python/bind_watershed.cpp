// Python binding of watershed: canonical and scikit-image flooding on the CPU, and the data-parallel
// op (what the CUDA binding runs) through HostExec.
#include "cpu/watershed.h"
#include "cpu/watershed_raveled.h"
#include "cpu/edt.h"

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

// scikit-image's flood on a raveled padded image, all modes (dwd_fast.skimage.segmentation.watershed):
// image float64 (n,), seeds int64 raster indices, offsets int64, strides int64 (elements), mask uint8 (n,)
// and out int32 (n,) modified in place. Returns the number of heap pushes.
std::int64_t watershed_raveled(py::array_t<double, py::array::c_style> image, py::array_t<std::int64_t, py::array::c_style> seeds,
                               py::array_t<std::int64_t, py::array::c_style> offsets,
                               py::array_t<std::int64_t, py::array::c_style> strides,
                               py::array_t<std::uint8_t, py::array::c_style> mask, double compactness, bool watershed_line,
                               py::array_t<std::int32_t, py::array::c_style> out, const py::object& comp) {
  const py::ssize_t n = image.size();
  py::array_t<std::int32_t, py::array::c_style> comp_arr;
  if (!comp.is_none()) {
    comp_arr = comp.cast<py::array_t<std::int32_t, py::array::c_style>>();
    if (comp_arr.size() != n) throw std::invalid_argument("watershed_raveled: comp size mismatch");
  }
  if (mask.size() != n || out.size() != n) throw std::invalid_argument("watershed_raveled: size mismatch");
  if (n >= (py::ssize_t(1) << 40)) throw std::invalid_argument("image too large");
  cpu::RaveledFlood f;
  f.image = image.data();
  f.n = n;
  f.seeds = seeds.data();
  f.n_seeds = seeds.size();
  for (py::ssize_t k = 0; k < seeds.size(); ++k)
    if (f.seeds[k] < 0 || f.seeds[k] >= n || out.data()[f.seeds[k]] == 0)
      throw std::invalid_argument("watershed_raveled: a seed lies outside the image or is not labelled");
  f.offsets = offsets.data();
  f.n_offsets = static_cast<int>(offsets.size());
  f.strides = strides.data();
  f.ndim = static_cast<int>(strides.size());
  for (int k = 0; k < f.ndim; ++k)
    if (f.strides[k] <= 0) throw std::invalid_argument("watershed_raveled: strides must be positive");
  f.mask = mask.mutable_data();
  f.compactness = compactness;
  f.watershed_line = watershed_line;
  f.out = out.mutable_data();
  f.comp = comp.is_none() ? nullptr : comp_arr.data();
  py::gil_scoped_release nogil;
  return cpu::watershed_raveled(f);
}

// Exact euclidean distance transform (scipy.ndimage.distance_transform_edt's distances) of a 2-D uint8
// image (non-zero = foreground, last axis contiguous); returns float64 (rows, cols).
py::array_t<double> distance_transform_edt(const py::array& image) {
  if (image.ndim() != 2 || image.itemsize() != 1) throw std::invalid_argument("distance_transform_edt: a 2-D uint8 image");
  if (image.shape(1) > 1 && image.strides(1) != 1) throw std::invalid_argument("distance_transform_edt: last axis must be contiguous");
  const std::int64_t rows = image.shape(0), cols = image.shape(1);
  if (rows + cols >= (std::int64_t(1) << 30)) throw std::invalid_argument("distance_transform_edt: image too large");
  py::array_t<double> out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
  const auto* in = static_cast<const std::uint8_t*>(image.data());
  const std::int64_t stride = image.strides(0);
  double* o = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::distance_transform_edt(in, stride, rows, cols, o);
  }
  return out;
}

}  // namespace

void bind_watershed(py::module_& m) {
  m.def("watershed", &watershed, py::arg("image"), py::arg("markers"), py::arg("mask"), py::arg("connectivity"),
        py::arg("method"), py::arg("out"), py::arg("stats") = py::none());
  m.def("watershed_exec_host", &watershed_exec_host, py::arg("image"), py::arg("markers"), py::arg("mask"),
        py::arg("connectivity"), py::arg("out"), py::arg("order"), py::arg("seed"));
  m.def("watershed_raveled", &watershed_raveled, py::arg("image"), py::arg("seeds"), py::arg("offsets"),
        py::arg("strides"), py::arg("mask"), py::arg("compactness"), py::arg("watershed_line"), py::arg("out"),
        py::arg("comp") = py::none());
  m.def("distance_transform_edt", &distance_transform_edt, py::arg("image"));
}

}  // namespace dwd
