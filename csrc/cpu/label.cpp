#include "cpu/label.h"

#include "cpu/runs.h"

namespace dwd {
namespace cpu {

std::int32_t label(const Planes& img, ImageView<std::int32_t> out, int connectivity) {
  return dispatch(img.dtype, [&](auto tag) -> std::int32_t {
    using T = decltype(tag);
    RunLabels lab;
    lab.build(EqualRuns<T>{plane_view<T>(img, 0)}, img.rows, img.cols, connectivity);
    lab.paint(out);
    return lab.count;
  });
}

}  // namespace cpu
}  // namespace dwd
