#include "model/activation.h"

#include <cmath>
#include <cstring>

#include "quant/half.h"
#include "quant/kernel_level.h"

namespace quant::model {

void round_f16_avx2(const float* in, float* out, int64_t n);  // simd_avx2_gemm.cpp (F16C)

namespace {

// Round half to even, as _mm256_round_ps(_MM_ROUND_NEAREST) and ggml's nearest_int do for the magnitudes involved
// (|v| <= 127.5): adding and removing 1.5·2^23 leaves the integer nearest v (ties to even) in float arithmetic.
inline float round_even(float v) { return (v + 12582912.f) - 12582912.f; }

void round_q8_0(const float* in, float* out, int64_t n) {
  for (int64_t b = 0; b < n; b += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(in[b + j]));
    const float d = amax / 127.f;
    const float stored_d = fp16_to_fp32(fp32_to_fp16(d));
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    for (int j = 0; j < 32; ++j) out[b + j] = round_even(in[b + j] * id) * stored_d;
  }
}

void round_q8_k(const float* in, float* out, int64_t n) {
  for (int64_t b = 0; b < n; b += 256) {
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < 256; ++j) {
      const float ax = std::fabs(in[b + j]);
      if (ax > amax) {
        amax = ax;
        max = in[b + j];
      }
    }
    if (amax == 0.0f) {
      std::memset(out + b, 0, 256 * sizeof(float));
      continue;
    }
    const float iscale = -127.f / max;
    const float d = 1 / iscale;
    for (int j = 0; j < 256; ++j) {
      const float q = std::fmin(127.0f, round_even(iscale * in[b + j]));
      out[b + j] = d * q;
    }
  }
}

}  // namespace

int64_t activation_block(TypeId type) {
  switch (type) {
    case TypeId::q8_0: case TypeId::q8_1: return 32;
    case TypeId::q8_K: return 256;
    default: return 1;
  }
}

void round_activations(TypeId type, const float* in, float* out, int64_t n) {
  switch (type) {
    case TypeId::f16:
      if (active_kernel_level() != KernelLevel::scalar) return round_f16_avx2(in, out, n);
      for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(fp32_to_fp16(in[i]));
      return;
    case TypeId::bf16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(fp32_to_bf16(in[i]));
      return;
    case TypeId::q8_0: case TypeId::q8_1:
      return round_q8_0(in, out, n);
    case TypeId::q8_K:
      return round_q8_k(in, out, n);
    default:
      if (in != out) std::memcpy(out, in, size_t(n) * sizeof(float));
      return;
  }
}

}  // namespace quant::model
