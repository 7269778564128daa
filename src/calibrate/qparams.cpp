// Integer grids and scale / zero-point arithmetic for each convention (include/quant/qparams.h).
#include "quant/qparams.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <limits>

#include "quant/half.h"

namespace quant {

namespace {

// torch.ao's default eps (torch.finfo(torch.float32).eps).
constexpr float kTorchEps = 1.1920928955078125e-07f;
// pytorch-quantization treats amax at or below 2^-24 as zero.
constexpr float kTensorrtTinyAmax = 5.9604644775390625e-08f;

// Floor division of integers, as Python's // (torch halves custom ranges with it).
int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

IntegerRange full_range(const QuantSpec& spec) {
  if (spec.is_signed) return {-(int64_t{1} << (spec.bits - 1)), (int64_t{1} << (spec.bits - 1)) - 1};
  return {0, (int64_t{1} << spec.bits) - 1};
}

Result<IntegerRange> torch_range(const QuantSpec& spec) {
  IntegerRange r = full_range(spec);
  if (spec.narrow_range) {
    if (spec.is_signed) r.min += 1;
    else r.max -= 1;
  }
  if (spec.reduce_range) {
    if (spec.symmetric && !spec.is_signed) {
      return usage_error("torch has no symmetric unsigned grid with reduce_range (it raises NotImplementedError)");
    }
    r = {floor_div(r.min, 2), floor_div(r.max, 2)};
  }
  return r;
}

// onnxruntime get_qmin_qmax_for_qType (1.30): reduced table first, then the symmetric table, then full range.
// Only INT8 has a symmetric entry; other widths follow the same shape as 8 and 4 bits.
IntegerRange onnxruntime_range(const QuantSpec& spec) {
  if (spec.reduce_range) {
    if (spec.is_signed && spec.bits == 8) return {-64, 64};
    if (spec.is_signed) return {-(int64_t{1} << (spec.bits - 2)), (int64_t{1} << (spec.bits - 2)) - 1};
    return {0, (int64_t{1} << (spec.bits - 1)) - 1};
  }
  IntegerRange r = full_range(spec);
  if (spec.is_signed && ((spec.symmetric && spec.bits == 8) || spec.narrow_range)) r.min += 1;
  return r;
}

IntegerRange tensorrt_range(const QuantSpec& spec) {
  const int64_t bound = (int64_t{1} << (spec.bits - 1 + (spec.is_signed ? 0 : 1))) - 1;
  if (!spec.is_signed) return {0, bound};
  return {spec.narrow_range ? -bound : -bound - 1, bound};
}

// Our default: symmetric grids are symmetric about the zero point.
IntegerRange quantize_range(const QuantSpec& spec) {
  IntegerRange r = full_range(spec);
  if (spec.symmetric || spec.narrow_range) {
    if (spec.is_signed) r.min += 1;
    else r.max -= 1;
  }
  if (spec.reduce_range) r = {floor_div(r.min, 2), floor_div(r.max, 2)};
  return r;
}

int64_t clamp_code(int64_t z, const IntegerRange& r) { return std::clamp(z, r.min, r.max); }

QParams torch_qparams(float lo, float hi, const QuantSpec& spec, const IntegerRange& r) {
  const float neg = std::min(lo, 0.0f);
  const float pos = std::max(hi, 0.0f);
  QParams p;
  p.range = r;
  if (spec.symmetric) {
    const float amax = std::max(-neg, pos);
    // (qmax - qmin) / 2 is a Python float; torch divides the float32 tensor by it in float32.
    const float half_levels = static_cast<float>(static_cast<double>(r.max - r.min) / 2.0);
    p.scale = std::max(amax / half_levels, kTorchEps);
    // quint8 on its default grid uses 128; a customised grid (4 bits, narrow) uses the floor of the middle.
    const bool default_uint8_grid = spec.bits == 8 && !spec.narrow_range && !spec.reduce_range;
    p.zero_point = spec.is_signed ? 0 : (default_uint8_grid ? 128 : floor_div(r.min + r.max, 2));
    return p;
  }
  p.scale = std::max((pos - neg) / static_cast<float>(r.max - r.min), kTorchEps);
  const float shifted = round_half_even(neg / p.scale);
  p.zero_point = clamp_code(r.min - static_cast<int64_t>(shifted), r);
  return p;
}

QParams onnxruntime_qparams(float lo, float hi, const QuantSpec& spec, const IntegerRange& r) {
  float rmin = std::min(lo, 0.0f);
  float rmax = std::max(hi, 0.0f);
  if (spec.symmetric) {
    const float amax = std::max(std::fabs(rmin), std::fabs(rmax));
    rmin = -amax;
    rmax = amax;
  }
  QParams p;
  p.range = r;
  // The span is a float32 subtraction; the division happens in float64 and the scale is cast at the end.
  const double scale = static_cast<double>(rmax - rmin) / static_cast<double>(r.max - r.min);
  if (scale < static_cast<double>(std::numeric_limits<float>::min())) {
    p.scale = 1.0f;
    p.zero_point = 0;
    return p;
  }
  if (spec.symmetric) {
    p.zero_point = static_cast<int64_t>(round_half_even(static_cast<double>(r.min + r.max) / 2.0));
  } else {
    p.zero_point = static_cast<int64_t>(round_half_even(static_cast<double>(r.min) - rmin / scale));
  }
  p.scale = static_cast<float>(scale);
  return p;
}

QParams tensorrt_qparams(float lo, float hi, const QuantSpec& spec, const IntegerRange& r) {
  const float amax = std::max(std::fabs(lo), std::fabs(hi));
  const float bound = static_cast<float>((int64_t{1} << (spec.bits - 1 + (spec.is_signed ? 0 : 1))) - 1);
  QParams p;
  p.range = r;
  p.scale = amax <= kTensorrtTinyAmax ? 1.0f : amax / bound;
  p.zero_point = 0;
  return p;
}

QParams quantize_qparams(float lo, float hi, const QuantSpec& spec, const IntegerRange& r) {
  const float neg = std::min(lo, 0.0f);
  const float pos = std::max(hi, 0.0f);
  QParams p;
  p.range = r;
  const int64_t middle = spec.is_signed ? 0 : floor_div(r.min + r.max, 2);
  if (pos - neg == 0.0f) {  // nothing but zeros: any scale represents them; 1 keeps dequantization exact
    p.scale = 1.0f;
    p.zero_point = spec.symmetric ? middle : clamp_code(0, r);
    return p;
  }
  if (spec.symmetric) {
    const float amax = std::max(-neg, pos);
    p.scale = std::max(amax / static_cast<float>(r.max - middle), kTorchEps);
    p.zero_point = middle;
    return p;
  }
  p.scale = std::max((pos - neg) / static_cast<float>(r.max - r.min), kTorchEps);
  p.zero_point = clamp_code(r.min - static_cast<int64_t>(round_half_even(neg / p.scale)), r);
  return p;
}

// Multiplies out a shape, failing on overflow or negative dimensions.
Result<int64_t> element_count(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return usage_error(fmt::format("negative dimension {} in shape", d));
    if (__builtin_mul_overflow(n, d, &n)) return usage_error("shape has more elements than fit in 64 bits");
  }
  return n;
}

// For each flat element index, which QParams entry applies; returned as a callable over (index).
struct ParamIndexer {
  QuantLayout::Granularity granularity;
  int64_t inner = 1;     // per channel: elements after the channel axis
  int64_t channels = 1;  // per channel: size of the channel axis
  int64_t group = 1;
  int64_t operator()(int64_t i) const {
    switch (granularity) {
      case QuantLayout::Granularity::per_tensor: return 0;
      case QuantLayout::Granularity::per_channel: return (i / inner) % channels;
      case QuantLayout::Granularity::per_group: return i / group;
    }
    return 0;
  }
};

Result<ParamIndexer> make_indexer(std::span<const int64_t> shape, const QuantLayout& layout) {
  ParamIndexer ix{layout.granularity};
  if (layout.granularity == QuantLayout::Granularity::per_channel) {
    const int rank = static_cast<int>(shape.size());
    const int axis = layout.axis < 0 ? layout.axis + rank : layout.axis;
    if (axis < 0 || axis >= rank) {
      return usage_error(fmt::format("channel axis {} is outside a tensor of rank {}", layout.axis, rank));
    }
    ix.channels = shape[axis];
    for (int d = axis + 1; d < rank; ++d) ix.inner *= shape[d];
  } else if (layout.granularity == QuantLayout::Granularity::per_group) {
    if (layout.group_size <= 0) return usage_error("group size must be positive");
    const int64_t last = shape.empty() ? 1 : shape.back();
    if (last % layout.group_size != 0) {
      return usage_error(fmt::format("group size {} does not divide the last dimension {}", layout.group_size, last));
    }
    ix.group = layout.group_size;
  }
  return ix;
}

}  // namespace

std::string_view convention_name(Convention convention) {
  switch (convention) {
    case Convention::quantize: return "quantize";
    case Convention::torch: return "torch";
    case Convention::onnxruntime: return "onnxruntime";
    case Convention::tensorrt: return "tensorrt";
  }
  return "?";
}

Result<Convention> parse_convention(std::string_view name) {
  for (Convention c : {Convention::quantize, Convention::torch, Convention::onnxruntime, Convention::tensorrt}) {
    if (name == convention_name(c)) return c;
  }
  if (name == "default") return Convention::quantize;
  return usage_error(fmt::format("unknown convention '{}' (expected quantize, torch, onnxruntime or tensorrt)", name));
}

Result<QuantSpec> parse_dtype(std::string_view name) {
  QuantSpec spec;
  std::string_view rest = name;
  if (rest.starts_with("uint")) {
    spec.is_signed = false;
    rest.remove_prefix(4);
  } else if (rest.starts_with("int")) {
    rest.remove_prefix(3);
  } else {
    return usage_error(fmt::format("unknown dtype '{}' (expected int8, uint8, int4, uint4 or intN/uintN, N in 2..8)", name));
  }
  if (rest.size() != 1 || rest[0] < '2' || rest[0] > '8') {
    return usage_error(fmt::format("unknown dtype '{}': the width must be 2..8 bits", name));
  }
  spec.bits = rest[0] - '0';
  return spec;
}

std::string dtype_name(const QuantSpec& spec) { return fmt::format("{}int{}", spec.is_signed ? "" : "u", spec.bits); }

Result<IntegerRange> integer_range(const QuantSpec& spec, Convention convention) {
  if (spec.bits < 2 || spec.bits > 8) return usage_error(fmt::format("{} bits is outside 2..8", spec.bits));
  switch (convention) {
    case Convention::torch: return torch_range(spec);
    case Convention::onnxruntime: return onnxruntime_range(spec);
    case Convention::tensorrt: return tensorrt_range(spec);
    case Convention::quantize: return quantize_range(spec);
  }
  return usage_error("unknown convention");
}

Result<QParams> compute_qparams(float lo, float hi, const QuantSpec& spec, Convention convention) {
  if (!(lo <= hi)) return invalid_input(fmt::format("calibrated range [{}, {}] is empty or not a number", lo, hi));
  QUANT_ASSIGN_OR_RETURN(IntegerRange r, integer_range(spec, convention));
  switch (convention) {
    case Convention::torch: return torch_qparams(lo, hi, spec, r);
    case Convention::onnxruntime: return onnxruntime_qparams(lo, hi, spec, r);
    case Convention::tensorrt: return tensorrt_qparams(lo, hi, spec, r);
    case Convention::quantize: return quantize_qparams(lo, hi, spec, r);
  }
  return usage_error("unknown convention");
}

float round_half_even(float value) { return std::nearbyint(value); }   // the default rounding mode is to-nearest-even
double round_half_even(double value) { return std::nearbyint(value); }

int32_t quantize_value(float x, const QParams& params) {
  const float scaled = round_half_even(x / params.scale);
  double code = static_cast<double>(scaled) + static_cast<double>(params.zero_point);
  if (std::isnan(code)) code = static_cast<double>(params.zero_point);
  code = std::clamp(code, static_cast<double>(params.range.min), static_cast<double>(params.range.max));
  return static_cast<int32_t>(code);
}

float dequantize_value(int32_t q, const QParams& params) {
  return params.scale * static_cast<float>(static_cast<int64_t>(q) - params.zero_point);
}

Result<int64_t> qparams_count(std::span<const int64_t> shape, const QuantLayout& layout) {
  QUANT_ASSIGN_OR_RETURN(int64_t n, element_count(shape));
  QUANT_ASSIGN_OR_RETURN(ParamIndexer ix, make_indexer(shape, layout));
  switch (layout.granularity) {
    case QuantLayout::Granularity::per_tensor: return int64_t{1};
    case QuantLayout::Granularity::per_channel: return ix.channels;
    case QuantLayout::Granularity::per_group: return n / ix.group;
  }
  return int64_t{1};
}

Result<std::vector<int32_t>> quantize_tensor(std::span<const float> values, std::span<const int64_t> shape,
                                             const QuantLayout& layout, std::span<const QParams> params) {
  QUANT_ASSIGN_OR_RETURN(int64_t n, element_count(shape));
  if (static_cast<uint64_t>(n) != values.size()) {
    return usage_error(fmt::format("shape holds {} values but {} were given", n, values.size()));
  }
  QUANT_ASSIGN_OR_RETURN(int64_t needed, qparams_count(shape, layout));
  if (static_cast<uint64_t>(needed) != params.size()) {
    return usage_error(fmt::format("layout needs {} quantization parameters, {} given", needed, params.size()));
  }
  QUANT_ASSIGN_OR_RETURN(ParamIndexer ix, make_indexer(shape, layout));
  std::vector<int32_t> codes(values.size());
  for (int64_t i = 0; i < n; ++i) codes[i] = quantize_value(values[i], params[ix(i)]);
  return codes;
}

Result<std::vector<float>> dequantize_tensor(std::span<const int32_t> codes, std::span<const int64_t> shape,
                                             const QuantLayout& layout, std::span<const QParams> params) {
  QUANT_ASSIGN_OR_RETURN(int64_t n, element_count(shape));
  if (static_cast<uint64_t>(n) != codes.size()) {
    return usage_error(fmt::format("shape holds {} values but {} codes were given", n, codes.size()));
  }
  QUANT_ASSIGN_OR_RETURN(int64_t needed, qparams_count(shape, layout));
  if (static_cast<uint64_t>(needed) != params.size()) {
    return usage_error(fmt::format("layout needs {} quantization parameters, {} given", needed, params.size()));
  }
  QUANT_ASSIGN_OR_RETURN(ParamIndexer ix, make_indexer(shape, layout));
  std::vector<float> values(codes.size());
  for (int64_t i = 0; i < n; ++i) values[i] = dequantize_value(codes[i], params[ix(i)]);
  return values;
}

Fp16CastStats cast_to_fp16(std::span<const float> values, std::span<uint16_t> out, bool clamp_for_onnx) {
  Fp16CastStats stats;
  const size_t n = std::min(values.size(), out.size());
  for (size_t i = 0; i < n; ++i) {
    float x = values[i];
    if (std::isnan(x)) {
      ++stats.nan;
    } else if (clamp_for_onnx) {
      // onnxconverter_common: magnitudes in (0, 1e-7) go up to 1e-7, above 1e4 (infinity excepted) down to 1e4.
      const float mag = std::fabs(x);
      float moved = mag;
      if (mag > 0.0f && mag < 1e-7f) moved = 1e-7f;
      else if (mag > 1e4f && !std::isinf(mag)) moved = 1e4f;
      if (moved != mag) {
        ++stats.clamped;
        x = std::copysign(moved, x);
      }
    }
    const uint16_t h = fp32_to_fp16(x);
    out[i] = h;
    const uint16_t magnitude = h & 0x7fffu;
    if (std::isfinite(x) && magnitude == 0x7c00u) ++stats.overflow;
    if (x != 0.0f && !std::isnan(x) && magnitude == 0) ++stats.underflow;
    if (magnitude != 0 && magnitude < 0x0400u) ++stats.subnormal;
  }
  return stats;
}

}  // namespace quant
