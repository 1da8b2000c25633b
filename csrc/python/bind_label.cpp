// Python binding of label: the run-based CPU labeller and the data-parallel one through HostExec.
#include "cpu/label.h"

#include "dwd/label.h"
#include "host/host_exec.h"
#include "python/common.h"

namespace dwd {

namespace {

py::tuple label_cpu(const py::array& img, int connectivity) {
  const cpu::Planes p = planes_of(img, 0, "image");
  py::array_t<std::int32_t> out({p.rows, p.cols});
  ImageView<std::int32_t> ov = make_view(out.mutable_data(), p.rows, p.cols);
  std::int32_t n;
  {
    py::gil_scoped_release nogil;
    n = cpu::label(p, ov, connectivity);
  }
  return py::make_tuple(out, n);
}

// The GPU algorithm (dwd/label.h) run by HostExec in the given element order.
py::tuple label_host(const py::array& img, int connectivity, int order, std::uint64_t seed) {
  const cpu::Planes p = planes_of(img, 0, "image");
  if (p.rows * p.cols >= (index_t(1) << 31)) throw std::invalid_argument("image has 2^31 pixels or more");
  py::array_t<std::int32_t> out({p.rows, p.cols});
  ImageView<std::int32_t> ov = make_view(out.mutable_data(), p.rows, p.cols);
  std::int32_t n;
  std::int64_t steps;
  {
    py::gil_scoped_release nogil;
    HostExec ex(static_cast<Order>(order), seed);
    n = cpu::dispatch(p.dtype, [&](auto tag) -> std::int32_t {
      using T = decltype(tag);
      label_dp::ValueJoin<T> pix{cpu::plane_view<T>(p, 0)};
      return label_dp::label(ex, pix, p.rows, p.cols, connectivity, ov);
    });
    steps = ex.steps();
  }
  return py::make_tuple(out, n, steps);
}

}  // namespace

void bind_label(py::module_& m) {
  m.def("label", &label_cpu, py::arg("image"), py::arg("connectivity"));
  m.def("label_host", &label_host, py::arg("image"), py::arg("connectivity"), py::arg("order"), py::arg("seed"));
}

}  // namespace dwd
