// Whole-block access and the finite-scale checks of ggml_validate_row_data shared by the scalar format files
// (legacy.cpp, nonlinear.cpp, iq3.cpp, lowbit.cpp, ternary.cpp). Blocks are plain byte layouts read and
// written with memcpy, so the data needs no alignment.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "formats/kernels.h"

namespace quant::formats {

// Block `index` of an array of Blocks at `src`.
template <typename Block>
Block load_block(const void* src, int64_t index) {
  Block block;
  std::memcpy(&block, static_cast<const uint8_t*>(src) + index * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
  return block;
}

// Stores `block` as block `index` of an array of Blocks at `dst`.
template <typename Block>
void store_block(void* dst, int64_t index, const Block& block) {
  std::memcpy(static_cast<uint8_t*>(dst) + index * static_cast<int64_t>(sizeof(Block)), &block, sizeof(Block));
}

// Calls quantize_block(x, importance or null, out) for every block of kBlockValues values of every row, in
// order, each writing the next block_bytes of dst; the importance vector repeats per row.
template <int64_t kBlockValues, typename QuantizeBlock>
void for_each_block(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance,
                    int64_t block_bytes, QuantizeBlock quantize_block) {
  uint8_t* out = static_cast<uint8_t*>(dst);
  const int64_t blocks = n_per_row / kBlockValues;
  for (int64_t row = 0; row < nrows; ++row) {
    for (int64_t b = 0; b < blocks; ++b) {
      quantize_block(src + row * n_per_row + b * kBlockValues,
                     importance == nullptr ? nullptr : importance + b * kBlockValues, out);
      out += block_bytes;
    }
  }
}

// True unless the f16 bits `h` have the all-ones exponent (infinity or NaN).
inline bool f16_bits_finite(uint16_t h) { return (h & 0x7c00u) != 0x7c00u; }

// "<field> is NaN (f16 0x7e00)" or "... is infinite ...", for a field f16_bits_finite refused.
inline std::string describe_bad_f16(const char* field, uint16_t h) {
  return fmt::format("{} is {} (f16 0x{:04x})", field, (h & 0x03ffu) != 0 ? "NaN" : "infinite", h);
}

// The FormatKernels validate of a Block whose only checked field is its f16 scale `d`: finds the first block
// whose d is not finite.
template <typename Block>
bool validate_scale_d(const void* data, int64_t nblocks, int64_t* bad_block, std::string* why) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint16_t d = load_block<Block>(data, b).d;
    if (!f16_bits_finite(d)) {
      *bad_block = b;
      *why = describe_bad_f16("scale d", d);
      return false;
    }
  }
  return true;
}

// The same for blocks of kBlockBytes bytes with their f16 scale at byte kScaleOffset (the formats that read
// blocks as raw bytes); the reason is "scale is NaN" or "scale is infinite".
template <size_t kBlockBytes, size_t kScaleOffset>
bool validate_scale_at(const void* data, int64_t nblocks, int64_t* bad_block, std::string* why) {
  const auto* in = static_cast<const uint8_t*>(data);
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* scale = in + b * kBlockBytes + kScaleOffset;
    if (!f16_is_finite(scale)) {
      *bad_block = b;
      uint16_t bits;
      std::memcpy(&bits, scale, 2);
      *why = (bits & 0x03ffu) != 0 ? "scale is NaN" : "scale is infinite";
      return false;
    }
  }
  return true;
}

}  // namespace quant::formats
