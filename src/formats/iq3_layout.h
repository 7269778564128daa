// The block layouts of iq3_xxs and iq3_s and the steps of their quantizers around the per-block scale search,
// shared by the scalar quantizer (iq3.cpp) and the SIMD one (simd_iq3.h): a block's weights and sign split
// before the search, its grid indices and sign flip after it, and the super-block stage (the f16 scale d, the
// 4-bit block multipliers and the packing, with iq3_s's cursor quirk). Scalar float32 in ggml's operation order
// (quantize_row_iq3_xxs_impl, quantize_row_iq3_s_impl): the bytes must be bit-exact (docs/formats/iq3.md).
//
// Include before any instruction-set pragma (as kernels.h): these inline functions must be compiled for the
// baseline target in every translation unit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "formats/iq3_grids.h"
#include "formats/kernels.h"

namespace quant::formats::iq3 {

inline constexpr int kSuperBlock = 256;
inline constexpr int kBlock = 32;
inline constexpr int kBlocksPerSuper = kSuperBlock / kBlock;
inline constexpr int kGroupsPerBlock = kBlock / 4;  // grid points per block
inline constexpr int kTopLevel = 7;                 // levels 0..7 stand for the odd values 1..15

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
inline constexpr Variant kXxs{Iq3Grid::xxs, 15, true, false, true, 1.0125f};
inline constexpr Variant kS{Iq3Grid::s, 9, false, true, false, 1.033f};

inline uint16_t pack_code(const int8_t* levels) {
  uint16_t code = 0;
  for (int i = 0; i < 4; ++i) code = static_cast<uint16_t>(code | (levels[i] << (3 * i)));
  return code;
}

// A block ready for the scale search: its weights and their square roots (which weigh the nearest-point
// choice), its magnitudes (iq3_xxs may turn one per 8 negative, see split_signs), its sign bytes and largest
// magnitude. `all_zero`: the block stores nothing (iq3_xxs: below 1e-8, GROUP_MAX_EPS_IQ3_XXS; iq3_s: only
// an exactly zero block).
struct BlockInput {
  float weights[kBlock];
  float sqrt_weights[kBlock];
  float magnitudes[kBlock];
  uint8_t signs[kBlock / 8];
  float max = 0.0f;
  bool all_zero = false;
};

// Splits a block into magnitudes and sign bits. iq3_xxs keeps an even number of negatives per 8 values: when
// the count is odd, the value with the smallest weight * x^2 keeps its sign and its magnitude turns negative.
inline void split_signs(const Variant& variant, const float* x, const float* weights, float* magnitudes,
                        uint8_t* signs) {
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

// ggml's sigma2 for these types: twice the mean square of the super-block.
inline float super_block_sigma2(const float* x) {
  float sum = 0.0f;
  for (int i = 0; i < kSuperBlock; ++i) sum += x[i] * x[i];
  return 2.0f * sum / static_cast<float>(kSuperBlock);
}

// Whether a block whose largest magnitude is `max` stores nothing (iq3_xxs: below 1e-8, GROUP_MAX_EPS_IQ3_XXS;
// iq3_s: only an exactly zero block).
inline bool is_all_zero(const Variant& variant, float max) {
  return variant.grid == Iq3Grid::xxs ? max < 1e-8f : max == 0.0f;
}

// Prepares a block: weights importance * sqrt(sigma2 + x^2) (x^2 without importance), signs, magnitudes.
inline void prepare_block(const Variant& variant, const float* x, const float* importance, float sigma2,
                          BlockInput* in) {
  for (int i = 0; i < kBlock; ++i) {
    in->weights[i] = importance != nullptr ? importance[i] * std::sqrt(sigma2 + x[i] * x[i]) : x[i] * x[i];
  }
  for (int i = 0; i < kBlock; ++i) in->sqrt_weights[i] = std::sqrt(in->weights[i]);
  split_signs(variant, x, in->weights, in->magnitudes, in->signs);
  float max = in->magnitudes[0];
  for (int i = 1; i < kBlock; ++i) max = max > in->magnitudes[i] ? max : in->magnitudes[i];  // ggml's MAX form
  in->max = max;
  in->all_zero = is_all_zero(variant, max);
}

// The outcome for one 32-value block: the block scale, grid indices and per-8 sign bytes.
struct BlockChoice {
  bool all_zero = false;
  float scale = 0.0f;
  uint16_t grid_index[kGroupsPerBlock] = {};
  uint8_t signs[kBlock / 8] = {};
};

// A searched block's choice: a negative scale flips every sign (ggml guards against it; the magnitudes are
// never all negative), and the levels become grid indices.
inline BlockChoice finish_block(const Variant& variant, const Iq3GridSearch& search, const BlockInput& in,
                                float scale, const int8_t* levels) {
  BlockChoice choice;
  std::memcpy(choice.signs, in.signs, sizeof(choice.signs));
  if (scale < 0.0f) {
    scale = -scale;
    for (uint8_t& s : choice.signs) s = static_cast<uint8_t>(variant.even_sign_count ? ~s & 127 : ~s);
  }
  for (int g = 0; g < kGroupsPerBlock; ++g) {
    choice.grid_index[g] = static_cast<uint16_t>(search.index_of(pack_code(levels + 4 * g)));
  }
  choice.scale = scale;
  return choice;
}

// The 4-bit multiplier of a block scale against the super-block step d: nearest odd multiple (2l + 1) d.
inline int scale_multiplier(float inverse_d, float scale) {
  return std::max(0, std::min(15, nearest_int(0.5f * (inverse_d * scale - 1.0f))));
}

inline BlockIq3Xxs pack_xxs(const BlockChoice* choices) {
  BlockIq3Xxs block{};
  float scales[kBlocksPerSuper] = {};
  uint32_t scales_and_signs[kBlocksPerSuper] = {};
  float max_scale = 0.0f;
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    const BlockChoice& choice = choices[b];
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

inline BlockIq3S pack_s(const BlockChoice* choices) {
  BlockIq3S block{};
  float scales[kBlocksPerSuper] = {};
  float max_scale = 0.0f;
  // ggml writes indices and signs through cursors that an all-zero block does not advance, so the blocks
  // after one shift down by a slot; the ninth index bits are placed by block number.
  int index_cursor = 0;
  int sign_cursor = 0;
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    const BlockChoice& choice = choices[b];
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

}  // namespace quant::formats::iq3
