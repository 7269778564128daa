// Properties of the legacy block types q4_0, q4_1, q5_0, q5_1 and q8_0 that follow from their definition:
// values on the grid survive exactly, the round-trip error of a gaussian row stays within the rounding error
// the grid allows, broken scales are rejected, and rows that are not whole blocks are refused. Bit-exactness
// with ggml is checked by vectors_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "formats/format_test_util.h"
#include "quant/formats.h"
#include "quant/half.h"

namespace quant {
namespace {

using testing::dequantize;
using testing::gaussian;
using testing::quantize;
using testing::rmse;

constexpr int64_t kBlock = 32;

// The grid step of each block as the format defines it: symmetric types spread [-absmax, absmax] over their
// levels (step absmax / 2^(bits-1), q8_0 absmax / 127), offset types spread [min, max] over 2^bits - 1 steps.
double grid_step(const std::string& type, const float* block) {
  float low = block[0], high = block[0], magnitude = 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    low = std::min(low, block[j]);
    high = std::max(high, block[j]);
    magnitude = std::max(magnitude, std::fabs(block[j]));
  }
  if (type == "q4_0") return magnitude / 8.0;
  if (type == "q5_0") return magnitude / 16.0;
  if (type == "q8_0") return magnitude / 127.0;
  if (type == "q4_1") return (high - low) / 15.0;
  return (high - low) / 31.0;  // q5_1
}

// Rounding to a grid of step s leaves an error spread evenly over [-s/2, s/2]: an RMSE of s / sqrt(12).
double rounding_rmse(const std::string& type, const std::vector<float>& x) {
  double sum = 0.0;
  for (size_t b = 0; b < x.size() / kBlock; ++b) {
    const double step = grid_step(type, x.data() + b * kBlock);
    sum += step * step / 12.0;
  }
  return std::sqrt(sum / double(x.size() / kBlock));
}

class LegacyFormat : public ::testing::TestWithParam<std::string> {
 protected:
  const FormatInfo& format() const { return *find_format(GetParam()); }
};

TEST_P(LegacyFormat, GaussianRoundTripStaysWithinTheGridRoundingError) {
  const std::vector<float> x = gaussian(4 * 1024, 7);
  const double bound = 1.15 * rounding_rmse(GetParam(), x);
  const double plain = rmse(x, dequantize(format(), quantize(format(), x, 4), x.size()));
  EXPECT_LT(plain, bound) << GetParam();
  EXPECT_GT(plain, 0.0);

  // Importance weights change which levels win, not how fine the grid is.
  std::vector<float> importance = gaussian(1024, 11);
  for (float& w : importance) w = std::fabs(w) + 0.1f;
  const double weighted = rmse(x, dequantize(format(), quantize(format(), x, 4, importance.data()), x.size()));
  EXPECT_LT(weighted, bound) << GetParam();
}

TEST_P(LegacyFormat, RejectsRowsThatAreNotWholeBlocks) {
  const std::vector<float> x(48, 1.0f);
  std::vector<uint8_t> bytes(256);
  const Status status = quantize_rows(format(), x.data(), bytes.data(), 1, 48, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind(), ErrorKind::impossible);
  EXPECT_NE(status.error().reason().find("48"), std::string::npos) << status.error().message();

  std::vector<float> out(48);
  EXPECT_FALSE(dequantize_values(format(), bytes.data(), out.data(), 40).ok());
}

TEST_P(LegacyFormat, RejectsBlocksWithAnInfiniteOrNaNScale) {
  std::vector<uint8_t> blocks(3 * format().block_bytes, 0);
  EXPECT_TRUE(validate_blocks(format(), blocks.data(), 3).ok());
  for (const uint16_t bad : {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e00}}) {
    std::vector<uint8_t> broken = blocks;
    std::memcpy(broken.data() + 2 * format().block_bytes, &bad, 2);  // d is the first field of every block
    const Status status = validate_blocks(format(), broken.data(), 3);
    ASSERT_FALSE(status.ok()) << std::hex << bad;
    EXPECT_EQ(status.error().kind(), ErrorKind::invalid_input);
    EXPECT_NE(status.error().reason().find("block 2"), std::string::npos) << status.error().message();
  }
}

INSTANTIATE_TEST_SUITE_P(Types, LegacyFormat, ::testing::Values("q4_0", "q4_1", "q5_0", "q5_1", "q8_0"));

// Values already on a grid of step 1, whose extremes fix the scale at exactly 1, come back unchanged, with or
// without importance weights (no other scale can beat an exact fit).
void expect_exact_round_trip(const char* type, const std::vector<float>& x) {
  const FormatInfo& format = *find_format(type);
  const std::vector<float> importance(x.size(), 1.0f);
  EXPECT_EQ(dequantize(format, quantize(format, x, 1), x.size()), x) << type;
  EXPECT_EQ(dequantize(format, quantize(format, x, 1, importance.data()), x.size()), x) << type << " weighted";
}

TEST(LegacyGrid, SymmetricTypesKeepIntegerLevelsExactly) {
  std::vector<float> x(kBlock);
  for (int j = 0; j < kBlock; ++j) x[j] = float(j % 16 - 8);  // -8 is the extreme: d = -8 / -8 = 1
  expect_exact_round_trip("q4_0", x);
  for (int j = 0; j < kBlock; ++j) x[j] = float(j - 16);  // -16 is the extreme: d = 1
  expect_exact_round_trip("q5_0", x);
  for (int j = 0; j < kBlock; ++j) x[j] = float(-127 + 8 * j);  // absmax 127: d = 127 / 127 = 1
  expect_exact_round_trip("q8_0", x);
}

TEST(LegacyGrid, OffsetTypesKeepShiftedIntegerLevelsExactly) {
  std::vector<float> x(kBlock);
  for (int j = 0; j < kBlock; ++j) x[j] = -3.0f + float(j % 16);  // range 15 over 15 steps: d = 1, m = -3
  expect_exact_round_trip("q4_1", x);
  for (int j = 0; j < kBlock; ++j) x[j] = -3.0f + float(j);  // range 31 over 31 steps
  expect_exact_round_trip("q5_1", x);
}

// A q4_1 / q5_1 minimum beyond the f16 range becomes infinite; quantize_rows must say which row.
TEST(LegacyValidation, ReportsTheRowWhoseMinimumOverflowsHalf) {
  for (const char* type : {"q4_1", "q5_1"}) {
    const FormatInfo& format = *find_format(type);
    std::vector<float> x = gaussian(3 * 64, 3);
    for (int j = 64; j < 96; ++j) x[2 * 64 + j - 64] = -1.0e5f + float(j);  // row 2, block 0
    for (const bool weighted : {false, true}) {
      const std::vector<float> importance(64, 1.0f);
      std::vector<uint8_t> bytes(*row_bytes(format, 64) * 3);
      const Status status =
          quantize_rows(format, x.data(), bytes.data(), 3, 64, weighted ? importance.data() : nullptr);
      ASSERT_FALSE(status.ok()) << type;
      EXPECT_NE(status.error().reason().find("row 2"), std::string::npos) << status.error().message();
      EXPECT_NE(status.error().reason().find("minimum"), std::string::npos) << status.error().message();
    }
  }
}

TEST(LegacyValidation, ReportsAScaleThatOverflowsHalf) {
  const FormatInfo& format = *find_format("q4_0");
  std::vector<float> x = gaussian(2 * 32, 5);
  x[32 + 4] = 1.0e6f;  // d = 1e6 / 8 is beyond the largest f16
  std::vector<uint8_t> bytes(*row_bytes(format, 32) * 2);
  const Status status = quantize_rows(format, x.data(), bytes.data(), 2, 32, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().reason().find("row 1"), std::string::npos) << status.error().message();
}

TEST(LegacyImportance, Q8_0IgnoresImportanceAndQ4_0ReadsIt) {
  const std::vector<float> x = gaussian(2 * 256, 9);
  std::vector<float> importance = gaussian(256, 10);
  for (float& w : importance) w = w * w;
  const FormatInfo& q8 = *find_format("q8_0");
  EXPECT_EQ(quantize(q8, x, 2), quantize(q8, x, 2, importance.data()));
  const FormatInfo& q4 = *find_format("q4_0");
  EXPECT_NE(quantize(q4, x, 2), quantize(q4, x, 2, importance.data()));
}

}  // namespace
}  // namespace quant
