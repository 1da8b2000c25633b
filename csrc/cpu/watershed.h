// CPU marker watershed: the canonical (order-invariant) definition and scikit-image's heap flooding.
#pragma once

#include <vector>

#include "cpu/maps.h"
#include "cpu/runs.h"

namespace dwd {
namespace cpu {

enum class WatershedMethod : int { canonical = 0, skimage = 1 };

// Markers found on the page, as runs of equal values in raster order, with dense labels 1..M that
// follow the order of the marker values (so "smallest label" means "smallest marker value").
struct MarkerRun {
  index_t row;
  std::int32_t c0, c1;  // [c0, c1)
  std::int32_t id;      // dense label
  std::int32_t comp;    // component of the mask holding it (0 without a mask)
};

struct Markers {
  std::vector<MarkerRun> runs;
  std::vector<index_t> first_pixel;  // a pixel of each dense label (to map labels back to values)
  // With a mask: its connected components (at the flood's connectivity).
  RunLabels comps;
  bool has_comps = false;
};

// Markers (non-zero values of `markers`) inside `mask` (optional; only its pixels are read then).
Markers find_markers(const Planes& markers, const Planes& mask, int connectivity);

// Operation counts of method="skimage" (for tests of its complexity): items popped from the binary heap
// (while seeds tie), pushed into the radix heap after it, moved between its buckets, and its refills
// (the equal list run dry: a bucket moved down).
struct SkimageCounts {
  std::uint64_t heap_pops = 0, queue_pushes = 0, queue_moves = 0, queue_refills = 0;
};

// Floods `image` from the markers inside `mask` (optional) into `out` (rows x cols, zero-initialised,
// dense labels). connectivity 1 or 2. counts (optional): filled for method skimage.
void watershed(const Planes& image, const Markers& m, const Planes& mask, int connectivity, WatershedMethod method,
               ImageView<std::int32_t> out, SkimageCounts* counts = nullptr);

}  // namespace cpu
}  // namespace dwd
