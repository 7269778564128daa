// SIMD quantizers for iq2_xxs, iq2_xs and iq2_s, written over a vector-operations struct V (simd_ops_avx2.h,
// simd_ops_avx512.h).
//
// The scalar quantizer (iq2.cpp) prepares each sub-block (weights, sign split, starting scale; iq2_layout.h),
// tries 13 or 19 trial scales, rounding every group of 8 at each and, when the rounded levels are not a grid
// point, picking the best of the code's nearest grid points; then it refines at the fitted scale. Here one lane
// carries one sub-block through exactly that sequence (GridLaneSearch, simd_iq_grid.h): sixteen sub-blocks at
// a time, one iq2_xs/iq2_s super-block or two iq2_xxs ones. Preparation and packing are iq2_layout.h's,
// shared with the scalar code.
//
// A super-block holding a NaN or an infinity (in its values or its importance) takes the scalar kernel, as in
// the other SIMD quantizers. Include after simd_iq_grid.h, simd_ops_pair.h and simd_kquants_lowbit.h
// (all_finite); internal linkage.
#pragma once

#include <cstdint>
#include <cstring>

#include "formats/iq2_layout.h"
#include "formats/iq_grid_search.h"
#include "formats/kernels.h"
#include "formats/simd_kernels.h"

namespace quant::formats {
namespace {

template <class V>
using Iq2Search = GridLaneSearch<V, IqGridSearch, 8, 2, iq2::kMaxLevel>;

// The scalar search's rule for each type (iq2.cpp search_scales and refine_at_scale).
inline GridSearchRule iq2_rule(iq2::Variant variant) {
  const bool xxs = variant == iq2::Variant::xxs;
  return {iq2::sub_block_values(variant), iq2::trial_steps(variant), 2 * iq2::kMaxLevel + 1, 0.1f,
          /*start_on_grid=*/true, /*refine_always=*/xxs, /*refine_all_groups=*/xxs};
}

// One batch of iq2 super-blocks (all values and importance finite): 16 sub-blocks in lanes.
template <class V>
void quantize_iq2_batch_simd(iq2::Variant variant, const IqGridSearch& grid, const LowbitBlock* blocks, int count) {
  using Search = Iq2Search<V>;
  constexpr int kLanes = Search::kLanes;
  const int n = iq2::sub_block_values(variant);
  const int sub_blocks = iq2::kBlock / n;
  iq2::SubBlockInput inputs[kLanes];
  typename Search::Batch batch;
  batch.active = 0;
  // iq2_xxs's starting scale (make_qp_quants) runs across the lanes too, once the values are in them.
  const bool xxs = variant == iq2::Variant::xxs;
  for (int k = 0; k < kLanes / sub_blocks; ++k) {
    const float sigma2 = k < count ? iq2::super_block_sigma2(variant, blocks[k].x) : 0.0f;
    for (int ib = 0; ib < sub_blocks; ++ib) {
      const int g = k * sub_blocks + ib;
      iq2::SubBlockInput& in = inputs[g];
      if (k < count) {
        // iq2_layout.h prepare_sub_block, element-wise across lanes.
        const float max = prepare_group_values<V>(
            blocks[k].x + n * ib, blocks[k].qw != nullptr ? blocks[k].qw + n * ib : nullptr, sigma2,
            UnweightedRule::quarter_sigma2_plus_square, n, variant != iq2::Variant::s, variant != iq2::Variant::s,
            in.weight, in.waux, in.xval, in.signs);
        iq2::set_start(variant, max, &in, !xxs);
      }
      Search::fill_lane(batch, g, k < count && !in.skip, in.xval, in.weight, in.waux, n, in.reference,
                        in.start_scale);
    }
  }
  if (xxs) {
    alignas(64) int32_t first_levels[32 * kLanes];
    alignas(64) float fitted[kLanes];
    using S = typename Search::S;
    S::store(fitted, search_positive_scale_lanes<S>(32, iq2::kMaxLevel + 2, batch.xt, batch.wt, first_levels));
    for (int g = 0; g < kLanes; ++g) {
      if (((batch.active >> g) & 1u) == 0) continue;
      iq2::set_xxs_start(fitted[g], &inputs[g]);
      if (inputs[g].skip) {
        batch.active &= ~(1u << g);
        continue;
      }
      batch.reference[g] = inputs[g].reference;
      batch.start_scale[g] = inputs[g].start_scale;
    }
  }
  alignas(64) float scales[kLanes];
  alignas(64) int32_t levels_t[32 * kLanes];
  Search::search(iq2_rule(variant), grid, batch, scales, levels_t);

  const int groups = n / 8;
  for (int k = 0; k < count; ++k) {
    iq2::SuperBlockFit fit;
    for (int ib = 0; ib < sub_blocks; ++ib) {
      const int g = k * sub_blocks + ib;
      fit.skipped[ib] = inputs[g].skip;
      if (inputs[g].skip) continue;
      fit.scale[ib] = scales[g];
      for (int i = 0; i < n; ++i) fit.levels[n * ib + i] = static_cast<int8_t>(levels_t[i * kLanes + g]);
      std::memcpy(fit.signs + groups * ib, inputs[g].signs, static_cast<size_t>(groups));
    }
    iq2::pack_super_block(variant, grid, fit, blocks[k].out);
  }
}

// Row driver: finite super-blocks in batches of 16 sub-blocks (simd_kquants_lowbit.h).
template <class V, TypeId kId, iq2::Variant kVariant, IqGrid kGrid>
void quantize_iq2_rows_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  constexpr int kPerBatch = Iq2Search<V>::kLanes / (iq2::kBlock / iq2::sub_block_values(kVariant));
  const IqGridSearch& grid = IqGridSearch::of(kGrid);
  quantize_finite_super_blocks<V, kPerBatch>(scalar_quantize(kId), iq2::block_bytes(kVariant), src, dst, nrows,
                                             n_per_row, importance, [&grid](const LowbitBlock* blocks, int count) {
                                               quantize_iq2_batch_simd<V>(kVariant, grid, blocks, count);
                                             });
}

// Dequantizers: each value is the scalar code's scale * magnitude, negated where the sign bit is set (iq2.cpp
// decode_iq2_group), one
// group of 8 per AVX2 vector, two (sharing a scale) per AVX-512 vector; the magnitude comes from the point's
// level by a lane permute and the sign from the group's sign bits.
template <class V, iq2::Variant kVariant, IqGrid kGrid>
void dequantize_iq2_simd(const void* src, float* dst, int64_t n) {
  constexpr int W = V::kWidth;
  constexpr int kGroups = W / 8;
  static_assert(kGroups == 1 || kGroups == 2);
  using F = typename V::F;
  using I = typename V::I;
  const IqGridSearch& grid = IqGridSearch::of(kGrid);
  const int8_t* points = grid.levels(0).data();  // 8 levels per point, one point after another
  alignas(64) float magnitudes[W];
  alignas(64) int32_t lane_bits[W];
  for (int l = 0; l < W; ++l) {
    magnitudes[l] = static_cast<float>(kIq2LevelValue[l % 4]);
    lane_bits[l] = 1 << l;
  }
  const F table = V::load(magnitudes);
  const I bit_of_lane = V::iload(lane_bits);
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / iq2::kBlock; ++b, block += iq2::block_bytes(kVariant)) {
    const float d = load_f16(block);
    for (int group = 0; group < 32; group += kGroups, dst += W) {
      const iq2::StoredGroup first = iq2::stored_group(kVariant, block, d, group);
      I levels;
      unsigned signs = first.signs;
      if constexpr (kGroups == 2) {
        const iq2::StoredGroup second = iq2::stored_group(kVariant, block, d, group + 1);
        levels = V::load_i8_pair(points + 8 * first.index, points + 8 * second.index);
        signs |= static_cast<unsigned>(second.signs) << 8;
      } else {
        levels = V::load_i8(points + 8 * first.index);
      }
      const auto negative = V::ieq(V::iand(V::iset1(static_cast<int32_t>(signs)), bit_of_lane), bit_of_lane);
      const F magnitude = V::mul(V::set1(first.scale), V::permute(table, levels));
      V::store(dst, V::select(negative, negate_lanes<V>(magnitude), magnitude));
    }
  }
}

template <class V>
void quantize_iq2_xxs_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_iq2_rows_simd<V, TypeId::iq2_xxs, iq2::Variant::xxs, IqGrid::iq2_xxs>(src, dst, nrows, n_per_row,
                                                                                 importance);
}
template <class V>
void quantize_iq2_xs_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_iq2_rows_simd<V, TypeId::iq2_xs, iq2::Variant::xs, IqGrid::iq2_xs>(src, dst, nrows, n_per_row, importance);
}
template <class V>
void quantize_iq2_s_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_iq2_rows_simd<V, TypeId::iq2_s, iq2::Variant::s, IqGrid::iq2_s>(src, dst, nrows, n_per_row, importance);
}

}  // namespace
}  // namespace quant::formats
