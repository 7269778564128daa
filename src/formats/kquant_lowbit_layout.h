// Block-layout steps of q2_K and q3_K shared by the scalar quantizers (kquants.cpp) and the SIMD ones
// (simd_kquants_lowbit.h): how the sixteen group scales (and q2_K's mins) are quantized into the block's
// 4-bit or 6-bit fields under its f16 super-block scale(s), and how the levels are packed (docs/formats/
// kquants.md; ggml-common.h block_q2_K, block_q3_K). All of it is scalar float32 in ggml's operation order:
// the bytes must be bit-exact.
//
// Include before any instruction-set pragma (as kernels.h): these inline functions must be compiled for the
// baseline target in every translation unit.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "formats/kernels.h"
#include "formats/kquant_search.h"

namespace quant::formats::kquant {

// Byte offsets of the fields of a q2_K block (84 bytes) and a q3_K block (110 bytes).
inline constexpr int kQ2KScalesOffset = 0;   // 16 bytes: per group of 16, low nibble scale, high nibble min
inline constexpr int kQ2KQsOffset = 16;      // 64 bytes: 2-bit levels, four per byte
inline constexpr int kQ2KDOffset = 80;       // f16 scale of the group scales
inline constexpr int kQ2KDminOffset = 82;    // f16 scale of the group mins
inline constexpr int kQ2KBytes = 84;
inline constexpr int kQ3KHmaskOffset = 0;    // 32 bytes: third bit of every level
inline constexpr int kQ3KQsOffset = 32;      // 64 bytes: low two bits of every level
inline constexpr int kQ3KScalesOffset = 96;  // 12 bytes: sixteen 6-bit signed scales (offset 32)
inline constexpr int kQ3KDOffset = 108;
inline constexpr int kQ3KBytes = 110;

// Packs 256 2-bit levels: byte l of each 32-byte half holds values l, l+32, l+64, l+96 of its 128.
inline void pack_2bit_levels(const uint8_t* levels, uint8_t* qs) {
  for (int half = 0; half < 2; ++half) {
    const uint8_t* L = levels + 128 * half;
    for (int l = 0; l < 32; ++l) {
      qs[32 * half + l] = static_cast<uint8_t>(L[l] | (L[l + 32] << 2) | (L[l + 64] << 4) | (L[l + 96] << 6));
    }
  }
}

// Stores what the weighted searches of q2_K's scales and mins found: d, dmin and the 4-bit levels.
inline void store_q2_k_searched_scales(float d, float dmin, const uint8_t* scale_levels, const uint8_t* min_levels,
                                       uint8_t* packed_scales, uint8_t* d_field, uint8_t* dmin_field) {
  store_f16(d_field, d);
  store_f16(dmin_field, dmin);
  for (int j = 0; j < 16; ++j) packed_scales[j] = static_cast<uint8_t>(scale_levels[j] | (min_levels[j] << 4));
}

// Quantizes the sixteen group scales and mins of a q2_K super-block into its 4-bit scale field and f16 d and
// dmin. Without importance (group_weight null) both go on linear 4-bit grids up to their maxima, as ggml's
// reference quantizer does; with it, each gets the weighted search of its 4-bit scale (make_qp_quants).
inline void quantize_q2_k_scales(const float* scales, const float* mins, const float* group_weight,
                                 uint8_t* packed_scales, uint8_t* d_field, uint8_t* dmin_field) {
  if (group_weight == nullptr) {
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < 16; ++j) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int j = 0; j < 16; ++j) packed_scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      store_f16(d_field, max_scale / 15.f);
    } else {
      for (int j = 0; j < 16; ++j) packed_scales[j] = 0;
      store_f16(d_field, 0.f);
    }
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int j = 0; j < 16; ++j) {
        packed_scales[j] = static_cast<uint8_t>(packed_scales[j] | (nearest_int(iscale * mins[j]) << 4));
      }
      store_f16(dmin_field, max_min / 15.f);
    } else {
      store_f16(dmin_field, 0.f);
    }
    return;
  }
  uint8_t scale_levels[16];
  uint8_t min_levels[16];
  const float d = search_positive_scale(16, 15, scales, scale_levels, group_weight);
  const float dmin = search_positive_scale(16, 15, mins, min_levels, group_weight);
  store_q2_k_searched_scales(d, dmin, scale_levels, min_levels, packed_scales, d_field, dmin_field);
}

// The 6-bit scale of q3_K group j (0..63, i.e. the signed scale + 32): low four bits in a nibble of bytes
// 0-7, high two bits in bytes 8-11.
inline int q3_k_packed_scale(const uint8_t* scales, int j) {
  const int low = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
  const int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return low | (high << 4);
}

// Adds group j's 6-bit scale to a zeroed field (each group's bits are ORed in).
inline void set_q3_k_packed_scale(uint8_t* scales, int j, int value) {
  if (j < 8) {
    scales[j] = static_cast<uint8_t>(value & 0xF);
  } else {
    scales[j - 8] = static_cast<uint8_t>(scales[j - 8] | ((value & 0xF) << 4));
  }
  scales[8 + j % 4] = static_cast<uint8_t>(scales[8 + j % 4] | ((value >> 4) << (2 * (j / 4))));
}

// Stores what the weighted search of q3_K's scales found: d and the 6-bit levels (level + 32), into a zeroed
// field.
inline void store_q3_k_searched_scales(float d, const int8_t* scale_levels, uint8_t* packed_scales, uint8_t* d_field) {
  for (int j = 0; j < 16; ++j) set_q3_k_packed_scale(packed_scales, j, scale_levels[j]);
  store_f16(d_field, d);
}

// Quantizes the sixteen group scales of a q3_K super-block into its 6-bit field and f16 d. Without importance
// (group_weight null) the scales go on a symmetric grid set by the largest-magnitude one (-32 at that
// scale); with it, the group scales are themselves fitted by the weighted symmetric search (nmax 32).
inline void quantize_q3_k_scales(const float* scales, const float* group_weight, uint8_t* packed_scales,
                                 uint8_t* d_field) {
  std::memset(packed_scales, 0, 12);
  if (group_weight == nullptr) {
    float max_scale = 0;
    float max_magnitude = 0;
    for (int j = 0; j < 16; ++j) {
      const float magnitude = std::fabs(scales[j]);
      if (magnitude > max_magnitude) {
        max_magnitude = magnitude;
        max_scale = scales[j];
      }
    }
    if (max_scale != 0) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        // ggml narrows the rounded value to int8 before clamping (it always fits: |iscale*scale| <= 32).
        const int rounded = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        const int clamped = rounded < -32 ? -32 : (rounded > 31 ? 31 : rounded);
        set_q3_k_packed_scale(packed_scales, j, clamped + 32);
      }
      store_f16(d_field, 1 / iscale);
    } else {
      store_f16(d_field, 0.f);
    }
    return;
  }
  int8_t scale_levels[16];
  const float d = search_symmetric_scale(16, 32, scales, scale_levels, group_weight);
  store_q3_k_searched_scales(d, scale_levels, packed_scales, d_field);
}

// q3_K's levels 0..7: bit 2 of value i goes to hmask (byte i % 32, bit i / 32), bits 0-1 to qs as
// pack_2bit_levels places them. Written without branches on the level (a data-dependent branch per value
// cost more than the rest of a SIMD quantizer's block).
inline void pack_q3_k_levels(const int8_t* levels, uint8_t* hmask, uint8_t* qs) {
  uint8_t low_bits[256];
  for (int l = 0; l < 32; ++l) hmask[l] = 0;
  for (int row = 0; row < 8; ++row) {
    for (int l = 0; l < 32; ++l) {
      const int level = levels[32 * row + l];
      hmask[l] = static_cast<uint8_t>(hmask[l] | (((level >> 2) & 1) << row));
      low_bits[32 * row + l] = static_cast<uint8_t>(level & 3);
    }
  }
  pack_2bit_levels(low_bits, qs);
}

}  // namespace quant::formats::kquant
