// The data-parallel labelling and peak candidates (dwd/label.h, dwd/peaks.h) instantiated for CudaExec.
//
// Not bound to Python yet (the GPU issue exposes them); this translation unit makes every CUDA build
// compile their device code with warnings as errors, so that the algorithms the tests run through
// HostExec are known to be valid CUDA.
#include <cstdint>

#include "cuda/cuda_exec.cuh"
#include "dwd/label.h"
#include "dwd/peaks.h"

namespace dwd {
namespace label_dp {

template std::int32_t label<CudaExec, ValueJoin<std::uint8_t>>(CudaExec&, const ValueJoin<std::uint8_t>&, index_t,
                                                                index_t, int, ImageView<std::int32_t>);
template std::int32_t label<CudaExec, CutJoin<std::uint8_t>>(CudaExec&, const CutJoin<std::uint8_t>&, index_t,
                                                              index_t, int, ImageView<std::int32_t>);

}  // namespace label_dp

namespace peaks {

template std::int32_t candidates<CudaExec, std::uint8_t>(CudaExec&, const CandidateSpec<std::uint8_t>&, Candidate**);
template std::int32_t candidates<CudaExec, float>(CudaExec&, const CandidateSpec<float>&, Candidate**);

}  // namespace peaks
}  // namespace dwd
