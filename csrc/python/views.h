// Array descriptors handed over by dwd_fast._arrays for the executor-run (host / cuda) ops.
//
// Python passes every map as a tuple (pointer, dtype code, planes, rows, cols, stride_p, stride_r,
// stride_c) with strides in elements -- the same for numpy (host memory) and for torch / CuPy
// (device memory) -- or None when absent. Outputs whose size depends on the data are allocated by
// a Python callback in the caller's array library and device; C++ receives their pointers.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/peaks.h"
#include "dwd/anyview.h"
#include "dwd/decode.h"
#include "dwd/region_stats.h"
#include "dwd/watershed.h"

namespace dwd {
namespace py = pybind11;

inline AnyView anyview_of(const py::object& o, const char* name) {
  AnyView v;
  if (o.is_none()) return v;
  const py::tuple t = o.cast<py::tuple>();
  if (t.size() != 8) throw std::invalid_argument(std::string(name) + ": internal error, bad view descriptor");
  v.data = reinterpret_cast<const void*>(t[0].cast<std::uintptr_t>());
  const int dt = t[1].cast<int>();
  if (dt < 0 || dt > 9) throw std::invalid_argument(std::string(name) + ": internal error, bad dtype code");
  v.dt = static_cast<Dt>(dt);
  v.planes = t[2].cast<index_t>();
  v.rows = t[3].cast<index_t>();
  v.cols = t[4].cast<index_t>();
  v.stride_p = t[5].cast<index_t>();
  v.stride_r = t[6].cast<index_t>();
  v.stride_c = t[7].cast<index_t>();
  if (v.data == nullptr && v.rows * v.cols > 0)
    throw std::invalid_argument(std::string(name) + ": internal error, null data");
  return v;
}

// Calls the Python allocator `alloc(*sizes)` (the GIL may be released by the caller) and returns the
// pointers it gives back (0 for an output that is not wanted).
inline std::vector<std::uintptr_t> call_alloc(const py::function& alloc, const std::vector<std::int64_t>& sizes) {
  py::gil_scoped_acquire gil;
  py::tuple args(sizes.size());
  for (std::size_t k = 0; k < sizes.size(); ++k) args[k] = py::int_(sizes[k]);
  const py::tuple r = alloc(*args).cast<py::tuple>();
  std::vector<std::uintptr_t> out(r.size());
  for (std::size_t k = 0; k < r.size(); ++k) out[k] = r[k].cast<std::uintptr_t>();
  return out;
}

template <class T>
T* ptr_as(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

// What an executor-run op reports besides its outputs.
struct ExecCounts {
  std::int64_t launches = 0;   // device work items (kernels; CUB scan / sort count once)
  std::int64_t syncs = 0;      // device -> host copies (host backend only; 0 on CUDA)
  std::int64_t workspace = 0;  // workspace bytes allocated by the algorithm
};

inline py::dict counts_dict(const ExecCounts& c) {
  py::dict d;
  d["launches"] = c.launches;
  d["syncs"] = c.syncs;
  d["workspace_bytes"] = c.workspace;
  return d;
}

// ---- watershed glue shared by the host and CUDA bindings ------------------------------------------

// Adds the watershed's report to a counts dict: sweeps per phase, and whether a sort was needed.
inline void watershed_report(py::dict& d, const watershed_dp::Report& r) {
  d["key_sweeps"] = r.key_sweeps;
  d["label_sweeps"] = r.label_sweeps;
  d["sweeps"] = r.key_sweeps + r.label_sweeps;
  d["level_sort"] = r.level_sort;
  d["marker_sort"] = r.marker_sort;
}

// ---- peak_local_max glue shared by the host and CUDA bindings ----------------------------------------

// The parameters, the threshold `cut` read in the kind of the image's dtype.
inline cpu::PeakParams peak_params(cpu::DType dtype, index_t min_distance, index_t border_r, index_t border_c,
                                   index_t num_peaks, bool all_pass, const py::object& cut) {
  cpu::PeakParams q;
  q.min_distance = min_distance;
  q.border_r = border_r;
  q.border_c = border_c;
  q.num_peaks = num_peaks;
  q.all_pass = all_pass;
  if (!all_pass) {
    switch (dtype) {
      case cpu::DType::f32:
      case cpu::DType::f64: q.cut_f = cut.cast<double>(); break;
      case cpu::DType::u8:
      case cpu::DType::u16:
      case cpu::DType::u32:
      case cpu::DType::u64: q.cut_u = cut.cast<std::uint64_t>(); break;
      default: q.cut_i = cut.cast<std::int64_t>(); break;
    }
  }
  return q;
}

// ---- decode glue shared by the host and CUDA bindings ---------------------------------------------

inline decode_dp::Params decode_params(double cutoff, std::int64_t min_size, int connectivity, int size_reduce,
                                       std::int64_t levels, bool energy_logits, bool class_logits,
                                       const py::object& grow_to, bool reduce_over_region, bool peak_seeds = false,
                                       std::int64_t min_distance = 1) {
  decode_dp::Params p;
  p.cutoff = cutoff;
  p.min_size = min_size;
  p.connectivity = connectivity;
  if (size_reduce < 0 || size_reduce > 2) throw std::invalid_argument("size_reduce: internal error");
  p.size_reduce = static_cast<decode_dp::SizeReduce>(size_reduce);
  p.levels = levels;
  p.energy_logits = energy_logits;
  p.class_logits = class_logits;
  p.grow = !grow_to.is_none();
  p.grow_to = p.grow ? grow_to.cast<double>() : 0.0;
  p.reduce_over_region = reduce_over_region;
  if (min_distance < 1) throw std::invalid_argument("min_distance must be >= 1");
  p.peak_seeds = peak_seeds;
  p.min_distance = min_distance;
  return p;
}

inline ImageView<std::int32_t> label_map_view(const py::object& o) {
  ImageView<std::int32_t> v;
  if (o.is_none()) return v;
  const py::tuple t = o.cast<py::tuple>();
  v.data = reinterpret_cast<std::int32_t*>(t[0].cast<std::uintptr_t>());
  v.rows = t[1].cast<index_t>();
  v.cols = t[2].cast<index_t>();
  v.stride_r = v.cols;
  v.stride_c = 1;
  return v;
}

inline decode_dp::DecodeOut decode_out(const std::vector<std::uintptr_t>& p) {
  if (p.size() != 6) throw std::invalid_argument("decode: internal error, 6 output pointers expected");
  decode_dp::DecodeOut o;
  o.boxes = ptr_as<float>(p[0]);
  o.labels = ptr_as<std::int64_t>(p[1]);
  o.scores = ptr_as<float>(p[2]);
  o.class_scores = ptr_as<float>(p[3]);
  o.centers = ptr_as<double>(p[4]);
  o.areas = ptr_as<std::int64_t>(p[5]);
  return o;
}

inline rstats_dp::RegionOut region_out(const std::vector<std::uintptr_t>& p) {
  if (p.size() != 7) throw std::invalid_argument("region_stats: internal error, 7 output pointers expected");
  rstats_dp::RegionOut o;
  o.area = ptr_as<std::int64_t>(p[0]);
  o.bbox = ptr_as<std::int64_t>(p[1]);
  o.centroid = ptr_as<double>(p[2]);
  o.image_sum = ptr_as<double>(p[3]);
  o.image_max = ptr_as<double>(p[4]);
  o.vote = ptr_as<std::int64_t>(p[5]);
  o.vote_count = ptr_as<std::int64_t>(p[6]);
  return o;
}

}  // namespace dwd
