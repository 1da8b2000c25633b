// The DWD loss on the CPU: the original's loss masks and the masked softmax cross-entropies and size
// regression of dwd_fast.torch, fused per block of pixels (forward and gradient).
//
// Layout: logits (B, C, H*W) float32, contiguous; target maps (B, H*W) of uint8 / int32 / int64.
// A loss mask of the original (minibatch.py) is a function of the pixel's target value within its image,
// so it is never materialized here: each image gets a weight table indexed by value (from one
// histogram), and the kernels read weight = table[target]. Pixels of weight 0 are skipped: their
// logits are not read (a block of 64 pixels is reduced to the span of its weighted pixels).
//
// Arithmetic (float32 per pixel, as PyTorch's logsumexp / softmax): max over the channels, exp and log
// by vectorized polynomials (Cephes' expf / logf, within 2 ulp), per-pixel terms summed per block in
// float32 lanes and over the blocks in float64, in a fixed order (results do not depend on the number
// of threads). The kernels are compiled twice, for AVX2 + FMA (chosen at run time when the CPU has
// them) and for the baseline x86-64 / generic target.
#pragma once

#include <cstdint>
#include <string>

#include "cpu/maps.h"

namespace dwd {
namespace cpu {
namespace loss {

// The original's mask modes (dwd_fast.torch.ops.LOSS_MASKS order).
enum class Mask : int { none = 0, mask_bg, mask_zeros, fg_bg_balanced, by_class, by_class_no_bg };

enum class Status : int {
  ok = 0,
  fallback = 1,    // a value the tables do not cover (negative, or above 2^24): use the generic path
  bad_target = 2,  // a weighted pixel's target is not a channel of the logits
};

struct Labels {  // (B, H*W) integer maps
  DType dtype;   // u8, i32 or i64
  const void* data;
};

struct Shape {
  std::int64_t B, H, W;
  std::int64_t hw() const { return H * W; }
};

// Tests: use the best kernel set this CPU supports among `best` and those below it ("avx512", "avx2",
// "baseline"; "best": all); returns the set now in use, or nullptr for an unknown name.
const char* use_kernels(const std::string& best);

// out (B, H*W) float32 = the mask of each image's values.
Status mask(const Labels& values, Shape s, Mask mode, float* out, int threads);

// Masked cross-entropy with an explicit float32 weight map (B, H*W):
// out[b] = sum_p w(p) (logsumexp(x[:, p]) - x[t(p), p]) / (H W).
Status masked_ce(const float* logits, std::int64_t channels, const Labels& target, const float* weight, Shape s,
                 double* out, int threads);
// grad_out (B, C, H*W) = grad[b] / (H W) * w(p) * (softmax(x[:, p]) - onehot(t(p))), 0 where w(p) = 0.
Status masked_ce_backward(const float* logits, std::int64_t channels, const Labels& target, const float* weight,
                          Shape s, const float* grad, float* grad_out, int threads);

struct DwdLoss {
  const float* energy;
  std::int64_t levels;
  const float* classes;
  std::int64_t num_classes;
  const float* sizes;  // (B, 2, H*W)
  Labels t_energy, t_classes;
  const float* t_sizes;                   // (B, 2, H*W)
  Mask energy_mask, class_mask, size_mask;  // the size mask is computed from t_energy (its foreground)
  bool l1;
};

// out (B, 3): energy and class cross-entropy and size regression per image (dwd_fast.torch.ops.dwd_loss).
Status dwd_loss(const DwdLoss& a, Shape s, double* out, int threads);
// Gradients of the above for grad (B, 3); every element of the three outputs is written.
Status dwd_loss_backward(const DwdLoss& a, Shape s, const float* grad, float* g_energy, float* g_classes,
                         float* g_sizes, int threads);

}  // namespace loss
}  // namespace cpu
}  // namespace dwd
