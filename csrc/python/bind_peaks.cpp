// Python binding of peak_local_max: the CPU algorithm, and the data-parallel candidate step
// (dwd/peaks.h) through HostExec followed by the host sort and the greedy spacing.
#include "cpu/peaks.h"

#include "dwd/peaks.h"
#include "host/host_exec.h"
#include "python/common.h"
#include "python/views.h"

namespace dwd {

namespace {

// (K, 2) int64 (row, col) from linear indices.
py::array_t<std::int64_t> coords_of(const std::vector<index_t>& idx, index_t cols) {
  py::array_t<std::int64_t> out({static_cast<py::ssize_t>(idx.size()), py::ssize_t(2)});
  std::int64_t* o = out.mutable_data();
  for (std::size_t k = 0; k < idx.size(); ++k) {
    o[2 * k] = idx[k] / cols;
    o[2 * k + 1] = idx[k] % cols;
  }
  return out;
}

py::array_t<std::int64_t> peaks_cpu(const py::array& img, index_t min_distance, index_t border_r, index_t border_c,
                                    index_t num_peaks, bool all_pass, const py::object& cut,
                                    const py::object& labels, index_t num_peaks_per_label, index_t window) {
  const cpu::Planes p = planes_of(img, 0, "image");
  cpu::PeakParams q = peak_params(p.dtype, min_distance, border_r, border_c, num_peaks, all_pass, cut);
  q.window = window;
  std::vector<index_t> idx;
  if (labels.is_none()) {
    py::gil_scoped_release nogil;
    idx = cpu::peak_local_max(p, q);
  } else {
    const py::array lab = labels.cast<py::array>();
    const cpu::Planes lp = planes_of(lab, 0, "labels", /*strided_cols=*/true);
    py::gil_scoped_release nogil;
    idx = cpu::peak_local_max_labels(p, lp, q, num_peaks_per_label);
  }
  return coords_of(idx, p.cols);
}

// The data-parallel pipeline (dwd/peaks.h peak_local_max: candidate flags, compaction, stable sort,
// greedy spacing, coordinates) run by HostExec in the given element order. Returns (coords, steps).
py::tuple peaks_host(const py::array& img, index_t min_distance, index_t border_r, index_t border_c,
                     index_t num_peaks, bool all_pass, const py::object& cut, int order, std::uint64_t seed) {
  const cpu::Planes p = planes_of(img, 0, "image");
  if (p.rows * p.cols >= (index_t(1) << 31)) throw std::invalid_argument("image has 2^31 pixels or more");
  const cpu::PeakParams q = peak_params(p.dtype, min_distance, border_r, border_c, num_peaks, all_pass, cut);
  if (q.min_distance < 0 || q.border_r < 0 || q.border_c < 0)
    throw std::invalid_argument("min_distance and exclude_border widths must be >= 0");
  std::vector<std::int64_t> coords;
  std::int64_t steps;
  {
    py::gil_scoped_release nogil;
    HostExec ex(static_cast<Order>(order), seed);
    cpu::dispatch(p.dtype, [&](auto tag) {
      using T = decltype(tag);
      const peaks::CandidateSpec<T> s = q.spec<T>(cpu::plane_view<T>(p, 0));
      peaks::peak_local_max(ex, s, q.min_distance, q.num_peaks, [&](std::int64_t k) {
        coords.resize(static_cast<std::size_t>(2 * k));
        return coords.data();
      });
      return 0;
    });
    steps = ex.steps();
  }
  return py::make_tuple(to_numpy(coords, {static_cast<py::ssize_t>(coords.size() / 2), py::ssize_t(2)}), steps);
}

}  // namespace

void bind_peaks(py::module_& m) {
  m.def("peak_local_max", &peaks_cpu, py::arg("image"), py::arg("min_distance"), py::arg("border_r"),
        py::arg("border_c"), py::arg("num_peaks"), py::arg("all_pass"), py::arg("cut"), py::arg("labels"),
        py::arg("num_peaks_per_label"), py::arg("window") = -1);
  m.def("peak_local_max_host", &peaks_host, py::arg("image"), py::arg("min_distance"), py::arg("border_r"),
        py::arg("border_c"), py::arg("num_peaks"), py::arg("all_pass"), py::arg("cut"), py::arg("order"),
        py::arg("seed"));
}

}  // namespace dwd
