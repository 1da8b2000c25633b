// CPU local-maximum extraction (scikit-image 0.26 peak_local_max semantics, default footprint,
// p_norm = inf). The decoder reuses peak_local_max() for seeds="peaks".
#pragma once

#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/maps.h"
#include "dwd/peaks.h"

namespace dwd {
namespace cpu {

struct PeakParams {
  index_t min_distance = 1;  // window half-size and minimal spacing (>= 0)
  index_t window = -1;        // window half-size when >= 0 (a full square footprint of another size)
  index_t radius() const { return window >= 0 ? window : min_distance; }
  index_t border_r = 0;      // rows [0, border_r) and [H - border_r, H) hold no peak
  index_t border_c = 0;      // likewise for columns
  index_t num_peaks = -1;    // at most this many peaks; < 0: no limit
  // Threshold: a pixel can be a peak when all_pass, or when its value v > cut, compared in the
  // image's dtype. The cut is read from the member matching the dtype: cut_f for float images,
  // cut_i for signed and cut_u for unsigned integer images.
  bool all_pass = false;
  std::int64_t cut_i = 0;
  std::uint64_t cut_u = 0;
  double cut_f = 0.0;

  // The same threshold for any image dtype: v > cut with cut an integer (what the decoder needs).
  void set_cut(std::int64_t cut) {
    cut_i = cut;
    cut_u = cut < 0 ? 0 : static_cast<std::uint64_t>(cut);
    all_pass = false;
    cut_f = static_cast<double>(cut);
    all_pass_unsigned_ = cut < 0;
  }

  template <class T>
  peaks::Above<T> above() const;

  // The candidate step's parameters for `img` (host or device memory).
  template <class T>
  peaks::CandidateSpec<T> spec(ImageView<const T> img) const {
    peaks::CandidateSpec<T> s;
    s.img = img;
    s.radius = radius();
    s.plain = radius() == 0 || img.rows * img.cols == 1;
    s.r0 = border_r;
    s.r1 = img.rows - border_r;
    s.c0 = border_c;
    s.c1 = img.cols - border_c;
    s.above = above<T>();
    return s;
  }

 private:
  bool all_pass_unsigned_ = false;  // set_cut(negative): every unsigned value passes
};

// Peaks of plane 0 of `img` as linear indices r * cols + c, in scikit-image's order: intensity
// descending (stable argsort of -v, wrapping for integers), ties in raster order, greedily spaced
// (Chebyshev distance >= min_distance when min_distance > 1), at most num_peaks.
std::vector<index_t> peak_local_max(const Planes& img, const PeakParams& p);

// The same with `labels` (integer map of img's shape): per label in increasing order (border-
// excluded labels give each label's box, pixels of other labels take the dtype minimum inside it),
// at most num_peaks_per_label each (< 0: no limit), concatenated; re-selected globally when there
// are more than num_peaks.
std::vector<index_t> peak_local_max_labels(const Planes& img, const Planes& labels, const PeakParams& p,
                                           index_t num_peaks_per_label);

// Building blocks shared with the data-parallel path.
// Sorts by (key, index).
void sort_candidates(std::vector<peaks::Candidate>& c);
// Greedy spacing over candidates sorted by sort_candidates: keeps a point unless a kept point lies at
// Chebyshev distance < min_distance (only when min_distance > 1); stops after max_out points (< 0: all).
std::vector<index_t> ensure_spacing(const std::vector<peaks::Candidate>& sorted, index_t cols,
                                    index_t min_distance, index_t max_out);

template <class T>
peaks::Above<T> PeakParams::above() const {
  peaks::Above<T> a;
  a.all_pass = all_pass;
  if constexpr (std::is_floating_point<T>::value) {
    a.cut = static_cast<T>(cut_f);
  } else if constexpr (std::is_signed<T>::value) {
    // out-of-range cuts: below the minimum every value passes, above the maximum none does
    if (cut_i < static_cast<std::int64_t>(std::numeric_limits<T>::min())) a.all_pass = true;
    a.cut = cut_i > static_cast<std::int64_t>(std::numeric_limits<T>::max()) ? std::numeric_limits<T>::max()
            : cut_i < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ? std::numeric_limits<T>::min()
                                                                             : static_cast<T>(cut_i);
  } else {
    a.cut = cut_u > static_cast<std::uint64_t>(std::numeric_limits<T>::max()) ? std::numeric_limits<T>::max()
                                                                             : static_cast<T>(cut_u);
    a.all_pass = all_pass || all_pass_unsigned_;
  }
  return a;
}

}  // namespace cpu
}  // namespace dwd
