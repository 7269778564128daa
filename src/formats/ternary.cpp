// Ternary formats (BitNet b1.58, TriLM): every value is -1, 0 or +1 times one f16 scale per 256 values, the
// block's largest magnitude. Neither quantizer reads importance weights (ggml ignores them).
//
// tq1_0: 54 bytes = 1.6875 bits per weight, five trits per byte.
//   bytes  0..31  trits of values m + 32n (n = 0..4) for byte m       (values 0..159)
//   bytes 32..47  trits of values 160 + m + 16n (n = 0..4) for byte m  (values 160..239)
//   bytes 48..51  trits of values 240 + j + 4n (n = 0..3) for byte j   (values 240..255)
//   bytes 52..53  f16 scale
//   A byte holds the base-3 number t0 t1 t2 t3 t4 (t0 most significant, trit = value + 1), stored as
//   ceil(number * 256 / 243) so that multiplying the byte by 3^n (mod 256) and taking the top bits of
//   three times it reads trit n. The last four bytes hold four trits and a zero in the last place.
// tq2_0: 66 bytes = 2.0625 bits per weight, four 2-bit codes (value + 1) per byte.
//   bytes  0..63  in two halves of 32 bytes; byte m of half h holds value 128h + m + 32n in bits 2n..2n+1
//   bytes 64..65  f16 scale
#include "formats/block_io.h"
#include "formats/kernels.h"

namespace quant::formats {
namespace {

constexpr int64_t kBlock = 256;
constexpr size_t kTq1Bytes = 54;
constexpr size_t kTq1ScaleOffset = 52;
constexpr size_t kTq2Bytes = 66;
constexpr size_t kTq2ScaleOffset = 64;

// The block's largest magnitude as ggml's MAX(amax, |v|) computes it: a NaN replaces the running maximum
// (and is replaced by the next value), so NaN inputs can reach the scale and fail validation.
float block_absmax(const float* x) {
  float amax = 0.0f;
  for (int64_t j = 0; j < kBlock; ++j) {
    const float magnitude = std::fabs(x[j]);
    amax = amax > magnitude ? amax : magnitude;
  }
  return amax;
}

// Trit (0, 1, 2 for -1, 0, +1) of x times the inverse scale, rounded half away from zero (ggml's lroundf).
// The product is within [-1, 1] unless the inverse scale is infinite (a subnormal scale) or the value is
// NaN: ggml then adds 1 to lroundf's LONG_MIN and keeps the low 32 bits, which is trit 1.
int ternary_digit(float scaled) {
  if (!(std::fabs(scaled) < 2.0f)) return 1;
  return static_cast<int>(std::lround(scaled)) + 1;
}

// Packs count trits, t0 most significant, into one byte; ggml's ceiling division by 243 spreads the 243
// numbers over the byte so that each trit can be read with a multiply and a shift.
uint8_t pack_trits(const int* trits, int count, bool pad_to_five) {
  unsigned number = 0;
  for (int n = 0; n < count; ++n) number = number * 3 + static_cast<unsigned>(trits[n]);
  if (pad_to_five) number *= 3;
  return static_cast<uint8_t>((number * 256 + 242) / 243);
}

// Trit n (0 = most significant) of a byte packed by pack_trits.
int unpack_trit(uint8_t byte, int n) {
  static constexpr uint8_t kPowersOfThree[5] = {1, 3, 9, 27, 81};
  const uint8_t shifted = static_cast<uint8_t>(byte * kPowersOfThree[n]);
  return (static_cast<unsigned>(shifted) * 3) >> 8;
}

// Packs `bytes` bytes of `trits_per_byte` trits each: byte m takes x[m + n * bytes] for n = 0.. .
void pack_trit_group(const float* x, float inverse_scale, int bytes, int trits_per_byte, uint8_t* out) {
  for (int m = 0; m < bytes; ++m) {
    int trits[5];
    for (int n = 0; n < trits_per_byte; ++n) trits[n] = ternary_digit(x[m + n * bytes] * inverse_scale);
    out[m] = pack_trits(trits, trits_per_byte, trits_per_byte == 4);
  }
}

void unpack_trit_group(const uint8_t* in, float scale, int bytes, int trits_per_byte, float* y) {
  for (int n = 0; n < trits_per_byte; ++n) {
    for (int m = 0; m < bytes; ++m) y[m + n * bytes] = float(unpack_trit(in[m], n) - 1) * scale;
  }
}

void quantize_tq1_0(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  const int64_t nblocks = nrows * n_per_row / kBlock;
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = src + b * kBlock;
    uint8_t* block = out + b * kTq1Bytes;
    const float scale = block_absmax(x);
    const float inverse_scale = scale != 0.0f ? 1.0f / scale : 0.0f;
    store_f16(block + kTq1ScaleOffset, scale);
    pack_trit_group(x, inverse_scale, 32, 5, block);
    pack_trit_group(x + 160, inverse_scale, 16, 5, block + 32);
    pack_trit_group(x + 240, inverse_scale, 4, 4, block + 48);
  }
}

void dequantize_tq1_0(const void* src, float* dst, int64_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kBlock; ++b) {
    const uint8_t* block = in + b * kTq1Bytes;
    float* y = dst + b * kBlock;
    const float scale = load_f16(block + kTq1ScaleOffset);
    unpack_trit_group(block, scale, 32, 5, y);
    unpack_trit_group(block + 32, scale, 16, 5, y + 160);
    unpack_trit_group(block + 48, scale, 4, 4, y + 240);
  }
}

void quantize_tq2_0(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* /*importance*/) {
  const int64_t nblocks = nrows * n_per_row / kBlock;
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = src + b * kBlock;
    uint8_t* block = out + b * kTq2Bytes;
    const float scale = block_absmax(x);
    const float inverse_scale = scale != 0.0f ? 1.0f / scale : 0.0f;
    store_f16(block + kTq2ScaleOffset, scale);
    for (int half = 0; half < 2; ++half) {
      for (int m = 0; m < 32; ++m) {
        unsigned byte = 0;
        for (int n = 0; n < 4; ++n) {
          const int code = ternary_digit(x[128 * half + m + 32 * n] * inverse_scale);
          byte |= static_cast<unsigned>(code & 3) << (2 * n);
        }
        block[32 * half + m] = static_cast<uint8_t>(byte);
      }
    }
  }
}

// Code 3 (never written by the quantizer) reads as +2, as in ggml.
void dequantize_tq2_0(const void* src, float* dst, int64_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kBlock; ++b) {
    const uint8_t* block = in + b * kTq2Bytes;
    float* y = dst + b * kBlock;
    const float scale = load_f16(block + kTq2ScaleOffset);
    for (int half = 0; half < 2; ++half) {
      for (int shift = 0; shift < 4; ++shift) {
        for (int m = 0; m < 32; ++m) {
          const int code = (block[32 * half + m] >> (2 * shift)) & 3;
          y[128 * half + 32 * shift + m] = float(code - 1) * scale;
        }
      }
    }
  }
}

// Both formats: ggml checks only that the f16 scale is finite.
constexpr FormatKernels kKernels[] = {
    {TypeId::tq1_0, quantize_tq1_0, dequantize_tq1_0, validate_scale_at<kTq1Bytes, kTq1ScaleOffset>},
    {TypeId::tq2_0, quantize_tq2_0, dequantize_tq2_0, validate_scale_at<kTq2Bytes, kTq2ScaleOffset>},
};

}  // namespace

std::span<const FormatKernels> ternary_kernels() { return kKernels; }

}  // namespace quant::formats
