// A matmul's input as ggml-cpu multiplies it: each row converted to the weight type's dot-product type and read
// back as floats. Products of the converted values with the dequantized weight equal ggml's integer/f16 dot
// products up to float rounding.
#pragma once

#include <cstdint>

#include "quant/formats.h"

namespace quant::model {

// Block length of the dot-product type (1 for the float types).
int64_t activation_block(TypeId type);

// out[i] = the value ggml's conversion of in[0..n) to `type` (f32, f16, bf16, q8_0, q8_1 or q8_K) stands for;
// n is a multiple of activation_block(type). in and out may be the same array.
//   f16, bf16: round to nearest even (F16C / ggml_cpu_fp32_to_bf16).
//   q8_0, q8_1: blocks of 32, d = amax/127 stored as f16, q = round-half-even(x·127/amax) (the x86 AVX path of
//               quantize_row_q8_0/q8_1); the value is q·f16(d). (q8_1's block sum s enters q4_1/q5_1 dot products
//               as f16(d·Σq) where we use Σ q·f16(d): a difference of f16 rounding in that term only.)
//   q8_K:       blocks of 256, iscale = -127/max (max: the first value of largest magnitude), q = min(127,
//               round-half-even(iscale·x)), d = 1/iscale (quantize_row_q8_K_ref); the value is d·q.
void round_activations(TypeId type, const float* in, float* out, int64_t n);

}  // namespace quant::model
