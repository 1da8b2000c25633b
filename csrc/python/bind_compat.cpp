// Python binding of the original DWD decoders (dwd_fast.compat).
#include "cpu/compat.h"

#include <pybind11/stl.h>

#include "python/common.h"

namespace dwd {

namespace {

py::array_t<std::int64_t> perform_dws(const py::array& energy, const py::object& classes, const py::array& sizes,
                                      std::vector<double> cutoffs, std::int64_t min_size, bool keep_equal,
                                      bool block_order, bool neg_all) {
  cpu::DwsParams p;
  p.cutoffs = std::move(cutoffs);
  p.min_size = min_size;
  p.keep_equal = keep_equal;
  p.block_order = block_order;
  p.neg_all = neg_all;
  const cpu::Planes ep = planes_of(energy, 0, "dws_energy");
  const cpu::Planes sp = planes_of(sizes, 0, "bbox_map", true);
  cpu::Planes cp;
  if (!classes.is_none()) cp = planes_of(classes.cast<py::array>(), 0, "class_map", true);
  cpu::DwsBoxes r;
  {
    py::gil_scoped_release nogil;
    r = cpu::perform_dws(ep, cp, sp, p);
  }
  return to_numpy(r.boxes, {static_cast<py::ssize_t>(r.n), 5});
}

py::array_t<std::int64_t> perform_dws_fatten(const py::array& energy, double cutoff, std::int64_t min_size,
                                             double fatten_cutoff) {
  const cpu::Planes ep = planes_of(energy, 0, "stamp_energy");
  std::vector<std::int64_t> r;
  {
    py::gil_scoped_release nogil;
    r = cpu::perform_dws_fatten(ep, cutoff, min_size, fatten_cutoff);
  }
  return to_numpy(r, {static_cast<py::ssize_t>(r.size() / 4), 4});
}

}  // namespace

void bind_compat(py::module_& m) {
  m.def("perform_dws", &perform_dws, py::arg("energy"), py::arg("classes"), py::arg("sizes"), py::arg("cutoffs"),
        py::arg("min_size"), py::arg("keep_equal"), py::arg("block_order"), py::arg("neg_all"));
  m.def("perform_dws_fatten", &perform_dws_fatten, py::arg("energy"), py::arg("cutoff"), py::arg("min_size"),
        py::arg("fatten_cutoff"));
}

}  // namespace dwd
