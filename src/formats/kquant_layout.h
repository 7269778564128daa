// Block-layout steps of q4_K, q5_K and q6_K shared by the scalar quantizers (kquants.cpp) and the SIMD ones
// (simd_kquants.h): the super-block sigma2 of the weighted procedures, the 12-byte field of 6-bit scales and
// mins of q4_K/q5_K and how the group scales and mins are quantized into it, q6_K's int8 group scales, and the
// packing of the levels into each block's bit fields (docs/formats/kquants.md; ggml-common.h block_q4_K,
// block_q5_K, block_q6_K). All of it is scalar float32 in ggml's operation order: the bytes must be bit-exact.
//
// Include before any instruction-set pragma (as kernels.h): these inline functions must be compiled for the
// baseline target in every translation unit.
#pragma once

#include <cmath>
#include <cstdint>

#include "formats/kernels.h"
#include "formats/kquant_search.h"

namespace quant::formats::kquant {

inline constexpr int kSuperBlock = 256;

// sigma2 of the weighted procedures, whose value weights are importance * sqrt(sigma2 + x^2): the mean of x^2
// over the super-block times `sigma_factor` (1 for q2_K, 2 for q3_K/q4_K/q5_K), summed in index order.
inline float super_block_sigma2(const float* x, float sigma_factor) {
  float sum_x2 = 0;
  for (int i = 0; i < kSuperBlock; ++i) sum_x2 += x[i] * x[i];
  return sigma_factor * sum_x2 / kSuperBlock;  // ggml: sum/256 (q2_K), 2*sum/256 (others); 1*sum is exact
}

// q4_K and q5_K share their 12-byte scale field: eight 6-bit scales and eight 6-bit mins. Groups 0-3 keep
// theirs in the low six bits of bytes 0-3 (scale) and 4-7 (min); groups 4-7 keep the low four bits in the
// nibbles of bytes 8-11 and the top two bits in the spare top bits of bytes 0-3 (scale) and 4-7 (min).
inline void unpack_scale_min(const uint8_t* packed, int j, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = packed[j] & 63;
    *min = packed[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((packed[j + 4] >> 4) | ((packed[j] >> 6) << 4));
  }
}

// Stores group j's 6-bit scale and min; groups must be stored in order 0..7 (4-7 add bits to bytes 0-7).
inline void pack_scale_min(uint8_t* packed, int j, uint8_t scale, uint8_t min) {
  if (j < 4) {
    packed[j] = scale;
    packed[j + 4] = min;
  } else {
    packed[j + 4] = static_cast<uint8_t>((scale & 0xF) | ((min & 0xF) << 4));
    packed[j - 4] = static_cast<uint8_t>(packed[j - 4] | ((scale >> 4) << 6));
    packed[j] = static_cast<uint8_t>(packed[j] | ((min >> 4) << 6));
  }
}

// Stores what the weighted searches of a q4_K/q5_K super-block's scales and mins found (d, dmin and their 6-bit
// levels, clamped to 63 for q5_K), into a zeroed packed field.
inline void store_searched_scales_and_mins(float d, float dmin, const uint8_t* scale_levels, const uint8_t* min_levels,
                                           bool clamp_weighted_levels, uint8_t* d_field, uint8_t* dmin_field,
                                           uint8_t* packed_scales) {
  for (int j = 0; j < 8; ++j) {
    uint8_t scale_level = scale_levels[j];
    uint8_t min_level = min_levels[j];
    if (clamp_weighted_levels) {
      scale_level = scale_level < 63 ? scale_level : 63;
      min_level = min_level < 63 ? min_level : 63;
    }
    pack_scale_min(packed_scales, j, scale_level, min_level);
  }
  store_f16(d_field, d);
  store_f16(dmin_field, dmin);
}

// Quantizes the eight group scales and mins of a q4_K/q5_K super-block into the f16 d and dmin fields and the
// packed 6-bit field. Without importance (group_weight null) both go on linear 6-bit grids up to their
// maxima, as ggml's reference quantizer does; with it, each gets the weighted search of its 6-bit scale
// (make_qp_quants), whose levels q5_K clamps to 63 and q4_K does not (`clamp_weighted_levels`).
inline void quantize_scales_and_mins(const float* scales, const float* mins, const float* group_weight,
                                     bool clamp_weighted_levels, uint8_t* d_field, uint8_t* dmin_field,
                                     uint8_t* packed_scales) {
  if (group_weight == nullptr) {
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < 8; ++j) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inverse_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inverse_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
      // ggml narrows to a byte before clamping to 63.
      uint8_t scale_level = static_cast<uint8_t>(nearest_int(inverse_scale * scales[j]));
      uint8_t min_level = static_cast<uint8_t>(nearest_int(inverse_min * mins[j]));
      scale_level = scale_level < 63 ? scale_level : 63;
      min_level = min_level < 63 ? min_level : 63;
      pack_scale_min(packed_scales, j, scale_level, min_level);
    }
    store_f16(d_field, max_scale / 63.f);
    store_f16(dmin_field, max_min / 63.f);
    return;
  }
  uint8_t scale_levels[8];
  uint8_t min_levels[8];
  const float d = search_positive_scale(8, 63, scales, scale_levels, group_weight);
  const float dmin = search_positive_scale(8, 63, mins, min_levels, group_weight);
  store_searched_scales_and_mins(d, dmin, scale_levels, min_levels, clamp_weighted_levels, d_field, dmin_field,
                                 packed_scales);
}

// q4_K's 128 bytes of levels: each 64 values fill 32 bytes, the first 32 in the low nibbles, the next 32 in
// the high nibbles.
inline void pack_q4_k_levels(const uint8_t* levels, uint8_t* qs) {
  for (int chunk = 0; chunk < 4; ++chunk) {
    const uint8_t* chunk_levels = levels + 64 * chunk;
    for (int l = 0; l < 32; ++l) {
      qs[32 * chunk + l] = static_cast<uint8_t>(chunk_levels[l] | (chunk_levels[l + 32] << 4));
    }
  }
}

// q5_K's levels: the low four bits as q4_K packs them into qs; the fifth bit of value 64*chunk + l (+32) is
// bit 2*chunk (+1) of qh[l].
inline void pack_q5_k_levels(const uint8_t* levels, uint8_t* qh, uint8_t* qs) {
  for (int l = 0; l < 32; ++l) qh[l] = 0;
  for (int chunk = 0; chunk < 4; ++chunk) {
    const uint8_t* chunk_levels = levels + 64 * chunk;
    for (int l = 0; l < 32; ++l) {
      const int first = chunk_levels[l];
      const int second = chunk_levels[l + 32];
      qh[l] = static_cast<uint8_t>(qh[l] | ((first >> 4) << (2 * chunk)) | ((second >> 4) << (2 * chunk + 1)));
      qs[32 * chunk + l] = static_cast<uint8_t>((first & 0xF) | ((second & 0xF) << 4));
    }
  }
}

// Quantizes the sixteen group scales of a q6_K super-block into its f16 d field and int8 scales: the scale of
// largest magnitude maps to -128, the others are rounded and capped at 127. Returns false, writing nothing,
// when every group is all zero (the caller zeroes the block, as ggml does).
inline bool quantize_q6_k_scales(const float* scales, uint8_t* d_field, int8_t* block_scales) {
  float max_scale = 0;
  float max_magnitude = 0;
  for (int j = 0; j < 16; ++j) {
    const float magnitude = std::fabs(scales[j]);
    if (magnitude > max_magnitude) {
      max_magnitude = magnitude;
      max_scale = scales[j];
    }
  }
  if (max_magnitude < kGroupMaxEps) return false;
  const float iscale = -128.f / max_scale;
  store_f16(d_field, 1 / iscale);
  for (int j = 0; j < 16; ++j) {
    const int rounded = nearest_int(iscale * scales[j]);
    block_scales[j] = static_cast<int8_t>(rounded < 127 ? rounded : 127);
  }
  return true;
}

// q6_K's levels (0..63), per 128 values: ql[l] holds values l (low nibble) and l+64 (high), ql[l+32] values
// l+32 and l+96; qh[l] holds the top two bits of l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7.
inline void pack_q6_k_levels(const int8_t* levels, uint8_t* ql, uint8_t* qh) {
  for (int half = 0; half < 2; ++half) {
    const int8_t* L = levels + 128 * half;
    uint8_t* half_ql = ql + 64 * half;
    uint8_t* half_qh = qh + 32 * half;
    for (int l = 0; l < 32; ++l) {
      half_ql[l] = static_cast<uint8_t>((L[l] & 0xF) | ((L[l + 64] & 0xF) << 4));
      half_ql[l + 32] = static_cast<uint8_t>((L[l + 32] & 0xF) | ((L[l + 96] & 0xF) << 4));
      half_qh[l] = static_cast<uint8_t>((L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) |
                                        ((L[l + 96] >> 4) << 6));
    }
  }
}

}  // namespace quant::formats::kquant
