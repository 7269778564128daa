// The table of tensor formats: every ggml type, its block layout and its row quantizer.
//
// A format stores a row of n values as n / block_size blocks of block_bytes each. Quantizers take whole rows
// (nrows x n_per_row floats, row-major) because several formats compute statistics over a row or a 256-value
// super-block, and an optional importance vector of n_per_row weights (one per column, the same for every
// row). Results are bit-exact with ggml's `ggml_quantize_chunk` as llama-quantize calls it; see docs/formats.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "quant/error.h"

namespace quant {

// ggml type ids as stored in GGUF tensor infos. Gaps (4, 5, 31-33, 36-38) are removed types.
enum class TypeId : uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15,
  iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23,
  i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30,
  tq1_0 = 34, tq2_0 = 35, mxfp4 = 39, nvfp4 = 40, q1_0 = 41, q2_0 = 42,
};
inline constexpr uint32_t kTypeIdCount = 43;  // one past the largest id (GGML_TYPE_COUNT)

// Quantizes nrows rows of n_per_row floats into dst (nrows * row_bytes). `importance` is null or n_per_row
// weights. n_per_row is a multiple of the block size (quantize_rows checks that before calling).
using QuantizeRowsFn = void (*)(const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                                const float* importance);
// Dequantizes n values (a multiple of the block size) from src into dst.
using DequantizeFn = void (*)(const void* src, float* dst, int64_t n);
// Checks nblocks stored blocks the way ggml_validate_row_data does (finite scales, finite floats). On failure
// returns false and sets *bad_block to the index of the first bad block and *why to a short reason.
using ValidateFn = bool (*)(const void* data, int64_t nblocks, int64_t* bad_block, std::string* why);

struct FormatInfo {
  TypeId id;
  std::string_view name;        // ggml_type_name(): "q4_K", "iq2_xxs", "bf16"...
  int64_t block_size;           // values per block
  size_t block_bytes;           // bytes per block
  bool quantized;               // false for the plain number types (f32, f16, bf16, i8..f64)
  bool reads_importance;        // the quantizer uses importance weights when given
  bool requires_importance;     // ggml refuses to quantize without them
  QuantizeRowsFn quantize;      // null when we cannot write this type (q8_1, q8_K, integer types)
  DequantizeFn dequantize;      // null when the type has no float form
  ValidateFn validate;          // null when every bit pattern is valid

  double bits_per_weight() const { return 8.0 * double(block_bytes) / double(block_size); }
};

// Every known type, in id order. Removed ids have no entry.
std::span<const FormatInfo> all_formats();
// Lookup by id (nullptr for removed or unknown ids) or by name, case-insensitive ("Q4_K" finds q4_K).
const FormatInfo* find_format(TypeId id);
const FormatInfo* find_format_by_id(uint32_t id);
const FormatInfo* find_format(std::string_view name);
// The entry for a known id; the caller guarantees the id exists.
const FormatInfo& format_of(TypeId id);

// Bytes of one row of n_per_row values, or nullopt when n_per_row is not a multiple of the block size or the
// size overflows.
std::optional<uint64_t> row_bytes(const FormatInfo& format, int64_t n_per_row);

// Quantizes rows after checking what ggml would assert on: the type is writable, n_per_row is a positive
// multiple of the block size, an importance vector is present when the type requires one. Does not inspect
// the values (see convert for NaN/Inf checks) but validates the quantized output: a row whose stored scales
// are not finite (e.g. a q5_1 minimum that overflows f16) is an error naming the row.
Status quantize_rows(const FormatInfo& format, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                     const float* importance);
// Dequantizes n values (a multiple of the block size); an error when the type has no float form.
Status dequantize_values(const FormatInfo& format, const void* src, float* dst, int64_t n);
// Validates stored blocks as llama.cpp does before loading; the error names the block.
Status validate_blocks(const FormatInfo& format, const void* data, int64_t nblocks);

}  // namespace quant
