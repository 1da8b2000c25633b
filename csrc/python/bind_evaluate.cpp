// Python binding of the detection evaluation (cpu/evaluate.h). Arrays arrive validated and
// contiguous from dwd_fast/evaluate.py (int64 image ranks and classes, float64 scores and boxes).
#include "cpu/evaluate.h"

#include "python/common.h"

namespace dwd {

namespace {

using I64 = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

cpu::EvalSet eval_set(const I64& img, const I64& cls, const F64* score, const F64& geom, std::int64_t geom_len,
                      std::int64_t images, std::int64_t classes, const char* name) {
  const std::int64_t n = img.shape(0);
  if (img.ndim() != 1 || cls.ndim() != 1 || cls.shape(0) != n || geom.ndim() != 2 || geom.shape(0) != n ||
      geom.shape(1) != geom_len || (score && (score->ndim() != 1 || score->shape(0) != n)))
    throw std::invalid_argument(std::string(name) + ": internal error, inconsistent array shapes");
  cpu::EvalSet s;
  s.img = img.data();
  s.cls = cls.data();
  s.score = score ? score->data() : nullptr;
  s.geom = geom.data();
  s.n = n;
  for (std::int64_t i = 0; i < n; ++i) {
    if (s.img[i] < 0 || s.img[i] >= images) throw std::invalid_argument(std::string(name) + ": image index out of range");
    if (s.cls[i] < 0 || s.cls[i] >= classes) throw std::invalid_argument(std::string(name) + ": class index out of range");
  }
  return s;
}

py::tuple coco_eval(const I64& dimg, const I64& dcls, const F64& dscore, const F64& dbox, const I64& gimg,
                    const I64& gcls, const F64& gbox, const F64& garea, std::int64_t images, std::int64_t classes,
                    const F64& iou_thrs, const F64& rec_thrs, std::int64_t max_dets, double area_lo, double area_hi) {
  const cpu::EvalSet dt = eval_set(dimg, dcls, &dscore, dbox, 4, images, classes, "detections");
  const cpu::EvalSet gt = eval_set(gimg, gcls, nullptr, gbox, 4, images, classes, "ground_truth");
  if (garea.ndim() != 1 || garea.shape(0) != gt.n) throw std::invalid_argument("ground_truth: internal error, area shape");
  cpu::CocoParams p;
  p.iou_thrs.assign(iou_thrs.data(), iou_thrs.data() + iou_thrs.size());
  p.rec_thrs.assign(rec_thrs.data(), rec_thrs.data() + rec_thrs.size());
  p.max_dets = max_dets;
  p.area_lo = area_lo;
  p.area_hi = area_hi;
  cpu::CocoOut o;
  {
    py::gil_scoped_release nogil;
    o = cpu::coco_evaluate(dt, gt, garea.data(), images, classes, p);
  }
  const auto T = static_cast<py::ssize_t>(p.iou_thrs.size()), R = static_cast<py::ssize_t>(p.rec_thrs.size());
  return py::make_tuple(to_numpy(o.precision, {T, R, classes}), to_numpy(o.recall, {T, classes}),
                        to_numpy(o.npig, {classes}), to_numpy(o.ndet, {classes}));
}

py::tuple deepscores_match(const I64& dimg, const I64& dcls, const F64& dscore, const F64& dgeom, const I64& gimg,
                           const I64& gcls, const F64& ggeom, std::int64_t images, std::int64_t classes,
                           bool ascending, double reserve) {
  const std::int64_t len = dgeom.ndim() == 2 ? dgeom.shape(1) : 0;
  if (len != 4 && len != 8) throw std::invalid_argument("detections: internal error, boxes must have 4 or 8 values");
  const cpu::EvalSet dt = eval_set(dimg, dcls, &dscore, dgeom, len, images, classes, "detections");
  const cpu::EvalSet gt = eval_set(gimg, gcls, nullptr, ggeom, len, images, classes, "ground_truth");
  py::array_t<double> overlap(dt.n);
  py::array_t<std::int64_t> matched(dt.n);
  {
    py::gil_scoped_release nogil;
    cpu::deepscores_match(dt, gt, static_cast<int>(len), images, classes, ascending, reserve, overlap.mutable_data(),
                          matched.mutable_data());
  }
  return py::make_tuple(overlap, matched);
}

double quad_iou(const F64& a, const F64& b) {
  if (a.size() != 8 || b.size() != 8) throw std::invalid_argument("quad_iou: each polygon needs 8 values");
  return cpu::quad_iou(a.data(), b.data());
}

}  // namespace

void bind_evaluate(py::module_& m) {
  m.def("coco_eval", &coco_eval, py::arg("det_img"), py::arg("det_cls"), py::arg("det_score"), py::arg("det_xywh"),
        py::arg("gt_img"), py::arg("gt_cls"), py::arg("gt_xywh"), py::arg("gt_area"), py::arg("images"),
        py::arg("classes"), py::arg("iou_thrs"), py::arg("rec_thrs"), py::arg("max_dets"), py::arg("area_lo"),
        py::arg("area_hi"));
  m.def("deepscores_match", &deepscores_match, py::arg("det_img"), py::arg("det_cls"), py::arg("det_score"),
        py::arg("det_geom"), py::arg("gt_img"), py::arg("gt_cls"), py::arg("gt_geom"), py::arg("images"),
        py::arg("classes"), py::arg("ascending"), py::arg("reserve"));
  m.def("quad_iou", &quad_iou, py::arg("a"), py::arg("b"));
}

}  // namespace dwd
