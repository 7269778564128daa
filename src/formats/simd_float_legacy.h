// SIMD kernels for f16, bf16 and the legacy block types (q4_0, q4_1, q5_0, q5_1, q8_0), written once over a
// vector-operations struct V (simd_ops_avx2.h, simd_ops_avx512.h) and compiled per instruction set.
//
// Why these are bit-exact with the scalar kernels (float_formats.cpp, legacy.cpp):
//   - element-wise work (scaling, rounding, conversions) is the same IEEE operation in every lane;
//   - the only reductions are max/min of a block, which are order-free once NaN is excluded, and the "first
//     index" rules of the scalar code (signed absmax, the sign of a zero minimum) are applied explicitly;
//   - a block holding a NaN goes to the scalar kernel, whose NaN behaviour depends on the scan order;
//   - hardware f16 conversions round like fp32_to_fp16 / fp16_to_fp32 except for NaN (the hardware quiets a
//     signalling NaN and keeps payloads), so chunks with NaN (or f16 Inf/NaN inputs) are converted by the
//     scalar code.
// The weighted (importance) searches of the legacy types stay scalar: they go to the scalar kernel whole.
// Include after the instruction-set pragma and the ops header; everything here has internal linkage.
#pragma once

#include <cfloat>
#include <cstdint>
#include <cstring>

#include "formats/kernels.h"
#include "formats/simd_kernels.h"

namespace quant::formats {
namespace {

template <class V>
struct Lanes {
  using F = typename V::F;
  using I = typename V::I;
  using M = typename V::M;
  static constexpr int kWidth = V::kWidth;
  static constexpr int kBlock = 32;                  // values in a legacy block
  static constexpr int kVectors = kBlock / kWidth;   // vectors holding one block

  // ggml's nearest_int in every lane: the fraction is pushed out of the mantissa by adding 1.5 * 2^23.
  static I nearest_int(F x) {
    const I bits = V::float_bits(V::add(x, V::set1(12582912.0f)));
    return V::isub(V::iand(bits, V::iset1(0x007fffff)), V::iset1(0x00400000));
  }

  // C's roundf (half away from zero) in every lane: v - trunc(v) is exact, so comparing it with 0.5 decides
  // the rounding without the double rounding of floor(|v| + 0.5). Infinities and NaN pass through.
  static F round_half_away(F v) {
    const F truncated = V::trunc(v);
    const F fraction = V::abs(V::sub(v, truncated));
    const F one_with_sign = V::from_bits(V::ior(V::iand(V::float_bits(v), V::iset1(static_cast<int32_t>(0x80000000u))),
                                                V::float_bits(V::set1(1.0f))));
    return V::add(truncated, V::select(V::le(V::set1(0.5f), fraction), one_with_sign, V::set1(0.0f)));
  }

  // Sign-extends the low byte of each lane (ggml's cast of an int to int8_t).
  static I low_byte_signed(I v) { return V::template shift_right_arithmetic<24>(V::template shift_left<24>(v)); }

  // Loads a block into kVectors vectors; returns true when it holds a NaN.
  static bool load_block(const float* x, F* v) {
    M nan = V::is_nan(v[0] = V::load(x));
    for (int k = 1; k < kVectors; ++k) nan = V::mor(nan, V::is_nan(v[k] = V::load(x + k * kWidth)));
    return V::any(nan);
  }

  // The first value of the block equal to `target` (compared as floats, so a zero target finds the first zero
  // of either sign): the scalar scans keep the first of equal values.
  static float first_equal(const float* x, const F* v, float target) {
    for (int k = 0; k < kVectors; ++k) {
      const unsigned hits = V::bits(V::eq(v[k], V::set1(target)));
      if (hits != 0) return x[k * kWidth + __builtin_ctz(hits)];
    }
    return target;
  }

  // The value of largest magnitude, the first one on ties, 0 when all are zero (legacy.cpp signed_absmax).
  static float signed_absmax(const float* x, const F* v) {
    F magnitude = V::abs(v[0]);
    for (int k = 1; k < kVectors; ++k) magnitude = V::max(magnitude, V::abs(v[k]));
    const float largest = V::reduce_max(magnitude);
    if (!(largest > 0.0f)) return 0.0f;
    for (int k = 0; k < kVectors; ++k) {
      const unsigned hits = V::bits(V::eq(V::abs(v[k]), V::set1(largest)));
      if (hits != 0) return x[k * kWidth + __builtin_ctz(hits)];
    }
    return 0.0f;
  }

  // Packs the levels of values j and j + 16 into byte j (low nibble first), keeping the low byte as the
  // scalar code's uint8_t arithmetic does; `mask_nibbles` drops everything above 4 bits first (q5 types).
  static void pack_nibbles(const I* levels, uint8_t* qs, bool mask_nibbles) {
    for (int k = 0; k < kVectors / 2; ++k) {
      I first = levels[k];
      I second = levels[k + kVectors / 2];
      if (mask_nibbles) {
        first = V::iand(first, V::iset1(0x0f));
        second = V::iand(second, V::iset1(0x0f));
      }
      V::store_low_bytes(qs + k * kWidth, V::ior(first, V::template shift_left<4>(second)));
    }
  }

  // Bit j of the result is bit 4 of level j (the fifth bit of the q5 types).
  static uint32_t fifth_bits(const I* levels) {
    uint32_t bits = 0;
    for (int k = 0; k < kVectors; ++k) bits |= static_cast<uint32_t>(V::bit_set(levels[k], 4)) << (k * kWidth);
    return bits;
  }

  // The high-bit vector (0 or 16 per lane) for values first_index .. first_index + W - 1 of a q5 block.
  static I fifth_bit_values(uint32_t high_bits, int first_index) {
    const I shifted = V::shift_right_lanes(V::iset1(static_cast<int32_t>(high_bits)),
                                           V::iadd(V::iota(), V::iset1(first_index)));
    return V::template shift_left<4>(V::iand(shifted, V::iset1(1)));
  }
};

inline void store_u16_at(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline uint16_t load_u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// ---------------------------------------------------------------------------------------------- f16, bf16

template <class V>
void dequantize_f16_simd(const void* src, float* dst, int64_t n) {
  using L = Lanes<V>;
  const uint8_t* bytes = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  for (; i + L::kWidth <= n; i += L::kWidth) {
    const uint16_t* halves = reinterpret_cast<const uint16_t*>(bytes + 2 * i);
    const auto exponent = V::iand(V::load_u16(halves), V::iset1(0x7c00));
    if (V::any(V::ieq(exponent, V::iset1(0x7c00)))) {  // Inf or NaN: the scalar code keeps NaN payloads
      for (int j = 0; j < L::kWidth; ++j) dst[i + j] = fp16_to_fp32(load_u16_at(bytes + 2 * (i + j)));
    } else {
      V::store(dst + i, V::load_half(halves));
    }
  }
  for (; i < n; ++i) dst[i] = fp16_to_fp32(load_u16_at(bytes + 2 * i));
}

template <class V>
void quantize_f16_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  using L = Lanes<V>;
  const int64_t n = nrows * n_per_row;
  uint8_t* bytes = static_cast<uint8_t*>(dst);
  int64_t i = 0;
  for (; i + L::kWidth <= n; i += L::kWidth) {
    const auto x = V::load(src + i);
    if (V::any(V::is_nan(x))) {  // fp32_to_fp16 writes every NaN as 0x7e00 with its sign
      for (int j = 0; j < L::kWidth; ++j) store_u16_at(bytes + 2 * (i + j), fp32_to_fp16(src[i + j]));
    } else {
      V::store_half(reinterpret_cast<uint16_t*>(bytes + 2 * i), x);
    }
  }
  for (; i < n; ++i) store_u16_at(bytes + 2 * i, fp32_to_fp16(src[i]));
}

template <class V>
void dequantize_bf16_simd(const void* src, float* dst, int64_t n) {
  using L = Lanes<V>;
  const uint8_t* bytes = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  for (; i + L::kWidth <= n; i += L::kWidth) {
    const auto halves = V::load_u16(reinterpret_cast<const uint16_t*>(bytes + 2 * i));
    V::store(dst + i, V::from_bits(V::template shift_left<16>(halves)));
  }
  for (; i < n; ++i) dst[i] = bf16_to_fp32(load_u16_at(bytes + 2 * i));
}

template <class V>
void quantize_bf16_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  using L = Lanes<V>;
  const int64_t n = nrows * n_per_row;
  uint8_t* bytes = static_cast<uint8_t*>(dst);
  int64_t i = 0;
  for (; i + L::kWidth <= n; i += L::kWidth) {
    const auto x = V::load(src + i);
    const auto bits = V::float_bits(x);
    const auto upper = V::template shift_right_logical<16>(bits);
    // Round to nearest even on the upper half; NaN keeps its upper bits with the quiet bit set.
    const auto rounded = V::template shift_right_logical<16>(
        V::iadd(bits, V::iadd(V::iset1(0x7fff), V::iand(upper, V::iset1(1)))));
    const auto quiet_nan = V::ior(upper, V::iset1(64));
    V::store_low_halves(reinterpret_cast<uint16_t*>(bytes + 2 * i), V::iselect(V::is_nan(x), quiet_nan, rounded));
  }
  for (; i < n; ++i) store_u16_at(bytes + 2 * i, fp32_to_bf16(src[i]));
}

// ---------------------------------------------------------------------------------------- legacy quantize

// Runs `quantize_block(x, out)` over every 32-value block; a block it declines (returns false: a NaN) goes to
// the scalar kernel. With importance weights the scalar kernel takes the whole call (its weights depend on
// the row).
template <TypeId kId, size_t kBlockBytes, typename QuantizeBlock>
void quantize_legacy_blocks(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance,
                            QuantizeBlock quantize_block) {
  const QuantizeRowsFn scalar = scalar_quantize(kId);
  if (importance != nullptr) {
    scalar(src, dst, nrows, n_per_row, importance);
    return;
  }
  const int64_t nblocks = nrows * (n_per_row / 32);
  uint8_t* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nblocks; ++b, src += 32, out += kBlockBytes) {
    if (!quantize_block(src, out)) scalar(src, out, 1, 32, nullptr);
  }
}

// q8_0: d = absmax / 127, levels roundf(x / d) as x86 truncates them to int8.
template <class V>
bool quantize_block_q8_0_simd(const float* x, uint8_t* out) {
  using L = Lanes<V>;
  typename V::F v[L::kVectors];
  if (L::load_block(x, v)) return false;
  auto magnitude = V::abs(v[0]);
  for (int k = 1; k < L::kVectors; ++k) magnitude = V::max(magnitude, V::abs(v[k]));
  const float d = V::reduce_max(magnitude) / 127.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  store_u16_at(out, fp32_to_fp16(d));
  const auto scale = V::set1(inverse);
  for (int k = 0; k < L::kVectors; ++k) {
    V::store_low_bytes(out + 2 + k * L::kWidth, V::truncate_to_int(L::round_half_away(V::mul(v[k], scale))));
  }
  return true;
}

// q4_0 / q5_0 reference rule: d = signed absmax / -(kLevels/2); level = min(kLevels-1, int8(trunc(x/d + bias
// + 0.5))). Writes d and the levels (one int32 lane each).
template <class V, int kLevels>
bool symmetric_reference_levels(const float* x, uint8_t* d_field, typename V::I* levels) {
  using L = Lanes<V>;
  typename V::F v[L::kVectors];
  if (L::load_block(x, v)) return false;
  constexpr int kBias = kLevels / 2;
  const float d = L::signed_absmax(x, v) / static_cast<float>(-kBias);
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  store_u16_at(d_field, fp32_to_fp16(d));
  const auto scale = V::set1(inverse);
  const auto offset = V::set1(static_cast<float>(kBias) + 0.5f);
  for (int k = 0; k < L::kVectors; ++k) {
    const auto truncated = V::truncate_to_int(V::add(V::mul(v[k], scale), offset));
    levels[k] = V::imin(V::iset1(kLevels - 1), L::low_byte_signed(truncated));
  }
  return true;
}

template <class V>
bool quantize_block_q4_0_simd(const float* x, uint8_t* out) {
  using L = Lanes<V>;
  typename V::I levels[L::kVectors];
  if (!symmetric_reference_levels<V, 16>(x, out, levels)) return false;
  L::pack_nibbles(levels, out + 2, false);
  return true;
}

template <class V>
bool quantize_block_q5_0_simd(const float* x, uint8_t* out) {
  using L = Lanes<V>;
  typename V::I levels[L::kVectors];
  if (!symmetric_reference_levels<V, 32>(x, out, levels)) return false;
  const uint32_t high_bits = L::fifth_bits(levels);
  std::memcpy(out + 2, &high_bits, 4);
  L::pack_nibbles(levels, out + 6, true);
  return true;
}

// q4_1 / q5_1 reference rule: m = smallest value, d = range / (kLevels-1), level = trunc((x-m)/d + 0.5),
// q4_1 clamped to 15 after the int8 cast, q5_1 kept as its low byte.
template <class V, int kLevels, bool kClampTop>
bool offset_reference_levels(const float* x, uint8_t* d_field, uint8_t* m_field, typename V::I* levels) {
  using L = Lanes<V>;
  typename V::F v[L::kVectors];
  if (L::load_block(x, v)) return false;
  auto lowest = V::set1(FLT_MAX);
  auto highest = V::set1(-FLT_MAX);
  for (int k = 0; k < L::kVectors; ++k) {
    lowest = V::min(lowest, v[k]);
    highest = V::max(highest, v[k]);
  }
  float low = V::reduce_min(lowest);
  float high = V::reduce_max(highest);
  if (low == 0.0f) low = L::first_equal(x, v, 0.0f);  // a zero keeps the sign of the first zero scanned
  if (high == 0.0f) high = L::first_equal(x, v, 0.0f);
  const float d = (high - low) / static_cast<float>(kLevels - 1);
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  store_u16_at(d_field, fp32_to_fp16(d));
  store_u16_at(m_field, fp32_to_fp16(low));
  const auto scale = V::set1(inverse);
  const auto minimum = V::set1(low);
  for (int k = 0; k < L::kVectors; ++k) {
    const auto truncated = V::truncate_to_int(V::add(V::mul(V::sub(v[k], minimum), scale), V::set1(0.5f)));
    if constexpr (kClampTop) {
      levels[k] = V::imin(V::iset1(kLevels - 1), L::low_byte_signed(truncated));
    } else {
      levels[k] = V::iand(truncated, V::iset1(0xff));
    }
  }
  return true;
}

template <class V>
bool quantize_block_q4_1_simd(const float* x, uint8_t* out) {
  using L = Lanes<V>;
  typename V::I levels[L::kVectors];
  if (!offset_reference_levels<V, 16, true>(x, out, out + 2, levels)) return false;
  L::pack_nibbles(levels, out + 4, false);
  return true;
}

template <class V>
bool quantize_block_q5_1_simd(const float* x, uint8_t* out) {
  using L = Lanes<V>;
  typename V::I levels[L::kVectors];
  if (!offset_reference_levels<V, 32, false>(x, out, out + 2, levels)) return false;
  const uint32_t high_bits = L::fifth_bits(levels);
  std::memcpy(out + 4, &high_bits, 4);
  L::pack_nibbles(levels, out + 8, true);
  return true;
}

template <class V>
void quantize_q8_0_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  // q8_0 ignores importance weights, as in ggml.
  quantize_legacy_blocks<TypeId::q8_0, 34>(src, dst, nrows, n_per_row, nullptr, quantize_block_q8_0_simd<V>);
}
template <class V>
void quantize_q4_0_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_legacy_blocks<TypeId::q4_0, 18>(src, dst, nrows, n_per_row, importance, quantize_block_q4_0_simd<V>);
}
template <class V>
void quantize_q5_0_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_legacy_blocks<TypeId::q5_0, 22>(src, dst, nrows, n_per_row, importance, quantize_block_q5_0_simd<V>);
}
template <class V>
void quantize_q4_1_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_legacy_blocks<TypeId::q4_1, 20>(src, dst, nrows, n_per_row, importance, quantize_block_q4_1_simd<V>);
}
template <class V>
void quantize_q5_1_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_legacy_blocks<TypeId::q5_1, 24>(src, dst, nrows, n_per_row, importance, quantize_block_q5_1_simd<V>);
}

// -------------------------------------------------------------------------------------- legacy dequantize

// value = float(level - center) * d (+ m): element-wise, so any lane order gives the scalar result.
template <class V, size_t kBlockBytes, bool kHasMin, bool kFiveBit>
void dequantize_nibble_blocks(const void* src, float* dst, int64_t n) {
  using L = Lanes<V>;
  constexpr int kCenter = kHasMin ? 0 : (kFiveBit ? 16 : 8);
  constexpr size_t kLevelsOffset = 2 + (kHasMin ? 2 : 0) + (kFiveBit ? 4 : 0);
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / 32; ++b, block += kBlockBytes, dst += 32) {
    const auto d = V::set1(fp16_to_fp32(load_u16_at(block)));
    const auto m = V::set1(kHasMin ? fp16_to_fp32(load_u16_at(block + 2)) : 0.0f);
    uint32_t high_bits = 0;
    if constexpr (kFiveBit) std::memcpy(&high_bits, block + 2 + (kHasMin ? 2 : 0), 4);
    for (int k = 0; k < L::kVectors / 2; ++k) {
      const auto packed = V::load_u8(block + kLevelsOffset + k * L::kWidth);
      auto first = V::iand(packed, V::iset1(0x0f));
      auto second = V::template shift_right_logical<4>(packed);
      if constexpr (kFiveBit) {
        first = V::ior(first, L::fifth_bit_values(high_bits, k * L::kWidth));
        second = V::ior(second, L::fifth_bit_values(high_bits, 16 + k * L::kWidth));
      }
      auto low_values = V::mul(V::to_float(V::isub(first, V::iset1(kCenter))), d);
      auto high_values = V::mul(V::to_float(V::isub(second, V::iset1(kCenter))), d);
      if constexpr (kHasMin) {
        low_values = V::add(low_values, m);
        high_values = V::add(high_values, m);
      }
      V::store(dst + k * L::kWidth, low_values);
      V::store(dst + 16 + k * L::kWidth, high_values);
    }
  }
}

template <class V>
void dequantize_q8_0_simd(const void* src, float* dst, int64_t n) {
  using L = Lanes<V>;
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / 32; ++b, block += 34, dst += 32) {
    const auto d = V::set1(fp16_to_fp32(load_u16_at(block)));
    const int8_t* levels = reinterpret_cast<const int8_t*>(block + 2);
    for (int k = 0; k < L::kVectors; ++k) {
      V::store(dst + k * L::kWidth, V::mul(V::to_float(V::load_i8(levels + k * L::kWidth)), d));
    }
  }
}

}  // namespace
}  // namespace quant::formats
