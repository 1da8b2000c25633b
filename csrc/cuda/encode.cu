// The data-parallel target encoder (dwd/encode.h) instantiated for CudaExec.
//
// Not bound to Python yet (dwd_fast.encode runs on the CPU, and the same algorithm runs through
// HostExec in the tests); this translation unit makes the CUDA build compile the encoder's device
// code -- packed-key atomicMax on 64-bit keys, the integer geometry -- with --fmad=false, so the
// CUDA op can be exposed without surprises.
#include "cuda/cuda_exec.cuh"
#include "dwd/encode.h"

namespace dwd {
namespace encode {

template bool encode_page<CudaExec>(CudaExec&, const EncodeObj*, index_t, index_t, index_t, Marker, Overlap,
                                    const std::uint8_t*, const std::int32_t*, const float*, Outputs);

}  // namespace encode
}  // namespace dwd
