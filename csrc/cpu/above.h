// Thresholded labelling shared by decode and compat: components of `map > cut`, with the cut-off
// converted exactly to the map's dtype (integer v > cut  <=>  v > floor(cut); cut-offs outside the
// dtype's range make every pixel, or none, foreground).
#pragma once

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cpu/maps.h"
#include "cpu/runs.h"

namespace dwd {
namespace cpu {

// Every pixel is foreground (a cut-off below the dtype's range).
struct AllRuns {
  index_t cols;
  index_t next(index_t, index_t c) const { return c; }
  index_t end(index_t, index_t) const { return cols; }
  bool joined(const Run&, const Run&) const { return true; }
};

template <class T>
inline void check_finite(const Planes& m, const char* what) {
  if constexpr (std::is_floating_point<T>::value) {
    for (index_t p = 0; p < m.planes; ++p)
      for (index_t r = 0; r < m.rows; ++r) {
        const T* s = static_cast<const T*>(m.data) + p * m.stride_p + r * m.stride_r;
        bool bad = false;
        for (index_t c = 0; c < m.cols; ++c) bad |= s[c] != s[c];
        if (bad) throw std::invalid_argument(std::string(what) + " contains NaN");
      }
  }
}

// Labels `energy > cutoff` (plane 0 of a level map).
inline void label_above(const Planes& e, double cutoff, int connectivity, RunLabels& lab, bool check_nan = true) {
  dispatch(e.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (check_nan) check_finite<T>(e, "energy");
    const ImageView<const T> v = plane_view<T>(e, 0);
    if constexpr (std::is_floating_point<T>::value) {
      lab.build(AboveRuns<T>{v, static_cast<T>(cutoff)}, e.rows, e.cols, connectivity);
    } else {
      const double lo = static_cast<double>(std::numeric_limits<T>::lowest());
      const double hi = static_cast<double>(std::numeric_limits<T>::max());
      const double f = std::floor(cutoff);  // integer v > cutoff  <=>  v > floor(cutoff)
      if (f >= hi) {
        lab.build(AboveRuns<T>{v, std::numeric_limits<T>::max()}, e.rows, e.cols, connectivity);
      } else if (f < lo) {
        lab.build(AllRuns{e.cols}, e.rows, e.cols, connectivity);
      } else {
        lab.build(AboveRuns<T>{v, static_cast<T>(f)}, e.rows, e.cols, connectivity);
      }
    }
  });
}

}  // namespace cpu
}  // namespace dwd
