// CPU DWD decoder: energy -> seeds (8- or 4-connected components of energy > cutoff with at least
// min_size pixels, or plateau-merged peaks) -> optional growth by canonical watershed over -energy
// inside energy > grow_to -> per object centre, class, size, score -> boxes.
#pragma once

#include <vector>

#include "cpu/maps.h"

namespace dwd {
namespace cpu {

enum class SizeReduce : int { max = 0, mean = 1, median = 2 };

struct DecodeParams {
  double cutoff = 7;
  std::int64_t min_size = 1;
  int connectivity = 2;
  SizeReduce size_reduce = SizeReduce::max;
  std::int64_t levels = 20;     // for the score of a level map: peak / (levels - 1)
  bool energy_logits = false;   // energy is (K, H, W) logits, reduced by argmax
  bool class_logits = false;    // classes is (C, H, W) logits (else (H, W) ids)
  bool grow = false;            // grow the seeds by canonical watershed over -energy inside energy > grow_to
  double grow_to = 0;
  bool reduce_over_region = false;  // centre / class / size / score over the grown region (else the core)
  bool peak_seeds = false;      // seeds are plateau-merged local maxima (else components of energy > cutoff)
  std::int64_t min_distance = 1;    // peak spacing for peak seeds
};

struct Detections {
  std::int64_t n = 0;
  std::vector<float> boxes;          // n x 4: x1, y1, x2, y2 (pixel (r, c) covers [c, c+1) x [r, r+1))
  std::vector<std::int64_t> labels;  // class id (vote / argmax of mean probability); -1 without classes
  std::vector<float> scores;         // in [0, 1]
  std::vector<float> class_scores;   // vote share, or mean probability of the chosen class
  std::vector<double> centers;       // n x 2: mean row, mean col of the object's pixels
  std::vector<std::int64_t> areas;   // pixels
};

// One page. `label_map` (optional, rows x cols) receives object ids 1..n (0 elsewhere).
Detections decode(const Planes& energy, const Planes& classes, const Planes& sizes, const DecodeParams& p,
                  ImageView<std::int32_t>* label_map);

}  // namespace cpu
}  // namespace dwd
