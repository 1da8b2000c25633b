// CPU connected-component labelling (skimage.measure.label semantics).
#pragma once

#include "cpu/maps.h"

namespace dwd {
namespace cpu {

// Labels the 2-D integer map `img` (plane 0) into `out`: pixels joined when equal and non-zero,
// 4- (connectivity 1) or 8-connected (2); labels 1..n in raster order of each component's first
// pixel. Returns n.
std::int32_t label(const Planes& img, ImageView<std::int32_t> out, int connectivity);

}  // namespace cpu
}  // namespace dwd
