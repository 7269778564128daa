// SIMD kernels for the legacy block types with importance weights (q4_0, q4_1, q5_0, q5_1), written over a
// vector-operations struct V.
//
// legacy_search.cpp's two searches take their float sums in exactly the order of the k-quant searches this
// build already carries across lanes (simd_kquants.h): the symmetric one is search_symmetric_scale with caller
// weights, the offset one is search_affine_scale on the grid (-0.9, 0.05, 36 steps) with squared error,
// rounding then clamping, its offset being minus the negated minimum. So W consecutive blocks of a row fill
// the lanes of one search, each block's weights importance[j] * sqrt(sigma2 + x[j]^2) with sigma2 the row's
// mean square (summed in order, as the scalar code does). Include after simd_kquants.h; internal linkage.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "formats/kernels.h"
#include "formats/kquant_search.h"

namespace quant::formats {
namespace {

// Mean square of a row, summed in index order in float32 (legacy.cpp row_mean_square).
inline float legacy_row_mean_square(const float* row, int64_t n) {
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum += row[j] * row[j];
  return sum / static_cast<float>(n);
}

// Block layout of a legacy type: where its fields sit, and how many levels it has.
struct LegacyLayout {
  int levels;          // 16 or 32
  bool has_min;        // q4_1, q5_1
  size_t block_bytes;
};

// Packs 32 levels into a block after its d (and m) fields: nibbles (levels j, j+16 in byte j), and for
// 32-level types the fifth bits first (bit j of a 32-bit little-endian word), as legacy.cpp does.
inline void pack_legacy_levels(const LegacyLayout& layout, const uint8_t* levels, uint8_t* fields) {
  if (layout.levels == 16) {
    for (int j = 0; j < 16; ++j) fields[j] = static_cast<uint8_t>(levels[j] | (levels[j + 16] << 4));
    return;
  }
  uint32_t high_bits = 0;
  for (int j = 0; j < 16; ++j) {
    fields[4 + j] = static_cast<uint8_t>((levels[j] & 0x0f) | ((levels[j + 16] & 0x0f) << 4));
    high_bits |= static_cast<uint32_t>((levels[j] >> 4) & 1u) << j;
    high_bits |= static_cast<uint32_t>((levels[j + 16] >> 4) & 1u) << (j + 16);
  }
  std::memcpy(fields, &high_bits, 4);
}

template <class V>
void quantize_legacy_weighted(const LegacyLayout& layout, const float* src, void* dst, int64_t nrows,
                              int64_t n_per_row, const float* importance) {
  constexpr int W = V::kWidth;
  using F = typename V::F;
  const int64_t blocks_per_row = n_per_row / 32;
  uint8_t* out = static_cast<uint8_t*>(dst);
  alignas(64) float xt[32 * W];
  alignas(64) float it[32 * W];
  alignas(64) float wt[32 * W];
  alignas(64) float scales[W];
  alignas(64) float negated_mins[W];
  alignas(64) int32_t levels_t[32 * W];
  for (int64_t row = 0; row < nrows; ++row) {
    const float* x = src + row * n_per_row;
    const F sigma2 = V::set1(legacy_row_mean_square(x, n_per_row));
    for (int64_t first = 0; first < blocks_per_row; first += W) {
      const int blocks = static_cast<int>(blocks_per_row - first < W ? blocks_per_row - first : W);
      transpose_groups<W>(x + 32 * first, 32, blocks, xt);
      transpose_groups<W>(importance + 32 * first, 32, blocks, it);
      for (int i = 0; i < 32; ++i) {
        const F v = V::load(xt + i * W);
        V::store(wt + i * W, V::mul(V::load(it + i * W), V::sqrt(V::add(sigma2, V::mul(v, v)))));
      }
      if (layout.has_min) {
        search_affine_scale_lanes<V>(32, layout.levels - 1, xt, wt, kquant::ScaleGrid{-0.9f, 0.05f, 36},
                                     kquant::ErrorNorm::squared, kquant::LevelClamp::round_then_clamp, scales,
                                     negated_mins, levels_t);
      } else {
        search_symmetric_scale_lanes<V>(32, layout.levels / 2, xt, wt, scales, levels_t);
      }
      for (int b = 0; b < blocks; ++b) {
        uint8_t* block = out + static_cast<size_t>(row * blocks_per_row + first + b) * layout.block_bytes;
        uint8_t levels[32];
        for (int i = 0; i < 32; ++i) levels[i] = static_cast<uint8_t>(levels_t[i * W + b]);
        store_f16(block, scales[b]);
        if (layout.has_min) store_f16(block + 2, -negated_mins[b]);
        pack_legacy_levels(layout, levels, block + (layout.has_min ? 4 : 2));
      }
    }
  }
}

constexpr LegacyLayout kQ4_0Layout{16, false, 18};
constexpr LegacyLayout kQ4_1Layout{16, true, 20};
constexpr LegacyLayout kQ5_0Layout{32, false, 22};
constexpr LegacyLayout kQ5_1Layout{32, true, 24};

// Rows holding a NaN or an infinity (in the values or the weights) take the scalar kernel: their weights are
// not finite, and what the searches then produce hangs on how the compiler evaluates float-to-int conversions
// of non-finite values, which the lanes cannot promise to mirror. Finite rows take the lanes.
template <class V, TypeId kId>
void quantize_legacy_weighted_rows(const LegacyLayout& layout, const float* src, void* dst, int64_t nrows,
                                   int64_t n_per_row, const float* importance) {
  const QuantizeRowsFn scalar = scalar_quantize(kId);
  bool importance_finite = true;
  for (int64_t j = 0; j < n_per_row; ++j) importance_finite &= std::isfinite(importance[j]);
  const size_t row_bytes = static_cast<size_t>(n_per_row / 32) * layout.block_bytes;
  for (int64_t row = 0; row < nrows; ++row) {
    const float* x = src + row * n_per_row;
    uint8_t* out = static_cast<uint8_t*>(dst) + static_cast<size_t>(row) * row_bytes;
    bool finite = importance_finite;
    for (int64_t j = 0; j < n_per_row && finite; ++j) finite = std::isfinite(x[j]);
    if (finite) {
      quantize_legacy_weighted<V>(layout, x, out, 1, n_per_row, importance);
    } else {
      scalar(x, out, 1, n_per_row, importance);
    }
  }
}

// The table entries: the reference rule without importance weights, the weighted searches with them.
template <class V>
void quantize_q4_0_any_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  if (importance == nullptr) return quantize_q4_0_simd<V>(src, dst, nrows, n_per_row, nullptr);
  quantize_legacy_weighted_rows<V, TypeId::q4_0>(kQ4_0Layout, src, dst, nrows, n_per_row, importance);
}
template <class V>
void quantize_q4_1_any_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  if (importance == nullptr) return quantize_q4_1_simd<V>(src, dst, nrows, n_per_row, nullptr);
  quantize_legacy_weighted_rows<V, TypeId::q4_1>(kQ4_1Layout, src, dst, nrows, n_per_row, importance);
}
template <class V>
void quantize_q5_0_any_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  if (importance == nullptr) return quantize_q5_0_simd<V>(src, dst, nrows, n_per_row, nullptr);
  quantize_legacy_weighted_rows<V, TypeId::q5_0>(kQ5_0Layout, src, dst, nrows, n_per_row, importance);
}
template <class V>
void quantize_q5_1_any_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  if (importance == nullptr) return quantize_q5_1_simd<V>(src, dst, nrows, n_per_row, nullptr);
  quantize_legacy_weighted_rows<V, TypeId::q5_1>(kQ5_1Layout, src, dst, nrows, n_per_row, importance);
}

}  // namespace
}  // namespace quant::formats
