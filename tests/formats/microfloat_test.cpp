// mxfp4 and nvfp4 (src/formats/microfloat.cpp) and the small-float conversions they are built from
// (src/formats/minifloat.h). The conversions are ggml's software ones; they are checked here against how an
// H100 converts (tests/data/fp8-hardware): equal everywhere except in the cases ggml is known to round
// differently, each of which must actually occur.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "formats/format_test_util.h"
#include "formats/minifloat.h"
#include "quant/formats.h"
#include "quant/half.h"
#include "test_data.h"

namespace quant {
namespace {

using testing::dequantize;
using testing::gaussian_pairs;
using testing::quantize;
using formats::e8m0_floor_log2;
using formats::e8m0_to_float;
using formats::e8m0_to_float_half;
using formats::float_to_ue4m3;
using formats::nearest_e2m1_code;
using formats::ue4m3_to_float_half;

const nlohmann::json& hardware() {
  static const nlohmann::json table = [] {
    const auto bytes = testing::read_bytes(testing::data_path("fp8-hardware/conversions-subset.json"));
    return nlohmann::json::parse(bytes.begin(), bytes.end());
  }();
  return table;
}

// A hardware encoding from float bits to code, described by the first input of each new code (monotonic).
struct HardwareEncoding {
  std::vector<uint32_t> transitions;
  int code_of(uint32_t bits) const {
    return static_cast<int>(std::upper_bound(transitions.begin(), transitions.end(), bits) - transitions.begin());
  }
};

HardwareEncoding hardware_encoding(const std::string& name) {
  HardwareEncoding encoding;
  for (const auto& hex : hardware().at("encode_transitions").at(name).at("transitions")) {
    encoding.transitions.push_back(static_cast<uint32_t>(std::stoul(hex.get<std::string>(), nullptr, 16)));
  }
  return encoding;
}

std::vector<float> hardware_decode(const std::string& name) {
  std::vector<float> values;
  for (const auto& v : hardware().at("decode").at(name)) {
    values.push_back(v.is_string() ? std::nanf("") : static_cast<float>(v.get<double>()));
  }
  return values;
}

// Inputs worth comparing: both sides of every hardware boundary (two below, for rounding that starts early),
// and random non-negative bit patterns up to
// and including infinity.
std::vector<uint32_t> probe_points(const HardwareEncoding& encoding) {
  std::vector<uint32_t> points = {0u, 0x7f800000u};
  for (uint32_t t : encoding.transitions) {
    if (t > 0x7f800000u) continue;
    points.insert(points.end(), {t - 2, t - 1, t, t + 1});
  }
  std::mt19937 rng(12345);
  std::uniform_int_distribution<uint32_t> bits(0, 0x7f800000u);
  for (int i = 0; i < 200000; ++i) points.push_back(bits(rng));
  return points;
}

// Runs `ours` over the probe points (as bit patterns, so a caller can flip the sign); every disagreement
// with the hardware must be one of the named exceptions (explain returns its name, or "" when the
// disagreement is unexplained). Returns how often each exception was seen.
using CodeOf = std::function<int(uint32_t bits)>;
using Explain = std::function<std::string(uint32_t bits, int hw_code, int our_code)>;
std::map<std::string, int> compare_with_hardware(const std::vector<uint32_t>& points, const CodeOf& hw,
                                                 const CodeOf& ours, const Explain& explain) {
  std::map<std::string, int> seen;
  for (uint32_t bits : points) {
    const int hw_code = hw(bits);
    const int our_code = ours(bits);
    if (hw_code == our_code) continue;
    const std::string why = explain(bits, hw_code, our_code);
    EXPECT_FALSE(why.empty()) << "input bits 0x" << std::hex << bits << " (" << float_from_bits(bits)
                              << "): hardware code " << std::dec << hw_code << ", ours " << our_code;
    ++seen[why];
  }
  return seen;
}

std::map<std::string, int> compare_with_hardware(const HardwareEncoding& hw, const std::function<int(float)>& ours,
                                                 const Explain& explain) {
  return compare_with_hardware(
      probe_points(hw), [&](uint32_t bits) { return hw.code_of(bits); },
      [&](uint32_t bits) { return ours(float_from_bits(bits)); }, explain);
}

// Halfway between two neighbouring codes' values, exact in float for these formats.
float midpoint(const std::vector<float>& decode, int low_code) { return (decode[low_code] + decode[low_code + 1]) / 2; }

TEST(UE4M3, DecodeMatchesHardwareE4M3) {
  const std::vector<float> hw = hardware_decode("e4m3");
  for (int code = 0; code < 0x7f; ++code) {
    EXPECT_EQ(2.0f * ue4m3_to_float_half(uint8_t(code)), hw[code]) << "code " << code;
  }
  // E4M3's NaN reads as 0 in ggml; the sign bit is ignored (0xff, a NaN in E4M3, reads as 480).
  EXPECT_TRUE(std::isnan(hw[0x7f]));
  EXPECT_EQ(ue4m3_to_float_half(0x7f), 0.0f);
  for (int code = 0x81; code < 0xff; ++code) {
    EXPECT_EQ(2.0f * ue4m3_to_float_half(uint8_t(code)), std::fabs(hw[code])) << "code " << code;
  }
  EXPECT_EQ(2.0f * ue4m3_to_float_half(0xff), 480.0f);
}

TEST(UE4M3, EncodeMatchesHardwareExceptGgmlRounding) {
  const HardwareEncoding hw = hardware_encoding("e4m3_satfinite");
  const std::vector<float> decode = hardware_decode("e4m3");
  const auto seen = compare_with_hardware(
      hw, [](float x) { return float_to_ue4m3(x); },
      [&](uint32_t bits, int hw_code, int our_code) -> std::string {
        const float x = float_from_bits(bits);
        // Hardware rounds ties to even; ggml rounds the first dropped mantissa bit half up.
        if (our_code == hw_code + 1 && hw_code < 0x7e && x == midpoint(decode, hw_code)) return "tie rounded up";
        // ggml's subnormal path computes x * 512 + 0.5 in float: the float just below 2^-10 rounds up to 1.
        if (bits == 0x3a7fffffu && hw_code == 0 && our_code == 1) return "float rounding below 2^-10";
        // ggml clamps the subnormal mantissa to 7 instead of carrying into the smallest normal 2^-6.
        if (x >= 7.5f / 512 && x < 1.0f / 64 && hw_code == 8 && our_code == 7) return "no subnormal carry";
        // ggml sends every value from 248 (which rounds to 256 = 2^8) to 448.
        if (x >= 248.0f && our_code == 0x7e) return "saturates from 248";
        return "";
      });
  EXPECT_GT(seen.count("tie rounded up"), 0u);
  EXPECT_EQ(seen.count("float rounding below 2^-10"), 1u);
  EXPECT_GT(seen.count("no subnormal carry"), 0u);
  EXPECT_GT(seen.count("saturates from 248"), 0u);
  // Specials: both saturate infinity to 448; hardware gives NaN for NaN, ggml 0.
  EXPECT_EQ(hw.code_of(0x7f800000u), 0x7e);
  EXPECT_EQ(float_to_ue4m3(INFINITY), 0x7e);
  EXPECT_EQ(hw.code_of(0x7fc00000u), 0x7f);
  EXPECT_EQ(float_to_ue4m3(std::nanf("")), 0);
}

TEST(E2M1, DecodeMatchesHardware) {
  const std::vector<float> hw = hardware_decode("e2m1");
  ASSERT_EQ(hw.size(), 16u);
  for (int code = 0; code < 16; ++code) {
    EXPECT_EQ(0.5f * float(formats::kE2M1Doubled[code]), hw[code]) << "code " << code;
  }
  // Code 8 is -0 in E2M1 (the table stores it as 0, which compares equal); ggml's table has +0 there.
}

TEST(E2M1, EncodeMatchesHardwareExceptTiesAndHugeValues) {
  const HardwareEncoding hw = hardware_encoding("e2m1_rn");
  const std::vector<float> decode = hardware_decode("e2m1");
  const Explain explain = [&](uint32_t bits, int hw_code, int our_code) -> std::string {
    const float magnitude = std::fabs(float_from_bits(bits));
    const int hw_magnitude = hw_code & 7;
    const int our_magnitude = our_code & 7;
    // ggml picks +0 (code 0) before -0 (code 8) for small negative values.
    if (hw_code == 8 && our_code == 0) return "negative zero as +0";
    // ggml compares |value * scale - x| in float: from 2^25 the errors of all codes round to the same value.
    if (magnitude >= 33554432.0f) return "huge values";
    // Hardware rounds ties to the even code; ggml keeps the first (smaller) of two equally near codes.
    if ((hw_code & 8) == (our_code & 8) && our_magnitude == hw_magnitude - 1 &&
        magnitude == midpoint(decode, our_magnitude)) {
      return "tie toward smaller";
    }
    return "";
  };
  const auto ggml_code = [](uint32_t bits) { return int(nearest_e2m1_code(float_from_bits(bits), 0.5f)); };
  const std::vector<uint32_t> points = probe_points(hw);
  const auto seen = compare_with_hardware(points, [&](uint32_t bits) { return hw.code_of(bits); }, ggml_code, explain);
  EXPECT_GT(seen.count("tie toward smaller"), 0u);
  EXPECT_GT(seen.count("huge values"), 0u);
  EXPECT_EQ(seen.count("negative zero as +0"), 0u);
  // Negative inputs: the hardware gives the positive code with the sign bit set (negative_mirror_mismatches 0).
  std::vector<uint32_t> negative_points;
  for (uint32_t bits : points) negative_points.push_back(bits | 0x80000000u);
  const auto negative_seen = compare_with_hardware(
      negative_points, [&](uint32_t bits) { return hw.code_of(bits & 0x7fffffffu) | 8; }, ggml_code, explain);
  EXPECT_GT(negative_seen.count("tie toward smaller"), 0u);
  EXPECT_GT(negative_seen.count("negative zero as +0"), 0u);
}

TEST(E8M0, DecodeMatchesHardware) {
  const std::vector<float> hw = hardware_decode("ue8m0");
  for (int code = 0; code < 255; ++code) {
    EXPECT_EQ(e8m0_to_float(uint8_t(code)), hw[code]) << "code " << code;
    EXPECT_EQ(e8m0_to_float_half(uint8_t(code)), hw[code] / 2) << "code " << code;
  }
  EXPECT_TRUE(std::isnan(hw[255]));
  EXPECT_TRUE(std::isinf(e8m0_to_float(255)));  // ggml: no NaN; validation rejects 0xff instead
}

TEST(E8M0, FloorLog2MatchesHardwareRoundTowardZeroExceptLog2fRounding) {
  const HardwareEncoding hw = hardware_encoding("ue8m0_rz_satfinite");
  const auto seen = compare_with_hardware(
      hw, [](float x) { return e8m0_floor_log2(x, 127.0f); },
      [&](uint32_t bits, int hw_code, int our_code) -> std::string {
        // ggml's exponent wraps below the smallest code instead of saturating.
        if (bits < 0x00400000u) return "below 2^-127";
        // log2f rounds the last few floats below 2^(k+1) up to k+1 (at most 64 of them).
        const uint32_t next_power = static_cast<uint32_t>(hw_code + 1) << 23;
        if (our_code == hw_code + 1 && bits + 64 >= next_power) return "log2f rounds up";
        if (bits == 0x7f800000u && hw_code == 254 && our_code == 0) return "infinity";
        return "";
      });
  EXPECT_GT(seen.count("below 2^-127"), 0u);
  EXPECT_GT(seen.count("log2f rounds up"), 0u);
  EXPECT_EQ(seen.count("infinity"), 1u);
  EXPECT_EQ(e8m0_floor_log2(1.0f, 127.0f), 127);
  EXPECT_EQ(e8m0_floor_log2(std::nextafter(1.0f, 0.0f), 127.0f), 126);  // no rounding near 2^0
}

// --- mxfp4 and nvfp4 through the format table ---------------------------------------------------------------

float block_absmax(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

// Checks every value against its bound and the row's RMSE against the RMS of the bounds.
void expect_within_bounds(const std::vector<float>& x, const std::vector<float>& y, const std::vector<float>& bound) {
  double squared_error = 0, squared_bound = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_LE(std::fabs(x[i] - y[i]), bound[i]) << "value " << i << ": " << x[i] << " -> " << y[i];
    squared_error += double(x[i] - y[i]) * double(x[i] - y[i]);
    squared_bound += double(bound[i]) * double(bound[i]);
  }
  EXPECT_LE(std::sqrt(squared_error / x.size()), std::sqrt(squared_bound / x.size()));
}

// The E2M1 grid times a unit u has gaps of at most 2u below 6u (between 4u and 6u), so a value within the
// grid is at most u away; above 6u it is clipped to 6u.
float e2m1_error_bound(float amax, float unit) { return std::max(unit, amax - 6.0f * unit) * (1.0f + 1e-6f); }

TEST(Mxfp4, GaussianRoundTripWithinGridBound) {
  const FormatInfo& format = format_of(TypeId::mxfp4);
  const std::vector<float> x = gaussian_pairs(4096, 7);
  const std::vector<uint8_t> q = quantize(format, x);
  const std::vector<float> y = dequantize(format, q, x.size());
  std::vector<float> bound(x.size());
  for (size_t b = 0; b < x.size() / 32; ++b) {
    const float amax = block_absmax(&x[b * 32], 32);
    // The scale is 2^(floor(log2 amax) - 2): 6 units reach at least 0.75 amax.
    const float unit = std::ldexp(1.0f, std::ilogb(amax) - 2);
    EXPECT_EQ(2.0f * e8m0_to_float_half(q[b * 17]), unit) << "block " << b;
    std::fill_n(&bound[b * 32], 32, e2m1_error_bound(amax, unit));
  }
  expect_within_bounds(x, y, bound);
}

TEST(Nvfp4, GaussianRoundTripWithinGridBound) {
  const FormatInfo& format = format_of(TypeId::nvfp4);
  const std::vector<float> x = gaussian_pairs(4096, 8);
  const std::vector<uint8_t> q = quantize(format, x);
  const std::vector<float> y = dequantize(format, q, x.size());
  std::vector<float> bound(x.size());
  for (size_t b = 0; b < x.size() / 64; ++b) {
    for (size_t s = 0; s < 4; ++s) {
      const float amax = block_absmax(&x[b * 64 + s * 16], 16);
      const float unit = 2.0f * ue4m3_to_float_half(q[b * 36 + s]);
      // The UE4M3 scale is amax / 6 rounded to 3 mantissa bits: within 1/16 of it.
      EXPECT_NEAR(unit, amax / 6, amax / 6 / 16) << "block " << b << " sub-block " << s;
      std::fill_n(&bound[b * 64 + s * 16], 16, e2m1_error_bound(amax, unit));
    }
  }
  expect_within_bounds(x, y, bound);
}

// Values on the format's grid come back unchanged.
TEST(Mxfp4, GridValuesRoundTripExactly) {
  const FormatInfo& format = format_of(TypeId::mxfp4);
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i) {
    const float unit = i < 32 ? 0.25f : 1024.0f;  // largest value 6 units: floor(log2(6u)) - 2 = log2(u)
    x[i] = float(formats::kE2M1Doubled[i % 16]) * 0.5f * unit;
  }
  EXPECT_EQ(dequantize(format, quantize(format, x), x.size()), x);
}

TEST(Nvfp4, GridValuesRoundTripExactly) {
  const FormatInfo& format = format_of(TypeId::nvfp4);
  std::vector<float> x(128);
  const float units[8] = {1.0f, 0.5f, 0.125f, 240.0f, 3.0f, 0.0625f, 1.5f, 2.0f};
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(formats::kE2M1Doubled[i % 16]) * 0.5f * units[i / 16];
  EXPECT_EQ(dequantize(format, quantize(format, x), x.size()), x);
}

TEST(Mxfp4, ValidationRejectsNanExponentOnly) {
  const FormatInfo& format = format_of(TypeId::mxfp4);
  std::vector<uint8_t> blocks(3 * 17, 0x5a);
  for (int e = 0; e < 255; ++e) {
    blocks[17] = uint8_t(e);
    EXPECT_TRUE(validate_blocks(format, blocks.data(), 3).ok()) << "exponent " << e;
  }
  blocks[2 * 17] = 0xff;
  const Status status = validate_blocks(format, blocks.data(), 3);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind(), ErrorKind::invalid_input);
  EXPECT_NE(status.error().reason().find("block 2"), std::string::npos) << status.error().reason();
}

TEST(Nvfp4, EveryScaleByteIsValidAsInGgml) {
  const FormatInfo& format = format_of(TypeId::nvfp4);
  std::vector<uint8_t> blocks(64 * 36);
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = uint8_t(i * 37 + 11);
  for (size_t b = 0; b < 64; ++b) {
    for (size_t s = 0; s < 4; ++s) blocks[b * 36 + s] = uint8_t(b * 4 + s);  // all 256 scale bytes
  }
  EXPECT_TRUE(validate_blocks(format, blocks.data(), 64).ok());
}

TEST(Microfloat, RowsNotMultipleOfBlockRefused) {
  for (TypeId id : {TypeId::mxfp4, TypeId::nvfp4}) {
    const FormatInfo& format = format_of(id);
    const int64_t n = format.block_size + format.block_size / 2;
    std::vector<float> x(static_cast<size_t>(n), 1.0f);
    std::vector<uint8_t> out(1024);
    const Status status = quantize_rows(format, x.data(), out.data(), 1, n, nullptr);
    ASSERT_FALSE(status.ok()) << format.name;
    EXPECT_EQ(status.error().kind(), ErrorKind::impossible);
    EXPECT_FALSE(row_bytes(format, n).has_value());
  }
}

TEST(Microfloat, ImportanceWeightsAreIgnored) {
  for (TypeId id : {TypeId::mxfp4, TypeId::nvfp4}) {
    const FormatInfo& format = format_of(id);
    EXPECT_FALSE(format.reads_importance);
    const std::vector<float> x = gaussian_pairs(256, 9);
    std::vector<float> weights(256);
    for (size_t i = 0; i < weights.size(); ++i) weights[i] = float(i % 7);
    std::vector<uint8_t> with(*row_bytes(format, 256));
    ASSERT_TRUE(quantize_rows(format, x.data(), with.data(), 1, 256, weights.data()).ok());
    EXPECT_EQ(with, quantize(format, x));
  }
}

TEST(Microfloat, BitsPerWeight) {
  EXPECT_DOUBLE_EQ(format_of(TypeId::mxfp4).bits_per_weight(), 4.25);
  EXPECT_DOUBLE_EQ(format_of(TypeId::nvfp4).bits_per_weight(), 4.5);
}

}  // namespace
}  // namespace quant
