// Software conversions between float32 and the small float formats that mxfp4 and nvfp4 are built from:
// FP4 E2M1 (the 4-bit elements), UE8M0 (mxfp4's power-of-two block scale) and UE4M3 (nvfp4's sub-block scale,
// an unsigned FP8 E4M3). Each conversion is ggml's, not IEEE's or the hardware's: where ggml rounds
// differently from an H100 (ties, saturation, negative zero) we follow ggml, because the stored bytes must be
// llama-quantize's. docs/formats/ternary-microfloat-lowbit.md lists where the two agree and where not;
// tests/formats/microfloat_test.cpp checks both statements against the hardware table.
#pragma once

#include <cmath>
#include <cstdint>

#include "quant/half.h"

namespace quant::formats {

// The 16 E2M1 codes as twice their value (sign in bit 3), so they fit in integers. Fact of the format (OCP
// Microscaling spec v1.0; ggml's kvalues_mxfp4 uses the same doubled values): 0, 0.5, 1, 1.5, 2, 3, 4, 6.
inline constexpr int8_t kE2M1Doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// Returns the E2M1 code whose doubled value times half_scale is nearest to x. On a tie the lower code wins
// (ggml scans codes 0..15 and keeps the first strict improvement), so +0 is chosen over -0 and ties go
// toward the smaller magnitude: unlike hardware round-to-nearest-even.
inline uint8_t nearest_e2m1_code(float x, float half_scale) {
  uint8_t best = 0;
  float best_error = std::fabs(float(kE2M1Doubled[0]) * half_scale - x);
  for (uint8_t code = 1; code < 16; ++code) {
    const float error = std::fabs(float(kE2M1Doubled[code]) * half_scale - x);
    if (error < best_error) {
      best = code;
      best_error = error;
    }
  }
  return best;
}

// UE8M0 code e means 2^(e-127); code 0 is the subnormal 2^-127. ggml does not treat 255 as NaN here (it
// gives infinity); validation rejects 255 instead.
inline float e8m0_to_float(uint8_t e) {
  return e == 0 ? float_from_bits(0x00400000u) : float_from_bits(uint32_t(e) << 23);
}

// Half of e8m0_to_float(e), i.e. 2^(e-128): the scale to multiply doubled E2M1 values by.
inline float e8m0_to_float_half(uint8_t e) {
  return e < 2 ? float_from_bits(0x00200000u << e) : float_from_bits(uint32_t(e - 1) << 23);
}

// The biased exponent floor(log2(x)) + 127 computed as ggml does, through float log2f: for large
// exponents log2f rounds the float just below a power of two up to the integer, so the code can be one
// above the exact floor (hardware round-toward-zero never is). `bias` is 127 for the plain UE8M0 value; mxfp4
// passes 125 to leave headroom for E2M1's largest value 6 = 1.5 * 2^2. A zero or negative x gives 0.
// The float result is narrowed to a byte as x86 does it (a 32-bit truncating conversion, keeping the low
// byte), so exponents below the range wrap around; an infinite x gives the x86 "indefinite" integer, byte 0.
inline uint8_t e8m0_floor_log2(float x, float bias) {
  if (!(x > 0.0f)) return 0;
  const float biased = std::floor(std::log2(x)) + bias;
  if (!(biased > -2147483648.0f && biased < 2147483648.0f)) return 0;
  return static_cast<uint8_t>(static_cast<uint32_t>(static_cast<int32_t>(biased)) & 0xffu);
}

// UE4M3 (4 exponent bits, bias 7, 3 mantissa bits, no sign) to float, halved like e8m0_to_float_half because
// it scales doubled E2M1 values. ggml reads 0x7f (E4M3's NaN) as 0 and ignores the top bit otherwise (so 0xff
// reads as 480, which E4M3 cannot hold).
inline float ue4m3_to_float_half(uint8_t code) {
  if (code == 0 || code == 0x7f) return 0.0f;
  const int exponent = (code >> 3) & 0xf;
  const int mantissa = code & 0x7;
  const float value = exponent == 0 ? std::ldexp(float(mantissa), -9)
                                    : std::ldexp(1.0f + float(mantissa) / 8.0f, exponent - 7);
  return value * 0.5f;
}

// Float to UE4M3 the way ggml does it. Not round-to-nearest-even: normal values round half up on the first
// dropped mantissa bit, subnormals by adding 0.5 in float; every value from 256 up saturates to 0x7e (448),
// and zero, negatives and NaN give 0.
inline uint8_t float_to_ue4m3(float x) {
  if (!(x > 0.0f)) return 0;
  if (x > 448.0f) x = 448.0f;
  const uint32_t bits = float_bits(x);
  int exponent = int((bits >> 23) & 0xffu) - 127 + 7;
  if (exponent <= 0) {
    int mantissa = static_cast<int>(x * 512.0f + 0.5f);  // units of 2^-9, the smallest subnormal
    if (mantissa > 7) mantissa = 7;
    if (mantissa < 1) return 0;
    return static_cast<uint8_t>(mantissa);
  }
  if (exponent >= 15) return 0x7e;
  int mantissa = int((bits >> 20) & 0x7u) + int((bits >> 19) & 0x1u);
  if (mantissa > 7) {
    mantissa = 0;
    ++exponent;
    if (exponent >= 15) return 0x7e;
  }
  return static_cast<uint8_t>((exponent << 3) | mantissa);
}

}  // namespace quant::formats
