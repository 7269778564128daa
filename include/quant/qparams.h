// Affine integer quantization parameters: integer grids, scale and zero point, quantize / dequantize.
//
// A value x maps to the code q = clamp(round(x / s) + z, qmin, qmax), rounding half to even, and back to
// x' = s * (q - z). The grid [qmin, qmax] follows from the width (2..8 bits), the signedness, symmetric or
// affine, narrow range (drop the most negative code of a signed grid) and reduced range (halve the grid).
// How a range [lo, hi] becomes (s, z) is where PyTorch, ONNX Runtime and TensorRT disagree; each is a
// Convention (docs/calibration.md has the table of every difference):
//   quantize     our default: signed symmetric s = amax / (2^(b-1) - 1) on the narrow grid [-127, 127], unsigned
//                symmetric [0, 254] with z = 127, affine in float32 as torch does; an all-zero range gives s = 1.
//   torch        torch.ao observers' _calculate_qparams: symmetric s = amax / ((qmax - qmin) / 2), eps = 2^-23.
//   onnxruntime  onnxruntime.quantization compute_scale_zp (1.30): division in float64, no zero-point clamp.
//   tensorrt     pytorch-quantization: s = amax / (2^(b-1+unsigned) - 1), z = 0, amax <= 2^-24 gives s = 1.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quant/error.h"

namespace quant {

enum class Convention { quantize, torch, onnxruntime, tensorrt };

std::string_view convention_name(Convention convention);
Result<Convention> parse_convention(std::string_view name);

// The integer type values are quantized to, and how the grid is laid over the range.
struct QuantSpec {
  int bits = 8;               // 2..8
  bool is_signed = true;
  bool symmetric = false;     // zero maps to the middle of the grid, range is [-amax, amax]
  bool narrow_range = false;  // signed grids drop their most negative code ([-127, 127] for int8)
  bool reduce_range = false;  // one bit less of range (torch's and ORT's reduce_range)
};

// "int8", "uint8", "int4", "uint4", or "intN" / "uintN" for N in 2..8.
Result<QuantSpec> parse_dtype(std::string_view name);
std::string dtype_name(const QuantSpec& spec);

struct IntegerRange {
  int64_t min = 0;
  int64_t max = 0;
};

// The grid [qmin, qmax] a convention uses for a spec.
Result<IntegerRange> integer_range(const QuantSpec& spec, Convention convention);

struct QParams {
  float scale = 1.0f;
  int64_t zero_point = 0;
  IntegerRange range;
};

// The scale and zero point a convention gives for the calibrated range [lo, hi] (lo <= hi).
Result<QParams> compute_qparams(float lo, float hi, const QuantSpec& spec, Convention convention);

// Rounds half to even, as torch.round, numpy.round and ONNX QuantizeLinear do.
float round_half_even(float value);
double round_half_even(double value);

// q = clamp(round(x / s) + z, qmin, qmax).
int32_t quantize_value(float x, const QParams& params);
// x' = s * (q - z).
float dequantize_value(int32_t q, const QParams& params);

// Which values share one QParams: the whole tensor, a slice along one axis, or runs of N consecutive values
// along the last axis.
struct QuantLayout {
  enum class Granularity { per_tensor, per_channel, per_group };
  Granularity granularity = Granularity::per_tensor;
  int axis = 0;             // per_channel: the channel axis (negative counts from the end)
  int64_t group_size = 0;   // per_group: values per group; must divide the last dimension
};

// How many QParams a layout needs for a tensor of this shape, or an error if the layout does not fit it.
Result<int64_t> qparams_count(std::span<const int64_t> shape, const QuantLayout& layout);

// Quantizes / dequantizes a whole tensor (C order); `params` holds qparams_count() entries.
Result<std::vector<int32_t>> quantize_tensor(std::span<const float> values, std::span<const int64_t> shape,
                                             const QuantLayout& layout, std::span<const QParams> params);
Result<std::vector<float>> dequantize_tensor(std::span<const int32_t> codes, std::span<const int64_t> shape,
                                             const QuantLayout& layout, std::span<const QParams> params);

// What a float32 -> float16 cast lost. Casting rounds to nearest even (quant/half.h); `clamp_for_onnx` first
// moves magnitudes in (0, 1e-7) up to 1e-7 and above 1e4 down to 1e4, as onnxconverter_common's
// convert_float_to_float16 does.
struct Fp16CastStats {
  uint64_t overflow = 0;    // finite values that became infinity
  uint64_t underflow = 0;   // non-zero values that became zero
  uint64_t subnormal = 0;   // values that landed on a subnormal half
  uint64_t clamped = 0;     // values moved by the ONNX clamp
  uint64_t nan = 0;
};

Fp16CastStats cast_to_fp16(std::span<const float> values, std::span<uint16_t> out, bool clamp_for_onnx = false);

}  // namespace quant
