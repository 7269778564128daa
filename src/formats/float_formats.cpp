// The plain number formats f32, f16 and bf16: one value a "block", no scale. f32 is a copy; f16 and bf16 round
// to nearest even with the conversions of quant/half.h (what ggml_quantize_chunk does through
// ggml_fp32_to_fp16_row and ggml_fp32_to_bf16_row_ref). None of them reads importance weights. Validation
// follows ggml_validate_row_data: every value must be finite. Layouts: docs/formats/plain-and-legacy.md.
#include <algorithm>
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

uint32_t load_u32(const void* data, int64_t index) {
  uint32_t bits;
  std::memcpy(&bits, static_cast<const uint8_t*>(data) + 4 * index, 4);
  return bits;
}

// The index of the first of n values for which is_bad(i) holds, or -1. Every conversion checks its whole input,
// so this runs over every byte of a model: it tests a span at a time without an early exit (a loop the compiler
// vectorizes) and looks for the exact index only in a span that holds a bad value.
template <typename IsBad>
int64_t find_first_bad(int64_t n, IsBad is_bad) {
  constexpr int64_t kSpan = 512;
  for (int64_t start = 0; start < n; start += kSpan) {
    const int64_t end = std::min(n, start + kSpan);
    unsigned any = 0;  // an unsigned OR, not a bool: g++ 12 vectorizes only the former
    for (int64_t i = start; i < end; ++i) any |= unsigned(is_bad(i));
    if (any == 0) continue;
    for (int64_t i = start; i < end; ++i) {
      if (is_bad(i)) return i;
    }
  }
  return -1;
}

// ---- f32 ----

void quantize_f32(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  std::memcpy(dst, src, static_cast<size_t>(nrows * n_per_row) * sizeof(float));
}

void dequantize_f32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

bool validate_f32(const void* data, int64_t n, int64_t* bad_block, std::string* why) {
  // All-ones exponent: infinity or NaN.
  const int64_t bad = find_first_bad(n, [&](int64_t i) { return (load_u32(data, i) & 0x7f800000u) == 0x7f800000u; });
  if (bad < 0) return true;
  const uint32_t bits = load_u32(data, bad);
  *bad_block = bad;
  *why = fmt::format("value is {} (f32 0x{:08x})", (bits & 0x007fffffu) != 0 ? "NaN" : "infinite", bits);
  return false;
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
  // All-ones exponent: infinity or NaN.
  const int64_t bad = find_first_bad(n, [&](int64_t i) { return (load_u16(data, i) & 0x7c00u) == 0x7c00u; });
  if (bad < 0) return true;
  const uint16_t h = load_u16(data, bad);
  *bad_block = bad;
  *why = fmt::format("value is {} (f16 0x{:04x})", (h & 0x03ffu) != 0 ? "NaN" : "infinite", h);
  return false;
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
  // All-ones exponent: infinity (0x7f80) or NaN (above).
  const int64_t bad = find_first_bad(n, [&](int64_t i) { return (load_u16(data, i) & 0x7fffu) >= 0x7f80u; });
  if (bad < 0) return true;
  const uint16_t b = load_u16(data, bad);
  *bad_block = bad;
  *why = fmt::format("value is {} (bf16 0x{:04x})", (b & 0x7fffu) > 0x7f80u ? "NaN" : "infinite", b);
  return false;
}

constexpr FormatKernels kFloatKernels[] = {
    {TypeId::f32, quantize_f32, dequantize_f32, validate_f32},
    {TypeId::f16, quantize_f16, dequantize_f16, validate_f16},
    {TypeId::bf16, quantize_bf16, dequantize_bf16, validate_bf16},
};

}  // namespace

std::span<const FormatKernels> float_kernels() { return kFloatKernels; }

}  // namespace quant::formats
