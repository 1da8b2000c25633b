// Python binding of decode: a batch (B, ...) of pages, the pages of the batch on the thread pool.
#include "cpu/decode.h"

#include "dwd/decode.h"
#include "host/host_exec.h"
#include "python/common.h"
#include "python/views.h"

namespace dwd {

namespace {

py::list decode(const py::array& energy, const py::object& classes, const py::object& sizes, double cutoff,
                std::int64_t min_size, int connectivity, int size_reduce, std::int64_t levels, bool energy_logits,
                bool class_logits, const py::object& grow_to, bool reduce_over_region, bool peak_seeds,
                std::int64_t min_distance, const py::object& label_map) {
  const std::int64_t B = energy.shape(0);
  cpu::DecodeParams p;
  static_cast<decode_dp::Params&>(p) = decode_params(cutoff, min_size, connectivity, size_reduce, levels,
                                                      energy_logits, class_logits, grow_to, reduce_over_region);
  p.peak_seeds = peak_seeds;
  p.min_distance = min_distance;
  std::vector<cpu::Planes> ep(B), cp(B), sp(B);
  std::vector<ImageView<std::int32_t>> lm(B);
  py::array_t<std::int32_t> lm_arr;
  if (!label_map.is_none()) lm_arr = label_map.cast<py::array_t<std::int32_t>>();
  for (std::int64_t b = 0; b < B; ++b) {
    ep[b] = planes_of(energy, b, "energy");
    if (!classes.is_none()) cp[b] = planes_of(classes.cast<py::array>(), b, "classes", true);
    if (!sizes.is_none()) sp[b] = planes_of(sizes.cast<py::array>(), b, "sizes", true);
    if (!label_map.is_none())
      lm[b] = make_view(lm_arr.mutable_data() + b * ep[b].rows * ep[b].cols, ep[b].rows, ep[b].cols);
  }
  const bool want_label_map = !label_map.is_none();
  std::vector<cpu::Detections> out(B);
  {
    py::gil_scoped_release nogil;
    parallel_for(B, [&](std::int64_t b) {
      out[b] = cpu::decode(ep[b], cp[b], sp[b], p, want_label_map ? &lm[b] : nullptr);
    });
  }
  py::list res;
  for (const cpu::Detections& d : out) {
    const py::ssize_t n = d.n;
    py::dict r;
    r["boxes"] = to_numpy(d.boxes, {n, 4});
    r["labels"] = to_numpy(d.labels, {n});
    r["scores"] = to_numpy(d.scores, {n});
    r["class_scores"] = to_numpy(d.class_scores, {n});
    r["centers"] = to_numpy(d.centers, {n, 2});
    r["areas"] = to_numpy(d.areas, {n});
    res.append(r);
  }
  return res;
}

// The data-parallel decoder (dwd/decode.h) on one page, run by HostExec in the given element order.
// Maps are view descriptors (python/views.h); label_map is (pointer, rows, cols) or None; alloc(n)
// returns the 6 output pointers (boxes, labels, scores, class_scores, centers, areas).
py::tuple decode_host(const py::object& energy, const py::object& classes, const py::object& sizes, double cutoff,
                      std::int64_t min_size, int connectivity, int size_reduce, std::int64_t levels,
                      bool energy_logits, bool class_logits, const py::object& grow_to, bool reduce_over_region,
                      bool peak_seeds, std::int64_t min_distance, const py::object& label_map,
                      const py::function& alloc, int order, std::uint64_t seed) {
  decode_dp::Params p = decode_params(cutoff, min_size, connectivity, size_reduce, levels, energy_logits,
                                      class_logits, grow_to, reduce_over_region, peak_seeds, min_distance);
  const AnyView e = anyview_of(energy, "energy"), c = anyview_of(classes, "classes"), s = anyview_of(sizes, "sizes");
  const ImageView<std::int32_t> lm = label_map_view(label_map);
  std::int32_t n;
  ExecCounts k;
  {
    py::gil_scoped_release nogil;
    HostExec ex(static_cast<Order>(order), seed);
    n = decode_dp::decode(ex, e, c, s, p, lm, [&](std::int64_t m) { return decode_out(call_alloc(alloc, {m})); });
    k.launches = ex.launches();
    k.syncs = ex.syncs();
    k.workspace = ex.workspace_bytes();
  }
  return py::make_tuple(n, counts_dict(k));
}

}  // namespace

void bind_decode(py::module_& m) {
  m.def("decode", &decode, py::arg("energy"), py::arg("classes"), py::arg("sizes"), py::arg("cutoff"),
        py::arg("min_size"), py::arg("connectivity"), py::arg("size_reduce"), py::arg("levels"),
        py::arg("energy_logits"), py::arg("class_logits"), py::arg("grow_to"), py::arg("reduce_over_region"),
        py::arg("peak_seeds"), py::arg("min_distance"), py::arg("label_map"));
  m.def("decode_host", &decode_host, py::arg("energy"), py::arg("classes"), py::arg("sizes"), py::arg("cutoff"),
        py::arg("min_size"), py::arg("connectivity"), py::arg("size_reduce"), py::arg("levels"),
        py::arg("energy_logits"), py::arg("class_logits"), py::arg("grow_to"), py::arg("reduce_over_region"),
        py::arg("peak_seeds"), py::arg("min_distance"), py::arg("label_map"), py::arg("alloc"), py::arg("order"),
        py::arg("seed"));
}

}  // namespace dwd
