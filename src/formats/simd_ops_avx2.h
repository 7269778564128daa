// The vector operations the kernel templates (simd_float_legacy.h, simd_kquants.h) are written in, for AVX2
// with F16C: 8 float or int32 lanes, masks as all-ones lanes. Include only inside the avx2,f16c target region
// of simd_avx2.cpp (`#pragma GCC target` under g++, `#pragma clang attribute` under clang). Every float
// operation is a single IEEE operation (no FMA), so a lane computes exactly what the scalar code computes.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace quant::formats {
namespace {

struct Avx2Ops {
  static constexpr int kWidth = 8;
  using F = __m256;
  using I = __m256i;
  using M = __m256i;

  // ---- floats
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F sqrt(F a) { return _mm256_sqrt_ps(a); }
  static F abs(F a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
  static F trunc(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
  // a > b ? a : b, and b when either is NaN (x86 MAXPS).
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }

  // ---- comparisons (ordered: false when either is NaN) and masks
  static M as_mask(F m) { return _mm256_castps_si256(m); }
  static M lt(F a, F b) { return as_mask(_mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
  static M le(F a, F b) { return as_mask(_mm256_cmp_ps(a, b, _CMP_LE_OQ)); }
  static M gt(F a, F b) { return as_mask(_mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
  static M eq(F a, F b) { return as_mask(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)); }
  static M neq(F a, F b) { return as_mask(_mm256_cmp_ps(a, b, _CMP_NEQ_UQ)); }  // true for NaN, as C's !=
  static M is_nan(F a) { return as_mask(_mm256_cmp_ps(a, a, _CMP_UNORD_Q)); }
  static M ieq(I a, I b) { return _mm256_cmpeq_epi32(a, b); }
  static M igt(I a, I b) { return _mm256_cmpgt_epi32(a, b); }
  static M mand(M a, M b) { return _mm256_and_si256(a, b); }
  static M mor(M a, M b) { return _mm256_or_si256(a, b); }
  static M mnot(M a) { return _mm256_xor_si256(a, _mm256_set1_epi32(-1)); }
  static unsigned bits(M m) { return static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(m))); }
  // The mask whose lane k is bit k of `b` (the inverse of bits()).
  static M mask_from_bits(unsigned b) {
    const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int32_t>(b)), lane_bits), lane_bits);
  }
  static bool any(M m) { return bits(m) != 0; }
  static F select(M m, F if_true, F if_false) { return _mm256_blendv_ps(if_false, if_true, _mm256_castsi256_ps(m)); }
  static I iselect(M m, I if_true, I if_false) { return _mm256_blendv_epi8(if_false, if_true, m); }

  // ---- int32 lanes
  static I iload(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void istore(int32_t* p, I a) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), a); }
  static I ixor(I a, I b) { return _mm256_xor_si256(a, b); }
  static I iset1(int32_t v) { return _mm256_set1_epi32(v); }
  static I iota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I iand(I a, I b) { return _mm256_and_si256(a, b); }
  static I ior(I a, I b) { return _mm256_or_si256(a, b); }
  static I imin(I a, I b) { return _mm256_min_epi32(a, b); }
  static I imax(I a, I b) { return _mm256_max_epi32(a, b); }
  template <int kShift> static I shift_left(I a) { return _mm256_slli_epi32(a, kShift); }
  template <int kShift> static I shift_right_logical(I a) { return _mm256_srli_epi32(a, kShift); }
  template <int kShift> static I shift_right_arithmetic(I a) { return _mm256_srai_epi32(a, kShift); }
  static I shift_right_lanes(I a, I counts) { return _mm256_srlv_epi32(a, counts); }
  // Lane k gets table[index[k]] (index 0..7): a lookup in a table held in one vector.
  static F permute(F table, I index) { return _mm256_permutevar8x32_ps(table, index); }
  // Lane k gets base[index[k]].
  static I igather(const int32_t* base, I index) { return _mm256_i32gather_epi32(base, index, 4); }
  // Lanes whose bit `bit` is set, as a bit mask (lane 0 in bit 0).
  static unsigned bit_set(I a, int bit) {
    return static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_sll_epi32(a, _mm_cvtsi32_si128(31 - bit)))));
  }

  // ---- conversions
  static F to_float(I a) { return _mm256_cvtepi32_ps(a); }
  // C's truncating float -> int32 as x86 does it: INT32_MIN for NaN and out-of-range values.
  static I truncate_to_int(F a) { return _mm256_cvttps_epi32(a); }
  static I float_bits(F a) { return _mm256_castps_si256(a); }
  static F from_bits(I a) { return _mm256_castsi256_ps(a); }

  // ---- memory: narrow types widened to lanes, lanes narrowed to their low bits
  static I load_u8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
  static I load_i8(const int8_t* p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
  static I load_u16(const uint16_t* p) { return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static void store_low_bytes(uint8_t* p, I a) {
    const __m256i gathered = _mm256_shuffle_epi8(
        a, _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
    const __m256i packed = _mm256_permutevar8x32_epi32(gathered, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  static void store_low_halves(uint16_t* p, I a) {
    const __m256i gathered = _mm256_shuffle_epi8(
        a, _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                            0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1));
    const __m256i packed = _mm256_permute4x64_epi64(gathered, 0x08);  // qwords 0 and 2
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  // IEEE half <-> float in hardware (vcvtph2ps, vcvtps2ph with round-to-nearest-even).
  static F load_half(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static void store_half(uint16_t* p, F a) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
  }

  // ---- reductions (order-free only for NaN-free inputs; callers make sure of that)
  static float reduce_max(F a) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }
  static float reduce_min(F a) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }
};

}  // namespace
}  // namespace quant::formats
