// Eigen's GEMM built for AVX2 (see gemm.h). Like the format kernels' SIMD files, the region between the target
// pragmas holds only internal-linkage code and Eigen's templates, which are renamed to namespace QuantSimdEigenAvx2 so that
// they exist only here; the exported function below the region is plain x86-64 and is called only after the
// dispatcher checked the CPU. g++ and clang do not define the instruction-set macros for a target region, so they
// are defined for Eigen's configuration (it reads them to choose its packet types).
// g++ 12 warns inside its own AVX-512 intrinsic headers as Eigen uses them (a known false positive on
// _mm512_undefined_ps); the warning is located in those headers, so it is silenced before they are included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "model/simd_gemm_prelude.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#pragma push_macro("Eigen")
#define Eigen QuantSimdEigenAvx2
#ifndef __AVX__
#define __AVX__ 1
#endif
#ifndef __AVX2__
#define __AVX2__ 1
#endif
#ifndef __FMA__
#define __FMA__ 1
#endif
#ifndef __F16C__
#define __F16C__ 1
#endif
#include <Eigen/Core>

#include "model/gemm_eigen_body.h"

namespace {

// F16C's round trip, as ggml-cpu converts a matmul input for f16 weights (GGML_CPU_FP32_TO_FP16 on x86).
void round_f16_f16c(const float* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i half = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(half));
  }
  for (; i < n; ++i) {
    const __m128i half = _mm_cvtps_ph(_mm_set_ss(in[i]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    out[i] = _mm_cvtss_f32(_mm_cvtph_ps(half));
  }
}

}  // namespace

#pragma pop_macro("Eigen")

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace quant::model {

void round_f16_avx2(const float* in, float* out, int64_t n) { round_f16_f16c(in, out, n); }

void gemm_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                 bool b_transposed, float* c, int64_t ldc) {
  gemm_eigen(m, n, k, a, lda, b, ldb, b_transposed, c, ldc);
}

}  // namespace quant::model
