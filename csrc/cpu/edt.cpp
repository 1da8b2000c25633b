#include "cpu/edt.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dwd {
namespace cpu {

void distance_transform_edt(const std::uint8_t* in, std::int64_t in_stride, std::int64_t rows, std::int64_t cols,
                            double* out) {
  if (rows <= 0 || cols <= 0) return;
  bool any_zero = false;
  for (std::int64_t r = 0; r < rows && !any_zero; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      if (in[r * in_stride + c] == 0) {
        any_zero = true;
        break;
      }
  if (!any_zero) {
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c)
        out[r * cols + c] = std::sqrt(static_cast<double>((r + 1) * (r + 1) + c * c));
    return;
  }
  // Pass 1, per column (swept row by row, all columns at once, for memory order): g = rows to the
  // nearest zero in the column (inf: none).
  const std::int64_t inf = rows + cols + 1;
  std::vector<std::int64_t> g(static_cast<std::size_t>(rows * cols));
  for (std::int64_t c = 0; c < cols; ++c) g[c] = in[c] ? inf : 0;
  for (std::int64_t r = 1; r < rows; ++r) {
    const std::uint8_t* row = in + r * in_stride;
    const std::int64_t* up = g.data() + (r - 1) * cols;
    std::int64_t* gr = g.data() + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) gr[c] = row[c] ? std::min(up[c] + 1, inf) : 0;
  }
  for (std::int64_t r = rows - 2; r >= 0; --r) {
    const std::int64_t* dn = g.data() + (r + 1) * cols;
    std::int64_t* gr = g.data() + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) gr[c] = std::min(gr[c], dn[c] + 1);
  }
  // Pass 2, per row: the lower envelope of the parabolas (x - i)^2 + g(i)^2, in integers.
  std::vector<std::int64_t> s(static_cast<std::size_t>(cols)), t(static_cast<std::size_t>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t* gr = g.data() + r * cols;
    auto f = [&](std::int64_t x, std::int64_t i) { return (x - i) * (x - i) + gr[i] * gr[i]; };
    auto sep = [&](std::int64_t i, std::int64_t u) {
      const std::int64_t num = u * u - i * i + gr[u] * gr[u] - gr[i] * gr[i];
      const std::int64_t den = 2 * (u - i);
      return num >= 0 ? num / den : -((-num + den - 1) / den);  // floor division
    };
    std::int64_t q = 0;
    s[0] = 0;
    t[0] = 0;
    for (std::int64_t u = 1; u < cols; ++u) {
      while (q >= 0 && f(t[q], s[q]) > f(t[q], u)) --q;
      if (q < 0) {
        q = 0;
        s[0] = u;
      } else {
        const std::int64_t w = 1 + sep(s[q], u);
        if (w < cols) {
          ++q;
          s[q] = u;
          t[q] = w;
        }
      }
    }
    double* o = out + r * cols;
    for (std::int64_t u = cols - 1; u >= 0; --u) {
      o[u] = std::sqrt(static_cast<double>(f(u, s[q])));
      if (u == t[q]) --q;
    }
  }
}

}  // namespace cpu
}  // namespace dwd
