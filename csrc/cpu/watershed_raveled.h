// scikit-image 0.26's watershed flood on a raveled, padded image, all of its modes: any neighbourhood
// (raveled offsets, n-D), the compact watershed (priority = value + compactness * distance to the
// marker pixel) and the watershed line. Used by dwd_fast.skimage.segmentation.watershed where the
// 2-D fast replay (watershed.cpp, method="skimage") does not apply.
#pragma once

#include <cstdint>

namespace dwd {
namespace cpu {

struct RaveledFlood {
  const double* image = nullptr;        // n values (the padded image as float64)
  std::int64_t n = 0;
  const std::int64_t* seeds = nullptr;  // marker pixels in raster order (np.flatnonzero)
  std::int64_t n_seeds = 0;
  const std::int64_t* offsets = nullptr;  // neighbour offsets in scikit-image's order
  int n_offsets = 0;
  const std::int64_t* strides = nullptr;  // element strides of the padded image (for distances)
  int ndim = 0;
  std::uint8_t* mask = nullptr;  // n flags, modified (watershed line pixels are cleared)
  double compactness = 0.0;
  bool watershed_line = false;
  std::int32_t* out = nullptr;  // n labels: the seeds' (dense, > 0) on entry, the result on exit
  // Optional (null: one component): n ids of the connected components of the mask under the
  // neighbourhood. Floods never cross components, so only ties between seeds of one component need
  // scikit-image's heap layout.
  const std::int32_t* comp = nullptr;
};

// Returns the number of heap pushes.
std::int64_t watershed_raveled(const RaveledFlood& f);

}  // namespace cpu
}  // namespace dwd
