// Python binding of encode: the sequential CPU rasterizer and the data-parallel one through HostExec.
//
// dwd_fast.encode builds everything (object geometry in fixed point, the level table, the output
// maps: fresh zeroed ones, or the caller's `out` for the CPU painter, which then writes every pixel);
// these functions only fill the maps in place, one page per batch element. The maps are the default
// layout (classes int32, sizes float32) or the compact one (classes uint8, sizes float16), told apart
// by their dtypes.
#include "cpu/encode.h"

#include <string>
#include <vector>

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
  void* classes;    // int32, or uint8 (compact)
  void* size_maps;  // float32, or float16 as uint16 bits (compact)
  bool compact;
  py::ssize_t B, H, W;

  template <class C, class S>
  encode::OutputsT<C, S> outputs(py::ssize_t b) const {
    const index_t hw = H * W;
    C* cl = static_cast<C*>(classes);
    S* sz = static_cast<S*>(size_maps);
    return encode::OutputsT<C, S>{make_view(energy + b * hw, H, W), make_view(cl + b * hw, H, W),
                                  make_view(sz + (2 * b) * hw, H, W), make_view(sz + (2 * b + 1) * hw, H, W)};
  }
};

// A C-contiguous float16 array's data (numpy's 'e'; pybind11 has no array_t for it).
void* checked_half(const py::array& a, std::vector<py::ssize_t> shape, const char* name) {
  if (a.dtype().kind() != 'f' || a.dtype().itemsize() != 2 || !(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + ": internal error, wrong dtype or not C-contiguous");
  if (static_cast<std::size_t>(a.ndim()) != shape.size())
    throw std::invalid_argument(std::string(name) + ": internal error, wrong number of dimensions");
  for (std::size_t k = 0; k < shape.size(); ++k)
    if (a.shape(k) != shape[k]) throw std::invalid_argument(std::string(name) + ": internal error, wrong shape");
  return const_cast<void*>(a.data());
}

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
  b.compact = py::isinstance<py::array_t<std::uint8_t>>(classes);
  if (b.compact) {
    b.classes = checked<std::uint8_t>(classes, {b.B, b.H, b.W}, "classes");
    b.size_maps = checked_half(size_maps, {b.B, 2, b.H, b.W}, "size_maps");
    for (py::ssize_t i = 0; i < M; ++i)
      if (b.labels[i] < 0 || b.labels[i] > 255) throw std::invalid_argument("labels: internal error, above 255");
  } else {
    b.classes = checked<std::int32_t>(classes, {b.B, b.H, b.W}, "classes");
    b.size_maps = checked<float>(size_maps, {b.B, 2, b.H, b.W}, "size_maps");
  }
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
  if (!b.compact) {
    parallel_for(b.B, [&](std::int64_t k) {
      const std::int64_t o = b.offsets[k];
      cpu::encode_page(b.objs + o, b.offsets[k + 1] - o, b.H, b.W, b.marker, b.overlap, b.table, b.labels + o,
                       b.sizes + 2 * o, b.outputs<std::int32_t, float>(k), zeroed);
    });
    return;
  }
  // compact: the per-object values in the maps' types once (labels checked < 256, sizes as halves)
  const std::int64_t M = b.offsets[b.B];
  std::vector<std::uint8_t> lab8(static_cast<std::size_t>(M));
  std::vector<std::uint16_t> half(static_cast<std::size_t>(2 * M));
  for (std::int64_t i = 0; i < M; ++i) lab8[i] = static_cast<std::uint8_t>(b.labels[i]);
  cpu::floats_to_half(b.sizes, half.data(), 2 * M);
  parallel_for(b.B, [&](std::int64_t k) {
    const std::int64_t o = b.offsets[k];
    cpu::encode_page(b.objs + o, b.offsets[k + 1] - o, b.H, b.W, b.marker, b.overlap, b.table, lab8.data() + o,
                     half.data() + 2 * o, b.outputs<std::uint8_t, std::uint16_t>(k), zeroed);
  });
}

// The float -> half conversions of the compact layout, for tests: (the bits of src's floats as halves,
// uint16 (n,); whether F16C was used), by the portable scalar code (f16c false) or F16C where the CPU
// has it.
py::tuple float_to_half(const py::array_t<float, py::array::c_style | py::array::forcecast>& src, bool f16c) {
  py::array_t<std::uint16_t> dst(src.size());
  const float* s = src.data();
  std::uint16_t* d = dst.mutable_data();
  const index_t n = src.size();
  bool used = false;
  {
    py::gil_scoped_release nogil;
    used = cpu::floats_to_half(s, d, n, f16c);
  }
  return py::make_tuple(dst, used);
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
  if (b.compact)
    encode::encode_batch(ex, b.objs, b.offsets, b.offsets[b.B], b.B, b.H, b.W, b.marker, b.overlap, b.table,
                         b.labels, b.sizes,
                         encode::dp::CompactBatchOutputs{b.energy, static_cast<std::uint8_t*>(b.classes),
                                                         static_cast<std::uint16_t*>(b.size_maps)});
  else
    encode::encode_batch(ex, b.objs, b.offsets, b.offsets[b.B], b.B, b.H, b.W, b.marker, b.overlap, b.table,
                         b.labels, b.sizes,
                         encode::dp::BatchOutputs{b.energy, static_cast<std::int32_t*>(b.classes),
                                                  static_cast<float*>(b.size_maps)});
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
  m.def("float_to_half", &float_to_half, py::arg("src"), py::arg("f16c"));
}

}  // namespace dwd
