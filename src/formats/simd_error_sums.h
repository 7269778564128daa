// accumulate_error_sums (simd_kernels.h) with 256-bit double vectors: lane k of each accumulator takes the
// pairs i with i % 4 == k, exactly as error_sums_scalar does, so the sums are identical. Include after the
// instruction-set pragma (avx2 or wider); internal linkage.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "formats/simd_kernels.h"

namespace quant::formats {
namespace {

void error_sums_four_lanes(const float* reference, const float* reconstructed, int64_t n, ErrorSums* sums) {
  __m256d sq_error = _mm256_setzero_pd();
  __m256d sq_reference = _mm256_setzero_pd();
  __m256d sq_reconstructed = _mm256_setzero_pd();
  __m256d dot = _mm256_setzero_pd();
  __m256d max_abs = _mm256_set1_pd(sums->max_abs);
  const __m256d magnitude_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(reference + i));
    const __m256d y = _mm256_cvtps_pd(_mm_loadu_ps(reconstructed + i));
    const __m256d d = _mm256_sub_pd(x, y);
    sq_error = _mm256_add_pd(sq_error, _mm256_mul_pd(d, d));
    sq_reference = _mm256_add_pd(sq_reference, _mm256_mul_pd(x, x));
    sq_reconstructed = _mm256_add_pd(sq_reconstructed, _mm256_mul_pd(y, y));
    dot = _mm256_add_pd(dot, _mm256_mul_pd(x, y));
    // MAXPD returns its second operand when the first is NaN: a NaN difference leaves the maximum unchanged.
    max_abs = _mm256_max_pd(_mm256_and_pd(d, magnitude_mask), max_abs);
  }
  alignas(32) double lanes[5][4];
  _mm256_store_pd(lanes[0], sq_error);
  _mm256_store_pd(lanes[1], sq_reference);
  _mm256_store_pd(lanes[2], sq_reconstructed);
  _mm256_store_pd(lanes[3], dot);
  _mm256_store_pd(lanes[4], max_abs);
  double largest = lanes[4][0];
  for (int lane = 1; lane < 4; ++lane) largest = largest < lanes[4][lane] ? lanes[4][lane] : largest;
  for (; i < n; ++i) {  // the tail continues each value's lane
    const int lane = static_cast<int>(i & 3);
    const double x = reference[i];
    const double y = reconstructed[i];
    const double d = x - y;
    lanes[0][lane] += d * d;
    lanes[1][lane] += x * x;
    lanes[2][lane] += y * y;
    lanes[3][lane] += x * y;
    const double magnitude = d < 0 ? -d : d;
    largest = largest < magnitude ? magnitude : largest;
  }
  sums->sum_sq_error += (lanes[0][0] + lanes[0][1]) + (lanes[0][2] + lanes[0][3]);
  sums->sum_sq_reference += (lanes[1][0] + lanes[1][1]) + (lanes[1][2] + lanes[1][3]);
  sums->sum_sq_reconstructed += (lanes[2][0] + lanes[2][1]) + (lanes[2][2] + lanes[2][3]);
  sums->dot += (lanes[3][0] + lanes[3][1]) + (lanes[3][2] + lanes[3][3]);
  sums->max_abs = largest;
}

}  // namespace
}  // namespace quant::formats
