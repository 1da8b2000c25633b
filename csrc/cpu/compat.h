// Exact re-implementations of the original DWD decoders (dwd_fast.compat.perform_dws).
#pragma once

#include <vector>

#include "cpu/maps.h"

namespace dwd {
namespace cpu {

// The decoders of the 2018 ("A/B") and 2020 ("C", dwd_old) code, which differ in:
//   cutoffs      2018: one cut-off; 2020: a list, components of later cut-offs that touch no earlier
//                object are added whole
//   keep_equal   2018 keeps components of exactly min_size pixels (size >= min), 2020 drops them (>)
//   block_order  2020 numbers components as OpenCV's 8-connected labelling does (by first 2x2 block)
//   neg_all      2020 binarizes `E <= cut -> 0, else 255`, so a negative cut makes every pixel
//                foreground
struct DwsParams {
  std::vector<double> cutoffs;
  std::int64_t min_size = 0;
  bool keep_equal = true;
  bool block_order = false;
  bool neg_all = false;
};

struct DwsBoxes {
  std::int64_t n = 0;
  std::vector<std::int64_t> boxes;  // n x 5: x1, y1, x2, y2, class (np.round of the float corners)
};

// energy, classes: (H, W) maps (classes may be absent: class 0); sizes: 2 planes (h, w).
DwsBoxes perform_dws(const Planes& energy, const Planes& classes, const Planes& sizes, const DwsParams& p);

// The 2019 ("D", master) decoder's boxes: components of energy > cutoff (OpenCV order; smaller than
// min_size erased) "fattened" over the components of energy > fatten_cutoff; returns n x 4
// inclusive pixel extents [min col, min row, max col, max row] in ascending label order.
std::vector<std::int64_t> perform_dws_fatten(const Planes& energy, double cutoff, std::int64_t min_size,
                                             double fatten_cutoff);

}  // namespace cpu
}  // namespace dwd
