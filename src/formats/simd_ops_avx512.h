// The vector operations of simd_ops_avx2.h for AVX-512F: 16 float or int32 lanes, masks as __mmask16. Include
// only inside the avx512f target region of simd_avx512.cpp. Only AVX-512F instructions are used.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace quant::formats {
namespace {

struct Avx512Ops {
  static constexpr int kWidth = 16;
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;

  // ---- floats
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F sqrt(F a) { return _mm512_sqrt_ps(a); }
  static F abs(F a) { return _mm512_castsi512_ps(_mm512_and_epi32(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff))); }
  static F trunc(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }

  // ---- comparisons and masks
  static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M eq(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static M neq(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
  static M is_nan(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static M ieq(I a, I b) { return _mm512_cmpeq_epi32_mask(a, b); }
  static M igt(I a, I b) { return _mm512_cmpgt_epi32_mask(a, b); }
  static M mand(M a, M b) { return static_cast<M>(a & b); }
  static M mor(M a, M b) { return static_cast<M>(a | b); }
  static M mnot(M a) { return static_cast<M>(~a); }
  static unsigned bits(M m) { return static_cast<unsigned>(m); }
  static M mask_from_bits(unsigned b) { return static_cast<M>(b); }
  static bool any(M m) { return m != 0; }
  static F select(M m, F if_true, F if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }
  static I iselect(M m, I if_true, I if_false) { return _mm512_mask_blend_epi32(m, if_false, if_true); }

  // ---- int32 lanes
  static I iload(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void istore(int32_t* p, I a) { _mm512_storeu_si512(p, a); }
  static I ixor(I a, I b) { return _mm512_xor_epi32(a, b); }
  static I iset1(int32_t v) { return _mm512_set1_epi32(v); }
  static I iota() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I iand(I a, I b) { return _mm512_and_epi32(a, b); }
  static I ior(I a, I b) { return _mm512_or_epi32(a, b); }
  static I imin(I a, I b) { return _mm512_min_epi32(a, b); }
  static I imax(I a, I b) { return _mm512_max_epi32(a, b); }
  template <int kShift> static I shift_left(I a) { return _mm512_slli_epi32(a, kShift); }
  template <int kShift> static I shift_right_logical(I a) { return _mm512_srli_epi32(a, kShift); }
  template <int kShift> static I shift_right_arithmetic(I a) { return _mm512_srai_epi32(a, kShift); }
  static I shift_right_lanes(I a, I counts) { return _mm512_srlv_epi32(a, counts); }
  // Lane k gets table[index[k]] (index 0..15).
  static F permute(F table, I index) { return _mm512_permutexvar_ps(index, table); }
  static I igather(const int32_t* base, I index) { return _mm512_i32gather_epi32(index, base, 4); }
  static unsigned bit_set(I a, int bit) {
    return static_cast<unsigned>(_mm512_test_epi32_mask(a, _mm512_set1_epi32(static_cast<int32_t>(1u << bit))));
  }

  // ---- conversions
  static F to_float(I a) { return _mm512_cvtepi32_ps(a); }
  static I truncate_to_int(F a) { return _mm512_cvttps_epi32(a); }  // INT32_MIN for NaN / out of range
  static I float_bits(F a) { return _mm512_castps_si512(a); }
  static F from_bits(I a) { return _mm512_castsi512_ps(a); }

  // ---- memory
  static I load_u8(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static I load_i8(const int8_t* p) { return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static I load_u16(const uint16_t* p) { return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  // Lanes 0..7 from the 8 int8 at a, lanes 8..15 from the 8 at b.
  static I load_i8_pair(const int8_t* a, const int8_t* b) {
    return _mm512_cvtepi8_epi32(_mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a)),
                                                   _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b))));
  }
  static void store_low_bytes(uint8_t* p, I a) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(a)); }
  static void store_low_halves(uint16_t* p, I a) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(a));
  }
  static F load_half(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static void store_half(uint16_t* p, F a) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
  }

  // ---- reductions (NaN-free inputs)
  static float reduce_max(F a) { return _mm512_reduce_max_ps(a); }
  static float reduce_min(F a) { return _mm512_reduce_min_ps(a); }
};

}  // namespace
}  // namespace quant::formats
