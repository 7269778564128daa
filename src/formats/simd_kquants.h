// SIMD kernels for the k-quants q4_K, q5_K (the affine types) and q6_K, written over a vector-operations struct
// V (simd_ops_avx2.h, simd_ops_avx512.h).
//
// The expensive part of these quantizers is the per-group scale search (kquant_search.cpp): a grid of
// candidate scales, each scored by float sums over the group's 16 or 32 values. Those sums must be taken in
// index order, so here one SIMD lane carries one group through exactly the scalar sequence of operations:
// the groups of W consecutive groups are transposed (lane g = group g, step i = value i of every group), and
// every branch of the scalar search becomes a per-lane select. The super-block stage (quantizing the 8 or 16
// group scales, a few dozen operations) stays scalar, calling the same kquant:: searches; the final
// requantization against the stored scales is element-wise and runs in natural order. The super-block stage
// and the packing into the block layouts are kquant_layout.h's, shared with kquants.cpp. Include after the
// instruction-set pragma, the ops header and simd_float_legacy.h (and kquant_layout.h before the pragma);
// everything here has internal linkage.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "formats/kernels.h"
#include "formats/kquant_layout.h"
#include "formats/kquant_search.h"
#include "formats/simd_kernels.h"

namespace quant::formats {
namespace {

constexpr int kKSuperBlock = kquant::kSuperBlock;

template <class V>
struct GroupLanes {
  using F = typename V::F;
  using I = typename V::I;
  using M = typename V::M;
  static constexpr int kWidth = V::kWidth;

  static I clamp(I level, int lowest, int highest) {
    return V::imax(V::iset1(lowest), V::imin(V::iset1(highest), level));
  }
};

// C's unary minus in every lane: flips the sign bit (so -(+0) is -0, unlike 0 - x).
template <class V>
typename V::F negate_lanes(typename V::F v) {
  return V::from_bits(V::ixor(V::float_bits(v), V::iset1(static_cast<int32_t>(0x80000000u))));
}

template <class V>
typename V::F error_term(typename V::F diff, kquant::ErrorNorm norm) {
  return norm == kquant::ErrorNorm::absolute ? V::abs(diff) : V::mul(diff, diff);
}

// kquant::search_affine_scale for W groups at once. xt and wt hold the groups transposed (value i of group g
// at [i * W + g]); writes each group's scale and negated minimum and its levels, transposed, to levels_t.
template <class V>
void search_affine_scale_lanes(int n, int nmax, const float* xt, const float* wt, kquant::ScaleGrid grid,
                               kquant::ErrorNorm norm, kquant::LevelClamp clamp, float* scales, float* negated_mins,
                               int32_t* levels_t) {
  using L = Lanes<V>;
  using G = GroupLanes<V>;
  constexpr int W = V::kWidth;
  using F = typename V::F;
  using I = typename V::I;
  const F zero = V::set1(0.0f);
  F min = V::load(xt);
  F max = min;
  F sum_w = V::load(wt);
  F sum_x = V::mul(sum_w, min);
  for (int i = 1; i < n; ++i) {
    const F x = V::load(xt + i * W);
    const F w = V::load(wt + i * W);
    min = V::select(V::lt(x, min), x, min);
    max = V::select(V::gt(x, max), x, max);
    sum_w = V::add(sum_w, w);
    sum_x = V::add(sum_x, V::mul(w, x));
  }
  min = V::select(V::gt(min, zero), zero, min);
  const auto flat = V::le(max, min);  // the scalar search returns early for these groups
  const F flat_negated_min = negate_lanes<V>(min);

  const F nmax_f = V::set1(static_cast<float>(nmax));
  F iscale = V::div(nmax_f, V::sub(max, min));
  F scale = V::div(V::set1(1.0f), iscale);
  F best_error = zero;
  for (int i = 0; i < n; ++i) {
    const F x = V::load(xt + i * W);
    const I level = G::clamp(L::nearest_int(V::mul(iscale, V::sub(x, min))), 0, nmax);
    V::istore(levels_t + i * W, level);
    const F diff = V::sub(V::add(V::mul(scale, V::to_float(level)), min), x);
    best_error = V::add(best_error, V::mul(V::load(wt + i * W), error_term<V>(diff, norm)));
  }

  alignas(64) float candidate[32 * W];
  for (int step = 0; step <= grid.steps && grid.steps >= 1; ++step) {
    const float offset = grid.first_offset + grid.step * static_cast<float>(step) + static_cast<float>(nmax);
    iscale = V::div(V::set1(offset), V::sub(max, min));
    F sum_l = zero, sum_ll = zero, sum_xl = zero;
    for (int i = 0; i < n; ++i) {
      const F x = V::load(xt + i * W);
      const F w = V::load(wt + i * W);
      const F scaled = V::mul(iscale, V::sub(x, min));
      I level;
      if (clamp == kquant::LevelClamp::round_then_clamp) {
        level = G::clamp(L::nearest_int(scaled), 0, nmax);
      } else {
        const F capped = V::select(V::lt(scaled, nmax_f), scaled, nmax_f);
        level = V::iselect(V::gt(scaled, zero), L::nearest_int(capped), V::iset1(0));
      }
      const F l = V::to_float(level);
      V::store(candidate + i * W, l);
      const F wl = V::mul(w, l);
      sum_l = V::add(sum_l, wl);
      sum_ll = V::add(sum_ll, V::mul(wl, l));
      sum_xl = V::add(sum_xl, V::mul(wl, x));
    }
    const F determinant = V::sub(V::mul(sum_w, sum_ll), V::mul(sum_l, sum_l));
    const auto solvable = V::gt(determinant, zero);
    if (!V::any(solvable)) continue;
    F this_scale = V::div(V::sub(V::mul(sum_w, sum_xl), V::mul(sum_x, sum_l)), determinant);
    F this_min = V::div(V::sub(V::mul(sum_ll, sum_x), V::mul(sum_l, sum_xl)), determinant);
    const auto positive_min = V::gt(this_min, zero);
    this_min = V::select(positive_min, zero, this_min);
    this_scale = V::select(positive_min, V::div(sum_xl, sum_ll), this_scale);
    F error = zero;
    for (int i = 0; i < n; ++i) {
      const F diff = V::sub(V::add(V::mul(this_scale, V::load(candidate + i * W)), this_min), V::load(xt + i * W));
      error = V::add(error, V::mul(V::load(wt + i * W), error_term<V>(diff, norm)));
    }
    const auto better = V::mand(solvable, V::lt(error, best_error));
    if (!V::any(better)) continue;
    for (int i = 0; i < n; ++i) {
      const I chosen = V::truncate_to_int(V::load(candidate + i * W));
      V::istore(levels_t + i * W, V::iselect(better, chosen, V::iload(levels_t + i * W)));
    }
    best_error = V::select(better, error, best_error);
    scale = V::select(better, this_scale, scale);
    min = V::select(better, this_min, min);
  }
  V::store(scales, V::select(flat, zero, scale));
  V::store(negated_mins, V::select(flat, flat_negated_min, negate_lanes<V>(min)));
  for (int i = 0; i < n; ++i) {
    V::istore(levels_t + i * W, V::iselect(flat, V::iset1(0), V::iload(levels_t + i * W)));
  }
}

// kquant::search_symmetric_scale for W groups at once (weights wt, or x^2 when null), transposed as above.
// Levels are written as l + nmax.
template <class V>
void search_symmetric_scale_lanes(int n, int nmax, const float* xt, const float* wt, float* scales, int32_t* levels_t) {
  using L = Lanes<V>;
  using G = GroupLanes<V>;
  constexpr int W = V::kWidth;
  using F = typename V::F;
  using I = typename V::I;
  const F zero = V::set1(0.0f);
  F magnitude = zero;
  F value = zero;
  for (int i = 0; i < n; ++i) {
    const F x = V::load(xt + i * W);
    const auto larger = V::gt(V::abs(x), magnitude);
    magnitude = V::select(larger, V::abs(x), magnitude);
    value = V::select(larger, x, value);
  }
  const auto all_zero = V::lt(magnitude, V::set1(kquant::kGroupMaxEps));

  // Levels (biased by nmax) and the fit sums for one inverse scale.
  auto fit = [&](F iscale, int32_t* levels, F* sum_xl, F* sum_ll) {
    *sum_xl = zero;
    *sum_ll = zero;
    for (int i = 0; i < n; ++i) {
      const F x = V::load(xt + i * W);
      const I level = G::clamp(L::nearest_int(V::mul(iscale, x)), -nmax, nmax - 1);
      V::istore(levels + i * W, V::iadd(level, V::iset1(nmax)));
      const F l = V::to_float(level);
      const F w = wt != nullptr ? V::load(wt + i * W) : V::mul(x, x);
      *sum_xl = V::add(*sum_xl, V::mul(V::mul(w, x), l));
      *sum_ll = V::add(*sum_ll, V::mul(V::mul(w, l), l));
    }
  };
  F sum_xl, sum_ll;
  fit(V::div(V::set1(static_cast<float>(-nmax)), value), levels_t, &sum_xl, &sum_ll);
  F scale = V::select(V::neq(sum_ll, zero), V::div(sum_xl, sum_ll), zero);
  F best = V::mul(scale, sum_xl);
  alignas(64) int32_t candidate[32 * W];
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    const float numerator = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step));
    fit(V::div(V::set1(numerator), value), candidate, &sum_xl, &sum_ll);
    const auto better = V::mand(V::gt(sum_ll, zero), V::gt(V::mul(sum_xl, sum_xl), V::mul(best, sum_ll)));
    if (!V::any(better)) continue;
    for (int i = 0; i < n; ++i) {
      V::istore(levels_t + i * W, V::iselect(better, V::iload(candidate + i * W), V::iload(levels_t + i * W)));
    }
    scale = V::select(better, V::div(sum_xl, sum_ll), scale);
    best = V::select(better, V::mul(scale, sum_xl), best);
  }
  V::store(scales, V::select(all_zero, zero, scale));
  for (int i = 0; i < n; ++i) {
    V::istore(levels_t + i * W, V::iselect(all_zero, V::iset1(0), V::iload(levels_t + i * W)));
  }
}

// kquant::search_positive_scale (ggml's make_qp_quants) for S::kWidth groups at once, transposed (value i
// of group g at xt[i * W + g], its weight at wt[i * W + g]): returns each group's scale. The levels
// are kept as the scalar code keeps them, in bytes: a negative rounded level wraps (x may hold a negative
// value), and the wrapped byte is what the error sums and the refinement read back.
template <class S>
typename S::F search_positive_scale_lanes(int n, int nmax, const float* xt, const float* wt, int32_t* levels_t) {
  using L = Lanes<S>;
  constexpr int W = S::kWidth;
  using F = typename S::F;
  using I = typename S::I;
  const F zero = S::set1(0.0f);
  const I byte = S::iset1(255);
  const I top = S::iset1(nmax);
  F max = zero;
  for (int i = 0; i < n; ++i) max = S::max(max, S::load(xt + i * W));  // max > x ? max : x, as the scalar code
  const auto all_zero = S::lt(max, S::set1(kquant::kGroupMaxEps));

  F iscale = S::div(S::set1(static_cast<float>(nmax)), max);
  const F first_scale = S::div(S::set1(1.0f), iscale);
  F best_error = zero;
  for (int i = 0; i < n; ++i) {
    const F x = S::load(xt + i * W);
    const I level = S::iand(L::nearest_int(S::mul(iscale, x)), byte);
    const F diff = S::sub(x, S::mul(first_scale, S::to_float(level)));
    best_error = S::add(best_error, S::mul(S::mul(S::load(wt + i * W), diff), diff));
  }
  for (int step = -4; step <= 4; ++step) {
    if (step == 0) continue;
    const F trial_iscale = S::div(S::set1(0.1f * static_cast<float>(step) + static_cast<float>(nmax)), max);
    const F trial_scale = S::div(S::set1(1.0f), trial_iscale);
    F error = zero;
    for (int i = 0; i < n; ++i) {
      const F x = S::load(xt + i * W);
      const I level = S::imin(L::nearest_int(S::mul(trial_iscale, x)), top);
      const F diff = S::sub(x, S::mul(trial_scale, S::to_float(level)));
      error = S::add(error, S::mul(S::mul(S::load(wt + i * W), diff), diff));
    }
    const auto better = S::lt(error, best_error);
    best_error = S::select(better, error, best_error);
    iscale = S::select(better, trial_iscale, iscale);
  }

  F sum_xl = zero;
  F sum_ll = zero;
  for (int i = 0; i < n; ++i) {
    const F x = S::load(xt + i * W);
    const F w = S::load(wt + i * W);
    const I level = S::imin(L::nearest_int(S::mul(iscale, x)), top);
    S::istore(levels_t + i * W, S::iand(level, byte));
    const F l = S::to_float(level);
    sum_xl = S::add(sum_xl, S::mul(S::mul(w, x), l));
    sum_ll = S::add(sum_ll, S::mul(S::mul(w, l), l));
  }
  // Up to 5 sweeps of single-level moves. A lane whose sweep changed nothing would stop in the scalar search;
  // here it sweeps on with the same state, which changes nothing again.
  for (int sweep = 0; sweep < 5; ++sweep) {
    auto changed = S::lt(zero, zero);
    for (int i = 0; i < n; ++i) {
      const F x = S::load(xt + i * W);
      const F w = S::load(wt + i * W);
      const I level = S::iload(levels_t + i * W);
      const F l = S::to_float(level);
      F xl_without = S::sub(sum_xl, S::mul(S::mul(w, x), l));
      F ll_without = S::sub(sum_ll, S::mul(S::mul(w, l), l));
      const auto positive = S::mand(S::gt(xl_without, zero), S::gt(ll_without, zero));
      const I candidate = S::imin(L::nearest_int(S::div(S::mul(x, ll_without), xl_without)), top);
      const auto moves = S::mand(positive, S::mnot(S::ieq(candidate, level)));
      if (!S::any(moves)) continue;
      const F c = S::to_float(candidate);
      xl_without = S::add(xl_without, S::mul(S::mul(w, x), c));
      ll_without = S::add(ll_without, S::mul(S::mul(w, c), c));
      const auto better = S::mand(moves, S::gt(S::mul(S::mul(xl_without, xl_without), sum_ll),
                                               S::mul(S::mul(sum_xl, sum_xl), ll_without)));
      S::istore(levels_t + i * W, S::iselect(better, S::iand(candidate, byte), level));
      sum_xl = S::select(better, xl_without, sum_xl);
      sum_ll = S::select(better, ll_without, sum_ll);
      changed = S::mor(changed, better);
    }
    if (!S::any(S::mand(changed, S::mnot(all_zero)))) break;
  }
  for (int i = 0; i < n; ++i) {
    S::istore(levels_t + i * W, S::iselect(all_zero, S::iset1(0), S::iload(levels_t + i * W)));
  }
  const F scale = S::select(S::gt(sum_ll, zero), S::div(sum_xl, sum_ll), zero);
  return S::select(all_zero, zero, scale);
}

// Copies `groups` groups of n values (at x, one after another) into lanes: out[i * W + g] = x[n * g + i]; lanes
// past `groups` get zeros.
template <int W>
void transpose_groups(const float* x, int n, int groups, float* out) {
  for (int i = 0; i < n; ++i) {
    for (int g = 0; g < W; ++g) out[i * W + g] = g < groups ? x[n * g + i] : 0.0f;
  }
}

// ------------------------------------------------------------------------------------- super-block stage

// What differs between q4_K and q5_K (kquants.cpp AffineSearch and the block layouts).
struct AffineKind {
  TypeId id;
  int nmax;
  kquant::ScaleGrid reference_grid;
  bool clamp_weighted_scales;
  bool five_bit;
  size_t block_bytes;
};
constexpr AffineKind kQ4KKind{TypeId::q4_K, 15, {-1.f, 0.1f, 20}, false, false, 144};
constexpr AffineKind kQ5KKind{TypeId::q5_K, 31, {-0.5f, 0.1f, 15}, true, true, 176};

// Quantizes the group scales and mins of one q4_K/q5_K super-block (searched already), requantizes its values
// against them as stored, and packs the block. `levels` holds the search's levels (kept for groups whose
// stored scale is zero).
// With importance, the scale stage's searches may have run already (across super-blocks): their results.
struct SearchedScalesAndMins {
  float d, dmin;
  uint8_t scale_levels[8], min_levels[8];
};

template <class V>
void finish_affine_block(const AffineKind& kind, const float* x, const float* scales, const float* mins,
                         const float* group_weight, bool weighted, const SearchedScalesAndMins* searched,
                         uint8_t* levels, uint8_t* block) {
  using L = Lanes<V>;
  using G = GroupLanes<V>;
  constexpr int W = V::kWidth;
  uint8_t* d_field = block;
  uint8_t* dmin_field = block + 2;
  uint8_t* packed_scales = block + 4;
  std::memset(packed_scales, 0, 12);
  if (searched != nullptr) {
    kquant::store_searched_scales_and_mins(searched->d, searched->dmin, searched->scale_levels, searched->min_levels,
                                           kind.clamp_weighted_scales, d_field, dmin_field, packed_scales);
  } else {
    kquant::quantize_scales_and_mins(scales, mins, weighted ? group_weight : nullptr, kind.clamp_weighted_scales,
                                     d_field, dmin_field, packed_scales);
  }

  const float d = load_f16(d_field);
  const float dmin = load_f16(dmin_field);
  for (int j = 0; j < 8; ++j) {
    uint8_t scale_level, min_level;
    kquant::unpack_scale_min(packed_scales, j, &scale_level, &min_level);
    const float group_scale = d * scale_level;
    if (group_scale == 0) continue;
    const float group_min = dmin * min_level;
    for (int k = 0; k < 32 / W; ++k) {
      const auto value = V::load(x + 32 * j + k * W);
      const auto level = L::nearest_int(V::div(V::add(value, V::set1(group_min)), V::set1(group_scale)));
      V::store_low_bytes(levels + 32 * j + k * W, G::clamp(level, 0, kind.nmax));
    }
  }

  if (kind.five_bit) {
    kquant::pack_q5_k_levels(levels, block + 16, block + 48);
  } else {
    kquant::pack_q4_k_levels(levels, block + 16);
  }
}

// q4_K / q5_K: the groups of W/8 super-blocks fill the lanes of one search (padding lanes are zeros). The search
// runs on PairOps<V> (simd_ops_pair.h): 32 lanes at AVX-512, 16 at AVX2, two independent chains in flight. With
// importance, the scale stage (make_qp_quants of the eight scales and of the eight mins) then runs across 16
// super-blocks, one lane each.
template <class V>
void quantize_affine_k_simd(const AffineKind& kind, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                            const float* importance) {
  using S = PairOps<V>;
  using S16 = Lanes16<V>;
  constexpr int W = S::kWidth;
  constexpr int kBlocksPerSearch = W / 8;
  constexpr int kScaleBatch = 16;
  using F = typename S::F;
  const int64_t blocks_per_row = n_per_row / kKSuperBlock;
  const int64_t nblocks = nrows * blocks_per_row;
  uint8_t* out = static_cast<uint8_t*>(dst);
  alignas(64) float xt[32 * W];
  alignas(64) float wt[32 * W];
  alignas(64) int32_t levels_t[32 * W];
  // Per block of a scale batch: its group scales, negated mins, group weights and levels.
  alignas(64) float scales[kScaleBatch * 8];
  alignas(64) float negated_mins[kScaleBatch * 8];
  alignas(64) float group_weight[kScaleBatch * 8];
  alignas(64) uint8_t levels[kScaleBatch][kKSuperBlock];
  for (int64_t batch = 0; batch < nblocks; batch += kScaleBatch) {
    const int batch_blocks = static_cast<int>(nblocks - batch < kScaleBatch ? nblocks - batch : kScaleBatch);
    for (int offset = 0; offset < batch_blocks; offset += kBlocksPerSearch) {
      const int64_t first = batch + offset;
      const int blocks = batch_blocks - offset < kBlocksPerSearch ? batch_blocks - offset : kBlocksPerSearch;
      const float* x = src + first * kKSuperBlock;
      transpose_groups<W>(x, 32, 8 * blocks, xt);
      if (importance == nullptr) {
        // Reference weights: rms of the group + |x|.
        F sum_x2 = S::set1(0.0f);
        for (int i = 0; i < 32; ++i) sum_x2 = S::add(sum_x2, S::mul(S::load(xt + i * W), S::load(xt + i * W)));
        const F rms = S::sqrt(S::div(sum_x2, S::set1(32.0f)));
        for (int i = 0; i < 32; ++i) S::store(wt + i * W, S::add(rms, S::abs(S::load(xt + i * W))));
        search_affine_scale_lanes<S>(32, kind.nmax, xt, wt, kind.reference_grid, kquant::ErrorNorm::squared,
                                     kquant::LevelClamp::round_then_clamp, scales + 8 * offset,
                                     negated_mins + 8 * offset, levels_t);
      } else {
        // Weighted: importance * sqrt(sigma2 + x^2), sigma2 twice the super-block's mean square.
        alignas(64) float sigma2[W];
        alignas(64) float importance_t[32 * W];
        for (int g = 0; g < W; ++g) {
          const bool real = g < 8 * blocks;
          if (g % 8 == 0) sigma2[g] = real ? kquant::super_block_sigma2(x + kKSuperBlock * (g / 8), 2.0f) : 0.0f;
          else sigma2[g] = sigma2[g - 1];  // every group of a super-block shares its sigma2
          const int64_t block_in_row = (first + g / 8) % blocks_per_row;
          const float* qw = importance + kKSuperBlock * block_in_row + 32 * (g % 8);
          for (int i = 0; i < 32; ++i) importance_t[i * W + g] = real ? qw[i] : 0.0f;
        }
        F sum = S::set1(0.0f);
        for (int i = 0; i < 32; ++i) {
          const F v = S::load(xt + i * W);
          const F w = S::mul(S::load(importance_t + i * W), S::sqrt(S::add(S::load(sigma2), S::mul(v, v))));
          S::store(wt + i * W, w);
          sum = S::add(sum, w);
        }
        S::store(group_weight + 8 * offset, sum);
        search_affine_scale_lanes<S>(32, kind.nmax, xt, wt, kquant::ScaleGrid{-0.9f, 0.05f, 36},
                                     kquant::ErrorNorm::squared, kquant::LevelClamp::clamp_then_round,
                                     scales + 8 * offset, negated_mins + 8 * offset, levels_t);
      }
      for (int b = 0; b < blocks; ++b) {
        for (int j = 0; j < 8; ++j) {
          for (int i = 0; i < 32; ++i) levels[offset + b][32 * j + i] = static_cast<uint8_t>(levels_t[i * W + 8 * b + j]);
        }
      }
    }
    SearchedScalesAndMins searched[kScaleBatch];
    if (importance != nullptr) {
      alignas(64) float xt_stage[8 * kScaleBatch], wt_stage[8 * kScaleBatch], d[kScaleBatch], dmin[kScaleBatch];
      alignas(64) int32_t scale_levels_t[8 * kScaleBatch], min_levels_t[8 * kScaleBatch];
      auto transpose_stage = [&](const float* per_block, float* out_t) {
        for (int j = 0; j < 8; ++j) {
          for (int b = 0; b < kScaleBatch; ++b) out_t[j * kScaleBatch + b] = b < batch_blocks ? per_block[8 * b + j] : 0.0f;
        }
      };
      transpose_stage(group_weight, wt_stage);
      transpose_stage(scales, xt_stage);
      S16::store(d, search_positive_scale_lanes<S16>(8, 63, xt_stage, wt_stage, scale_levels_t));
      transpose_stage(negated_mins, xt_stage);
      S16::store(dmin, search_positive_scale_lanes<S16>(8, 63, xt_stage, wt_stage, min_levels_t));
      for (int b = 0; b < batch_blocks; ++b) {
        searched[b].d = d[b];
        searched[b].dmin = dmin[b];
        for (int j = 0; j < 8; ++j) {
          searched[b].scale_levels[j] = static_cast<uint8_t>(scale_levels_t[j * kScaleBatch + b]);
          searched[b].min_levels[j] = static_cast<uint8_t>(min_levels_t[j * kScaleBatch + b]);
        }
      }
    }
    for (int b = 0; b < batch_blocks; ++b) {
      finish_affine_block<V>(kind, src + (batch + b) * kKSuperBlock, scales + 8 * b, negated_mins + 8 * b,
                             group_weight + 8 * b, importance != nullptr,
                             importance != nullptr ? &searched[b] : nullptr, levels[b],
                             out + static_cast<size_t>(batch + b) * kind.block_bytes);
    }
  }
}

template <class V>
void quantize_q4_k_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_affine_k_simd<V>(kQ4KKind, src, dst, nrows, n_per_row, importance);
}

template <class V>
void quantize_q5_k_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_affine_k_simd<V>(kQ5KKind, src, dst, nrows, n_per_row, importance);
}

// q6_K: the 16 groups of 16 values of a super-block fill 16 / W searches; weights are the importance alone
// (ggml adds no sigma2 term for q6_K) or x^2.
template <class V>
void quantize_q6_k_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  using L = Lanes<V>;
  using G = GroupLanes<V>;
  constexpr int W = V::kWidth;
  const int64_t blocks_per_row = n_per_row / kKSuperBlock;
  uint8_t* block = static_cast<uint8_t*>(dst);
  alignas(64) float xt[16 * W];
  alignas(64) float wt[16 * W];
  alignas(64) int32_t levels_t[16 * W];
  for (int64_t s = 0; s < nrows * blocks_per_row; ++s, block += 210) {
    const float* x = src + s * kKSuperBlock;
    const float* qw = importance != nullptr ? importance + kKSuperBlock * (s % blocks_per_row) : nullptr;
    alignas(64) int8_t levels[kKSuperBlock];
    alignas(64) float scales[16];
    for (int chunk = 0; chunk < 16 / W; ++chunk) {
      transpose_groups<W>(x + 16 * W * chunk, 16, W, xt);
      if (qw != nullptr) transpose_groups<W>(qw + 16 * W * chunk, 16, W, wt);
      search_symmetric_scale_lanes<V>(16, 32, xt, qw != nullptr ? wt : nullptr, scales + W * chunk, levels_t);
      for (int g = 0; g < W; ++g) {
        for (int i = 0; i < 16; ++i) levels[16 * (W * chunk + g) + i] = static_cast<int8_t>(levels_t[i * W + g]);
      }
    }
    uint8_t* ql = block;
    uint8_t* qh = block + 128;
    int8_t* block_scales = reinterpret_cast<int8_t*>(block + 192);
    uint8_t* d_field = block + 208;
    if (!kquant::quantize_q6_k_scales(scales, d_field, block_scales)) {
      std::memset(block, 0, 210);
      continue;
    }
    const float d = load_f16(d_field);
    for (int j = 0; j < 16; ++j) {
      const float group_scale = d * block_scales[j];
      if (group_scale == 0) continue;
      for (int k = 0; k < 16 / W; ++k) {
        const auto level = L::nearest_int(V::div(V::load(x + 16 * j + k * W), V::set1(group_scale)));
        V::store_low_bytes(reinterpret_cast<uint8_t*>(levels + 16 * j + k * W),
                           V::iadd(G::clamp(level, -32, 31), V::iset1(32)));
      }
    }
    kquant::pack_q6_k_levels(levels, ql, qh);
  }
}

}  // namespace
}  // namespace quant::formats
