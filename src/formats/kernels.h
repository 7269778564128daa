// How format families plug into the table (src/formats/table.cpp).
//
// Each family file (float_formats.cpp, legacy.cpp, kquants.cpp, ...) lists the kernels it implements by type id;
// the table joins these with the type metadata. Adding a format is adding its kernels to its family's list.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>

#include "quant/formats.h"
#include "quant/half.h"

namespace quant::formats {

struct FormatKernels {
  TypeId id;
  QuantizeRowsFn quantize;
  DequantizeFn dequantize;
  ValidateFn validate;
};

std::span<const FormatKernels> float_kernels();       // f32, f16, bf16
std::span<const FormatKernels> legacy_kernels();      // q4_0, q4_1, q5_0, q5_1, q8_0
std::span<const FormatKernels> kquant_kernels();      // q2_K .. q6_K
std::span<const FormatKernels> nonlinear_kernels();   // iq4_nl, iq4_xs
std::span<const FormatKernels> ternary_kernels();     // tq1_0, tq2_0
std::span<const FormatKernels> microfloat_kernels();  // mxfp4, nvfp4
std::span<const FormatKernels> lowbit_kernels();      // q1_0, q2_0
std::span<const FormatKernels> iq1_iq2_kernels();     // iq1_s, iq1_m, iq2_xxs, iq2_xs, iq2_s (shared grids)
std::span<const FormatKernels> iq3_kernels();         // iq3_xxs, iq3_s

// Rounds to the nearest integer, ties to even, as ggml's nearest_int does (valid for |x| < 2^22): adding
// 1.5 * 2^23 pushes the fraction out of the mantissa under the default rounding mode.
inline int nearest_int(float x) {
  const float shifted = x + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// Little-endian f16 fields inside blocks.
inline float load_f16(const uint8_t* p) { uint16_t h; std::memcpy(&h, p, 2); return fp16_to_fp32(h); }
inline void store_f16(uint8_t* p, float f) { const uint16_t h = fp32_to_fp16(f); std::memcpy(p, &h, 2); }
inline bool f16_is_finite(const uint8_t* p) { uint16_t h; std::memcpy(&h, p, 2); return (h & 0x7c00u) != 0x7c00u; }

}  // namespace quant::formats
