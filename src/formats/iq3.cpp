// The 3-bit grid i-quants iq3_xxs and iq3_s: 256-value super-blocks of eight 32-value blocks; each group of 4
// magnitudes is one point of a fixed codebook (iq3_grids.h), signs are stored per value, and each block has a
// 4-bit multiplier of one f16 super-block scale. Layouts and the search are described in docs/formats/iq3.md.
//
// Both follow ggml's quantize_iq3_xxs / quantize_iq3_s (with or without importance weights), in float32 and in
// ggml's operation order, including two of its quirks that change the bytes: iq3_xxs forces an even number of
// negative signs per 8 values, and iq3_s does not advance its index and sign cursors past an all-zero block.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "formats/block_io.h"
#include "formats/iq3_grids.h"
#include "formats/iq3_layout.h"
#include "formats/kernels.h"

namespace quant::formats {
namespace {

using iq3::BlockChoice;
using iq3::BlockInput;
using iq3::BlockIq3S;
using iq3::BlockIq3Xxs;
using iq3::kBlock;
using iq3::kBlocksPerSuper;
using iq3::kGroupsPerBlock;
using iq3::kSuperBlock;
using iq3::kTopLevel;
using iq3::pack_code;
using iq3::Variant;

// The level (0..7) of a magnitude at inverse scale: nearest odd value 2l + 1.
int odd_level(float inverse_scale, float magnitude) {
  return std::max(0, std::min(kTopLevel, nearest_int(0.5f * (inverse_scale * magnitude - 1.0f))));
}

// Among the grid points nearest to an off-grid code, the one whose odd values best fit 4 magnitudes at `scale`
// (weighted squared error, the first on ties). Writes its levels and returns its index. ggml aborts when no
// error is finite (only with non-finite inputs); we take the first neighbour.
int best_neighbour(const Iq3GridSearch& search, uint16_t code, const float* magnitudes, const float* weights,
                   float scale, int8_t* levels) {
  float best_error = FLT_MAX;
  int best_index = -1;
  const auto candidates = search.neighbours(code);
  for (const uint16_t index : candidates) {
    const uint16_t point = search.code(index);
    float error = 0.0f;
    for (int i = 0; i < 4; ++i) {
      const float diff = scale * static_cast<float>(2 * iq3_code_level(point, i) + 1) - magnitudes[i];
      error += weights[i] * diff * diff;
    }
    if (error < best_error) {
      best_error = error;
      best_index = index;
    }
  }
  if (best_index < 0) best_index = candidates[0];
  for (int i = 0; i < 4; ++i) levels[i] = static_cast<int8_t>(iq3_code_level(search.code(best_index), i));
  return best_index;
}

// Rounds the 4 magnitudes of a group at inverse_scale; a code off the grid is replaced by its best neighbour
// at `scale`. Returns whether the rounded code was on the grid.
bool round_group(const Iq3GridSearch& search, float inverse_scale, float scale, const float* magnitudes,
                 const float* sqrt_weights, int8_t* levels) {
  for (int i = 0; i < 4; ++i) levels[i] = static_cast<int8_t>(odd_level(inverse_scale, magnitudes[i]));
  const uint16_t code = pack_code(levels);
  if (search.index_of(code) >= 0) return true;
  best_neighbour(search, code, magnitudes, sqrt_weights, scale, levels);
  return false;
}

// Weighted sums of x * q and q^2 with q = 2l + 1.
void odd_level_sums(const float* magnitudes, const float* weights, const int8_t* levels, float* sum_qx,
                    float* sum_qq) {
  float qx = 0.0f;
  float qq = 0.0f;
  for (int i = 0; i < kBlock; ++i) {
    const float q = static_cast<float>(2 * levels[i] + 1);
    qx += weights[i] * magnitudes[i] * q;
    qq += weights[i] * q * q;
  }
  *sum_qx = qx;
  *sum_qq = qq;
}

// Chooses grid points and a scale for one block: tries the scales (15 + 0.2 t) / max, keeps the one with the
// least weighted squared error, then re-rounds off-grid groups at that scale and refits the scale.
// Returns the scale (negative when the levels fit best upside down) and writes the levels.
float search_block(const Variant& variant, const Iq3GridSearch& search, const BlockInput& in, int8_t* levels) {
  const float* magnitudes = in.magnitudes;
  const float* weights = in.weights;
  const float* sqrt_weights = in.sqrt_weights;
  const float max = in.max;
  std::fill(levels, levels + kBlock, int8_t{0});
  int8_t trial_levels[kBlock];
  bool on_grid[kGroupsPerBlock];
  bool trial_on_grid[kGroupsPerBlock];
  std::fill(std::begin(on_grid), std::end(on_grid), variant.groups_start_on_grid);
  float scale = max / static_cast<float>(2 * kTopLevel + 1);
  float best = 0.0f;
  for (int step = -variant.trial_steps; step <= variant.trial_steps; ++step) {
    const float inverse_scale = (static_cast<float>(2 * kTopLevel + 1) + static_cast<float>(step) * 0.2f) / max;
    const float trial_scale = 1.0f / inverse_scale;
    for (int g = 0; g < kGroupsPerBlock; ++g) {
      trial_on_grid[g] = round_group(search, inverse_scale, trial_scale, magnitudes + 4 * g, sqrt_weights + 4 * g,
                                     trial_levels + 4 * g);
    }
    float sum_qx, sum_qq;
    odd_level_sums(magnitudes, weights, trial_levels, &sum_qx, &sum_qq);
    // With the least-squares scale of fixed levels, the error falls as sum_qx^2 / sum_qq rises.
    if (sum_qq > 0.0f && sum_qx * sum_qx > best * sum_qq) {
      scale = sum_qx / sum_qq;
      best = scale * sum_qx;
      std::copy(std::begin(trial_levels), std::end(trial_levels), levels);
      std::copy(std::begin(trial_on_grid), std::end(trial_on_grid), on_grid);
    }
  }

  const bool any_off_grid = std::find(std::begin(on_grid), std::end(on_grid), false) != std::end(on_grid);
  if (any_off_grid && scale > 0.0f) {
    const float inverse_scale = 1.0f / scale;
    for (int g = 0; g < kGroupsPerBlock; ++g) {
      if (on_grid[g] && !variant.refine_every_group) continue;
      round_group(search, inverse_scale, scale, magnitudes + 4 * g, sqrt_weights + 4 * g, levels + 4 * g);
    }
    float sum_qx, sum_qq;
    odd_level_sums(magnitudes, weights, levels, &sum_qx, &sum_qq);
    if (sum_qq > 0.0f) scale = sum_qx / sum_qq;
  }
  return scale;
}

// One block: prepared (iq3_layout.h), searched, finished.
BlockChoice quantize_block(const Variant& variant, const Iq3GridSearch& search, const float* x,
                           const float* importance, float sigma2) {
  BlockInput in;
  iq3::prepare_block(variant, x, importance, sigma2, &in);
  if (in.all_zero) {
    BlockChoice choice;
    choice.all_zero = true;
    return choice;
  }
  int8_t levels[kBlock];
  const float scale = search_block(variant, search, in, levels);
  return iq3::finish_block(variant, search, in, scale, levels);
}

BlockIq3Xxs quantize_xxs_superblock(const Iq3GridSearch& search, const float* x, const float* importance) {
  const float sigma2 = iq3::super_block_sigma2(x);
  BlockChoice choices[kBlocksPerSuper];
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    choices[b] = quantize_block(iq3::kXxs, search, x + b * kBlock, importance != nullptr ? importance + b * kBlock : nullptr,
                                sigma2);
  }
  return iq3::pack_xxs(choices);
}

BlockIq3S quantize_s_superblock(const Iq3GridSearch& search, const float* x, const float* importance) {
  const float sigma2 = iq3::super_block_sigma2(x);
  BlockChoice choices[kBlocksPerSuper];
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    choices[b] = quantize_block(iq3::kS, search, x + b * kBlock, importance != nullptr ? importance + b * kBlock : nullptr,
                                sigma2);
  }
  return iq3::pack_s(choices);
}

template <typename Block, Block (*kQuantizeSuperblock)(const Iq3GridSearch&, const float*, const float*)>
void quantize_rows_of(Iq3Grid grid, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                      const float* importance) {
  const Iq3GridSearch& search = Iq3GridSearch::of(grid);
  const int64_t blocks_per_row = n_per_row / kSuperBlock;
  for (int64_t row = 0; row < nrows; ++row) {
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      const float* block_importance = importance != nullptr ? importance + b * kSuperBlock : nullptr;
      store_block(dst, row * blocks_per_row + b,
                  kQuantizeSuperblock(search, src + row * n_per_row + b * kSuperBlock, block_importance));
    }
  }
}

void quantize_iq3_xxs(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_rows_of<BlockIq3Xxs, quantize_xxs_superblock>(Iq3Grid::xxs, src, dst, nrows, n_per_row, importance);
}

void quantize_iq3_s(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_rows_of<BlockIq3S, quantize_s_superblock>(Iq3Grid::s, src, dst, nrows, n_per_row, importance);
}

// ---- dequantization: value = block scale * level value * sign ----

// The 8 sign bits of 8 values from iq3_xxs's 7 stored bits: the 8th makes the count of negatives even.
uint8_t signs_with_parity(uint32_t seven_bits) {
  const uint32_t parity = static_cast<uint32_t>(__builtin_popcount(seven_bits) & 1);
  return static_cast<uint8_t>(seven_bits | (parity << 7));
}

void dequantize_iq3_xxs(const void* src, float* dst, int64_t n) {
  const auto codes = iq3_grid_codes(Iq3Grid::xxs);
  for (int64_t s = 0; s < n / kSuperBlock; ++s) {
    const auto block = load_block<BlockIq3Xxs>(src, s);
    const float d = fp16_to_fp32(block.d);
    for (int b = 0; b < kBlocksPerSuper; ++b) {
      uint32_t packed;
      std::memcpy(&packed, block.scales_and_signs + 4 * b, 4);
      const float block_scale = d * (0.5f + static_cast<float>(packed >> 28)) * 0.5f;
      for (int g = 0; g < kGroupsPerBlock; ++g) {
        const uint8_t signs = signs_with_parity((packed >> (7 * (g / 2))) & 127);
        const uint16_t code = codes[block.grid_index[8 * b + g]];
        for (int i = 0; i < 4; ++i) {
          const int position = 4 * (g % 2) + i;  // within the 8 values sharing a sign byte
          const float magnitude = block_scale * static_cast<float>(kIq3XxsLevelValue[iq3_code_level(code, i)]);
          dst[s * kSuperBlock + b * kBlock + 4 * g + i] = (signs >> position) & 1 ? -magnitude : magnitude;
        }
      }
    }
  }
}

void dequantize_iq3_s(const void* src, float* dst, int64_t n) {
  const auto codes = iq3_grid_codes(Iq3Grid::s);
  for (int64_t s = 0; s < n / kSuperBlock; ++s) {
    const auto block = load_block<BlockIq3S>(src, s);
    const float d = fp16_to_fp32(block.d);
    for (int b = 0; b < kBlocksPerSuper; ++b) {
      const int multiplier = (block.scales[b / 2] >> (4 * (b % 2))) & 0x0f;
      const float block_scale = d * static_cast<float>(1 + 2 * multiplier);
      for (int g = 0; g < kGroupsPerBlock; ++g) {
        const int index = block.grid_index[8 * b + g] | (((block.grid_high[b] >> g) & 1) << 8);
        const uint8_t signs = block.signs[4 * b + g / 2];
        for (int i = 0; i < 4; ++i) {
          const int position = 4 * (g % 2) + i;
          const float magnitude =
              block_scale * static_cast<float>(2 * iq3_code_level(codes[static_cast<size_t>(index)], i) + 1);
          dst[s * kSuperBlock + b * kBlock + 4 * g + i] = (signs >> position) & 1 ? -magnitude : magnitude;
        }
      }
    }
  }
}

// ggml_validate_row_data: the f16 scale d of every super-block must be finite.
constexpr FormatKernels kIq3Kernels[] = {
    {TypeId::iq3_xxs, quantize_iq3_xxs, dequantize_iq3_xxs, validate_scale_d<BlockIq3Xxs>},
    {TypeId::iq3_s, quantize_iq3_s, dequantize_iq3_s, validate_scale_d<BlockIq3S>},
};

}  // namespace

std::span<const FormatKernels> iq3_kernels() { return kIq3Kernels; }

}  // namespace quant::formats
