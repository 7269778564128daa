// SIMD dequantizers for q2_K, q3_K, q4_K, q5_K and q6_K, written over a vector-operations struct V (simd_ops_avx2.h,
// simd_ops_avx512.h).
//
// Every output is one product (or product and difference) of the scalar dequantizer (kquants.cpp): the group
// factor (d times the group's integer scale, and q2_K's d_min times its integer min) is computed once per
// group of 16 in scalar float32 exactly as the scalar code computes it, and each lane multiplies it by its
// integer level converted to float. The same IEEE operations on the same operands give the same floats, NaN
// and infinity included (a level is always a small integer, so only the factor can be non-finite). The lanes
// run across the 16 (q4_K/q5_K: 32) consecutive values of a group, whose bits sit in consecutive bytes of each
// bit field. Include after the instruction-set pragma, the ops header, kquant_layout.h and
// kquant_lowbit_layout.h (before the pragma); everything here has internal linkage.
#pragma once

#include <cstdint>

#include "formats/kernels.h"
#include "formats/kquant_layout.h"
#include "formats/kquant_lowbit_layout.h"

namespace quant::formats {
namespace {

// Bits [shift, shift + width) of the 16 bytes at p, W at a time, as int32 lanes (k selects which W).
template <class V>
typename V::I bit_field_lanes(const uint8_t* p, int k, int shift, int mask) {
  return V::iand(V::shift_right_lanes(V::load_u8(p + k * V::kWidth), V::iset1(shift)), V::iset1(mask));
}

template <class V>
void dequantize_q2_k_simd(const void* src, float* dst, int64_t n) {
  constexpr int W = V::kWidth;
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / 256; ++b, block += kquant::kQ2KBytes) {
    const float d = load_f16(block + kquant::kQ2KDOffset);
    const float dmin = load_f16(block + kquant::kQ2KDminOffset);
    const uint8_t* packed_scales = block + kquant::kQ2KScalesOffset;
    // Output group j (values 16j..16j+15): bits 2*((j/2)%4) of bytes 32*(j/8) + 16*(j%2) .. +15 of qs.
    for (int j = 0; j < 16; ++j) {
      const uint8_t packed = packed_scales[j];
      const auto group_scale = V::set1(d * (packed & 0xF));
      const auto group_min = V::set1(dmin * (packed >> 4));
      const uint8_t* q = block + kquant::kQ2KQsOffset + 32 * (j / 8) + 16 * (j % 2);
      const int shift = 2 * ((j / 2) % 4);
      for (int k = 0; k < 16 / W; ++k) {
        const auto level = V::to_float(bit_field_lanes<V>(q, k, shift, 3));
        V::store(dst + 16 * j + k * W, V::sub(V::mul(group_scale, level), group_min));
      }
    }
    dst += 256;
  }
}

template <class V>
void dequantize_q3_k_simd(const void* src, float* dst, int64_t n) {
  constexpr int W = V::kWidth;
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / 256; ++b, block += kquant::kQ3KBytes) {
    const float d = load_f16(block + kquant::kQ3KDOffset);
    const uint8_t* packed_scales = block + kquant::kQ3KScalesOffset;
    // Output group j: low bits 2*((j/2)%4) of bytes 32*(j/8) + 16*(j%2) .. of qs, high bit j/2 of bytes
    // 16*(j%2) .. of hmask; level = low - 4 unless the high bit is set.
    for (int j = 0; j < 16; ++j) {
      const auto group_scale = V::set1(d * (kquant::q3_k_packed_scale(packed_scales, j) - 32));
      const uint8_t* q = block + kquant::kQ3KQsOffset + 32 * (j / 8) + 16 * (j % 2);
      const uint8_t* h = block + kquant::kQ3KHmaskOffset + 16 * (j % 2);
      const int shift = 2 * ((j / 2) % 4);
      for (int k = 0; k < 16 / W; ++k) {
        const auto low = bit_field_lanes<V>(q, k, shift, 3);
        const auto high = bit_field_lanes<V>(h, k, j / 2, 1);
        const auto level = V::iadd(V::isub(low, V::iset1(4)), V::template shift_left<2>(high));
        V::store(dst + 16 * j + k * W, V::mul(group_scale, V::to_float(level)));
      }
    }
    dst += 256;
  }
}

// q4_K (kBlockBytes 144: d, dmin, scales[12], qs[128]) and q5_K (176: qh[32] before qs): group 2*chunk + nibble
// is nibble `nibble` of qs[32 chunk ..], plus bit 2*chunk + nibble of qh as the fifth bit for q5_K; value =
// d * scale - dmin * min, as kquants.cpp dequantize_block_q4_k / q5_k compute it.
template <class V, int kBlockBytes, bool kFiveBit>
void dequantize_affine_k_simd(const void* src, float* dst, int64_t n) {
  constexpr int W = V::kWidth;
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / 256; ++b, block += kBlockBytes) {
    const float d = load_f16(block);
    const float dmin = load_f16(block + 2);
    const uint8_t* packed_scales = block + 4;
    const uint8_t* qh = block + 16;
    const uint8_t* qs = block + (kFiveBit ? 48 : 16);
    for (int chunk = 0; chunk < 4; ++chunk) {
      for (int nibble = 0; nibble < 2; ++nibble) {
        uint8_t scale_level, min_level;
        kquant::unpack_scale_min(packed_scales, 2 * chunk + nibble, &scale_level, &min_level);
        const auto group_scale = V::set1(d * scale_level);
        const auto group_min = V::set1(dmin * min_level);
        for (int k = 0; k < 32 / W; ++k) {
          auto level = bit_field_lanes<V>(qs + 32 * chunk, k, 4 * nibble, 0xF);
          if constexpr (kFiveBit) {
            level = V::ior(level, V::template shift_left<4>(bit_field_lanes<V>(qh, k, 2 * chunk + nibble, 1)));
          }
          V::store(dst + 32 * (2 * chunk + nibble) + k * W, V::sub(V::mul(group_scale, V::to_float(level)), group_min));
        }
      }
    }
    dst += 256;
  }
}

template <class V>
void dequantize_q6_k_simd(const void* src, float* dst, int64_t n) {
  constexpr int W = V::kWidth;
  constexpr int kBlockBytes = 210;  // ql[128], qh[64], int8 scales[16], f16 d
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / 256; ++b, block += kBlockBytes) {
    const float d = load_f16(block + 208);
    const int8_t* scales = reinterpret_cast<const int8_t*>(block + 192);
    // Value 128*half + 32*quarter + 16*sub + m: low nibble (quarter < 2) or high nibble of
    // ql[64*half + 32*(quarter%2) + 16*sub + m], bits 2*quarter of qh[32*half + 16*sub + m], group scale
    // scales[8*half + 2*quarter + sub].
    for (int half = 0; half < 2; ++half) {
      for (int quarter = 0; quarter < 4; ++quarter) {
        for (int sub = 0; sub < 2; ++sub) {
          const auto group_scale = V::set1(d * scales[8 * half + 2 * quarter + sub]);
          const uint8_t* ql = block + 64 * half + 32 * (quarter % 2) + 16 * sub;
          const uint8_t* qh = block + 128 + 32 * half + 16 * sub;
          float* out = dst + 128 * half + 32 * quarter + 16 * sub;
          for (int k = 0; k < 16 / W; ++k) {
            const auto low = bit_field_lanes<V>(ql, k, 4 * (quarter / 2), 0xF);
            const auto high = bit_field_lanes<V>(qh, k, 2 * quarter, 3);
            const auto level = V::isub(V::ior(low, V::template shift_left<4>(high)), V::iset1(32));
            V::store(out + k * W, V::mul(group_scale, V::to_float(level)));
          }
        }
      }
    }
    dst += 256;
  }
}

}  // namespace
}  // namespace quant::formats
