// Data-parallel connected-component labelling (the GPU algorithm), written once for every executor.
//
// Union-find over pixels with atomicMin links (the "direct" family of Komura / Playne & Hawick /
// Allegretti et al.; research/algorithms.md §3.1):
//   init      parent[i] = i for a foreground pixel, -1 for background
//   merge     every foreground pixel unites with each earlier neighbour it is joined to
//             (left, up, and for connectivity 2 up-left and up-right); a union links the larger root
//             under the smaller one with atomicMin, so the root of a component is its smallest
//             raster index whatever order the threads run in
//   compress  parent[i] = root(i)
//   renumber  roots are flagged, an exclusive scan gives each root its rank: labels 1..n in the
//             raster order of each component's first pixel, i.e. exactly skimage.measure.label's.
//
// The pixel predicate is a policy: `fg(r, c)` and `joined(r, c, r2, c2)` (both foreground and
// connected). ValueJoin joins equal non-zero values (skimage's label on bool and integer input);
// CutJoin joins pixels whose value is above a cut-off (DWD's energy > cutoff).
#pragma once

#include "core.h"
#include "exec.h"

namespace dwd {
namespace label_dp {

template <class T>
struct ValueJoin {
  ImageView<const T> img;
  DWD_HD bool fg(index_t r, index_t c) const { return img(r, c) != T(0); }
  DWD_HD bool joined(index_t r, index_t c, index_t r2, index_t c2) const {
    return img(r, c) == img(r2, c2);  // caller checked fg(r, c)
  }
};

template <class T>
struct CutJoin {
  ImageView<const T> img;
  T cut;
  DWD_HD bool fg(index_t r, index_t c) const { return img(r, c) > cut; }
  DWD_HD bool joined(index_t, index_t, index_t r2, index_t c2) const { return img(r2, c2) > cut; }
};

DWD_HD std::int32_t find_root(const std::int32_t* parent, std::int32_t x) {
  std::int32_t p = load_relaxed(parent + x);
  while (p != x) {
    x = p;
    p = load_relaxed(parent + x);
  }
  return x;
}

// Unite the sets of a and b: the larger root is linked under the smaller with atomicMin. If another
// thread re-linked that root first, atomicMin returns the new parent and we retry from there.
DWD_HD void unite(std::int32_t* parent, std::int32_t a, std::int32_t b) {
  while (true) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a == b) return;
    if (a < b) {
      std::int32_t t = a;
      a = b;
      b = t;
    }
    const std::int32_t old = atomic_min(parent + a, b);
    if (old == a) return;
    a = old;
  }
}

template <class Pix>
struct InitStep {
  Pix pix;
  index_t cols;
  std::int32_t* parent;
  DWD_HD void operator()(index_t i) const {
    parent[i] = pix.fg(i / cols, i % cols) ? static_cast<std::int32_t>(i) : -1;
  }
};

template <class Pix>
struct MergeStep {
  Pix pix;
  index_t rows, cols;
  int connectivity;
  std::int32_t* parent;
  DWD_HD void operator()(index_t i) const {
    const index_t r = i / cols, c = i % cols;
    if (!pix.fg(r, c)) return;
    const std::int32_t me = static_cast<std::int32_t>(i);
    if (c > 0 && pix.joined(r, c, r, c - 1)) unite(parent, me, me - 1);
    if (r > 0) {
      const std::int32_t up = static_cast<std::int32_t>(i - cols);
      if (pix.joined(r, c, r - 1, c)) unite(parent, me, up);
      if (connectivity == 2) {
        if (c > 0 && pix.joined(r, c, r - 1, c - 1)) unite(parent, me, up - 1);
        if (c + 1 < cols && pix.joined(r, c, r - 1, c + 1)) unite(parent, me, up + 1);
      }
    }
  }
};

struct CompressStep {
  std::int32_t* parent;
  DWD_HD void operator()(index_t i) const {
    if (parent[i] >= 0) parent[i] = find_root(parent, static_cast<std::int32_t>(i));
  }
};

struct RootFlagStep {
  const std::int32_t* parent;
  std::int32_t* flag;
  DWD_HD void operator()(index_t i) const { flag[i] = parent[i] == i ? 1 : 0; }
};

struct FinalStep {
  const std::int32_t* parent;
  const std::int32_t* rank;
  ImageView<std::int32_t> out;
  index_t cols;
  DWD_HD void operator()(index_t i) const {
    const std::int32_t p = parent[i];
    out(i / cols, i % cols) = p >= 0 ? rank[p] + 1 : 0;
  }
};

// Labels `pix` into `out` (rows x cols, caller memory reachable by the executor). Returns the number
// of components. Pages must hold fewer than 2^31 pixels (checked by the caller).
template <class Exec, class Pix>
std::int32_t label(Exec& ex, const Pix& pix, index_t rows, index_t cols, int connectivity,
                   ImageView<std::int32_t> out) {
  const index_t n = rows * cols;
  if (n == 0) return 0;
  std::int32_t* parent = ex.template alloc<std::int32_t>(n);
  // The root flags live in `out` when it is contiguous (it is written only by the last step).
  const bool flag_in_out = out.stride_c == 1 && out.stride_r == cols;
  std::int32_t* flag = flag_in_out ? out.data : ex.template alloc<std::int32_t>(n);
  std::int32_t* rank = ex.template alloc<std::int32_t>(n + 1);
  ex.for_each(n, InitStep<Pix>{pix, cols, parent});
  ex.for_each(n, MergeStep<Pix>{pix, rows, cols, connectivity, parent});
  ex.for_each(n, CompressStep{parent});
  ex.for_each(n, RootFlagStep{parent, flag});
  ex.exclusive_scan(flag, rank, n);
  ex.for_each(n, FinalStep{parent, rank, out, cols});
  std::int32_t count = 0;
  ex.to_host(&count, rank + n, 1);
  ex.free(parent);
  ex.free(rank);
  if (!flag_in_out) ex.free(flag);
  return count;
}

}  // namespace label_dp
}  // namespace dwd
