// SIMD quantizers for iq2_xxs, iq2_xs and iq2_s, written over a vector-operations struct V (simd_ops_avx2.h,
// simd_ops_avx512.h).
//
// The scalar quantizer (iq2.cpp) prepares each sub-block (weights, sign split, starting scale; iq2_layout.h),
// tries 13 or 19 trial scales, rounding every group of 8 at each and, when the rounded levels are not a grid
// point, picking the best of the code's nearest grid points; then it refines at the fitted scale. Here one lane
// carries one sub-block through exactly that sequence: sixteen sub-blocks at a time (one iq2_xs/iq2_s
// super-block, or two iq2_xxs ones), transposed so that step i of every lane is value i of its sub-block, with
// every branch of the scalar search a per-lane select. The rounding, the grid membership test (a gather from
// the code -> index table) and the least-squares sums run across the lanes; the nearest-point search of a lane
// whose group is off the grid runs across candidates (simd_iq_grid.h). Preparation and packing are
// iq2_layout.h's, shared with the scalar code. The lanes run on 16-lane vectors: AVX-512 itself, or two AVX2
// vectors (PairOps), which also keeps two dependent chains in flight.
//
// A super-block holding a NaN or an infinity (in its values or its importance) takes the scalar kernel, as in
// the other SIMD quantizers. Include after simd_iq_grid.h, simd_ops_pair.h and simd_kquants_lowbit.h
// (all_finite); internal linkage.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "formats/iq2_layout.h"
#include "formats/iq_grid_search.h"
#include "formats/kernels.h"
#include "formats/simd_kernels.h"

namespace quant::formats {
namespace {

// 16 lanes from V: V itself when it has 16, else a pair of V.
template <class V>
using Lanes16 = std::conditional_t<V::kWidth == 16, V, PairOps<V>>;

template <class V>
struct Iq2Search {
  using S = Lanes16<V>;
  using F = typename S::F;
  using I = typename S::I;
  using Grid = GridCandidates<V, 8, 2>;
  static constexpr int kLanes = 16;

  // The sixteen sub-blocks of a batch: their prepared inputs, and the same values transposed.
  struct Batch {
    const iq2::SubBlockInput* in[kLanes];
    unsigned active;  // lanes holding a sub-block that is searched (not skipped, not padding)
    alignas(64) float xt[32 * kLanes];
    alignas(64) float wt[32 * kLanes];
    alignas(64) float reference[kLanes];
    alignas(64) float start_scale[kLanes];
  };

  // Lane g's group k (rounded to `code`, off the grid) replaced by its best neighbour at `scale`: levels go to
  // levels_t column g, rows 8k..8k+7.
  static void nearest_point(const IqGridSearch& grid, const iq2::SubBlockInput& in, int k, uint16_t code, float scale,
                            int g, int32_t* levels_t) {
    typename V::F tables[8];
    // 2l + 1 for l = lane mod 4 (level 3 never occurs)
    const typename V::F values =
        V::to_float(V::iadd(V::template shift_left<1>(V::iand(V::iota(), V::iset1(3))), V::iset1(1)));
    Grid::terms(values, in.xval + 8 * k, in.waux + 8 * k, scale, tables);
    const IqGridSearch::CodeList candidates = grid.neighbour_code_list(code);
    int position = Grid::nearest(candidates.codes, candidates.count, tables);
    if (position < 0) position = 0;  // the scalar search keeps the first candidate when no distance is finite
    const uint16_t chosen = candidates.codes[position];
    for (int i = 0; i < 8; ++i) levels_t[(8 * k + i) * kLanes + g] = iq_code_level(chosen, i);
  }

  // Rounds group k of every lane at inverse scale `inverse` (iq2.cpp round_group_to_grid's first half), writing
  // the levels to rows 8k..8k+7 of levels_t; returns the rounded codes.
  static I round_group(const Batch& batch, int k, F inverse, int32_t* levels_t) {
    using L = Lanes<S>;
    using G = GroupLanes<S>;
    I code = S::iset1(0);
    for (int i = 7; i >= 0; --i) {
      const F x = S::load(batch.xt + (8 * k + i) * kLanes);
      const I level = G::clamp(L::nearest_int(S::mul(S::set1(0.5f), S::sub(S::mul(inverse, x), S::set1(1.0f)))), 0,
                               iq2::kMaxLevel);
      S::istore(levels_t + (8 * k + i) * kLanes, level);
      code = S::ior(S::template shift_left<2>(code), level);
    }
    return code;
  }

  // For every lane in `lanes` whose code is off the grid, the nearest-point search at that lane's scale.
  // Returns the lanes whose code was on the grid.
  static unsigned snap_to_grid(const IqGridSearch& grid, const Batch& batch, int k, I code, F scale, unsigned lanes,
                               int32_t* levels_t) {
    const unsigned on_grid = S::bits(S::igt(S::igather(grid.slots(), code), S::iset1(-1)));
    unsigned off = lanes & ~on_grid;
    if (off != 0) {
      alignas(64) int32_t codes[kLanes];
      alignas(64) float scales[kLanes];
      S::istore(codes, code);
      S::store(scales, scale);
      for (; off != 0; off &= off - 1) {
        const int g = __builtin_ctz(off);
        nearest_point(grid, *batch.in[g], k, static_cast<uint16_t>(codes[g]), scales[g], g, levels_t);
      }
    }
    return on_grid;
  }

  // sum w * x * q and sum w * q * q over n values with q = 2l + 1, in index order (iq2.cpp weighted_sums).
  static void sums(const Batch& batch, int n, const int32_t* levels_t, F* sum_qx, F* sum_qq) {
    F qx = S::set1(0.0f), qq = S::set1(0.0f);
    for (int i = 0; i < n; ++i) {
      const F w = S::load(batch.wt + i * kLanes);
      const F q = S::to_float(S::iadd(S::template shift_left<1>(S::iload(levels_t + i * kLanes)), S::iset1(1)));
      qx = S::add(qx, S::mul(S::mul(w, S::load(batch.xt + i * kLanes)), q));
      qq = S::add(qq, S::mul(S::mul(w, q), q));
    }
    *sum_qx = qx;
    *sum_qq = qq;
  }

  // iq2.cpp search_scales then refine_at_scale, for every active lane. Writes each lane's scale and its
  // levels, transposed, to levels_t.
  static void search(iq2::Variant variant, const IqGridSearch& grid, const Batch& batch, float* scales,
                     int32_t* levels_t) {
    const int n = iq2::sub_block_values(variant);
    const int groups = n / 8;
    const int steps = iq2::trial_steps(variant);
    const F zero = S::set1(0.0f);
    const F reference = S::load(batch.reference);
    F scale = S::load(batch.start_scale);
    F best = zero;
    unsigned on_grid[4] = {~0u, ~0u, ~0u, ~0u};
    for (int i = 0; i < n; ++i) S::istore(levels_t + i * kLanes, S::iset1(0));
    alignas(64) int32_t trial_t[32 * kLanes];
    for (int step = -steps; step <= steps; ++step) {
      const F inverse = S::div(S::set1(2 * iq2::kMaxLevel + 1 + step * 0.1f), reference);
      const F trial_scale = S::div(S::set1(1.0f), inverse);
      unsigned trial_on_grid[4];
      for (int k = 0; k < groups; ++k) {
        const I code = round_group(batch, k, inverse, trial_t);
        trial_on_grid[k] = snap_to_grid(grid, batch, k, code, trial_scale, batch.active, trial_t);
      }
      F qx, qq;
      sums(batch, n, trial_t, &qx, &qq);
      const auto better_mask = S::mand(S::mask_from_bits(batch.active),
                                       S::mand(S::gt(qq, zero), S::gt(S::mul(qx, qx), S::mul(best, qq))));
      const unsigned better = S::bits(better_mask);
      if (better == 0) continue;
      scale = S::select(better_mask, S::div(qx, qq), scale);
      best = S::select(better_mask, S::mul(scale, qx), best);
      for (int i = 0; i < n; ++i) {
        S::istore(levels_t + i * kLanes,
                  S::iselect(better_mask, S::iload(trial_t + i * kLanes), S::iload(levels_t + i * kLanes)));
      }
      for (int k = 0; k < groups; ++k) on_grid[k] = (on_grid[k] & ~better) | (trial_on_grid[k] & better);
    }

    // Refinement at the fitted scale: lanes with a group to redo (every group for xxs, else the off-grid
    // ones) and a positive scale.
    const bool all_groups = iq2::refine_every_group(variant);
    unsigned redo_any = all_groups ? batch.active : 0;
    for (int k = 0; k < groups; ++k) redo_any |= batch.active & ~on_grid[k];
    const unsigned refine = redo_any & S::bits(S::gt(scale, zero));
    if (refine != 0) {
      const F inverse = S::div(S::set1(1.0f), scale);
      for (int k = 0; k < groups; ++k) {
        const unsigned redo = all_groups ? refine : refine & ~on_grid[k];
        if (redo == 0) continue;
        const I code = round_group(batch, k, inverse, trial_t);
        const auto take = S::mask_from_bits(redo);
        for (int i = 8 * k; i < 8 * k + 8; ++i) {
          S::istore(levels_t + i * kLanes,
                    S::iselect(take, S::iload(trial_t + i * kLanes), S::iload(levels_t + i * kLanes)));
        }
        snap_to_grid(grid, batch, k, code, scale, redo, levels_t);
      }
      F qx, qq;
      sums(batch, n, levels_t, &qx, &qq);
      scale = S::select(S::mand(S::mask_from_bits(refine), S::gt(qq, zero)), S::div(qx, qq), scale);
    }
    S::store(scales, scale);
  }
};

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
  for (int k = 0; k < count; ++k) {
    const float sigma2 = iq2::super_block_sigma2(variant, blocks[k].x);
    for (int ib = 0; ib < sub_blocks; ++ib) {
      const int g = k * sub_blocks + ib;
      iq2::prepare_sub_block(variant, blocks[k].x, blocks[k].qw, sigma2, ib, &inputs[g]);
      if (!inputs[g].skip) batch.active |= 1u << g;
    }
  }
  for (int g = 0; g < kLanes; ++g) {
    const bool used = (batch.active >> g) & 1u;
    batch.in[g] = &inputs[g];
    batch.reference[g] = used ? inputs[g].reference : 1.0f;
    batch.start_scale[g] = used ? inputs[g].start_scale : 0.0f;
    for (int i = 0; i < n; ++i) {
      batch.xt[i * kLanes + g] = used ? inputs[g].xval[i] : 0.0f;
      batch.wt[i * kLanes + g] = used ? inputs[g].weight[i] : 0.0f;
    }
  }
  alignas(64) float scales[kLanes];
  alignas(64) int32_t levels_t[32 * kLanes];
  Search::search(variant, grid, batch, scales, levels_t);

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

// Row driver: finite super-blocks gathered into batches of 16 sub-blocks, the others quantized by the scalar
// kernel at once. The importance vector is per column, so super-block b of every row reads importance[256 b..].
template <class V, TypeId kId, iq2::Variant kVariant, IqGrid kGrid>
void quantize_iq2_rows_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  constexpr int kPerBatch = Iq2Search<V>::kLanes / (iq2::kBlock / iq2::sub_block_values(kVariant));
  const QuantizeRowsFn scalar = scalar_quantize(kId);
  const IqGridSearch& grid = IqGridSearch::of(kGrid);
  const int64_t blocks_per_row = n_per_row / iq2::kBlock;
  const int64_t bytes = iq2::block_bytes(kVariant);
  LowbitBlock pending[kPerBatch];
  int count = 0;
  uint8_t* out = static_cast<uint8_t*>(dst);
  for (int64_t row = 0; row < nrows; ++row) {
    for (int64_t b = 0; b < blocks_per_row; ++b, out += bytes) {
      const float* x = src + (row * blocks_per_row + b) * iq2::kBlock;
      const float* qw = importance != nullptr ? importance + iq2::kBlock * b : nullptr;
      if (!all_finite<V>(x, iq2::kBlock) || (qw != nullptr && !all_finite<V>(qw, iq2::kBlock))) {
        scalar(x, out, 1, iq2::kBlock, qw);
        continue;
      }
      pending[count++] = LowbitBlock{x, qw, out};
      if (count == kPerBatch) {
        quantize_iq2_batch_simd<V>(kVariant, grid, pending, count);
        count = 0;
      }
    }
  }
  if (count > 0) quantize_iq2_batch_simd<V>(kVariant, grid, pending, count);
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
