// Two vectors of an ops struct V (simd_ops_avx2.h, simd_ops_avx512.h) seen as one of twice the width: every
// operation is V's, applied to both halves. The lane searches (simd_kquants.h, simd_kquants_lowbit.h) are
// chains of dependent float operations (each grid step waits on the previous step's choice, each sum on the
// previous value's), so one vector leaves the core idle between steps; running two independent sets of groups
// through one search keeps both chains in flight. Each lane still computes exactly V's (and so the scalar
// code's) operations. Include after the ops header; internal linkage.
#pragma once

#include <cstdint>
#include <type_traits>

namespace quant::formats {
namespace {

template <class V>
struct PairOps {
  static constexpr int kWidth = 2 * V::kWidth;
  static constexpr int kHalf = V::kWidth;
  struct F { typename V::F lo, hi; };
  struct I { typename V::I lo, hi; };
  struct M { typename V::M lo, hi; };

  // ---- floats
  static F load(const float* p) { return {V::load(p), V::load(p + kHalf)}; }
  static void store(float* p, F v) { V::store(p, v.lo); V::store(p + kHalf, v.hi); }
  static F set1(float v) { return {V::set1(v), V::set1(v)}; }
  static F add(F a, F b) { return {V::add(a.lo, b.lo), V::add(a.hi, b.hi)}; }
  static F sub(F a, F b) { return {V::sub(a.lo, b.lo), V::sub(a.hi, b.hi)}; }
  static F mul(F a, F b) { return {V::mul(a.lo, b.lo), V::mul(a.hi, b.hi)}; }
  static F div(F a, F b) { return {V::div(a.lo, b.lo), V::div(a.hi, b.hi)}; }
  static F sqrt(F a) { return {V::sqrt(a.lo), V::sqrt(a.hi)}; }
  static F abs(F a) { return {V::abs(a.lo), V::abs(a.hi)}; }
  static F max(F a, F b) { return {V::max(a.lo, b.lo), V::max(a.hi, b.hi)}; }

  // ---- comparisons and masks
  static M lt(F a, F b) { return {V::lt(a.lo, b.lo), V::lt(a.hi, b.hi)}; }
  static M le(F a, F b) { return {V::le(a.lo, b.lo), V::le(a.hi, b.hi)}; }
  static M gt(F a, F b) { return {V::gt(a.lo, b.lo), V::gt(a.hi, b.hi)}; }
  static M neq(F a, F b) { return {V::neq(a.lo, b.lo), V::neq(a.hi, b.hi)}; }
  static M ieq(I a, I b) { return {V::ieq(a.lo, b.lo), V::ieq(a.hi, b.hi)}; }
  static M igt(I a, I b) { return {V::igt(a.lo, b.lo), V::igt(a.hi, b.hi)}; }
  static M mand(M a, M b) { return {V::mand(a.lo, b.lo), V::mand(a.hi, b.hi)}; }
  static M mor(M a, M b) { return {V::mor(a.lo, b.lo), V::mor(a.hi, b.hi)}; }
  static M mnot(M a) { return {V::mnot(a.lo), V::mnot(a.hi)}; }
  static bool any(M m) { return V::any(V::mor(m.lo, m.hi)); }
  static unsigned bits(M m) { return V::bits(m.lo) | (V::bits(m.hi) << kHalf); }
  static M mask_from_bits(unsigned b) { return {V::mask_from_bits(b), V::mask_from_bits(b >> kHalf)}; }
  static F select(M m, F t, F f) { return {V::select(m.lo, t.lo, f.lo), V::select(m.hi, t.hi, f.hi)}; }
  static I iselect(M m, I t, I f) { return {V::iselect(m.lo, t.lo, f.lo), V::iselect(m.hi, t.hi, f.hi)}; }

  // ---- int32 lanes
  static I iload(const int32_t* p) { return {V::iload(p), V::iload(p + kHalf)}; }
  static void istore(int32_t* p, I a) { V::istore(p, a.lo); V::istore(p + kHalf, a.hi); }
  static I iset1(int32_t v) { return {V::iset1(v), V::iset1(v)}; }
  static I ixor(I a, I b) { return {V::ixor(a.lo, b.lo), V::ixor(a.hi, b.hi)}; }
  static I iadd(I a, I b) { return {V::iadd(a.lo, b.lo), V::iadd(a.hi, b.hi)}; }
  static I isub(I a, I b) { return {V::isub(a.lo, b.lo), V::isub(a.hi, b.hi)}; }
  static I iand(I a, I b) { return {V::iand(a.lo, b.lo), V::iand(a.hi, b.hi)}; }
  static I ior(I a, I b) { return {V::ior(a.lo, b.lo), V::ior(a.hi, b.hi)}; }
  static I imin(I a, I b) { return {V::imin(a.lo, b.lo), V::imin(a.hi, b.hi)}; }
  static I imax(I a, I b) { return {V::imax(a.lo, b.lo), V::imax(a.hi, b.hi)}; }
  static I shift_right_lanes(I a, I counts) { return {V::shift_right_lanes(a.lo, counts.lo), V::shift_right_lanes(a.hi, counts.hi)}; }
  template <int kShift> static I shift_left(I a) { return {V::template shift_left<kShift>(a.lo), V::template shift_left<kShift>(a.hi)}; }
  static I igather(const int32_t* base, I index) { return {V::igather(base, index.lo), V::igather(base, index.hi)}; }

  // ---- conversions
  static F to_float(I a) { return {V::to_float(a.lo), V::to_float(a.hi)}; }
  static I truncate_to_int(F a) { return {V::truncate_to_int(a.lo), V::truncate_to_int(a.hi)}; }
  static I float_bits(F a) { return {V::float_bits(a.lo), V::float_bits(a.hi)}; }
  static F from_bits(I a) { return {V::from_bits(a.lo), V::from_bits(a.hi)}; }
};

// 16 lanes from V: V itself when it has 16, else a pair of V.
template <class V>
using Lanes16 = std::conditional_t<V::kWidth == 16, V, PairOps<V>>;

}  // namespace
}  // namespace quant::formats
