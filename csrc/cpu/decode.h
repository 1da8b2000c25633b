// CPU DWD decoder: energy -> seeds (8- or 4-connected components of energy > cutoff with at least
// min_size pixels, or plateau-merged peaks) -> optional growth by canonical watershed over -energy
// inside energy > grow_to -> per object centre, class, size, score -> boxes.
#pragma once

#include <vector>

#include "cpu/maps.h"
#include "dwd/decode.h"

namespace dwd {
namespace cpu {

using SizeReduce = decode_dp::SizeReduce;

// The data-parallel decoder's parameters (dwd/decode.h), plus peak seeds (cpu only).
struct DecodeParams : decode_dp::Params {};  // peak_seeds and min_distance are shared with the data-parallel decoder

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
