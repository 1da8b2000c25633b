// dwd_fast._cuda: the CUDA kernels. Importing never touches the GPU; calls report why CUDA is unusable.
//
// The ops take view descriptors of device memory (python/views.h), the CUDA device index and the
// caller's current stream as integers; they release the GIL while the kernels are queued (the
// output-allocation callbacks take it back briefly) and return once the results are complete.
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <type_traits>
#include <string>

#include "cpu/peaks.h"
#include "cuda/ops.h"
#include "cuda/probe.h"
#include "python/views.h"

namespace py = pybind11;

namespace dwd {
namespace {

py::dict device_info() {
  py::dict d;
  int runtime = 0, driver = 0, count = 0;
  cudaRuntimeGetVersion(&runtime);
  d["runtime_version"] = runtime;
  const cudaError_t de = cudaDriverGetVersion(&driver);
  d["driver_version"] = de == cudaSuccess ? driver : 0;
  const cudaError_t ce = cudaGetDeviceCount(&count);
  d["device_count"] = ce == cudaSuccess ? count : 0;
  d["usable"] = ce == cudaSuccess && count > 0;
  d["error"] = ce == cudaSuccess ? (count > 0 ? "" : "no CUDA device") : std::string(cudaGetErrorString(ce));
  if (ce != cudaSuccess) cudaGetLastError();  // clear the sticky error state
  py::list devices;
  for (int i = 0; ce == cudaSuccess && i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    devices.append(py::make_tuple(std::string(prop.name), prop.major * 10 + prop.minor));
  }
  d["devices"] = devices;
  return d;
}

py::dict counts_of(const cuda_ops::Counts& c) {
  py::dict d;
  d["launches"] = c.launches;
  d["syncs"] = 0;
  d["workspace_bytes"] = c.workspace;
  return d;
}

py::tuple label_cuda(const py::object& image, int connectivity, std::uintptr_t out, int device, std::uintptr_t stream) {
  const AnyView img = anyview_of(image, "image");
  ImageView<std::int32_t> ov = make_view(reinterpret_cast<std::int32_t*>(out), img.rows, img.cols);
  cuda_ops::Counts c;
  std::int32_t n;
  {
    py::gil_scoped_release nogil;
    n = cuda_ops::label(device, stream, img, connectivity, ov, &c);
  }
  return py::make_tuple(n, counts_of(c));
}

py::tuple region_stats_cuda(const py::object& labels, const py::object& image, const py::object& classes,
                            std::int64_t num_classes, const py::function& alloc, int device, std::uintptr_t stream) {
  const AnyView lab = anyview_of(labels, "labels"), img = anyview_of(image, "image"), cls = anyview_of(classes, "classes");
  cuda_ops::Counts c;
  std::int64_t n;
  {
    py::gil_scoped_release nogil;
    n = cuda_ops::region_stats(device, stream, lab, img, cls, num_classes, [&](std::int64_t k) {
      return region_out(call_alloc(alloc, {k}));
    }, &c);
  }
  return py::make_tuple(n, counts_of(c));
}

py::tuple decode_cuda(const py::object& energy, const py::object& classes, const py::object& sizes, double cutoff,
                      std::int64_t min_size, int connectivity, int size_reduce, std::int64_t levels,
                      bool energy_logits, bool class_logits, const py::object& grow_to, bool reduce_over_region,
                      bool peak_seeds, std::int64_t min_distance, const py::object& label_map,
                      const py::function& alloc, int device, std::uintptr_t stream) {
  const decode_dp::Params p = decode_params(cutoff, min_size, connectivity, size_reduce, levels, energy_logits,
                                            class_logits, grow_to, reduce_over_region, peak_seeds, min_distance);
  const AnyView e = anyview_of(energy, "energy"), c = anyview_of(classes, "classes"), s = anyview_of(sizes, "sizes");
  const ImageView<std::int32_t> lm = label_map_view(label_map);
  cuda_ops::Counts k;
  std::int32_t n;
  {
    py::gil_scoped_release nogil;
    n = cuda_ops::decode(device, stream, e, c, s, p, lm,
                         [&](std::int64_t m) { return decode_out(call_alloc(alloc, {m})); }, &k);
  }
  return py::make_tuple(n, counts_of(k));
}

// image, markers, mask (or None): view descriptors of device memory; out: the view descriptor of the
// contiguous output (the markers' dtype). Returns (counts with the sweeps of both phases).
py::dict watershed_cuda(const py::object& image, const py::object& markers, const py::object& mask, int connectivity,
                        const py::object& out, int device, std::uintptr_t stream) {
  const AnyView img = anyview_of(image, "image"), mk = anyview_of(markers, "markers"), ms = anyview_of(mask, "mask");
  const AnyView ov = anyview_of(out, "out");
  cuda_ops::Counts c;
  watershed_dp::Report r;
  {
    py::gil_scoped_release nogil;
    r = cuda_ops::watershed(device, stream, img, mk, ms, connectivity, const_cast<void*>(ov.data), ov.dt, &c);
  }
  py::dict d = counts_of(c);
  watershed_report(d, r);
  return d;
}

// objs_host: the (M, 8) int64 geometry on the host (for the pair-count limit); the other pointers are
// device memory: objs (M, 8) int64, page offsets (B + 1) int64, labels (M) int32, sizes (M, 2) float32,
// table (4096) uint8, energy (B, H, W) uint8, classes (B, H, W) int32, size maps (B, 2, H, W) float32.
py::dict encode_cuda(const py::array_t<std::int64_t, py::array::c_style>& objs_host, std::uintptr_t objs,
                     std::uintptr_t page_offset, std::int64_t B, std::int64_t H, std::int64_t W, std::uintptr_t labels,
                     std::uintptr_t sizes, std::uintptr_t table, int marker, int overlap, std::uintptr_t energy,
                     std::uintptr_t classes, std::uintptr_t size_maps, int device, std::uintptr_t stream,
                     bool compact) {
  if (objs_host.ndim() != 2 || objs_host.shape(1) != 8) throw std::invalid_argument("objs: internal error");
  if (marker < 0 || marker > 2 || overlap < 0 || overlap > 2) throw std::invalid_argument("marker/overlap: internal error");
  const std::int64_t M = objs_host.shape(0);
  const auto* oh = reinterpret_cast<const encode::EncodeObj*>(objs_host.data());
  std::int64_t pairs = 0;
  for (std::int64_t i = 0; i < M; ++i) pairs += encode::rect_of(oh[i], H, W).area();
  if (pairs >= (std::int64_t(1) << 31))
    throw std::invalid_argument("boxes: the markers of one batch cover 2^31 pixels or more");
  cuda_ops::Counts c;
  {
    py::gil_scoped_release nogil;
    if (compact)
      cuda_ops::encode(device, stream, ptr_as<const encode::EncodeObj>(objs), ptr_as<const std::int64_t>(page_offset),
                       M, B, H, W, static_cast<encode::Marker>(marker), static_cast<encode::Overlap>(overlap),
                       ptr_as<const std::uint8_t>(table), ptr_as<const std::int32_t>(labels),
                       ptr_as<const float>(sizes),
                       encode::dp::CompactBatchOutputs{ptr_as<std::uint8_t>(energy), ptr_as<std::uint8_t>(classes),
                                                       ptr_as<std::uint16_t>(size_maps)},
                       &c);
    else
      cuda_ops::encode(device, stream, ptr_as<const encode::EncodeObj>(objs), ptr_as<const std::int64_t>(page_offset),
                       M, B, H, W, static_cast<encode::Marker>(marker), static_cast<encode::Overlap>(overlap),
                       ptr_as<const std::uint8_t>(table), ptr_as<const std::int32_t>(labels),
                       ptr_as<const float>(sizes),
                       encode::dp::BatchOutputs{ptr_as<std::uint8_t>(energy), ptr_as<std::int32_t>(classes),
                                                ptr_as<float>(size_maps)},
                       &c);
  }
  return counts_of(c);
}

template <class T>
constexpr bool peaks_on_cuda = std::is_same<T, std::uint8_t>::value || std::is_same<T, std::uint16_t>::value ||
                               std::is_same<T, std::int32_t>::value || std::is_same<T, std::int64_t>::value ||
                               std::is_same<T, float>::value || std::is_same<T, double>::value;

// image: view descriptor (device memory); the threshold as in _cpu.peak_local_max; alloc(K) returns
// the pointer of a (K, 2) int64 output.
py::tuple peaks_cuda(const py::object& image, index_t min_distance, index_t border_r, index_t border_c,
                     index_t num_peaks, bool all_pass, const py::object& cut, const py::function& alloc, int device,
                     std::uintptr_t stream) {
  const AnyView v = anyview_of(image, "image");
  if (v.rows * v.cols >= (index_t(1) << 31)) throw std::invalid_argument("image has 2^31 pixels or more");
  if (min_distance < 0 || border_r < 0 || border_c < 0)
    throw std::invalid_argument("min_distance and exclude_border widths must be >= 0");
  const cpu::DType dtype = static_cast<cpu::DType>(static_cast<int>(v.dt));
  const cpu::PeakParams q = peak_params(dtype, min_distance, border_r, border_c, num_peaks, all_pass, cut);
  cuda_ops::Counts c;
  std::int64_t k = 0;
  cpu::dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (peaks_on_cuda<T>) {
      const peaks::CandidateSpec<T> s =
          q.spec<T>(ImageView<const T>{static_cast<const T*>(v.data), v.rows, v.cols, v.stride_r, v.stride_c});
      py::gil_scoped_release nogil;
      k = cuda_ops::peak_local_max<T>(device, stream, s, q.min_distance, q.num_peaks, [&](std::int64_t n) {
        return ptr_as<std::int64_t>(call_alloc(alloc, {n})[0]);
      }, &c);
    } else {
      throw std::invalid_argument("peak_local_max on CUDA supports uint8, uint16, int32, int64, float32 and float64 "
                                  "images");
    }
    return 0;
  });
  return py::make_tuple(k, counts_of(c));
}

}  // namespace
}  // namespace dwd

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "dwd_fast CUDA kernels (private; use the dwd_fast package)";
  m.def("device_info", &dwd::device_info);
  m.def(
      "selftest",
      [](std::int64_t n) {
        py::gil_scoped_release nogil;
        return dwd::cuda_selftest(n);
      },
      py::arg("n") = 1 << 20);
  m.def("label", &dwd::label_cuda, py::arg("image"), py::arg("connectivity"), py::arg("out"), py::arg("device"),
        py::arg("stream"));
  m.def("region_stats", &dwd::region_stats_cuda, py::arg("labels"), py::arg("image"), py::arg("classes"),
        py::arg("num_classes"), py::arg("alloc"), py::arg("device"), py::arg("stream"));
  m.def("decode", &dwd::decode_cuda, py::arg("energy"), py::arg("classes"), py::arg("sizes"), py::arg("cutoff"),
        py::arg("min_size"), py::arg("connectivity"), py::arg("size_reduce"), py::arg("levels"),
        py::arg("energy_logits"), py::arg("class_logits"), py::arg("grow_to"), py::arg("reduce_over_region"),
        py::arg("peak_seeds"), py::arg("min_distance"), py::arg("label_map"), py::arg("alloc"), py::arg("device"),
        py::arg("stream"));
  m.def("watershed", &dwd::watershed_cuda, py::arg("image"), py::arg("markers"), py::arg("mask"),
        py::arg("connectivity"), py::arg("out"), py::arg("device"), py::arg("stream"));
  m.def("encode", &dwd::encode_cuda, py::arg("objs_host"), py::arg("objs"), py::arg("page_offset"), py::arg("B"),
        py::arg("H"), py::arg("W"), py::arg("labels"), py::arg("sizes"), py::arg("table"), py::arg("marker"),
        py::arg("overlap"), py::arg("energy"), py::arg("classes"), py::arg("size_maps"), py::arg("device"),
        py::arg("stream"), py::arg("compact") = false);
  // tests: the device's float -> half bits (encode's compact size maps), src float32 / dst uint16 device pointers
  m.def("half_bits", [](std::uintptr_t src, std::uintptr_t dst, std::int64_t n, int device, std::uintptr_t stream) {
    py::gil_scoped_release nogil;
    dwd::cuda_ops::half_bits(device, stream, dwd::ptr_as<const float>(src), dwd::ptr_as<std::uint16_t>(dst), n);
  }, py::arg("src"), py::arg("dst"), py::arg("n"), py::arg("device"), py::arg("stream"));
  m.def("peak_local_max", &dwd::peaks_cuda, py::arg("image"), py::arg("min_distance"), py::arg("border_r"),
        py::arg("border_c"), py::arg("num_peaks"), py::arg("all_pass"), py::arg("cut"), py::arg("alloc"),
        py::arg("device"), py::arg("stream"));
  m.attr("archs") = DWD_FAST_CUDA_ARCHS;
  m.attr("ops") = py::make_tuple("label", "region_stats", "decode", "encode", "peak_local_max", "watershed");
}
