// The plain number formats f32, f16 and bf16: one value a "block", no scale. f32 is a copy; f16 and bf16 round
// to nearest even with the conversions of quant/half.h (what ggml_quantize_chunk does through
// ggml_fp32_to_fp16_row and ggml_fp32_to_bf16_row_ref). None of them reads importance weights. Validation
// follows ggml_validate_row_data: every value must be finite. Layouts: docs/formats/plain-and-legacy.md.
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "formats/kernels.h"

namespace quant::formats {
namespace {

uint16_t load_u16(const void* data, int64_t index) {
  uint16_t h;
  std::memcpy(&h, static_cast<const uint8_t*>(data) + 2 * index, 2);
  return h;
}

void store_u16(void* data, int64_t index, uint16_t h) {
  std::memcpy(static_cast<uint8_t*>(data) + 2 * index, &h, 2);
}

// ---- f32 ----

void quantize_f32(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  std::memcpy(dst, src, static_cast<size_t>(nrows * n_per_row) * sizeof(float));
}

void dequantize_f32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

bool validate_f32(const void* data, int64_t n, int64_t* bad_block, std::string* why) {
  for (int64_t i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, static_cast<const uint8_t*>(data) + 4 * i, 4);
    if (!std::isfinite(v)) {
      *bad_block = i;
      *why = fmt::format("value is {} (f32 0x{:08x})", std::isnan(v) ? "NaN" : "infinite", float_bits(v));
      return false;
    }
  }
  return true;
}

// ---- f16 ----

void quantize_f16(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  const int64_t n = nrows * n_per_row;
  for (int64_t i = 0; i < n; ++i) store_u16(dst, i, fp32_to_fp16(src[i]));
}

void dequantize_f16(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(src, i));
}

bool validate_f16(const void* data, int64_t n, int64_t* bad_block, std::string* why) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = load_u16(data, i);
    if ((h & 0x7c00u) == 0x7c00u) {  // all-ones exponent: infinity or NaN
      *bad_block = i;
      *why = fmt::format("value is {} (f16 0x{:04x})", (h & 0x03ffu) != 0 ? "NaN" : "infinite", h);
      return false;
    }
  }
  return true;
}

// ---- bf16 ----

void quantize_bf16(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  const int64_t n = nrows * n_per_row;
  for (int64_t i = 0; i < n; ++i) store_u16(dst, i, fp32_to_bf16(src[i]));
}

void dequantize_bf16(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(src, i));
}

bool validate_bf16(const void* data, int64_t n, int64_t* bad_block, std::string* why) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t b = load_u16(data, i);
    if ((b & 0x7fffu) >= 0x7f80u) {  // all-ones exponent: infinity (0x7f80) or NaN (above)
      *bad_block = i;
      *why = fmt::format("value is {} (bf16 0x{:04x})", (b & 0x7fffu) > 0x7f80u ? "NaN" : "infinite", b);
      return false;
    }
  }
  return true;
}

constexpr FormatKernels kFloatKernels[] = {
    {TypeId::f32, quantize_f32, dequantize_f32, validate_f32},
    {TypeId::f16, quantize_f16, dequantize_f16, validate_f16},
    {TypeId::bf16, quantize_bf16, dequantize_bf16, validate_bf16},
};

}  // namespace

std::span<const FormatKernels> float_kernels() { return kFloatKernels; }

}  // namespace quant::formats
