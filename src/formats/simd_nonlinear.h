// SIMD quantizers for iq4_nl and iq4_xs, written over a vector-operations struct V (simd_ops_avx2.h,
// simd_ops_avx512.h).
//
// The scalar quantizer (nonlinear.cpp) searches each 32-value block's scale over 16 trial inverse scales, each
// scored by sums over the block's values in order, every value rounded to the nearest of 16 table levels. Here
// one lane carries one block through exactly that sequence: W blocks (W consecutive iq4_nl blocks of a row, or
// the eight blocks of W / 8 iq4_xs super-blocks) transposed so that step j of every lane is value j of its
// block, every branch a per-lane select. The nearest table level is found by a branch-free binary search over
// the sorted table that lands where the scalar linear scan lands (below). The iq4_xs super-block stage (the
// f16 scale and the 6-bit multipliers) is nonlinear_layout.h's, shared with the scalar code.
//
// Blocks holding a NaN or an infinity (in their values or importance) take the scalar kernel, as in the other
// SIMD quantizers. Include after simd_kquants_lowbit.h (all_finite) and simd_kquants.h (negate_lanes);
// internal linkage.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "formats/kernels.h"
#include "formats/nonlinear_layout.h"
#include "formats/simd_kernels.h"

namespace quant::formats {
namespace {

// True when none of the n values is a NaN or an infinity.
inline bool all_finite_values(const float* x, int64_t n) {
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) finite &= std::isfinite(x[i]);
  return finite;
}

template <class V>
struct Iq4Lanes {
  using F = typename V::F;
  using I = typename V::I;
  static constexpr int W = V::kWidth;

  // A 16-entry float table held in registers: one vector at AVX-512, two at AVX2.
  struct Table {
    F lo, hi;
  };
  static Table table(const float* values) {
    if constexpr (W == 16) {
      return {V::load(values), V::load(values)};
    } else {
      return {V::load(values), V::load(values + 8)};
    }
  }
  // Lane k gets t[index[k]] (index 0..15).
  static F lookup(const Table& t, I index) {
    if constexpr (W == 16) {
      return V::permute(t.lo, index);
    } else {
      return V::select(V::igt(index, V::iset1(7)), V::permute(t.hi, index), V::permute(t.lo, index));
    }
  }

  // nonlinear.cpp nearest_level in every lane: the index of the table level nearest to t (the upper one
  // exactly halfway; the end levels beyond the ends; 15 for NaN) and that level's value. The scalar scan
  // finds the first level above t (upper, 1..15) and compares t with levels upper - 1 and upper; for t
  // strictly inside the table that upper - 1 is the last level not above t, which a 4-step binary search
  // finds (the table's last entry reads as +infinity there, so the search stops at 14).
  static void nearest_level(F t, const Table& levels, const Table& search, I* index, F* value) {
    I below_at = V::iselect(V::le(V::set1(static_cast<float>(iq4::kLevels[8])), t), V::iset1(8), V::iset1(0));
    for (int step : {4, 2, 1}) {
      const I next = V::iadd(below_at, V::iset1(step));
      below_at = V::iselect(V::le(lookup(search, next), t), next, below_at);
    }
    const I above_at = V::iadd(below_at, V::iset1(1));
    const F below_level = lookup(levels, below_at);
    const F above_level = lookup(levels, above_at);
    const auto take_below = V::lt(V::sub(t, below_level), V::sub(above_level, t));
    I i = V::iselect(take_below, below_at, above_at);
    F v = V::select(take_below, below_level, above_level);
    const F lowest = V::set1(static_cast<float>(iq4::kLevels[0]));
    const F highest = V::set1(static_cast<float>(iq4::kLevels[15]));
    const auto top = V::mor(V::le(highest, t), V::is_nan(t));
    i = V::iselect(top, V::iset1(15), i);
    v = V::select(top, highest, v);
    const auto bottom = V::le(t, lowest);
    *index = V::iselect(bottom, V::iset1(0), i);
    *value = V::select(bottom, lowest, v);
  }

  // The tables nearest_level reads: the levels, and the levels with the last read as +infinity.
  struct Tables {
    Table levels, search;
  };
  static Tables tables() {
    alignas(64) float levels[16], search[16];
    for (int l = 0; l < 16; ++l) levels[l] = search[l] = static_cast<float>(iq4::kLevels[l]);
    search[15] = __builtin_inff();
    return {table(levels), table(search)};
  }

  // nonlinear.cpp level_sums for every lane: sum w*q*x and sum w*q*q over the 32 values at inverse scale.
  static void level_sums(const Tables& t, const float* xt, const float* wt, F inverse, F* sum_qx, F* sum_qq) {
    F qx = V::set1(0.0f), qq = V::set1(0.0f);
    for (int j = 0; j < iq4::kBlock; ++j) {
      const F x = V::load(xt + j * W);
      I index;
      F q;
      nearest_level(V::mul(inverse, x), t.levels, t.search, &index, &q);
      const F wq = V::mul(V::load(wt + j * W), q);
      qx = V::add(qx, V::mul(wq, x));
      qq = V::add(qq, V::mul(wq, q));
    }
    *sum_qx = qx;
    *sum_qq = qq;
  }

  // nonlinear.cpp search_block_scale for W blocks (transposed values xt, weights wt).
  static F search_block_scale(const Tables& t, const float* xt, const float* wt) {
    const F zero = V::set1(0.0f);
    F largest_magnitude = zero;
    F largest = zero;
    for (int j = 0; j < iq4::kBlock; ++j) {
      const F x = V::load(xt + j * W);
      const auto larger = V::gt(V::abs(x), largest_magnitude);
      largest_magnitude = V::select(larger, V::abs(x), largest_magnitude);
      largest = V::select(larger, x, largest);
    }
    const auto all_zero = V::lt(largest_magnitude, V::set1(1e-15f));
    const F first_guess = V::div(negate_lanes<V>(largest), V::set1(static_cast<float>(iq4::kLevels[0])));
    F qx, qq;
    level_sums(t, xt, wt, V::div(V::set1(1.0f), first_guess), &qx, &qq);
    F scale = V::select(V::gt(qq, zero), V::div(qx, qq), zero);
    F best = V::mul(scale, qx);
    for (int step = -iq4::kTrialSteps; step <= iq4::kTrialSteps; ++step) {
      level_sums(t, xt, wt, V::div(V::set1(static_cast<float>(step + iq4::kLevels[0])), largest), &qx, &qq);
      const auto better = V::mand(V::gt(qq, zero), V::gt(V::mul(qx, qx), V::mul(best, qq)));
      scale = V::select(better, V::div(qx, qq), scale);
      best = V::select(better, V::mul(scale, qx), best);
    }
    return V::select(all_zero, zero, scale);
  }

  // nonlinear.cpp choose_levels for W blocks at per-lane scales: levels_t[j * W + lane].
  static void choose_levels(const Tables& t, const float* xt, F scale, int32_t* levels_t) {
    const F zero = V::set1(0.0f);
    const F inverse = V::select(V::neq(scale, zero), V::div(V::set1(1.0f), scale), zero);
    for (int j = 0; j < iq4::kBlock; ++j) {
      I index;
      F q;
      nearest_level(V::mul(inverse, V::load(xt + j * W)), t.levels, t.search, &index, &q);
      V::istore(levels_t + j * W, index);
    }
  }

  // Weights of W blocks: importance * sqrt(sigma2 + x^2) (sigma2 per lane), or x^2 without importance.
  static void weights(const float* xt, const float* importance_t, F sigma2, float* wt) {
    for (int j = 0; j < iq4::kBlock; ++j) {
      const F x = V::load(xt + j * W);
      const F x2 = V::mul(x, x);
      V::store(wt + j * W, importance_t != nullptr
                               ? V::mul(V::load(importance_t + j * W), V::sqrt(V::add(sigma2, x2)))
                               : x2);
    }
  }

  // Lane `lane`'s 32 level indices, packed (nonlinear_layout.h pack_levels).
  static void pack_lane(const int32_t* levels_t, int lane, uint8_t* qs) {
    uint8_t levels[iq4::kBlock];
    for (int j = 0; j < iq4::kBlock; ++j) levels[j] = static_cast<uint8_t>(levels_t[j * W + lane]);
    iq4::pack_levels(levels, qs);
  }
};

// iq4_nl: W consecutive blocks of a row per batch, each with its own sigma2 (twice its mean square, summed in
// order per lane). A batch holding a non-finite value or weight goes to the scalar kernel.
template <class V>
void quantize_iq4_nl_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  using L = Iq4Lanes<V>;
  constexpr int W = V::kWidth;
  using F = typename V::F;
  const QuantizeRowsFn scalar = scalar_quantize(TypeId::iq4_nl);
  const typename L::Tables tables = L::tables();
  const int64_t blocks_per_row = n_per_row / iq4::kBlock;
  alignas(64) float xt[iq4::kBlock * W];
  alignas(64) float it[iq4::kBlock * W];
  alignas(64) float wt[iq4::kBlock * W];
  alignas(64) float scales[W];
  alignas(64) int32_t levels_t[iq4::kBlock * W];
  auto* out = static_cast<iq4::BlockIq4Nl*>(dst);
  for (int64_t row = 0; row < nrows; ++row) {
    const float* x = src + row * n_per_row;
    for (int64_t first = 0; first < blocks_per_row; first += W) {
      const int blocks = static_cast<int>(blocks_per_row - first < W ? blocks_per_row - first : W);
      const float* xb = x + iq4::kBlock * first;
      const float* qw = importance != nullptr ? importance + iq4::kBlock * first : nullptr;
      iq4::BlockIq4Nl* ob = out + row * blocks_per_row + first;
      if (!all_finite_values(xb, iq4::kBlock * blocks) || (qw != nullptr && !all_finite_values(qw, iq4::kBlock * blocks))) {
        scalar(xb, ob, 1, iq4::kBlock * blocks, qw);
        continue;
      }
      // Lanes past the row's last block hold zeros: all-zero blocks, whose results are not stored.
      transpose_groups<W>(xb, iq4::kBlock, blocks, xt);
      if (qw != nullptr) transpose_groups<W>(qw, iq4::kBlock, blocks, it);
      F sum = V::set1(0.0f);
      for (int j = 0; j < iq4::kBlock; ++j) sum = V::add(sum, V::mul(V::load(xt + j * W), V::load(xt + j * W)));
      const F sigma2 = V::mul(sum, V::set1(2.0f / static_cast<float>(iq4::kBlock)));
      L::weights(xt, qw != nullptr ? it : nullptr, sigma2, wt);
      const F scale = L::search_block_scale(tables, xt, wt);
      L::choose_levels(tables, xt, scale, levels_t);
      V::store(scales, scale);
      for (int b = 0; b < blocks; ++b) {
        iq4::BlockIq4Nl block;
        block.d = fp32_to_fp16(scales[b]);
        L::pack_lane(levels_t, b, block.qs);
        std::memcpy(ob + b, &block, sizeof(block));
      }
    }
  }
}

// iq4_xs: the eight blocks of W / 8 super-blocks per batch (sigma2 per super-block, summed in order as the
// scalar code does), then each super-block's scale stage and the levels against its rounded block scales.
template <class V>
void quantize_iq4_xs_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  using L = Iq4Lanes<V>;
  constexpr int W = V::kWidth;
  constexpr int kPerBatch = W / iq4::kBlocksPerSuper;
  const QuantizeRowsFn scalar = scalar_quantize(TypeId::iq4_xs);
  const typename L::Tables tables = L::tables();
  const int64_t blocks_per_row = n_per_row / iq4::kSuperBlock;
  alignas(64) float xt[iq4::kBlock * W];
  alignas(64) float it[iq4::kBlock * W];
  alignas(64) float wt[iq4::kBlock * W];
  alignas(64) float sigma2[W];
  alignas(64) float scales[W];
  alignas(64) int32_t levels_t[iq4::kBlock * W];
  auto* out = static_cast<iq4::BlockIq4Xs*>(dst);
  for (int64_t row = 0; row < nrows; ++row) {
    const float* x = src + row * n_per_row;
    for (int64_t first = 0; first < blocks_per_row; first += kPerBatch) {
      const int count = static_cast<int>(blocks_per_row - first < kPerBatch ? blocks_per_row - first : kPerBatch);
      const float* xb = x + iq4::kSuperBlock * first;
      const float* qw = importance != nullptr ? importance + iq4::kSuperBlock * first : nullptr;
      iq4::BlockIq4Xs* ob = out + row * blocks_per_row + first;
      if (!all_finite_values(xb, iq4::kSuperBlock * count) ||
          (qw != nullptr && !all_finite_values(qw, iq4::kSuperBlock * count))) {
        scalar(xb, ob, 1, iq4::kSuperBlock * count, qw);
        continue;
      }
      // Lanes past the row's last super-block hold zeros, whose results are not stored.
      transpose_groups<W>(xb, iq4::kBlock, iq4::kBlocksPerSuper * count, xt);
      if (qw != nullptr) transpose_groups<W>(qw, iq4::kBlock, iq4::kBlocksPerSuper * count, it);
      for (int k = 0; k < kPerBatch; ++k) {
        const float s = k < count ? iq4::twice_mean_square(xb + iq4::kSuperBlock * k, iq4::kSuperBlock) : 0.0f;
        for (int b = 0; b < iq4::kBlocksPerSuper; ++b) sigma2[iq4::kBlocksPerSuper * k + b] = s;
      }
      L::weights(xt, qw != nullptr ? it : nullptr, V::load(sigma2), wt);
      V::store(scales, L::search_block_scale(tables, xt, wt));
      alignas(64) float level_scales[W];
      iq4::XsScales stored[kPerBatch];
      for (int k = 0; k < kPerBatch; ++k) {
        stored[k] = iq4::xs_scales(scales + iq4::kBlocksPerSuper * k);
        for (int b = 0; b < iq4::kBlocksPerSuper; ++b) level_scales[iq4::kBlocksPerSuper * k + b] = stored[k].block_scale(b);
      }
      L::choose_levels(tables, xt, V::load(level_scales), levels_t);
      for (int k = 0; k < count; ++k) {
        iq4::BlockIq4Xs block{};
        block.d = stored[k].d_bits;
        for (int b = 0; b < iq4::kBlocksPerSuper; ++b) {
          L::pack_lane(levels_t, iq4::kBlocksPerSuper * k + b, block.qs + b * (iq4::kBlock / 2));
          iq4::set_xs_multiplier(block, b, stored[k].multiplier[b]);
        }
        std::memcpy(ob + k, &block, sizeof(block));
      }
    }
  }
}

}  // namespace
}  // namespace quant::formats
