// CPU marker watershed: the canonical (order-invariant) definition and scikit-image's heap flooding.
#pragma once

#include <vector>

#include "cpu/maps.h"

namespace dwd {
namespace cpu {

enum class WatershedMethod : int { canonical = 0, skimage = 1 };

// Markers found on the page: raster-ordered pixels and their dense labels 1..M, where dense labels
// follow the order of the marker values (so "smallest label" means "smallest marker value").
struct Markers {
  std::vector<index_t> pixel;        // raster order
  std::vector<std::int32_t> id;      // dense label of each marker pixel
  std::vector<index_t> first_pixel;  // a pixel of each dense label (to map labels back to values)
};

// Markers (non-zero values of `markers`) inside `mask` (optional).
Markers find_markers(const Planes& markers, const Planes& mask);

// Floods `image` from the markers inside `mask` (optional) into `out` (rows x cols, zero-initialised,
// dense labels). connectivity 1 or 2.
void watershed(const Planes& image, const Markers& m, const Planes& mask, int connectivity, WatershedMethod method,
               ImageView<std::int32_t> out);

// The data-parallel algorithm of dwd/watershed.h run by HostExec in `order`. Returns the sweep count.
std::int64_t watershed_host(const Planes& image, const Markers& m, const Planes& mask, int connectivity, int order,
                            std::uint64_t seed, ImageView<std::int32_t> out);

}  // namespace cpu
}  // namespace dwd
