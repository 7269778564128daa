// The plain (SSE2) Eigen GEMM and the dispatch to the AVX2 / AVX-512 builds (simd_avx*_gemm.cpp).
#include "model/gemm.h"

#include <cpuid.h>

#include <Eigen/Core>

#include "quant/kernel_level.h"

#include "model/gemm_eigen_body.h"

namespace quant::model {

void gemm_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
               bool b_transposed, float* c, int64_t ldc);
void gemm_avx512(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                 bool b_transposed, float* c, int64_t ldc);

namespace {

// The AVX2 build also uses FMA (CPUID leaf 1, ECX bit 12), which the AVX2 kernel level does not require.
bool cpu_has_fma() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_FMA) != 0;
}

enum class GemmBuild { scalar, avx2, avx512 };

GemmBuild active_build() {
  static const bool fma = cpu_has_fma();
  switch (active_kernel_level()) {
    case KernelLevel::avx512: return fma ? GemmBuild::avx512 : GemmBuild::scalar;
    case KernelLevel::avx2: return fma ? GemmBuild::avx2 : GemmBuild::scalar;
    case KernelLevel::scalar: break;
  }
  return GemmBuild::scalar;
}

}  // namespace

void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
          bool b_transposed, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  switch (active_build()) {
    case GemmBuild::avx512: return gemm_avx512(m, n, k, a, lda, b, ldb, b_transposed, c, ldc);
    case GemmBuild::avx2: return gemm_avx2(m, n, k, a, lda, b, ldb, b_transposed, c, ldc);
    case GemmBuild::scalar: break;
  }
  gemm_eigen(m, n, k, a, lda, b, ldb, b_transposed, c, ldc);
}

const char* gemm_kernel_name() {
  switch (active_build()) {
    case GemmBuild::avx512: return "avx512";
    case GemmBuild::avx2: return "avx2";
    case GemmBuild::scalar: break;
  }
  return "scalar";
}

}  // namespace quant::model
