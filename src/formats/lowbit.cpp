// Low-bit symmetric formats with one f16 scale per block.
//
// q1_0: blocks of 128 values, 18 bytes = 1.125 bits per weight. Bytes 0..1 are the f16 scale d, the mean
// magnitude of the block; bit j of the 16 bytes that follow (byte j / 8, bit j % 8) is set when value j is
// >= 0. Value j reads back as +d or -d.
// q2_0: blocks of 64 values, 18 bytes = 2.25 bits per weight. Bytes 0..1 are the f16 scale d, the largest
// magnitude of the block; value j is the 2-bit code in byte 2 + j / 4, bits 2 (j % 4) .. 2 (j % 4) + 1, and
// reads back as (code - 1) * d, so codes 0..3 mean -d, 0, +d, +2d. ggml's quantizer rounds x / d, which is
// within [-1, 1], so it never writes code 3.
// ggml's quantize_q1_0 / quantize_q2_0 accept importance weights and ignore them (the reference vectors with
// and without them are identical).
#include <climits>

#include "formats/block_io.h"
#include "formats/kernels.h"

namespace quant::formats {
namespace {

constexpr int64_t kQ1Block = 128;
constexpr size_t kQ1Bytes = 18;
constexpr int64_t kQ2Block = 64;
constexpr size_t kQ2Bytes = 18;

void quantize_q1_0(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  const int64_t nblocks = nrows * n_per_row / kQ1Block;
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = src + b * kQ1Block;
    uint8_t* block = out + b * kQ1Bytes;
    float magnitude_sum = 0.0f;
    for (int64_t j = 0; j < kQ1Block; ++j) magnitude_sum += std::fabs(x[j]);
    store_f16(block, magnitude_sum / float(kQ1Block));
    uint8_t* signs = block + 2;
    std::memset(signs, 0, kQ1Block / 8);
    // ">= 0" keeps -0.0 positive and sends NaN to the negative side, as ggml's comparison does.
    for (int64_t j = 0; j < kQ1Block; ++j) {
      if (x[j] >= 0.0f) signs[j / 8] = static_cast<uint8_t>(signs[j / 8] | (1u << (j % 8)));
    }
  }
}

void dequantize_q1_0(const void* src, float* dst, int64_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kQ1Block; ++b) {
    const uint8_t* block = in + b * kQ1Bytes;
    const float d = load_f16(block);
    for (int64_t j = 0; j < kQ1Block; ++j) {
      dst[b * kQ1Block + j] = (block[2 + j / 8] >> (j % 8)) & 1 ? d : -d;
    }
  }
}

// roundf(v) converted to int the way x86 does (cvttss2si): out-of-range and NaN give INT_MIN. That happens
// only when the inverse scale is infinite (a subnormal block maximum), and the clamp then sends it to code 0.
int round_to_int_x86(float v) {
  const float rounded = std::round(v);
  if (!(rounded >= -2147483648.0f && rounded < 2147483648.0f)) return INT_MIN;
  return static_cast<int>(rounded);
}

void quantize_q2_0(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  const int64_t nblocks = nrows * n_per_row / kQ2Block;
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = src + b * kQ2Block;
    uint8_t* block = out + b * kQ2Bytes;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQ2Block; ++j) {
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]);
    }
    const float inverse_scale = amax > 0.0f ? 1.0f / amax : 0.0f;
    store_f16(block, amax);
    uint8_t* codes = block + 2;
    std::memset(codes, 0, kQ2Block / 4);
    for (int64_t j = 0; j < kQ2Block; ++j) {
      const int rounded = round_to_int_x86(x[j] * inverse_scale);
      // Adding 1 to INT_MIN must not overflow: clamp first, then shift the range [-1, 2] to [0, 3].
      const int code = rounded < -1 ? 0 : rounded > 2 ? 3 : rounded + 1;
      codes[j / 4] = static_cast<uint8_t>(codes[j / 4] | (code << (2 * (j % 4))));
    }
  }
}

void dequantize_q2_0(const void* src, float* dst, int64_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kQ2Block; ++b) {
    const uint8_t* block = in + b * kQ2Bytes;
    const float d = load_f16(block);
    for (int64_t j = 0; j < kQ2Block; ++j) {
      const int code = (block[2 + j / 4] >> (2 * (j % 4))) & 3;
      dst[b * kQ2Block + j] = float(code - 1) * d;
    }
  }
}

// Both formats: ggml checks only that the f16 scale (the first two bytes) is finite.
constexpr FormatKernels kKernels[] = {
    {TypeId::q1_0, quantize_q1_0, dequantize_q1_0, validate_scale_at<kQ1Bytes, 0>},
    {TypeId::q2_0, quantize_q2_0, dequantize_q2_0, validate_scale_at<kQ2Bytes, 0>},
};

}  // namespace

std::span<const FormatKernels> lowbit_kernels() { return kKernels; }

}  // namespace quant::formats
