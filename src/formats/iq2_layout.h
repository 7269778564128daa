// The steps of the iq2_xxs, iq2_xs and iq2_s quantizers around their scale search, shared by the scalar
// quantizer (iq2.cpp) and the SIMD one (simd_iq2.h): a sub-block's weights, sign split and starting scale
// before the search, and the super-block stage after it (the sign flip of a negative scale, the grid indices,
// the f16 scale d, the 4-bit sub-block scales and the packing). All of it is scalar float32 in ggml's
// operation order (quantize_row_iq2_xxs_impl, quantize_row_iq2_xs_impl, quantize_row_iq2_s_impl): the bytes
// must be bit-exact (docs/formats/iq1-iq2.md).
//
// Include before any instruction-set pragma (as kernels.h): these inline functions must be compiled for the
// baseline target in every translation unit.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "formats/iq2.h"
#include "formats/iq_grid_search.h"
#include "formats/kernels.h"
#include "formats/kquant_search.h"

namespace quant::formats::iq2 {

inline constexpr int kBlock = 256;
inline constexpr int kMaxLevel = 2;  // levels are 0..2, i.e. magnitudes 1, 3, 5 in units of the scale

// The three types: sub-blocks of 32 values (4 groups) for xxs, of 16 (2 groups) for xs and s.
enum class Variant { xxs, xs, s };

inline constexpr int sub_block_values(Variant variant) { return variant == Variant::xxs ? 32 : 16; }
inline constexpr int64_t block_bytes(Variant variant) {
  return variant == Variant::xxs ? kIq2XxsBlockBytes : variant == Variant::xs ? kIq2XsBlockBytes : kIq2SBlockBytes;
}
// The trial inverse scales are (5 + step / 10) / reference for step in [-steps, steps].
inline constexpr int trial_steps(Variant variant) { return variant == Variant::xxs ? 6 : 9; }
// xxs re-rounds every group at the fitted scale; xs and s only the groups that were off the grid.
inline constexpr bool refine_every_group(Variant variant) { return variant == Variant::xxs; }

// ggml's MAX(a, b) macro, kept for its behaviour on ties and NaN.
inline float max_of(float a, float b) { return a > b ? a : b; }
inline int clamp_level(int l, int top) { return l < 0 ? 0 : (l > top ? top : l); }

// Sum of x^2 over a 256-value super-block, in order.
inline float sum_of_squares(const float* x) {
  float sum = 0;
  for (int i = 0; i < kBlock; ++i) sum += x[i] * x[i];
  return sum;
}

// ggml's sigma2: iq2_s uses twice the mean square (like the k-quants), iq2_xxs and iq2_xs the mean square.
inline float super_block_sigma2(Variant variant, const float* x) {
  return (variant == Variant::s ? 2 * sum_of_squares(x) : sum_of_squares(x)) / kBlock;
}

// Takes the magnitudes of a group of 8 into xval and returns its sign bits (bit i: x[i] < 0). With
// `even_signs`, an odd number of minus signs is made even by flipping the sign of the weight whose
// weight * x^2 is smallest, which then enters the fit as a negative magnitude.
inline uint8_t fold_signs(const float* x, const float* weight, float* xval, bool even_signs) {
  uint8_t signs = 0;
  int negatives = 0;
  for (int i = 0; i < 8; ++i) {
    if (x[i] >= 0) {
      xval[i] = x[i];
    } else {
      xval[i] = -x[i];
      ++negatives;
      signs = static_cast<uint8_t>(signs | (1u << i));
    }
  }
  if (even_signs && negatives % 2 != 0) {
    int cheapest = 0;
    float cheapest_cost = weight[0] * x[0] * x[0];
    for (int i = 1; i < 8; ++i) {
      const float cost = weight[i] * x[i] * x[i];
      if (cost < cheapest_cost) {
        cheapest_cost = cost;
        cheapest = i;
      }
    }
    xval[cheapest] = -xval[cheapest];
    signs = static_cast<uint8_t>(signs ^ (1u << cheapest));
  }
  return signs;
}

// A sub-block ready for the scale search: its weights, their square roots (which weigh the nearest-point
// choice), the magnitudes (one per group may be negative, see fold_signs), the groups' sign bits, the
// reference the trial scales are relative to and the scale the search starts from. `skip`: the sub-block is
// (near) zero and stores scale 0.
struct SubBlockInput {
  float weight[32];
  float waux[32];
  float xval[32];
  uint8_t signs[4];
  float reference = 0;
  float start_scale = 0;
  bool skip = false;
};

// Prepares sub-block `ib` of the super-block x (importance: the super-block's weights, or null for iq2_s's
// fallback weights sigma2 / 4 + x^2). iq2_xxs starts from the scale of make_qp_quants; a caller that computes it
// itself (`fit_start` false) calls set_xxs_start with it.
inline void set_xxs_start(float fitted, SubBlockInput* in) {
  in->start_scale = fitted;
  in->reference = fitted * (kMaxLevel + 1);
  in->skip = in->reference <= 0;
}

// The rest of the preparation once weights, signs and magnitudes are in `in` and `max` is their largest
// magnitude: whether the sub-block is skipped, and the scale the search starts from.
inline void set_start(Variant variant, float max, SubBlockInput* in, bool fit_start) {
  in->skip = false;
  if (variant == Variant::xxs) {
    if (max < 1e-15f) {
      in->skip = true;
      return;
    }
    if (!fit_start) return;
    uint8_t first_levels[32];
    // ggml's make_qp_quants, the k-quants' positive-scale search.
    set_xxs_start(kquant::search_positive_scale(32, kMaxLevel + 2, in->xval, first_levels, in->weight), in);
    return;
  }
  if (max < (variant == Variant::s ? 1e-8f : 1e-15f)) {
    in->skip = true;
    return;
  }
  in->start_scale = max / (2 * kMaxLevel + 1);
  in->reference = max;
}

inline void prepare_sub_block(Variant variant, const float* x, const float* importance, float sigma2, int ib,
                              SubBlockInput* in, bool fit_start = true) {
  const int n = sub_block_values(variant);
  const float* xb = x + n * ib;
  if (importance != nullptr) {
    const float* qw = importance + n * ib;
    for (int i = 0; i < n; ++i) in->weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
  } else {
    for (int i = 0; i < n; ++i) in->weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
  }
  for (int i = 0; i < n; ++i) in->waux[i] = std::sqrt(in->weight[i]);
  for (int k = 0; k < n / 8; ++k) {
    const uint8_t s = fold_signs(xb + 8 * k, in->weight + 8 * k, in->xval + 8 * k, variant != Variant::s);
    in->signs[k] = variant == Variant::s ? s : static_cast<uint8_t>(s & 127);
  }
  float max = in->xval[0];
  for (int i = 1; i < n; ++i) max = max_of(max, in->xval[i]);
  set_start(variant, max, in, fit_start);
}



// The searched super-block: per sub-block its scale (unused when skipped) and per group its 8 levels and
// sign bits.
struct SuperBlockFit {
  float scale[16];
  bool skipped[16];
  int8_t levels[kBlock];
  uint8_t signs[32];
};

// The 4-bit code of a sub-block scale relative to d (scale ~ d * (2 code + 1)), as ggml rounds it.
inline int scale_code(float inverse_d, float scale) {
  return clamp_level(nearest_int(0.5f * (inverse_d * scale - 1)), 15);
}

inline void store_u16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v); p[1] = static_cast<uint8_t>(v >> 8); }
inline void store_u32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }

// What a stored group decodes from (ggml's dequantize_row_iq2_xxs / _xs / _s): its grid index, its 8 sign bits
// (bit j set: value j negative; iq2_xxs and iq2_xs store 7, the 8th making the count even) and its scale,
// d * (0.5 + code) / 4 with the sub-block's 4-bit scale code. Groups 2m and 2m + 1 always share a scale.
struct StoredGroup {
  int index;
  uint8_t signs;
  float scale;
};

inline uint8_t expand_seven_signs(uint32_t seven_bits) {
  return static_cast<uint8_t>(seven_bits | ((__builtin_popcount(seven_bits) & 1u) << 7));
}

inline StoredGroup stored_group(Variant variant, const uint8_t* block, float d, int group) {
  const int ib = group / 4;
  const int k = group % 4;
  switch (variant) {
    case Variant::xxs: {
      const uint8_t* indices = block + 2 + 8 * ib;
      const uint32_t signs_and_scale = uint32_t{indices[4]} | (uint32_t{indices[5]} << 8) |
                                       (uint32_t{indices[6]} << 16) | (uint32_t{indices[7]} << 24);
      return {indices[k], expand_seven_signs((signs_and_scale >> (7 * k)) & 127),
              d * (0.5f + static_cast<float>(signs_and_scale >> 28)) * 0.25f};
    }
    case Variant::xs: {
      const uint8_t scale_byte = block[66 + ib];
      const uint16_t word = static_cast<uint16_t>(block[2 + 2 * group] | (block[3 + 2 * group] << 8));
      const int code = k < 2 ? scale_byte & 0xf : scale_byte >> 4;
      return {word & 511, expand_seven_signs(word >> 9), d * (0.5f + static_cast<float>(code)) * 0.25f};
    }
    case Variant::s:
      break;
  }
  const uint8_t scale_byte = block[74 + ib];
  const int code = k < 2 ? scale_byte & 0xf : scale_byte >> 4;
  const int index = block[2 + group] | (((block[66 + ib] >> (2 * k)) & 3) << 8);
  return {index, block[34 + group], d * (0.5f + static_cast<float>(code)) * 0.25f};
}

// The super-block stage: a negative sub-block scale flips the sub-block's signs (ggml guards against it),
// the groups' levels become grid indices, d = largest scale / 31 and each sub-block scale a 4-bit code.
inline void pack_super_block(Variant variant, const IqGridSearch& grid, SuperBlockFit& fit, uint8_t* block) {
  const int sub_blocks = kBlock / sub_block_values(variant);
  const int groups = sub_block_values(variant) / 8;
  uint32_t xxs_words[16] = {};
  uint16_t xs_words[32] = {};
  uint8_t s_index_low[32] = {}, s_signs[32] = {}, s_index_high[8] = {};
  float max_scale = 0;
  for (int ib = 0; ib < sub_blocks; ++ib) {
    if (fit.skipped[ib]) {
      fit.scale[ib] = 0;
      continue;
    }
    uint8_t* signs = fit.signs + groups * ib;
    if (fit.scale[ib] < 0) {
      fit.scale[ib] = -fit.scale[ib];
      for (int k = 0; k < groups; ++k) {
        signs[k] = static_cast<uint8_t>(variant == Variant::s ? ~signs[k] : ~signs[k] & 127);
      }
    }
    for (int k = 0; k < groups; ++k) {
      const int group = groups * ib + k;
      const int index = grid.index_of(iq_pack_levels(fit.levels + 8 * group));
      switch (variant) {
        case Variant::xxs:
          xxs_words[2 * ib] |= static_cast<uint32_t>(index) << (8 * k);
          xxs_words[2 * ib + 1] |= static_cast<uint32_t>(signs[k]) << (7 * k);
          break;
        case Variant::xs:
          xs_words[group] = static_cast<uint16_t>(index | (signs[k] << 9));
          break;
        case Variant::s:
          s_index_low[group] = static_cast<uint8_t>(index & 255);
          s_index_high[group / 4] =
              static_cast<uint8_t>(s_index_high[group / 4] | ((index >> 8) << (2 * (group % 4))));
          s_signs[group] = signs[k];
          break;
      }
    }
    max_scale = max_of(max_scale, fit.scale[ib]);
  }
  std::memset(block, 0, static_cast<size_t>(block_bytes(variant)));
  if (max_scale == 0) return;
  const float d = max_scale / 31;
  store_f16(block, variant == Variant::s ? d * 0.9875f : d);  // ggml shrinks iq2_s's stored d slightly
  const float inverse_d = 1 / d;
  if (variant == Variant::xxs) {
    for (int ib = 0; ib < 8; ++ib) {
      xxs_words[2 * ib + 1] |= static_cast<uint32_t>(scale_code(inverse_d, fit.scale[ib])) << 28;
    }
    for (int w = 0; w < 16; ++w) store_u32(block + 2 + 4 * w, xxs_words[w]);
    return;
  }
  uint8_t* scale_bytes = block + (variant == Variant::s ? 74 : 66);
  for (int ib = 0; ib < 16; ++ib) {
    const int code = scale_code(inverse_d, fit.scale[ib]);
    scale_bytes[ib / 2] = static_cast<uint8_t>(ib % 2 == 0 ? code : scale_bytes[ib / 2] | (code << 4));
  }
  if (variant == Variant::s) {
    std::memcpy(block + 2, s_index_low, 32);
    std::memcpy(block + 34, s_signs, 32);
    std::memcpy(block + 66, s_index_high, 8);
  } else {
    for (int g = 0; g < 32; ++g) store_u16(block + 2 + 2 * g, xs_words[g]);
  }
}

}  // namespace quant::formats::iq2
