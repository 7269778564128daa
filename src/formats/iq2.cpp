// The 2-bit grid i-quants iq2_xxs, iq2_xs and iq2_s: ggml's search for sub-block scales and grid points,
// reproduced step for step in float32 so the bytes match (see iq2.h and docs/formats/iq1-iq2.md).
#include "formats/iq2.h"

#include <cmath>
#include <cstring>

#include "formats/block_io.h"
#include "formats/iq2_layout.h"
#include "formats/iq_grid_search.h"
#include "formats/kernels.h"

namespace quant::formats {
namespace {

using iq2::kBlock;
using iq2::kMaxLevel;

// Rounds group k of xval to levels at inverse scale `inverse_scale`; when those are off the grid, takes the
// best of the code's nearest grid points at `scale`. Writes the group's 8 levels; returns whether the rounded
// levels were on the grid.
bool round_group_to_grid(const IqGridSearch& grid, const float* xval, const float* waux, float inverse_scale,
                         float scale, int8_t* levels) {
  for (int i = 0; i < 8; ++i) {
    levels[i] = static_cast<int8_t>(iq2::clamp_level(nearest_int(0.5f * (inverse_scale * xval[i] - 1)), kMaxLevel));
  }
  const uint16_t code = iq_pack_levels(levels);
  if (grid.index_of(code) >= 0) return true;
  iq2_best_candidate(grid, grid.neighbours(code), xval, waux, scale, levels);
  return false;
}

// The weighted least-squares sums of xval against magnitudes 2l + 1, over n values.
void weighted_sums(int n, const float* xval, const float* weight, const int8_t* levels, float* sumqx, float* sumq2) {
  float qx = 0, q2 = 0;
  for (int i = 0; i < n; ++i) {
    const float w = weight[i];
    const float q = static_cast<float>(2 * levels[i] + 1);
    qx += w * xval[i] * q;
    q2 += w * q * q;
  }
  *sumqx = qx;
  *sumq2 = q2;
}

// One sub-block of `groups` groups of 8: the fitted scale, the chosen levels, and whether each group's
// rounded levels landed on the grid at the best trial scale.
struct SubBlockFit {
  float scale = 0;
  int8_t levels[32] = {};
  bool on_grid[4] = {true, true, true, true};
};

// Tries inverse scales (5 + step / 10) / reference for step in [-steps, steps], keeping the one whose grid
// levels give the largest sumqx^2 / sumq2, and its least-squares scale.
void search_scales(const IqGridSearch& grid, int groups, const float* xval, const float* weight, const float* waux,
                   float reference, int steps, SubBlockFit* fit) {
  float best = 0;
  for (int step = -steps; step <= steps; ++step) {
    const float inverse_scale = (2 * kMaxLevel + 1 + step * 0.1f) / reference;
    const float trial_scale = 1 / inverse_scale;
    int8_t trial[32];
    bool trial_on_grid[4];
    for (int k = 0; k < groups; ++k) {
      trial_on_grid[k] = round_group_to_grid(grid, xval + 8 * k, waux + 8 * k, inverse_scale, trial_scale,
                                             trial + 8 * k);
    }
    float sumqx, sumq2;
    weighted_sums(8 * groups, xval, weight, trial, &sumqx, &sumq2);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      fit->scale = sumqx / sumq2;
      best = fit->scale * sumqx;
      std::memcpy(fit->levels, trial, static_cast<size_t>(8 * groups));
      for (int k = 0; k < groups; ++k) fit->on_grid[k] = trial_on_grid[k];
    }
  }
}

// Re-rounds the groups not known to be on the grid (all of them with `all_groups`) at the fitted scale and
// refits the scale to the result. Does nothing when the scale is not positive.
void refine_at_scale(const IqGridSearch& grid, int groups, const float* xval, const float* weight,
                     const float* waux, bool all_groups, SubBlockFit* fit) {
  bool any = all_groups;
  for (int k = 0; k < groups; ++k) any = any || !fit->on_grid[k];
  if (!any || !(fit->scale > 0)) return;
  const float inverse_scale = 1 / fit->scale;
  for (int k = 0; k < groups; ++k) {
    if (!all_groups && fit->on_grid[k]) continue;
    round_group_to_grid(grid, xval + 8 * k, waux + 8 * k, inverse_scale, fit->scale, fit->levels + 8 * k);
  }
  float sumqx, sumq2;
  weighted_sums(8 * groups, xval, weight, fit->levels, &sumqx, &sumq2);
  if (sumq2 > 0) fit->scale = sumqx / sumq2;
}

// One super-block: every sub-block prepared (iq2_layout.h), searched, then packed.
void quantize_block(iq2::Variant variant, const IqGridSearch& grid, const float* x, const float* importance,
                    uint8_t* block) {
  const int n = iq2::sub_block_values(variant);
  const int groups = n / 8;
  const float sigma2 = iq2::super_block_sigma2(variant, x);
  iq2::SuperBlockFit result;
  for (int ib = 0; ib < kBlock / n; ++ib) {
    iq2::SubBlockInput in;
    iq2::prepare_sub_block(variant, x, importance, sigma2, ib, &in);
    result.skipped[ib] = in.skip;
    if (in.skip) continue;
    SubBlockFit fit;
    fit.scale = in.start_scale;
    search_scales(grid, groups, in.xval, in.weight, in.waux, in.reference, iq2::trial_steps(variant), &fit);
    refine_at_scale(grid, groups, in.xval, in.weight, in.waux, iq2::refine_every_group(variant), &fit);
    result.scale[ib] = fit.scale;
    std::memcpy(result.levels + n * ib, fit.levels, static_cast<size_t>(n));
    std::memcpy(result.signs + groups * ib, in.signs, static_cast<size_t>(groups));
  }
  iq2::pack_super_block(variant, grid, result, block);
}

// Writes 8 dequantized values of one group: scale * magnitude, negated where the sign bit is set.
// ggml multiplies by -1 or +1; a negation gives the same float for every value but a NaN, whose sign a
// multiplication leaves unspecified (compilers turn it into a negation), so we negate, which every level can
// match bit for bit.
inline void decode_iq2_group(const IqGridSearch& grid, int index, uint8_t signs, float scale, float* y) {
  const std::array<int8_t, 8>& levels = grid.levels(index);
  for (int j = 0; j < 8; ++j) {
    const float magnitude = scale * kIq2LevelValue[levels[j]];
    y[j] = (signs >> j) & 1 ? -magnitude : magnitude;
  }
}

}  // namespace

void quantize_rows_iq2_xxs(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq2_xxs);
  for_each_block<kBlock>(src, dst, nrows, n_per_row, importance, kIq2XxsBlockBytes,
                         [&](const float* x, const float* qw, uint8_t* block) {
                           quantize_block(iq2::Variant::xxs, grid, x, qw, block);
                         });
}

void quantize_rows_iq2_xs(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq2_xs);
  for_each_block<kBlock>(src, dst, nrows, n_per_row, importance, kIq2XsBlockBytes,
                         [&](const float* x, const float* qw, uint8_t* block) {
                           quantize_block(iq2::Variant::xs, grid, x, qw, block);
                         });
}

void quantize_rows_iq2_s(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq2_s);
  for_each_block<kBlock>(src, dst, nrows, n_per_row, importance, kIq2SBlockBytes,
                         [&](const float* x, const float* qw, uint8_t* block) {
                           quantize_block(iq2::Variant::s, grid, x, qw, block);
                         });
}

namespace {

void dequantize_iq2(iq2::Variant variant, IqGrid grid_id, const void* src, float* dst, int64_t n) {
  const IqGridSearch& grid = IqGridSearch::of(grid_id);
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kBlock; ++b, block += iq2::block_bytes(variant)) {
    const float d = load_f16(block);
    for (int group = 0; group < 32; ++group, dst += 8) {
      const iq2::StoredGroup stored = iq2::stored_group(variant, block, d, group);
      decode_iq2_group(grid, stored.index, stored.signs, stored.scale, dst);
    }
  }
}

}  // namespace

void dequantize_iq2_xxs(const void* src, float* dst, int64_t n) {
  dequantize_iq2(iq2::Variant::xxs, IqGrid::iq2_xxs, src, dst, n);
}

void dequantize_iq2_xs(const void* src, float* dst, int64_t n) {
  dequantize_iq2(iq2::Variant::xs, IqGrid::iq2_xs, src, dst, n);
}

void dequantize_iq2_s(const void* src, float* dst, int64_t n) {
  dequantize_iq2(iq2::Variant::s, IqGrid::iq2_s, src, dst, n);
}

}  // namespace quant::formats
