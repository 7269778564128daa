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
#include "formats/kernels.h"

namespace quant::formats {
namespace {

constexpr int kSuperBlock = 256;
constexpr int kBlock = 32;
constexpr int kBlocksPerSuper = kSuperBlock / kBlock;
constexpr int kGroupsPerBlock = kBlock / 4;  // grid points per block
constexpr int kTopLevel = 7;                 // levels 0..7 stand for the odd values 1..15

struct BlockIq3Xxs {
  uint16_t d;
  uint8_t grid_index[kSuperBlock / 4];            // 8 per block
  uint8_t scales_and_signs[4 * kBlocksPerSuper];  // per block, a little-endian u32: 4 x 7 sign bits, 4-bit scale
};
struct BlockIq3S {
  uint16_t d;
  uint8_t grid_index[kSuperBlock / 4];   // low 8 bits of the 9-bit indices, 8 per block
  uint8_t grid_high[kBlocksPerSuper];    // bit g of byte b: the ninth bit of block b's index g
  uint8_t signs[kSuperBlock / 8];        // bit i of byte 4b + k: sign of value 8k + i of block b
  uint8_t scales[kBlocksPerSuper / 2];   // 4-bit multipliers, block 2i in the low nibble
};
static_assert(sizeof(BlockIq3Xxs) == 98 && sizeof(BlockIq3S) == 110);

// Where the two types' searches differ (ggml's quantize_row_iq3_xxs_impl and quantize_row_iq3_s_impl).
struct Variant {
  Iq3Grid grid;
  int trial_steps;              // trial scales (15 + 0.2 t) / max for t in [-steps, steps]
  bool groups_start_on_grid;    // what a group counts as before any trial wins
  bool refine_every_group;      // the final pass re-rounds every group, not only the off-grid ones
  bool even_sign_count;         // iq3_xxs stores 7 sign bits per 8 values; the 8th makes the count even
  float super_scale_fudge;      // the stored super-block scale is max_scale / 31 times this
};
constexpr Variant kXxs{Iq3Grid::xxs, 15, true, false, true, 1.0125f};
constexpr Variant kS{Iq3Grid::s, 9, false, true, false, 1.033f};

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

uint16_t pack_code(const int8_t* levels) {
  uint16_t code = 0;
  for (int i = 0; i < 4; ++i) code = static_cast<uint16_t>(code | (levels[i] << (3 * i)));
  return code;
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

// The outcome for one 32-value block: the block scale, grid indices and per-8 sign bytes.
struct BlockChoice {
  bool all_zero = false;
  float scale = 0.0f;
  uint16_t grid_index[kGroupsPerBlock] = {};
  uint8_t signs[kBlock / 8] = {};
};

// Splits a block into magnitudes and sign bits. iq3_xxs keeps an even number of negatives per 8 values: when
// the count is odd, the value with the smallest weight * x^2 keeps its sign and its magnitude turns negative.
void split_signs(const Variant& variant, const float* x, const float* weights, float* magnitudes, uint8_t* signs) {
  for (int k = 0; k < kBlock / 8; ++k) {
    uint8_t bits = 0;
    int negatives = 0;
    for (int i = 0; i < 8; ++i) {
      const float v = x[8 * k + i];
      magnitudes[8 * k + i] = v >= 0.0f ? v : -v;
      if (!(v >= 0.0f)) {
        bits = static_cast<uint8_t>(bits | (1u << i));
        ++negatives;
      }
    }
    if (variant.even_sign_count && negatives % 2 != 0) {
      int least = 0;
      float least_value = weights[8 * k] * x[8 * k] * x[8 * k];
      for (int i = 1; i < 8; ++i) {
        const float value = weights[8 * k + i] * x[8 * k + i] * x[8 * k + i];
        if (value < least_value) {
          least_value = value;
          least = i;
        }
      }
      magnitudes[8 * k + least] = -magnitudes[8 * k + least];
      bits = static_cast<uint8_t>(bits ^ (1u << least));
    }
    signs[k] = variant.even_sign_count ? static_cast<uint8_t>(bits & 127) : bits;
  }
}

// Chooses grid points and a scale for one block: tries the scales (15 + 0.2 t) / max, keeps the one with the
// least weighted squared error, then re-rounds off-grid groups at that scale and refits the scale.
BlockChoice quantize_block(const Variant& variant, const Iq3GridSearch& search, const float* x,
                           const float* weights) {
  BlockChoice choice;
  float magnitudes[kBlock];
  float sqrt_weights[kBlock];
  for (int i = 0; i < kBlock; ++i) sqrt_weights[i] = std::sqrt(weights[i]);
  split_signs(variant, x, weights, magnitudes, choice.signs);

  float max = magnitudes[0];
  for (int i = 1; i < kBlock; ++i) max = max > magnitudes[i] ? max : magnitudes[i];  // ggml's MAX form
  // iq3_xxs treats a block below 1e-8 as zero (GROUP_MAX_EPS_IQ3_XXS); iq3_s only an exactly zero one.
  if (variant.grid == Iq3Grid::xxs ? max < 1e-8f : max == 0.0f) {
    choice.all_zero = true;
    return choice;
  }

  int8_t levels[kBlock] = {};
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
  if (scale < 0.0f) {  // ggml guards against this (the magnitudes are never all negative): flip every sign
    scale = -scale;
    for (uint8_t& s : choice.signs) s = static_cast<uint8_t>(variant.even_sign_count ? ~s & 127 : ~s);
  }
  for (int g = 0; g < kGroupsPerBlock; ++g) {
    choice.grid_index[g] = static_cast<uint16_t>(search.index_of(pack_code(levels + 4 * g)));
  }
  choice.scale = scale;
  return choice;
}

// Per-value weights of a block: importance * sqrt(sigma2 + x^2), or x^2 without importance.
void block_weights(const float* x, const float* importance, float sigma2, float* weights) {
  for (int i = 0; i < kBlock; ++i) {
    weights[i] = importance != nullptr ? importance[i] * std::sqrt(sigma2 + x[i] * x[i]) : x[i] * x[i];
  }
}

// ggml's sigma2 for these types: twice the mean square of the super-block.
float super_block_sigma2(const float* x) {
  float sum = 0.0f;
  for (int i = 0; i < kSuperBlock; ++i) sum += x[i] * x[i];
  return 2.0f * sum / static_cast<float>(kSuperBlock);
}

// The 4-bit multiplier of a block scale against the super-block step d: nearest odd multiple (2l + 1) d.
int scale_multiplier(float inverse_d, float scale) {
  return std::max(0, std::min(15, nearest_int(0.5f * (inverse_d * scale - 1.0f))));
}

BlockIq3Xxs quantize_xxs_superblock(const Iq3GridSearch& search, const float* x, const float* importance) {
  BlockIq3Xxs block{};
  const float sigma2 = super_block_sigma2(x);
  float scales[kBlocksPerSuper] = {};
  uint32_t scales_and_signs[kBlocksPerSuper] = {};
  float max_scale = 0.0f;
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    float weights[kBlock];
    block_weights(x + b * kBlock, importance != nullptr ? importance + b * kBlock : nullptr, sigma2, weights);
    const BlockChoice choice = quantize_block(kXxs, search, x + b * kBlock, weights);
    if (choice.all_zero) continue;  // indices 0, no signs, scale 0
    for (int g = 0; g < kGroupsPerBlock; ++g) block.grid_index[8 * b + g] = static_cast<uint8_t>(choice.grid_index[g]);
    scales_and_signs[b] = choice.signs[0] | (choice.signs[1] << 7) | (choice.signs[2] << 14) |
                          (static_cast<uint32_t>(choice.signs[3]) << 21);
    scales[b] = choice.scale;
    max_scale = max_scale > choice.scale ? max_scale : choice.scale;
  }
  if (max_scale == 0.0f) return BlockIq3Xxs{};  // ggml clears the whole block

  const float d = max_scale / 31.0f;
  block.d = fp32_to_fp16(d * kXxs.super_scale_fudge);
  const float inverse_d = 1.0f / d;
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    scales_and_signs[b] |= static_cast<uint32_t>(scale_multiplier(inverse_d, scales[b])) << 28;
  }
  std::memcpy(block.scales_and_signs, scales_and_signs, sizeof(scales_and_signs));
  return block;
}

BlockIq3S quantize_s_superblock(const Iq3GridSearch& search, const float* x, const float* importance) {
  BlockIq3S block{};
  const float sigma2 = super_block_sigma2(x);
  float scales[kBlocksPerSuper] = {};
  float max_scale = 0.0f;
  // ggml writes indices and signs through cursors that an all-zero block does not advance, so the blocks
  // after one shift down by a slot; the ninth index bits are placed by block number.
  int index_cursor = 0;
  int sign_cursor = 0;
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    float weights[kBlock];
    block_weights(x + b * kBlock, importance != nullptr ? importance + b * kBlock : nullptr, sigma2, weights);
    const BlockChoice choice = quantize_block(kS, search, x + b * kBlock, weights);
    if (choice.all_zero) continue;
    for (int g = 0; g < kGroupsPerBlock; ++g) {
      block.grid_index[index_cursor + g] = static_cast<uint8_t>(choice.grid_index[g] & 0xff);
      block.grid_high[b] = static_cast<uint8_t>(block.grid_high[b] | ((choice.grid_index[g] >> 8) << g));
    }
    index_cursor += kGroupsPerBlock;
    std::memcpy(block.signs + sign_cursor, choice.signs, sizeof(choice.signs));
    sign_cursor += static_cast<int>(sizeof(choice.signs));
    scales[b] = choice.scale;
    max_scale = max_scale > choice.scale ? max_scale : choice.scale;
  }
  if (max_scale == 0.0f) return block;  // d stays 0; whatever was written stays

  const float d = max_scale / 31.0f;
  block.d = fp32_to_fp16(d * kS.super_scale_fudge);
  const float inverse_d = 1.0f / d;
  for (int b = 0; b < kBlocksPerSuper; b += 2) {
    block.scales[b / 2] = static_cast<uint8_t>(scale_multiplier(inverse_d, scales[b]) |
                                               (scale_multiplier(inverse_d, scales[b + 1]) << 4));
  }
  return block;
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
