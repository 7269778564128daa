// Micro-float formats: 4-bit E2M1 elements sharing a small-float scale.
//
// mxfp4 (OCP Microscaling): blocks of 32 values, 17 bytes = 4.25 bits per weight.
//   byte 0      UE8M0 shared scale e: a power of two, 2^(e-127)
//   bytes 1..16 E2M1 codes, two per byte: byte 1+j holds value j in its low nibble and value j+16 in its high
// nvfp4 (NVIDIA): blocks of 64 values in 4 sub-blocks of 16, 36 bytes = 4.5 bits per weight.
//   bytes 0..3  one UE4M3 scale per sub-block
//   bytes 4..35 E2M1 codes, 8 bytes per sub-block: byte j of sub-block s holds value j (low nibble) and
//               value j+8 (high nibble) of that sub-block
// Neither quantizer reads importance weights (ggml ignores them). Scales and codes follow ggml's software
// conversions in minifloat.h.
#include "formats/kernels.h"
#include "formats/minifloat.h"

namespace quant::formats {
namespace {

constexpr int64_t kMxfp4Block = 32;
constexpr size_t kMxfp4Bytes = 17;
constexpr int64_t kNvfp4Block = 64;
constexpr int64_t kNvfp4SubBlock = 16;
constexpr int64_t kNvfp4SubBlocks = kNvfp4Block / kNvfp4SubBlock;
constexpr size_t kNvfp4Bytes = 36;

// Largest magnitude in x[0..n), skipping NaN (ggml's `if (amax < |v|)` never takes a NaN).
float max_magnitude(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
  }
  return amax;
}

// Packs n values (n even) as E2M1 codes against half_scale: value j in the low nibble of byte j, value
// j + n/2 in the high nibble.
void pack_e2m1(const float* x, int64_t n, float half_scale, uint8_t* codes) {
  for (int64_t j = 0; j < n / 2; ++j) {
    const uint8_t low = nearest_e2m1_code(x[j], half_scale);
    const uint8_t high = nearest_e2m1_code(x[j + n / 2], half_scale);
    codes[j] = static_cast<uint8_t>(low | (high << 4));
  }
}

void unpack_e2m1(const uint8_t* codes, int64_t n, float half_scale, float* y) {
  for (int64_t j = 0; j < n / 2; ++j) {
    y[j] = float(kE2M1Doubled[codes[j] & 0x0f]) * half_scale;
    y[j + n / 2] = float(kE2M1Doubled[codes[j] >> 4]) * half_scale;
  }
}

void quantize_mxfp4(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  const int64_t nblocks = nrows * n_per_row / kMxfp4Block;
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = src + b * kMxfp4Block;
    uint8_t* block = out + b * kMxfp4Bytes;
    // ggml picks 2^(floor(log2 amax) - 2): the largest E2M1 value 6 then reaches 1.5 * 2^floor(log2 amax).
    const uint8_t e = e8m0_floor_log2(max_magnitude(x, kMxfp4Block), 125.0f);
    block[0] = e;
    pack_e2m1(x, kMxfp4Block, e8m0_to_float_half(e), block + 1);
  }
}

void dequantize_mxfp4(const void* src, float* dst, int64_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kMxfp4Block; ++b) {
    const uint8_t* block = in + b * kMxfp4Bytes;
    unpack_e2m1(block + 1, kMxfp4Block, e8m0_to_float_half(block[0]), dst + b * kMxfp4Block);
  }
}

// ggml rejects only the UE8M0 code 255 (NaN in the OCP spec).
bool validate_mxfp4(const void* data, int64_t nblocks, int64_t* bad_block, std::string* why) {
  const auto* in = static_cast<const uint8_t*>(data);
  for (int64_t b = 0; b < nblocks; ++b) {
    if (in[b * kMxfp4Bytes] == 0xff) {
      *bad_block = b;
      *why = "shared exponent is 0xff (NaN)";
      return false;
    }
  }
  return true;
}

void quantize_nvfp4(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  const int64_t nblocks = nrows * n_per_row / kNvfp4Block;
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nblocks; ++b) {
    uint8_t* block = out + b * kNvfp4Bytes;
    for (int64_t s = 0; s < kNvfp4SubBlocks; ++s) {
      const float* x = src + b * kNvfp4Block + s * kNvfp4SubBlock;
      // The scale maps E2M1's largest value 6 onto the sub-block's largest magnitude.
      const uint8_t scale = float_to_ue4m3(max_magnitude(x, kNvfp4SubBlock) / 6.0f);
      block[s] = scale;
      pack_e2m1(x, kNvfp4SubBlock, ue4m3_to_float_half(scale), block + kNvfp4SubBlocks + s * kNvfp4SubBlock / 2);
    }
  }
}

void dequantize_nvfp4(const void* src, float* dst, int64_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kNvfp4Block; ++b) {
    const uint8_t* block = in + b * kNvfp4Bytes;
    for (int64_t s = 0; s < kNvfp4SubBlocks; ++s) {
      unpack_e2m1(block + kNvfp4SubBlocks + s * kNvfp4SubBlock / 2, kNvfp4SubBlock, ue4m3_to_float_half(block[s]),
                  dst + b * kNvfp4Block + s * kNvfp4SubBlock);
    }
  }
}

// nvfp4 has no validator: ggml accepts every UE4M3 byte (0x7f and the sign bit both read as values).
constexpr FormatKernels kKernels[] = {
    {TypeId::mxfp4, quantize_mxfp4, dequantize_mxfp4, validate_mxfp4},
    {TypeId::nvfp4, quantize_nvfp4, dequantize_nvfp4, nullptr},
};

}  // namespace

std::span<const FormatKernels> microfloat_kernels() { return kKernels; }

}  // namespace quant::formats
