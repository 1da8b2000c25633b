// Non-temporal copies for page-sized outputs, with the store width chosen at run time (the library is
// built for the baseline x86-64; these few functions are compiled for wider vectors as well).
#include "cpu/runs.h"

#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DWD_STREAM_DISPATCH 1
#endif

namespace dwd {
namespace cpu {
namespace {

// dst + k for the first k that makes it `align`-byte aligned (copied plainly up to there).
inline index_t head(std::int32_t* dst, const std::int32_t* src, index_t n, std::uintptr_t align) {
  index_t k = 0;
  while (k < n && (reinterpret_cast<std::uintptr_t>(dst + k) & (align - 1)) != 0) {
    dst[k] = src[k];
    ++k;
  }
  return k;
}

void copy_plain(std::int32_t* dst, const std::int32_t* src, index_t n) {
#if defined(__SSE2__)
  index_t k = head(dst, src, n, 16);
  for (; k + 4 <= n; k += 4)
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + k), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k)));
  for (; k < n; ++k) dst[k] = src[k];
#else
  std::memcpy(dst, src, sizeof(std::int32_t) * static_cast<std::size_t>(n));
#endif
}

#if defined(DWD_STREAM_DISPATCH)
__attribute__((target("avx2"))) void copy_avx2(std::int32_t* dst, const std::int32_t* src, index_t n) {
  index_t k = head(dst, src, n, 32);
  for (; k + 8 <= n; k += 8)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + k),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k)));
  for (; k < n; ++k) dst[k] = src[k];
}

__attribute__((target("avx512f"))) void copy_avx512(std::int32_t* dst, const std::int32_t* src, index_t n) {
  index_t k = head(dst, src, n, 64);
  for (; k + 16 <= n; k += 16) _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + k), _mm512_loadu_si512(src + k));
  for (; k < n; ++k) dst[k] = src[k];
}
#endif

using CopyFn = void (*)(std::int32_t*, const std::int32_t*, index_t);

CopyFn pick() {
#if defined(DWD_STREAM_DISPATCH)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return copy_avx512;
  if (__builtin_cpu_supports("avx2")) return copy_avx2;
#endif
  return copy_plain;
}

const CopyFn kCopy = pick();

}  // namespace

void stream_copy(std::int32_t* dst, const std::int32_t* src, index_t n) { kCopy(dst, src, n); }

}  // namespace cpu
}  // namespace dwd
