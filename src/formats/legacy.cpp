// The legacy block types q4_0, q4_1, q5_0, q5_1 and q8_0: 32 values a block, one f16 scale (and for the _1
// types an f16 minimum), 4, 5 or 8 bits a value. Layouts and scale choices are described in
// docs/formats/plain-and-legacy.md.
//
// Without importance weights these follow ggml's reference row quantizers (quantize_row_<t>_ref), which is what
// ggml_quantize_chunk runs; with them, the weighted searches of legacy_search.h, where every weight is
// importance[j] * sqrt(sigma2 + x[j]^2) and sigma2 is the mean square of the whole row. Blocks are assembled
// in a local struct and copied out, so src and dst need no alignment. Fields are stored little-endian.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "formats/block_io.h"
#include "formats/kernels.h"
#include "formats/legacy_search.h"

namespace quant::formats {
namespace {

constexpr int kBlock = 32;

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kBlock / 2];  // value j in the low nibble of qs[j], value j + 16 in the high nibble
};
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kBlock / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // bit j: the fifth bit of value j
  uint8_t qs[kBlock / 2];
};
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kBlock / 2];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kBlock];
};
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34);

// ggml stores quantized levels with C casts from float to (u)int8_t, which GCC compiles to x86's truncating
// 32-bit conversion and keeps the low byte; that conversion gives INT32_MIN for NaN and out-of-range values.
// Reproducing it keeps degenerate blocks (a subnormal scale whose inverse overflows) identical to ggml's.
int32_t truncate_like_x86(float v) {
  if (!(v >= -2147483648.0f && v < 2147483648.0f)) return INT32_MIN;
  return static_cast<int32_t>(v);
}
int8_t low_byte_signed(int32_t v) { return static_cast<int8_t>(static_cast<uint8_t>(v & 0xff)); }
uint8_t low_byte(int32_t v) { return static_cast<uint8_t>(v & 0xff); }

// Splits 32 five-bit levels into packed low nibbles and a 32-bit mask of fifth bits.
void pack_five_bit(const uint8_t* levels, uint8_t* qs, uint8_t* qh) {
  uint32_t high_bits = 0;
  for (int j = 0; j < kBlock / 2; ++j) {
    const uint8_t first = levels[j];
    const uint8_t second = levels[j + kBlock / 2];
    qs[j] = static_cast<uint8_t>((first & 0x0f) | ((second & 0x0f) << 4));
    high_bits |= static_cast<uint32_t>((first >> 4) & 1u) << j;
    high_bits |= static_cast<uint32_t>((second >> 4) & 1u) << (j + kBlock / 2);
  }
  std::memcpy(qh, &high_bits, 4);
}

// The fifth bits of a q5 block, bit j for value j.
uint32_t unpack_high_bits(const uint8_t* qh) {
  uint32_t high_bits;
  std::memcpy(&high_bits, qh, 4);
  return high_bits;
}

// The signed value of largest magnitude in a block (the first one when magnitudes tie).
float signed_absmax(const float* x) {
  float magnitude = 0.0f;
  float value = 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    if (magnitude < std::fabs(x[j])) {
      magnitude = std::fabs(x[j]);
      value = x[j];
    }
  }
  return value;
}

// Smallest and largest value of a block.
void block_range(const float* x, float* low, float* high) {
  *low = std::numeric_limits<float>::max();
  *high = -std::numeric_limits<float>::max();
  for (int j = 0; j < kBlock; ++j) {
    if (x[j] < *low) *low = x[j];
    if (x[j] > *high) *high = x[j];
  }
}

// Importance of each value of one block: importance[j] * sqrt(sigma2 + x[j]^2).
void block_weights(const float* x, const float* importance, float sigma2, float* weights) {
  for (int j = 0; j < kBlock; ++j) weights[j] = importance[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

// Mean square of a row, summed in order in float32 as ggml does.
float row_mean_square(const float* row, int64_t n) {
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum += row[j] * row[j];
  return sum / static_cast<float>(n);
}

// ---- q4_0 and q5_0: symmetric, scale = signed absmax / -2^(bits-1) ----

// The reference rule: the largest-magnitude value maps to level 0 (value -2^(bits-1) * d), the rest round
// half up by adding bias + 0.5 and truncating.
template <int kLevels>
void reference_symmetric_levels(const float* x, uint16_t* d_field, uint8_t* levels) {
  constexpr int kBias = kLevels / 2;
  const float d = signed_absmax(x) / static_cast<float>(-kBias);
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  *d_field = fp32_to_fp16(d);
  for (int j = 0; j < kBlock; ++j) {
    const int8_t level = low_byte_signed(truncate_like_x86(x[j] * inverse + (static_cast<float>(kBias) + 0.5f)));
    levels[j] = static_cast<uint8_t>(std::min<int>(kLevels - 1, level));
  }
}

// The weighted rule: ggml's symmetric search with nmax = 2^(bits-1) per block, sigma2 over the whole row.
template <int kLevels>
void weighted_symmetric_levels(const float* x, const float* importance, float sigma2, uint16_t* d_field,
                               uint8_t* levels) {
  float weights[kBlock];
  int8_t signed_levels[kBlock];
  block_weights(x, importance, sigma2, weights);
  const float d = search_symmetric_scale(kBlock, kLevels / 2, x, weights, signed_levels);
  *d_field = fp32_to_fp16(d);
  for (int j = 0; j < kBlock; ++j) levels[j] = static_cast<uint8_t>(signed_levels[j]);
}

// Quantizes rows block by block with quantize_block(x, importance or null, row sigma2, block); sigma2, the mean
// square of the whole row, is computed only when importance weights are given.
template <typename Block, typename QuantizeBlock>
void quantize_each_block(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance,
                         QuantizeBlock quantize_block) {
  const int64_t blocks_per_row = n_per_row / kBlock;
  for (int64_t row = 0; row < nrows; ++row) {
    const float* x = src + row * n_per_row;
    const float sigma2 = importance != nullptr ? row_mean_square(x, n_per_row) : 0.0f;
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      const float* block_importance = importance != nullptr ? importance + b * kBlock : nullptr;
      Block block{};
      quantize_block(x + b * kBlock, block_importance, sigma2, block);
      store_block(dst, row * blocks_per_row + b, block);
    }
  }
}

// One q4_0 block: the reference rule without importance weights, the weighted search with them; nibble-packed.
void quantize_block_q4_0(const float* x, const float* importance, float sigma2, BlockQ4_0& block) {
  uint8_t levels[kBlock];
  if (importance == nullptr) {
    reference_symmetric_levels<16>(x, &block.d, levels);
  } else {
    weighted_symmetric_levels<16>(x, importance, sigma2, &block.d, levels);
  }
  for (int j = 0; j < kBlock / 2; ++j) {
    block.qs[j] = static_cast<uint8_t>(levels[j] | (levels[j + 16] << 4));
  }
}

void quantize_q4_0(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_each_block<BlockQ4_0>(src, dst, nrows, n_per_row, importance, quantize_block_q4_0);
}

// One q5_0 block: as q4_0 with 32 levels; the fifth bits go to qh.
void quantize_block_q5_0(const float* x, const float* importance, float sigma2, BlockQ5_0& block) {
  uint8_t levels[kBlock];
  if (importance == nullptr) {
    reference_symmetric_levels<32>(x, &block.d, levels);
  } else {
    weighted_symmetric_levels<32>(x, importance, sigma2, &block.d, levels);
  }
  pack_five_bit(levels, block.qs, block.qh);
}

void quantize_q5_0(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_each_block<BlockQ5_0>(src, dst, nrows, n_per_row, importance, quantize_block_q5_0);
}

// ---- q4_1 and q5_1: scale and minimum ----

// The reference rule: minimum = smallest value, scale = range / (2^bits - 1), levels rounded half up.
// q4_1 clamps the top level; q5_1 does not (ggml's reference does not either).
template <int kLevels, bool kClampTop>
void reference_offset_levels(const float* x, uint16_t* d_field, uint16_t* m_field, uint8_t* levels) {
  float low, high;
  block_range(x, &low, &high);
  const float d = (high - low) / static_cast<float>(kLevels - 1);
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  *d_field = fp32_to_fp16(d);
  *m_field = fp32_to_fp16(low);
  for (int j = 0; j < kBlock; ++j) {
    const int32_t truncated = truncate_like_x86((x[j] - low) * inverse + 0.5f);
    if constexpr (kClampTop) {
      levels[j] = static_cast<uint8_t>(std::min<int>(kLevels - 1, low_byte_signed(truncated)));
    } else {
      levels[j] = low_byte(truncated);
    }
  }
}

// The weighted rule: ggml's offset search with 37 candidate scales from (nmax - 0.9) to (nmax + 0.9).
template <int kLevels>
void weighted_offset_levels(const float* x, const float* importance, float sigma2, uint16_t* d_field,
                            uint16_t* m_field, uint8_t* levels) {
  float weights[kBlock];
  block_weights(x, importance, sigma2, weights);
  float offset = 0.0f;
  const float d = search_offset_scale(kBlock, kLevels - 1, x, weights, levels, &offset, -0.9f, 0.05f, 36);
  *d_field = fp32_to_fp16(d);
  *m_field = fp32_to_fp16(offset);
}

// One q4_1 block: the reference range rule without importance weights, the weighted offset search with them.
void quantize_block_q4_1(const float* x, const float* importance, float sigma2, BlockQ4_1& block) {
  uint8_t levels[kBlock];
  if (importance == nullptr) {
    reference_offset_levels<16, true>(x, &block.d, &block.m, levels);
  } else {
    weighted_offset_levels<16>(x, importance, sigma2, &block.d, &block.m, levels);
  }
  for (int j = 0; j < kBlock / 2; ++j) {
    block.qs[j] = static_cast<uint8_t>(levels[j] | (levels[j + 16] << 4));
  }
}

void quantize_q4_1(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_each_block<BlockQ4_1>(src, dst, nrows, n_per_row, importance, quantize_block_q4_1);
}

// One q5_1 block: as q4_1 with 32 levels; the fifth bits go to qh.
void quantize_block_q5_1(const float* x, const float* importance, float sigma2, BlockQ5_1& block) {
  uint8_t levels[kBlock];
  if (importance == nullptr) {
    reference_offset_levels<32, false>(x, &block.d, &block.m, levels);
  } else {
    weighted_offset_levels<32>(x, importance, sigma2, &block.d, &block.m, levels);
  }
  pack_five_bit(levels, block.qs, block.qh);
}

void quantize_q5_1(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_each_block<BlockQ5_1>(src, dst, nrows, n_per_row, importance, quantize_block_q5_1);
}

// ---- q8_0 ----

// One q8_0 block: scale absmax / 127, levels rounded half away from zero (importance is ignored, as in ggml).
void quantize_block_q8_0(const float* x, const float* /*importance*/, float /*sigma2*/, BlockQ8_0& block) {
  float magnitude = 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    // ggml's MAX(a, b) form, which also decides how a NaN propagates
    const float v = std::fabs(x[j]);
    magnitude = magnitude > v ? magnitude : v;
  }
  const float d = magnitude / 127.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  block.d = fp32_to_fp16(d);
  for (int j = 0; j < kBlock; ++j) {
    block.qs[j] = low_byte_signed(truncate_like_x86(std::round(x[j] * inverse)));
  }
}

void quantize_q8_0(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  quantize_each_block<BlockQ8_0>(src, dst, nrows, n_per_row, nullptr, quantize_block_q8_0);
}

// ---- dequantization: value = level * d (+ m), levels of the symmetric types re-centred ----

void dequantize_q4_0(const void* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kBlock; ++b, dst += kBlock) {
    const auto block = load_block<BlockQ4_0>(src, b);
    const float d = fp16_to_fp32(block.d);
    for (int j = 0; j < kBlock / 2; ++j) {
      dst[j] = static_cast<float>((block.qs[j] & 0x0f) - 8) * d;
      dst[j + 16] = static_cast<float>((block.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const void* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kBlock; ++b, dst += kBlock) {
    const auto block = load_block<BlockQ4_1>(src, b);
    const float d = fp16_to_fp32(block.d);
    const float m = fp16_to_fp32(block.m);
    for (int j = 0; j < kBlock / 2; ++j) {
      dst[j] = static_cast<float>(block.qs[j] & 0x0f) * d + m;
      dst[j + 16] = static_cast<float>(block.qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const void* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kBlock; ++b, dst += kBlock) {
    const auto block = load_block<BlockQ5_0>(src, b);
    const float d = fp16_to_fp32(block.d);
    const uint32_t high_bits = unpack_high_bits(block.qh);
    for (int j = 0; j < kBlock / 2; ++j) {
      const int first = (block.qs[j] & 0x0f) | static_cast<int>(((high_bits >> j) & 1u) << 4);
      const int second = (block.qs[j] >> 4) | static_cast<int>(((high_bits >> (j + 16)) & 1u) << 4);
      dst[j] = static_cast<float>(first - 16) * d;
      dst[j + 16] = static_cast<float>(second - 16) * d;
    }
  }
}

void dequantize_q5_1(const void* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kBlock; ++b, dst += kBlock) {
    const auto block = load_block<BlockQ5_1>(src, b);
    const float d = fp16_to_fp32(block.d);
    const float m = fp16_to_fp32(block.m);
    const uint32_t high_bits = unpack_high_bits(block.qh);
    for (int j = 0; j < kBlock / 2; ++j) {
      const int first = (block.qs[j] & 0x0f) | static_cast<int>(((high_bits >> j) & 1u) << 4);
      const int second = (block.qs[j] >> 4) | static_cast<int>(((high_bits >> (j + 16)) & 1u) << 4);
      dst[j] = static_cast<float>(first) * d + m;
      dst[j + 16] = static_cast<float>(second) * d + m;
    }
  }
}

void dequantize_q8_0(const void* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kBlock; ++b, dst += kBlock) {
    const auto block = load_block<BlockQ8_0>(src, b);
    const float d = fp16_to_fp32(block.d);
    for (int j = 0; j < kBlock; ++j) dst[j] = static_cast<float>(block.qs[j]) * d;
  }
}

// The validate of q4_1/q5_1: d and m of every block must be finite f16.
template <typename Block>
bool validate_scale_and_min(const void* data, int64_t nblocks, int64_t* bad_block, std::string* why) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const auto block = load_block<Block>(data, b);
    if (!f16_bits_finite(block.d) || !f16_bits_finite(block.m)) {
      *bad_block = b;
      *why = !f16_bits_finite(block.d) ? describe_bad_f16("scale d", block.d) : describe_bad_f16("minimum m", block.m);
      return false;
    }
  }
  return true;
}

// ggml_validate_row_data checks that d (and, for q4_1/q5_1, m) are finite f16.
constexpr FormatKernels kLegacyKernels[] = {
    {TypeId::q4_0, quantize_q4_0, dequantize_q4_0, validate_scale_d<BlockQ4_0>},
    {TypeId::q4_1, quantize_q4_1, dequantize_q4_1, validate_scale_and_min<BlockQ4_1>},
    {TypeId::q5_0, quantize_q5_0, dequantize_q5_0, validate_scale_d<BlockQ5_0>},
    {TypeId::q5_1, quantize_q5_1, dequantize_q5_1, validate_scale_and_min<BlockQ5_1>},
    {TypeId::q8_0, quantize_q8_0, dequantize_q8_0, validate_scale_d<BlockQ8_0>},
};

}  // namespace

std::span<const FormatKernels> legacy_kernels() { return kLegacyKernels; }

}  // namespace quant::formats
