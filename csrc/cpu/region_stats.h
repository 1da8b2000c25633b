// CPU per-region statistics (regionprops' area / bbox / centroid, image sum / max, class vote).
#pragma once

#include <vector>

#include "cpu/maps.h"

namespace dwd {
namespace cpu {

struct RegionStats {
  std::int64_t n = 0;                      // regions are labels 1..n (n = largest label)
  std::vector<std::int64_t> area;          // pixels per label (0 for absent labels)
  std::vector<std::int64_t> bbox;          // n x 4: min_row, min_col, max_row + 1, max_col + 1
  std::vector<double> centroid;            // n x 2: mean row, mean col
  std::vector<double> image_sum, image_max;
  std::vector<std::int64_t> vote, vote_count;
};

// labels: integer map (labels <= 0 are background); image, classes: optional maps of the same
// shape; num_classes < 0: unbounded.
RegionStats region_stats(const Planes& labels, const Planes& image, const Planes& classes,
                         std::int64_t num_classes);

}  // namespace cpu
}  // namespace dwd
