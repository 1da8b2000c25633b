// Python binding of encode: the sequential CPU rasterizer and the data-parallel one through HostExec.
//
// dwd_fast.encode builds everything (object geometry in fixed point, the level table, the output
// maps: fresh zeroed ones, or the caller's `out` for the CPU painter, which then writes every pixel);
// these functions only fill the maps in place, one page per batch element.
#include "cpu/encode.h"

#include <string>

#include "dwd/encode.h"
#include "host/host_exec.h"
#include "python/common.h"
#include "python/views.h"

namespace dwd {

namespace {

struct Batch {
  const encode::EncodeObj* objs;
  const std::int64_t* offsets;
  const std::int32_t* labels;
  const float* sizes;
  const std::uint8_t* table;
  encode::Marker marker;
  encode::Overlap overlap;
  std::uint8_t* energy;
  std::int32_t* classes;
  float* size_maps;
  py::ssize_t B, H, W;

  encode::Outputs outputs(py::ssize_t b) const {
    const index_t hw = H * W;
    return encode::Outputs{make_view(energy + b * hw, H, W), make_view(classes + b * hw, H, W),
                           make_view(size_maps + (2 * b) * hw, H, W), make_view(size_maps + (2 * b + 1) * hw, H, W)};
  }
};

template <class T>
T* checked(const py::array& a, std::vector<py::ssize_t> shape, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a) || !(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + ": internal error, wrong dtype or not C-contiguous");
  if (static_cast<std::size_t>(a.ndim()) != shape.size())
    throw std::invalid_argument(std::string(name) + ": internal error, wrong number of dimensions");
  for (std::size_t k = 0; k < shape.size(); ++k)
    if (shape[k] >= 0 && a.shape(k) != shape[k])
      throw std::invalid_argument(std::string(name) + ": internal error, wrong shape");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

Batch batch_of(const py::array& objs, const py::array& offsets, const py::array& labels, const py::array& sizes,
               const py::array& table, int marker, int overlap, const py::array& energy, const py::array& classes,
               const py::array& size_maps) {
  Batch b;
  if (energy.ndim() != 3) throw std::invalid_argument("energy: internal error, expected (B, H, W)");
  b.B = energy.shape(0);
  b.H = energy.shape(1);
  b.W = energy.shape(2);
  const py::ssize_t M = objs.ndim() == 2 ? objs.shape(0) : -1;
  b.objs = reinterpret_cast<const encode::EncodeObj*>(checked<std::int64_t>(objs, {M, 8}, "objs"));
  b.offsets = checked<std::int64_t>(offsets, {b.B + 1}, "offsets");
  b.labels = checked<std::int32_t>(labels, {M}, "labels");
  b.sizes = checked<float>(sizes, {M, 2}, "sizes");
  b.table = checked<std::uint8_t>(table, {encode::kBins}, "table");
  b.energy = checked<std::uint8_t>(energy, {b.B, b.H, b.W}, "energy");
  b.classes = checked<std::int32_t>(classes, {b.B, b.H, b.W}, "classes");
  b.size_maps = checked<float>(size_maps, {b.B, 2, b.H, b.W}, "size_maps");
  if (marker < 0 || marker > 2) throw std::invalid_argument("marker: internal error");
  if (overlap < 0 || overlap > 2) throw std::invalid_argument("overlap: internal error");
  b.marker = static_cast<encode::Marker>(marker);
  b.overlap = static_cast<encode::Overlap>(overlap);
  if (b.offsets[0] != 0 || b.offsets[b.B] != M) throw std::invalid_argument("offsets: internal error");
  for (py::ssize_t k = 0; k < b.B; ++k) {
    if (b.offsets[k + 1] < b.offsets[k]) throw std::invalid_argument("offsets: internal error");
    if (b.offsets[k + 1] - b.offsets[k] >= static_cast<std::int64_t>(encode::kIndexMask))
      throw std::invalid_argument("boxes: at most 2^24 - 2 boxes per image");
  }
  return b;
}

void encode_cpu(const py::array& objs, const py::array& offsets, const py::array& labels, const py::array& sizes,
                const py::array& table, int marker, int overlap, const py::array& energy, const py::array& classes,
                const py::array& size_maps, bool zeroed) {
  const Batch b = batch_of(objs, offsets, labels, sizes, table, marker, overlap, energy, classes, size_maps);
  py::gil_scoped_release nogil;
  parallel_for(b.B, [&](std::int64_t k) {
    const std::int64_t o = b.offsets[k];
    cpu::encode_page(b.objs + o, b.offsets[k + 1] - o, b.H, b.W, b.marker, b.overlap, b.table, b.labels + o,
                     b.sizes + 2 * o, b.outputs(k), zeroed);
  });
}

ExecCounts& last_counts() {
  static thread_local ExecCounts c;
  return c;
}

// The GPU algorithm (dwd/encode.h, the batched form: one launch sequence for the whole batch) run by
// HostExec in the given element order. Returns the steps run; encode_host_counts() gives the counts.
std::int64_t encode_host(const py::array& objs, const py::array& offsets, const py::array& labels,
                         const py::array& sizes, const py::array& table, int marker, int overlap,
                         const py::array& energy, const py::array& classes, const py::array& size_maps, int order,
                         std::uint64_t seed) {
  const Batch b = batch_of(objs, offsets, labels, sizes, table, marker, overlap, energy, classes, size_maps);
  std::int64_t pairs = 0;
  for (std::int64_t i = 0; i < b.offsets[b.B]; ++i) pairs += encode::rect_of(b.objs[i], b.H, b.W).area();
  if (pairs >= (std::int64_t(1) << 31))
    throw std::invalid_argument("boxes: the markers of one batch cover 2^31 pixels or more");
  py::gil_scoped_release nogil;
  HostExec ex(static_cast<Order>(order), seed);
  encode::encode_batch(ex, b.objs, b.offsets, b.offsets[b.B], b.B, b.H, b.W, b.marker, b.overlap, b.table, b.labels,
                       b.sizes, encode::dp::BatchOutputs{b.energy, b.classes, b.size_maps});
  last_counts() = ExecCounts{ex.launches(), ex.syncs(), ex.workspace_bytes()};
  return ex.steps();
}

}  // namespace

void bind_encode(py::module_& m) {
  m.def("encode", &encode_cpu, py::arg("objs"), py::arg("offsets"), py::arg("labels"), py::arg("sizes"),
        py::arg("table"), py::arg("marker"), py::arg("overlap"), py::arg("energy"), py::arg("classes"),
        py::arg("size_maps"), py::arg("zeroed"));
  m.def("encode_host", &encode_host, py::arg("objs"), py::arg("offsets"), py::arg("labels"), py::arg("sizes"),
        py::arg("table"), py::arg("marker"), py::arg("overlap"), py::arg("energy"), py::arg("classes"),
        py::arg("size_maps"), py::arg("order"), py::arg("seed"));
  m.def("encode_host_counts", []() { return counts_dict(last_counts()); });
}

}  // namespace dwd
