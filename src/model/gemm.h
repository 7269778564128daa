// Float32 matrix products for the forward pass (Eigen's GEMM), at the active kernel level: Eigen compiled for
// AVX-512, AVX2+FMA or plain x86-64 (SSE2), chosen once like the format kernels (quant/kernel_level.h).
#pragma once

#include <cstdint>

namespace quant::model {

// C[m x n] = A[m x k] · B^T with B stored n x k (b_transposed), or A · B with B stored k x n. Row-major; lda, ldb and
// ldc are row strides in floats. C is overwritten.
void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
          bool b_transposed, float* c, int64_t ldc);

// The Eigen build gemm() uses now: "avx512", "avx2" or "scalar".
const char* gemm_kernel_name();

}  // namespace quant::model
