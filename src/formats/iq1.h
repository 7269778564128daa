// Row quantizers and dequantizers of the 1-bit grid i-quants iq1_s and iq1_m (docs/formats/iq1-iq2.md).
//
// Every block holds 256 weights as 32 groups of 8; each group is a point of the 2048-point ternary grid
// (iq_grids.h, levels -1, 0, +1) shifted by +-1/8, times a 3-bit sub-block scale and one super-block scale.
// Bit-exact with ggml's quantize_iq1_s / quantize_iq1_m and dequantize_row_iq1_*.
#pragma once

#include <cstdint>

namespace quant::formats {

inline constexpr int64_t kIq1SBlockBytes = 50;
inline constexpr int64_t kIq1MBlockBytes = 56;

// `importance` is n_per_row weights. iq1_s requires it (the table refuses a null one before calling); iq1_m
// falls back to x^2 weights when it is null, as ggml does, though the table requires it too.
void quantize_rows_iq1_s(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance);
void quantize_rows_iq1_m(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance);

void dequantize_iq1_s(const void* src, float* dst, int64_t n);
void dequantize_iq1_m(const void* src, float* dst, int64_t n);

// iq1_m has no stored d field: its f16 super-block scale is spread over the top 4 bits of its four 16-bit
// scale words. Returns those 16 bits.
uint16_t iq1_m_packed_scale(const uint8_t* block);

}  // namespace quant::formats
