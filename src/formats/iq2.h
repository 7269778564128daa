// Row quantizers and dequantizers of the 2-bit grid i-quants iq2_xxs, iq2_xs and iq2_s (docs/formats/iq1-iq2.md).
//
// Every block holds 256 weights as 32 groups of 8: a grid point (iq_grids.h) per group for the magnitudes,
// sign bits, and 4-bit sub-block scales under one f16 super-block scale d. Bit-exact with ggml's
// quantize_iq2_xxs / quantize_iq2_xs / quantize_iq2_s and dequantize_row_iq2_*.
#pragma once

#include <cstdint>

namespace quant::formats {

inline constexpr int64_t kIq2XxsBlockBytes = 66;
inline constexpr int64_t kIq2XsBlockBytes = 74;
inline constexpr int64_t kIq2SBlockBytes = 82;

// `importance` is n_per_row weights; iq2_xxs and iq2_xs need it (the table refuses a null one before calling),
// iq2_s falls back to weights from the values themselves.
void quantize_rows_iq2_xxs(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance);
void quantize_rows_iq2_xs(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance);
void quantize_rows_iq2_s(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance);

void dequantize_iq2_xxs(const void* src, float* dst, int64_t n);
void dequantize_iq2_xs(const void* src, float* dst, int64_t n);
void dequantize_iq2_s(const void* src, float* dst, int64_t n);

}  // namespace quant::formats
