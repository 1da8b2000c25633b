// Host-callable entry points of the CUDA ops (defined in csrc/cuda/<op>.cu by nvcc, called from the
// g++-compiled binding csrc/python/module_cuda.cpp). Every map is an AnyView of device memory; the
// work runs on `stream` (the caller's current stream, as an integer handle) of device `device`
// (-1: the current device). Data-dependent outputs are allocated through the callbacks (the binding
// allocates them in the caller's array library on the same device). Errors throw
// std::invalid_argument (bad input) or std::runtime_error (CUDA).
#pragma once

#include <cstdint>
#include <functional>

#include "dwd/anyview.h"
#include "dwd/decode.h"
#include "dwd/encode.h"
#include "dwd/peaks.h"
#include "dwd/region_stats.h"
#include "dwd/watershed.h"

namespace dwd {
namespace cuda_ops {

struct Counts {
  std::int64_t launches = 0;   // kernel launches counted by CudaExec (CUB's scan / sort count once each)
  std::int64_t workspace = 0;  // workspace bytes (CUB's temporary storage included)
};

// labels of a 2-D map (skimage.measure.label semantics) into `out` (int32, rows x cols); returns n.
std::int32_t label(int device, std::uintptr_t stream, const AnyView& image, int connectivity,
                   ImageView<std::int32_t> out, Counts* counts);

std::int64_t region_stats(int device, std::uintptr_t stream, const AnyView& labels, const AnyView& image,
                          const AnyView& classes, std::int64_t num_classes,
                          const std::function<rstats_dp::RegionOut(std::int64_t)>& alloc, Counts* counts);

std::int32_t decode(int device, std::uintptr_t stream, const AnyView& energy, const AnyView& classes,
                    const AnyView& sizes, const decode_dp::Params& p, ImageView<std::int32_t> label_map,
                    const std::function<decode_dp::DecodeOut(std::int64_t)>& alloc, Counts* counts);

// One launch sequence for the whole batch (dwd/encode.h encode_batch); outputs zeroed by the caller.
bool encode(int device, std::uintptr_t stream, const encode::EncodeObj* objs, const std::int64_t* page_offset,
            std::int64_t M, std::int64_t B, std::int64_t rows, std::int64_t cols, encode::Marker marker,
            encode::Overlap overlap, const std::uint8_t* table, const std::int32_t* labels, const float* sizes,
            encode::dp::BatchOutputs out, Counts* counts);
// The same into the compact layout (uint8 classes, labels < 256; sizes as halves by __float2half_rn).
bool encode(int device, std::uintptr_t stream, const encode::EncodeObj* objs, const std::int64_t* page_offset,
            std::int64_t M, std::int64_t B, std::int64_t rows, std::int64_t cols, encode::Marker marker,
            encode::Overlap overlap, const std::uint8_t* table, const std::int32_t* labels, const float* sizes,
            encode::dp::CompactBatchOutputs out, Counts* counts);
// dst[k] = encode::half_bits(src[k]) on the device (device pointers; tests compare it with the host's).
void half_bits(int device, std::uintptr_t stream, const float* src, std::uint16_t* dst, std::int64_t n);

// The canonical watershed (dwd/watershed.h watershed_maps) of `image` from the non-zero `markers` inside
// `mask` (absent: everywhere) into `out` (contiguous rows x cols, dtype out_dt = the markers' dtype).
watershed_dp::Report watershed(int device, std::uintptr_t stream, const AnyView& image, const AnyView& markers,
                               const AnyView& mask, int connectivity, void* out, Dt out_dt, Counts* counts);

// scikit-image's peak_local_max without labels (dwd/peaks.h); alloc(K) returns the (K, 2) int64
// output. Instantiated (cuda/peaks.cu) for T = uint8, uint16, int32, int64, float, double.
template <class T>
std::int64_t peak_local_max(int device, std::uintptr_t stream, const peaks::CandidateSpec<T>& s, index_t min_distance,
                            index_t num_peaks, const std::function<std::int64_t*(std::int64_t)>& alloc,
                            Counts* counts);

}  // namespace cuda_ops
}  // namespace dwd
