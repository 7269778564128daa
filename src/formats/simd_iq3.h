// SIMD quantizers for iq3_xxs and iq3_s, written over a vector-operations struct V (simd_ops_avx2.h,
// simd_ops_avx512.h).
//
// The scalar quantizer (iq3.cpp) prepares each 32-value block (weights, sign split; iq3_layout.h), tries 31 or
// 19 trial scales, rounding every group of 4 magnitudes at each and, when the rounded code is not a grid point,
// picking the best of its nearest grid points; then it refines at the fitted scale. Here one lane carries one
// block through exactly that sequence (GridLaneSearch, simd_iq_grid.h): the sixteen blocks of two
// super-blocks at a time. Preparation, the sign flip, the grid indices and the packing are iq3_layout.h's,
// shared with the scalar code.
//
// A super-block holding a NaN or an infinity (in its values or its importance) takes the scalar kernel, as in
// the other SIMD quantizers. Include after simd_iq_grid.h and simd_kquants_lowbit.h (all_finite, LowbitBlock);
// internal linkage.
#pragma once

#include <cstdint>
#include <cstring>

#include "formats/iq3_grids.h"
#include "formats/iq3_layout.h"
#include "formats/kernels.h"
#include "formats/simd_kernels.h"

namespace quant::formats {
namespace {

template <class V>
using Iq3Search = GridLaneSearch<V, Iq3GridSearch, 4, 3, iq3::kTopLevel>;

// The scalar search's rule (iq3.cpp search_block): trial scales (15 + 0.2 t) / max, refinement when a group is
// off the grid.
inline GridSearchRule iq3_rule(const iq3::Variant& variant) {
  return {iq3::kBlock, variant.trial_steps, static_cast<float>(2 * iq3::kTopLevel + 1), 0.2f,
          variant.groups_start_on_grid, /*refine_always=*/false, variant.refine_every_group};
}

// Two iq3 super-blocks (all values and importance finite): their sixteen blocks in lanes.
template <class V, typename Block, Block (*kPack)(const iq3::BlockChoice*)>
void quantize_iq3_batch_simd(const iq3::Variant& variant, const Iq3GridSearch& grid, const LowbitBlock* blocks,
                             int count) {
  using Search = Iq3Search<V>;
  constexpr int kLanes = Search::kLanes;
  constexpr int kPerBatch = kLanes / iq3::kBlocksPerSuper;
  iq3::BlockInput inputs[kLanes];
  typename Search::Batch batch;
  batch.active = 0;
  for (int k = 0; k < kPerBatch; ++k) {
    const float sigma2 = k < count ? iq3::super_block_sigma2(blocks[k].x) : 0.0f;
    for (int b = 0; b < iq3::kBlocksPerSuper; ++b) {
      const int g = k * iq3::kBlocksPerSuper + b;
      iq3::BlockInput& in = inputs[g];
      if (k < count) {
        // iq3_layout.h prepare_block, element-wise across lanes.
        in.max = prepare_group_values<V>(blocks[k].x + iq3::kBlock * b,
                                         blocks[k].qw != nullptr ? blocks[k].qw + iq3::kBlock * b : nullptr, sigma2,
                                         UnweightedRule::square, iq3::kBlock, variant.even_sign_count,
                                         variant.even_sign_count, in.weights, in.sqrt_weights, in.magnitudes, in.signs);
        in.all_zero = iq3::is_all_zero(variant, in.max);
      }
      Search::fill_lane(batch, g, k < count && !in.all_zero, in.magnitudes, in.weights, in.sqrt_weights, iq3::kBlock,
                        in.max, in.max / static_cast<float>(2 * iq3::kTopLevel + 1));
    }
  }
  alignas(64) float scales[kLanes];
  alignas(64) int32_t levels_t[iq3::kBlock * kLanes];
  Search::search(iq3_rule(variant), grid, batch, scales, levels_t);

  for (int k = 0; k < count; ++k) {
    iq3::BlockChoice choices[iq3::kBlocksPerSuper];
    for (int b = 0; b < iq3::kBlocksPerSuper; ++b) {
      const int g = k * iq3::kBlocksPerSuper + b;
      if (inputs[g].all_zero) {
        choices[b].all_zero = true;
        continue;
      }
      int8_t levels[iq3::kBlock];
      for (int i = 0; i < iq3::kBlock; ++i) levels[i] = static_cast<int8_t>(levels_t[i * kLanes + g]);
      choices[b] = iq3::finish_block(variant, grid, inputs[g], scales[g], levels);
    }
    const Block block = kPack(choices);
    std::memcpy(blocks[k].out, &block, sizeof(block));
  }
}

// Row driver: finite super-blocks in pairs (simd_kquants_lowbit.h).
template <class V, TypeId kId, typename Block, Block (*kPack)(const iq3::BlockChoice*)>
void quantize_iq3_rows_simd(const iq3::Variant& variant, const float* src, void* dst, int64_t nrows,
                            int64_t n_per_row, const float* importance) {
  constexpr int kPerBatch = Iq3Search<V>::kLanes / iq3::kBlocksPerSuper;
  const Iq3GridSearch& grid = Iq3GridSearch::of(variant.grid);
  quantize_finite_super_blocks<V, kPerBatch>(scalar_quantize(kId), sizeof(Block), src, dst, nrows, n_per_row,
                                             importance, [&](const LowbitBlock* blocks, int count) {
                                               quantize_iq3_batch_simd<V, Block, kPack>(variant, grid, blocks, count);
                                             });
}

template <class V>
void quantize_iq3_xxs_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_iq3_rows_simd<V, TypeId::iq3_xxs, iq3::BlockIq3Xxs, iq3::pack_xxs>(iq3::kXxs, src, dst, nrows, n_per_row,
                                                                             importance);
}
template <class V>
void quantize_iq3_s_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_iq3_rows_simd<V, TypeId::iq3_s, iq3::BlockIq3S, iq3::pack_s>(iq3::kS, src, dst, nrows, n_per_row,
                                                                       importance);
}

}  // namespace
}  // namespace quant::formats
