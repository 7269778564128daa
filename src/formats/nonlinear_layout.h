// The block layouts of iq4_nl and iq4_xs and the steps of their quantizers around the block scale search,
// shared by the scalar quantizer (nonlinear.cpp) and the SIMD one (simd_nonlinear.h): the level table, the
// weights' sigma2, how 32 level indices are packed, and iq4_xs's super-block stage (the block scales as 6-bit
// multiples of one f16 scale). Scalar float32 in ggml's operation order (docs/formats/nonlinear.md).
//
// Include before any instruction-set pragma (as kernels.h): these inline functions must be compiled for the
// baseline target in every translation unit.
#pragma once

#include <cmath>
#include <cstdint>

#include "formats/kernels.h"

namespace quant::formats::iq4 {

// The 16 levels of the non-linear 4-bit grid, a fact of the format (ggml-common.h, kvalues_iq4nl).
inline constexpr int8_t kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

inline constexpr int kBlock = 32;
inline constexpr int kSuperBlock = 256;
inline constexpr int kBlocksPerSuper = kSuperBlock / kBlock;
// ggml tries the scales that put the largest value on level (-127 + t) for t in [-7, 7].
inline constexpr int kTrialSteps = 7;

struct BlockIq4Nl {
  uint16_t d;
  uint8_t qs[kBlock / 2];  // value j in the low nibble of qs[j], value j + 16 in the high nibble
};
struct BlockIq4Xs {
  uint16_t d;
  uint16_t scales_h;                     // bits 2b..2b+1: the top two bits of block b's 6-bit multiplier
  uint8_t scales_l[kBlocksPerSuper / 2];  // low nibble: block 2i's low four bits; high nibble: block 2i+1's
  uint8_t qs[kSuperBlock / 2];           // per 32-value block, packed as in iq4_nl
};
static_assert(sizeof(BlockIq4Nl) == 18 && sizeof(BlockIq4Xs) == 136);

// Twice the mean square of n values (ggml's sigma2 for these types), summed in order in float32.
inline float twice_mean_square(const float* x, int n) {
  float sum = 0.0f;
  for (int j = 0; j < n; ++j) sum += x[j] * x[j];
  return sum * (2.0f / static_cast<float>(n));
}

// Packs 32 level indices into 16 bytes: index j low nibble, index j + 16 high nibble.
inline void pack_levels(const uint8_t* levels, uint8_t* qs) {
  for (int j = 0; j < kBlock / 2; ++j) qs[j] = static_cast<uint8_t>(levels[j] | (levels[j + 16] << 4));
}

// iq4_xs's super-block scale and block multipliers: the block scale of largest magnitude (the first on ties)
// maps to -32, d = -largest / 32, and each block's multiplier is its scale / d rounded, clamped to -32..31.
struct XsScales {
  uint16_t d_bits;  // d as stored (an all-zero super-block gives -0.0, f16 0x8000, as ggml does)
  float d;
  int multiplier[kBlocksPerSuper];
  // The scale block b's levels are chosen against: the unrounded d times the multiplier.
  float block_scale(int b) const { return d * static_cast<float>(multiplier[b]); }
};

inline XsScales xs_scales(const float* block_scales) {
  float largest_scale = 0.0f;
  float largest_scale_magnitude = 0.0f;
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    if (std::fabs(block_scales[b]) > largest_scale_magnitude) {
      largest_scale_magnitude = std::fabs(block_scales[b]);
      largest_scale = block_scales[b];
    }
  }
  XsScales out;
  out.d = -largest_scale / 32.0f;
  out.d_bits = fp32_to_fp16(out.d);
  const float inverse_d = out.d != 0.0f ? 1.0f / out.d : 0.0f;
  for (int b = 0; b < kBlocksPerSuper; ++b) {
    const int m = nearest_int(inverse_d * block_scales[b]);
    out.multiplier[b] = m < -32 ? -32 : (m > 31 ? 31 : m);
  }
  return out;
}

// Stores block b's multiplier (-32..31) as 6 bits, offset by 32.
inline void set_xs_multiplier(BlockIq4Xs& block, int b, int multiplier) {
  const unsigned stored = static_cast<unsigned>(multiplier + 32);  // 0..63
  block.scales_l[b / 2] = static_cast<uint8_t>(block.scales_l[b / 2] | ((stored & 0x0fu) << (4 * (b % 2))));
  block.scales_h = static_cast<uint16_t>(block.scales_h | ((stored >> 4) << (2 * b)));
}

}  // namespace quant::formats::iq4
