// IEEE half (f16) and bfloat16 (bf16) conversions, bit-exact with ggml's reference conversions.
//
// f32 -> f16 rounds to nearest, ties to even; values from 65520 up become infinity; NaN becomes a quiet NaN
// (0x7e00) keeping its sign. f32 -> bf16 rounds to nearest even on the upper 16 bits; NaN keeps its upper bits
// with the quiet bit forced on. Both widenings are exact.
#pragma once

#include <cstdint>
#include <cstring>

namespace quant {

inline uint32_t float_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float float_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline uint16_t fp32_to_fp16(float f) {
  uint32_t x = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (x >= 0x477ff000u) return sign | 0x7c00u;  // 65520 and up round to infinity
  if (x >= 0x38800000u) {                        // normal half: rebias the exponent, round 13 bits away
    uint32_t r = x - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  if (x <= 0x33000000u) return sign;             // at most 2^-25: rounds to zero (the tie goes to even 0)
  // Subnormal half: the value in units of 2^-24, rounded to nearest even.
  const uint32_t mantissa = (x & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - (x >> 23);       // 14..24 for exponents in range here
  uint32_t r = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return float_from_bits(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return float_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return float_from_bits(sign);
  // Subnormal: normalise into an f32 exponent.
  uint32_t e = 113;
  while ((mantissa & 0x400u) == 0) { mantissa <<= 1; --e; }
  return float_from_bits(sign | (e << 23) | ((mantissa & 0x3ffu) << 13));
}

inline uint16_t fp32_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 64u);  // quiet NaN
  return static_cast<uint16_t>((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

inline float bf16_to_fp32(uint16_t b) { return float_from_bits(static_cast<uint32_t>(b) << 16); }

}  // namespace quant
