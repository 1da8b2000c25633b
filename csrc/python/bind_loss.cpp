// Python binding of the CPU loss kernels (dwd_fast.torch.ops calls them on CPU float32 tensors, through
// zero-copy numpy views). Each returns a status: 0 done, 1 use the generic path (a map value the weight
// tables do not cover), 2 a weighted pixel's target is not a channel (the caller raises the error).
#include "cpu/loss.h"

#include <string>

#include "python/common.h"

namespace dwd {

namespace {

using cpu::loss::Labels;
using cpu::loss::Mask;
using cpu::loss::Shape;

// A C-contiguous array of the given number of dimensions.
void check_array(const py::array& a, int ndim, const char* name) {
  if (a.ndim() != ndim) throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(ndim) + " dims");
  if (!(a.flags() & py::array::c_style)) throw std::invalid_argument(std::string(name) + ": must be C-contiguous");
}

const float* f32(const py::array& a, int ndim, const char* name) {
  check_array(a, ndim, name);
  if (dtype_of(a, name) != cpu::DType::f32) throw std::invalid_argument(std::string(name) + ": must be float32");
  return static_cast<const float*>(a.data());
}

float* f32_out(py::array& a, int ndim, const char* name) {
  f32(a, ndim, name);
  if (!a.writeable()) throw std::invalid_argument(std::string(name) + ": must be writeable");
  return static_cast<float*>(a.mutable_data());
}

Labels labels(const py::array& a, const char* name) {
  check_array(a, 3, name);
  const cpu::DType d = dtype_of(a, name);
  if (d != cpu::DType::u8 && d != cpu::DType::i32 && d != cpu::DType::i64)
    throw std::invalid_argument(std::string(name) + ": must be uint8, int32 or int64");
  return Labels{d, a.data()};
}

Shape shape_of(const py::array& maps) { return Shape{maps.shape(0), maps.shape(1), maps.shape(2)}; }

void same_shape(const py::array& a, Shape s, const char* name, py::ssize_t channels = -1) {
  const bool ok = channels < 0 ? (a.shape(0) == s.B && a.shape(1) == s.H && a.shape(2) == s.W)
                               : (a.shape(0) == s.B && a.shape(1) == channels && a.shape(2) == s.H && a.shape(3) == s.W);
  if (!ok) throw std::invalid_argument(std::string(name) + ": shape does not match the batch");
}

Mask mask_of(int m) {
  if (m < 0 || m > static_cast<int>(Mask::by_class_no_bg)) throw std::invalid_argument("loss mask mode out of range");
  return static_cast<Mask>(m);
}

int loss_mask(const py::array& values, int mode, py::array out, int threads) {
  const Labels v = labels(values, "values");
  const Shape s = shape_of(values);
  float* o = f32_out(out, 3, "out");
  same_shape(out, s, "out");
  py::gil_scoped_release nogil;
  return static_cast<int>(cpu::loss::mask(v, s, mask_of(mode), o, threads));
}

struct CeArgs {
  const float* x;
  std::int64_t C;
  Labels t;
  const float* w;
  Shape s;
};

CeArgs ce_args(const py::array& logits, const py::array& target, const py::array& weight) {
  CeArgs a;
  a.x = f32(logits, 4, "logits");
  a.C = logits.shape(1);
  a.t = labels(target, "target");
  a.s = shape_of(target);
  same_shape(logits, a.s, "logits", a.C);
  a.w = f32(weight, 3, "weight");
  same_shape(weight, a.s, "weight");
  return a;
}

py::tuple masked_ce(const py::array& logits, const py::array& target, const py::array& weight, int threads) {
  const CeArgs a = ce_args(logits, target, weight);
  py::array_t<double> out(a.s.B);
  int st;
  {
    py::gil_scoped_release nogil;
    st = static_cast<int>(cpu::loss::masked_ce(a.x, a.C, a.t, a.w, a.s, out.mutable_data(), threads));
  }
  return py::make_tuple(st, out);
}

int masked_ce_backward(const py::array& grad, const py::array& logits, const py::array& target,
                       const py::array& weight, py::array out, int threads) {
  const CeArgs a = ce_args(logits, target, weight);
  const float* g = f32(grad, 1, "grad");
  if (grad.shape(0) != a.s.B) throw std::invalid_argument("grad: one value per image expected");
  float* o = f32_out(out, 4, "out");
  same_shape(out, a.s, "out", a.C);
  py::gil_scoped_release nogil;
  return static_cast<int>(cpu::loss::masked_ce_backward(a.x, a.C, a.t, a.w, a.s, g, o, threads));
}

cpu::loss::DwdLoss loss_args(const py::array& energy, const py::array& classes, const py::array& sizes,
                             const py::array& t_energy, const py::array& t_classes, const py::array& t_sizes,
                             int energy_mask, int class_mask, int size_mask, bool l1, Shape& s) {
  cpu::loss::DwdLoss a;
  a.t_energy = labels(t_energy, "t_energy");
  s = shape_of(t_energy);
  a.t_classes = labels(t_classes, "t_classes");
  same_shape(t_classes, s, "t_classes");
  a.energy = f32(energy, 4, "energy");
  same_shape(energy, s, "energy", energy.shape(1));
  a.classes = f32(classes, 4, "classes");
  same_shape(classes, s, "classes", classes.shape(1));
  a.sizes = f32(sizes, 4, "sizes");
  same_shape(sizes, s, "sizes", 2);
  a.t_sizes = f32(t_sizes, 4, "t_sizes");
  same_shape(t_sizes, s, "t_sizes", 2);
  a.levels = energy.shape(1);
  a.num_classes = classes.shape(1);
  a.energy_mask = mask_of(energy_mask);
  a.class_mask = mask_of(class_mask);
  a.size_mask = mask_of(size_mask);
  a.l1 = l1;
  return a;
}

py::tuple dwd_loss(const py::array& energy, const py::array& classes, const py::array& sizes,
                   const py::array& t_energy, const py::array& t_classes, const py::array& t_sizes, int energy_mask,
                   int class_mask, int size_mask, bool l1, int threads) {
  Shape s;
  const auto a = loss_args(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask,
                           l1, s);
  py::array_t<double> out({s.B, std::int64_t(3)});
  int st;
  {
    py::gil_scoped_release nogil;
    st = static_cast<int>(cpu::loss::dwd_loss(a, s, out.mutable_data(), threads));
  }
  return py::make_tuple(st, out);
}

int dwd_loss_backward(const py::array& grad, const py::array& energy, const py::array& classes,
                      const py::array& sizes, const py::array& t_energy, const py::array& t_classes,
                      const py::array& t_sizes, int energy_mask, int class_mask, int size_mask, bool l1,
                      py::array g_energy, py::array g_classes, py::array g_sizes, int threads) {
  Shape s;
  const auto a = loss_args(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask,
                           l1, s);
  const float* g = f32(grad, 2, "grad");
  if (grad.shape(0) != s.B || grad.shape(1) != 3) throw std::invalid_argument("grad: (B, 3) expected");
  float* ge = f32_out(g_energy, 4, "g_energy");
  same_shape(g_energy, s, "g_energy", a.levels);
  float* gc = f32_out(g_classes, 4, "g_classes");
  same_shape(g_classes, s, "g_classes", a.num_classes);
  float* gs = f32_out(g_sizes, 4, "g_sizes");
  same_shape(g_sizes, s, "g_sizes", 2);
  py::gil_scoped_release nogil;
  return static_cast<int>(cpu::loss::dwd_loss_backward(a, s, g, ge, gc, gs, threads));
}

}  // namespace

void bind_loss(py::module_& m) {
  m.def(
      "loss_use_kernels",
      [](const std::string& best) {
        const char* used = cpu::loss::use_kernels(best);
        if (!used) throw py::value_error("best must be 'best', 'avx512', 'avx2' or 'baseline', got '" + best + "'");
        return std::string(used);
      },
      py::arg("best"),
      "Tests: the loss kernels use the best set this CPU supports among `best` and those below it; returns the "
      "set in use.");
  m.def("loss_mask", &loss_mask, py::arg("values"), py::arg("mode"), py::arg("out"), py::arg("threads"));
  m.def("masked_ce", &masked_ce, py::arg("logits"), py::arg("target"), py::arg("weight"), py::arg("threads"));
  m.def("masked_ce_backward", &masked_ce_backward, py::arg("grad"), py::arg("logits"), py::arg("target"),
        py::arg("weight"), py::arg("out"), py::arg("threads"));
  m.def("dwd_loss", &dwd_loss, py::arg("energy"), py::arg("classes"), py::arg("sizes"), py::arg("t_energy"),
        py::arg("t_classes"), py::arg("t_sizes"), py::arg("energy_mask"), py::arg("class_mask"),
        py::arg("size_mask"), py::arg("l1"), py::arg("threads"));
  m.def("dwd_loss_backward", &dwd_loss_backward, py::arg("grad"), py::arg("energy"), py::arg("classes"),
        py::arg("sizes"), py::arg("t_energy"), py::arg("t_classes"), py::arg("t_sizes"), py::arg("energy_mask"),
        py::arg("class_mask"), py::arg("size_mask"), py::arg("l1"), py::arg("g_energy"), py::arg("g_classes"),
        py::arg("g_sizes"), py::arg("threads"));
}

}  // namespace dwd
