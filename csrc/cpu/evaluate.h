// Detection evaluation: COCO's bbox matching and accumulation, and the DeepScoresV2 toolkit's greedy
// matching (axis-aligned enclosing-box overlap or oriented polygon IoU). Plain C++, no Python.
#pragma once

#include <cstdint>
#include <vector>

namespace dwd {
namespace cpu {

// Detections and ground truths, each in an arbitrary order; `img` is the image's rank (0 .. images-1,
// the order COCO concatenates images in), `cls` the class 0 .. classes-1.
struct EvalSet {
  const std::int64_t* img = nullptr;
  const std::int64_t* cls = nullptr;
  const double* score = nullptr;  // detections only
  const double* geom = nullptr;   // (n, 4) x, y, w, h (COCO) / x0, y0, x1, y1 or (n, 8) corners (DeepScores)
  std::int64_t n = 0;
};

struct CocoParams {
  std::vector<double> iou_thrs;  // T
  std::vector<double> rec_thrs;  // R
  std::int64_t max_dets = -1;    // per image and class; < 0: no cap
  double area_lo = 0.0, area_hi = 1e10;
};

struct CocoOut {
  std::vector<double> precision;  // (T, R, K), -1 for a class without (non-ignored) ground truth
  std::vector<double> recall;     // (T, K), -1 likewise
  std::vector<std::int64_t> npig; // (K,) non-ignored ground truths
  std::vector<std::int64_t> ndet; // (K,) detections evaluated (after the cap)
};

// COCOeval.evaluate() + accumulate() for iouType "bbox", one area range, one max-dets value.
// gt_area: (m,) the ground truths' areas (COCO's "area" field), compared with the area range.
CocoOut coco_evaluate(const EvalSet& dt, const EvalSet& gt, const double* gt_area, std::int64_t images,
                      std::int64_t classes, const CocoParams& p);

// The DeepScoresV2 toolkit's matching: per image and class, proposals in score order (ascending when
// `ascending`, as the toolkit; else descending), each takes the remaining ground truth of largest
// overlap (the first one on ties) when that overlap exceeds `reserve`, which is then removed.
// Overlap: intersection / enclosing-box area for (x0, y0, x1, y1) boxes (geom_len 4), polygon IoU for
// four corners (geom_len 8). Writes each detection's overlap (0 when unmatched) and matched gt (-1).
void deepscores_match(const EvalSet& dt, const EvalSet& gt, int geom_len, std::int64_t images,
                      std::int64_t classes, bool ascending, double reserve, double* overlap,
                      std::int64_t* matched);

// Polygon IoU of two convex quadrilaterals (4 corners each, x/y interleaved, either orientation).
double quad_iou(const double* a, const double* b);

}  // namespace cpu
}  // namespace dwd
