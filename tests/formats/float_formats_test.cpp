// Properties of the plain number formats f32, f16 and bf16: f32 is a copy, f16 and bf16 round each value to
// within half a unit in the last place of their significands, non-finite values are rejected. Bit-exactness
// with ggml is checked by vectors_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "formats/format_test_util.h"
#include "quant/formats.h"
#include "quant/half.h"

namespace quant {
namespace {

using testing::gaussian;
using testing::round_trip;

TEST(FloatFormats, F32IsACopy) {
  const std::vector<float> x = gaussian(3 * 100, 1);
  EXPECT_EQ(round_trip(*find_format("f32"), x, 3), x);
}

// A significand of p bits (implicit bit included) rounds to nearest within a relative 2^-p; below the smallest
// normal the absolute error is at most half the smallest subnormal step.
void expect_rounding_within(const char* type, int significand_bits, float subnormal_half_step) {
  std::vector<float> x = gaussian(4 * 256, 2);
  x[3] = 1.0e-7f;  // an f16 subnormal
  const std::vector<float> y = round_trip(*find_format(type), x, 4);
  double sum_sq = 0.0, bound_sq = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double allowed = std::max(std::ldexp(std::fabs(double(x[i])), -significand_bits), double(subnormal_half_step));
    EXPECT_LE(std::fabs(double(y[i]) - double(x[i])), allowed) << type << " value " << x[i];
    sum_sq += (double(y[i]) - double(x[i])) * (double(y[i]) - double(x[i]));
    bound_sq += allowed * allowed;
  }
  // Round to nearest leaves errors spread over [-ulp/2, ulp/2]: about a third of the squared worst case.
  EXPECT_LT(sum_sq, 0.5 * bound_sq) << type;
  EXPECT_GT(sum_sq, 0.0) << type;
}

TEST(FloatFormats, F16RoundsToNearestWithinHalfAnUlp) { expect_rounding_within("f16", 11, 0x1p-25f); }

TEST(FloatFormats, Bf16RoundsToNearestWithinHalfAnUlp) { expect_rounding_within("bf16", 8, 0x1p-134f); }

TEST(FloatFormats, F16ReportsTheRowOfAValueBeyondItsRange) {
  std::vector<float> x = gaussian(3 * 8, 3);
  x[2 * 8 + 5] = 1.0e5f;  // above 65504: becomes infinity
  std::vector<uint8_t> bytes(3 * 8 * 2);
  const Status status = quantize_rows(*find_format("f16"), x.data(), bytes.data(), 3, 8, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().reason().find("row 2"), std::string::npos) << status.error().message();
}

struct BadValue {
  const char* type;
  std::vector<uint8_t> bytes;  // one little-endian value
};

TEST(FloatFormats, ValidationRejectsInfinityAndNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto f32_bytes = [](float v) {
    std::vector<uint8_t> b(4);
    std::memcpy(b.data(), &v, 4);
    return b;
  };
  const BadValue cases[] = {
      {"f32", f32_bytes(inf)},   {"f32", f32_bytes(-inf)},  {"f32", f32_bytes(nan)},
      {"f16", {0x00, 0x7c}},     {"f16", {0x00, 0xfc}},     {"f16", {0x01, 0x7c}}, {"f16", {0x00, 0x7e}},
      {"bf16", {0x80, 0x7f}},    {"bf16", {0x80, 0xff}},    {"bf16", {0xc0, 0x7f}}, {"bf16", {0x81, 0x7f}},
  };
  for (const BadValue& c : cases) {
    const FormatInfo& format = *find_format(c.type);
    std::vector<uint8_t> data(6 * format.block_bytes, 0);
    EXPECT_TRUE(validate_blocks(format, data.data(), 6).ok()) << c.type;
    std::memcpy(data.data() + 4 * format.block_bytes, c.bytes.data(), c.bytes.size());
    const Status status = validate_blocks(format, data.data(), 6);
    ASSERT_FALSE(status.ok()) << c.type;
    EXPECT_NE(status.error().reason().find("block 4"), std::string::npos) << status.error().message();
  }
}

// Validation scans a span of values at a time: the first bad value is found wherever it sits against the span
// boundaries, a later one does not hide it, and NaN and infinity are told apart.
TEST(FloatFormats, ValidationFindsTheFirstBadValueAnywhereInALongRow) {
  const struct {
    const char* type;
    std::vector<uint8_t> nan;
    std::vector<uint8_t> inf;
  } formats[] = {
      {"f32", {0x00, 0x00, 0xc0, 0x7f}, {0x00, 0x00, 0x80, 0xff}},
      {"f16", {0x01, 0x7e}, {0x00, 0x7c}},
      {"bf16", {0xc0, 0x7f}, {0x80, 0xff}},
  };
  const int64_t n = 2000;
  for (const auto& f : formats) {
    const FormatInfo& format = *find_format(f.type);
    for (int64_t at : {int64_t(0), int64_t(1), int64_t(511), int64_t(512), int64_t(513), int64_t(1023),
                       int64_t(1024), int64_t(1500), n - 1}) {
      for (bool nan_first : {true, false}) {
        SCOPED_TRACE(std::string(f.type) + " at " + std::to_string(at) + (nan_first ? " NaN" : " inf"));
        std::vector<uint8_t> data(size_t(n) * format.block_bytes, 0x11);  // small finite values
        const std::vector<uint8_t>& first = nan_first ? f.nan : f.inf;
        const std::vector<uint8_t>& later = nan_first ? f.inf : f.nan;
        std::memcpy(data.data() + at * format.block_bytes, first.data(), first.size());
        if (at + 3 < n) std::memcpy(data.data() + (at + 3) * format.block_bytes, later.data(), later.size());
        const Status status = validate_blocks(format, data.data(), n);
        ASSERT_FALSE(status.ok());
        const std::string& reason = status.error().reason();
        EXPECT_NE(reason.find("block " + std::to_string(at) + " of"), std::string::npos) << reason;
        EXPECT_NE(reason.find(nan_first ? "NaN" : "infinite"), std::string::npos) << reason;
      }
    }
  }
}

TEST(FloatFormats, LargestFiniteValuesAreValid) {
  const uint16_t f16_max = 0x7bff, bf16_max = 0x7f7f;
  EXPECT_TRUE(validate_blocks(*find_format("f16"), &f16_max, 1).ok());
  EXPECT_TRUE(validate_blocks(*find_format("bf16"), &bf16_max, 1).ok());
}

TEST(FloatFormats, EmptyRowsAreRefused) {
  float x = 1.0f;
  uint8_t out[4];
  EXPECT_FALSE(quantize_rows(*find_format("f16"), &x, out, 1, 0, nullptr).ok());
}

}  // namespace
}  // namespace quant
