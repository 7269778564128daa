// The 4-bit non-linear types iq4_nl and iq4_xs: every value is an index into a fixed table of 16 signed levels
// (denser near zero), times a scale. iq4_nl has one f16 scale per 32 values; iq4_xs groups eight such blocks
// into a 256-value super-block with one f16 scale and a 6-bit signed multiplier per 32-value block. Layouts and
// the scale search are described in docs/formats/nonlinear.md.
//
// Both follow ggml's quantize_iq4_nl / quantize_iq4_xs as ggml_quantize_chunk calls them (7 trial scales either
// side of the first guess, with or without importance weights), in float32 and in ggml's operation order.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "formats/block_io.h"
#include "formats/kernels.h"
#include "formats/nonlinear_layout.h"

namespace quant::formats {
namespace {

using iq4::BlockIq4Nl;
using iq4::BlockIq4Xs;
using iq4::kBlock;
using iq4::kBlocksPerSuper;
using iq4::kLevels;
using iq4::kSuperBlock;
// ggml tries the scales that put the largest value on level (-127 + t) for t in [-7, 7].
constexpr int kTrialSteps = iq4::kTrialSteps;
// ggml treats a block whose largest magnitude is below this as all zeros (GROUP_MAX_EPS).
constexpr float kZeroGroupThreshold = 1e-15f;

// Index of the table level nearest to x; halfway between two levels goes to the upper one (as ggml's
// best_index_int8, whose float comparisons this repeats).
uint8_t nearest_level(float x) {
  if (x <= static_cast<float>(kLevels[0])) return 0;
  if (x >= static_cast<float>(kLevels[15])) return 15;
  int upper = 1;
  while (upper < 15 && !(x < static_cast<float>(kLevels[upper]))) ++upper;  // first level above x (15 for NaN)
  const float below = x - static_cast<float>(kLevels[upper - 1]);
  const float above = static_cast<float>(kLevels[upper]) - x;
  return static_cast<uint8_t>(below < above ? upper - 1 : upper);
}

// Weighted sums for levels chosen by rounding inverse_scale * x to the table: sum w*q*x and sum w*q*q.
void level_sums(const float* x, const float* weights, float inverse_scale, float* sum_qx, float* sum_qq) {
  float qx = 0.0f;
  float qq = 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    const float q = static_cast<float>(kLevels[nearest_level(inverse_scale * x[j])]);
    qx += weights[j] * q * x[j];
    qq += weights[j] * q * q;
  }
  *sum_qx = qx;
  *sum_qq = qq;
}

// The least-squares scale of one 32-value block: starts from the scale that puts the largest-magnitude value
// on level -127, then tries 15 scales around it and keeps the one with the smallest weighted error.
// Returns 0 for an all-(near)-zero block.
float search_block_scale(const float* x, const float* weights) {
  float largest_magnitude = 0.0f;
  float largest = 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    const float magnitude = std::fabs(x[j]);
    if (magnitude > largest_magnitude) {
      largest_magnitude = magnitude;
      largest = x[j];
    }
  }
  if (largest_magnitude < kZeroGroupThreshold) return 0.0f;

  const float first_guess = -largest / static_cast<float>(kLevels[0]);
  float sum_qx, sum_qq;
  level_sums(x, weights, 1.0f / first_guess, &sum_qx, &sum_qq);
  float scale = sum_qq > 0.0f ? sum_qx / sum_qq : 0.0f;
  // With the least-squares scale, the error falls as sum_qx^2 / sum_qq rises.
  float best = scale * sum_qx;
  for (int step = -kTrialSteps; step <= kTrialSteps; ++step) {
    const float inverse_scale = static_cast<float>(step + kLevels[0]) / largest;
    level_sums(x, weights, inverse_scale, &sum_qx, &sum_qq);
    if (sum_qq > 0.0f && sum_qx * sum_qx > best * sum_qq) {
      scale = sum_qx / sum_qq;
      best = scale * sum_qx;
    }
  }
  return scale;
}

// Weights of one 32-value block: importance[j] * sqrt(sigma2 + x^2) with importance, else x^2.
void block_weights(const float* x, const float* importance, float sigma2, float* weights) {
  for (int j = 0; j < kBlock; ++j) {
    weights[j] = importance != nullptr ? importance[j] * std::sqrt(sigma2 + x[j] * x[j]) : x[j] * x[j];
  }
}

// Table indices of a block's values divided by scale (a zero scale maps every value to the level nearest 0).
void choose_levels(const float* x, float scale, uint8_t* levels) {
  const float inverse = scale != 0.0f ? 1.0f / scale : 0.0f;
  for (int j = 0; j < kBlock; ++j) levels[j] = nearest_level(inverse * x[j]);
}

void quantize_iq4_nl(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const int64_t blocks_per_row = n_per_row / kBlock;
  for (int64_t row = 0; row < nrows; ++row) {
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      const float* x = src + row * n_per_row + b * kBlock;
      const float* block_importance = importance != nullptr ? importance + b * kBlock : nullptr;
      float weights[kBlock];
      block_weights(x, block_importance, iq4::twice_mean_square(x, kBlock), weights);
      const float scale = search_block_scale(x, weights);
      BlockIq4Nl block{};
      block.d = fp32_to_fp16(scale);
      uint8_t levels[kBlock];
      choose_levels(x, scale, levels);
      iq4::pack_levels(levels, block.qs);
      store_block(dst, row * blocks_per_row + b, block);
    }
  }
}

// One iq4_xs super-block: a scale per 32-value block, then those scales as 6-bit multiples of one f16 scale
// (the largest-magnitude block scale maps to -32), and levels chosen against the rounded block scales.
BlockIq4Xs quantize_iq4_xs_superblock(const float* x, const float* importance) {
  const float sigma2 = iq4::twice_mean_square(x, kSuperBlock);
  float block_scales[kBlocksPerSuper];
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    float weights[kBlock];
    block_weights(x + b * kBlock, importance != nullptr ? importance + b * kBlock : nullptr, sigma2, weights);
    block_scales[b] = search_block_scale(x + b * kBlock, weights);
  }

  BlockIq4Xs block{};
  const iq4::XsScales stored = iq4::xs_scales(block_scales);
  block.d = stored.d_bits;
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    uint8_t levels[kBlock];
    choose_levels(x + b * kBlock, stored.block_scale(b), levels);
    iq4::pack_levels(levels, block.qs + b * (kBlock / 2));
    iq4::set_xs_multiplier(block, b, stored.multiplier[b]);
  }
  return block;
}

void quantize_iq4_xs(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const int64_t blocks_per_row = n_per_row / kSuperBlock;
  for (int64_t row = 0; row < nrows; ++row) {
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      const float* block_importance = importance != nullptr ? importance + b * kSuperBlock : nullptr;
      store_block(dst, row * blocks_per_row + b,
                  quantize_iq4_xs_superblock(src + row * n_per_row + b * kSuperBlock, block_importance));
    }
  }
}

// Unpacks one 32-value block: value = scale * level.
void dequantize_levels(const uint8_t* qs, float scale, float* dst) {
  for (int j = 0; j < kBlock / 2; ++j) {
    dst[j] = scale * static_cast<float>(kLevels[qs[j] & 0x0f]);
    dst[j + 16] = scale * static_cast<float>(kLevels[qs[j] >> 4]);
  }
}

void dequantize_iq4_nl(const void* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kBlock; ++b) {
    const auto block = load_block<BlockIq4Nl>(src, b);
    dequantize_levels(block.qs, fp16_to_fp32(block.d), dst + b * kBlock);
  }
}

void dequantize_iq4_xs(const void* src, float* dst, int64_t n) {
  for (int64_t s = 0; s < n / kSuperBlock; ++s) {
    const auto block = load_block<BlockIq4Xs>(src, s);
    const float d = fp16_to_fp32(block.d);
    for (int b = 0; b < kBlocksPerSuper; ++b) {
      const int stored = ((block.scales_l[b / 2] >> (4 * (b % 2))) & 0x0f) | (((block.scales_h >> (2 * b)) & 3) << 4);
      dequantize_levels(block.qs + b * (kBlock / 2), d * static_cast<float>(stored - 32),
                        dst + s * kSuperBlock + b * kBlock);
    }
  }
}

// ggml_validate_row_data: the f16 scale d of every block must be finite.
constexpr FormatKernels kNonlinearKernels[] = {
    {TypeId::iq4_nl, quantize_iq4_nl, dequantize_iq4_nl, validate_scale_d<BlockIq4Nl>},
    {TypeId::iq4_xs, quantize_iq4_xs, dequantize_iq4_xs, validate_scale_d<BlockIq4Xs>},
};

}  // namespace

std::span<const FormatKernels> nonlinear_kernels() { return kNonlinearKernels; }

}  // namespace quant::formats
