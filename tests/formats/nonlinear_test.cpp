// Properties of the non-linear 4-bit types iq4_nl and iq4_xs that follow from their definition: the table levels
// themselves survive exactly, the round-trip error of a gaussian row stays within the rounding error the
// table's gaps allow, broken scales are rejected, and rows that are not whole blocks are refused.
// Bit-exactness with ggml is checked by vectors_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "formats/format_test_util.h"
#include "quant/formats.h"

namespace quant {
namespace {

using testing::dequantize;
using testing::gaussian;
using testing::quantize;
using testing::rmse;

// The 16 levels of the format (ggml-common.h, kvalues_iq4nl).
constexpr int kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// The expected rounding error of a 32-value block on the table scaled so its largest-magnitude value lands on
// -127 (values above the top level 113 round down to it): a value between two neighbouring levels g apart rounds with an error spread over [-g/2, g/2], an
// expected square of g^2 / 12 (in units of the scale).
double table_rounding_rmse(const std::vector<float>& x) {
  double sum = 0.0;
  for (size_t b = 0; b < x.size() / 32; ++b) {
    const float* block = x.data() + b * 32;
    float largest = 0.0f;
    for (int j = 0; j < 32; ++j) {
      if (std::fabs(block[j]) > std::fabs(largest)) largest = block[j];
    }
    const double scale = -double(largest) / 127.0;
    for (int j = 0; j < 32; ++j) {
      const double t = double(block[j]) / scale;
      double squared_error = 0.0;  // in units of the scale
      for (int k = 0; k + 1 < 16; ++k) {
        const double gap = kLevels[k + 1] - kLevels[k];
        if (t >= kLevels[k] && t <= kLevels[k + 1]) squared_error = gap * gap / 12.0;
      }
      if (t > kLevels[15]) squared_error = (t - kLevels[15]) * (t - kLevels[15]);  // above the top level
      sum += squared_error * scale * scale;
    }
  }
  return std::sqrt(sum / double(x.size()));
}

class NonlinearFormat : public ::testing::TestWithParam<std::string> {
 protected:
  const FormatInfo& format() const { return *find_format(GetParam()); }
};

TEST_P(NonlinearFormat, GaussianRoundTripStaysWithinTheTableRoundingError) {
  const std::vector<float> x = gaussian(4 * 1024, 21);
  const double bound = 1.15 * table_rounding_rmse(x);
  const double plain = rmse(x, dequantize(format(), quantize(format(), x, 4), x.size()));
  EXPECT_LT(plain, bound) << GetParam();
  EXPECT_GT(plain, 0.0);

  std::vector<float> importance = gaussian(1024, 22);
  for (float& w : importance) w = std::fabs(w) + 0.1f;
  const std::vector<uint8_t> weighted_bytes = quantize(format(), x, 4, importance.data());
  EXPECT_NE(weighted_bytes, quantize(format(), x, 4)) << "importance weights are read";
  EXPECT_LT(rmse(x, dequantize(format(), weighted_bytes, x.size())), bound) << GetParam();
}

// With the extremes at -127 and 113 the best scale is exactly 1 (iq4_xs: super-block scale -1/32 times the
// multiplier -32), so every table level comes back unchanged.
TEST_P(NonlinearFormat, TableLevelsSurviveExactly) {
  std::vector<float> x(256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(kLevels[i % 16]);
  const std::vector<float> importance(256, 1.0f);
  EXPECT_EQ(dequantize(format(), quantize(format(), x, 1), x.size()), x);
  EXPECT_EQ(dequantize(format(), quantize(format(), x, 1, importance.data()), x.size()), x);
}

TEST_P(NonlinearFormat, RejectsRowsThatAreNotWholeBlocks) {
  const int64_t n_per_row = format().block_size + 16;
  const std::vector<float> x(static_cast<size_t>(n_per_row), 1.0f);
  std::vector<uint8_t> bytes(1024);
  const Status status = quantize_rows(format(), x.data(), bytes.data(), 1, n_per_row, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind(), ErrorKind::impossible);
  std::vector<float> out(static_cast<size_t>(n_per_row));
  EXPECT_FALSE(dequantize_values(format(), bytes.data(), out.data(), n_per_row).ok());
}

TEST_P(NonlinearFormat, RejectsBlocksWithAnInfiniteOrNaNScale) {
  std::vector<uint8_t> blocks(3 * format().block_bytes, 0);
  EXPECT_TRUE(validate_blocks(format(), blocks.data(), 3).ok());
  for (const uint16_t bad : {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e01}}) {
    std::vector<uint8_t> broken = blocks;
    std::memcpy(broken.data() + format().block_bytes, &bad, 2);  // d opens every block
    const Status status = validate_blocks(format(), broken.data(), 3);
    ASSERT_FALSE(status.ok());
    EXPECT_NE(status.error().reason().find("block 1"), std::string::npos) << status.error().message();
  }
}

TEST_P(NonlinearFormat, ReportsTheRowWhoseScaleOverflowsHalf) {
  const int64_t n_per_row = format().block_size;
  std::vector<float> x = gaussian(2 * static_cast<size_t>(n_per_row), 23);
  x[static_cast<size_t>(n_per_row) + 3] = 1.0e10f;  // even divided by 127 * 32 it is beyond the largest f16
  std::vector<uint8_t> bytes(*row_bytes(format(), n_per_row) * 2);
  const Status status = quantize_rows(format(), x.data(), bytes.data(), 2, n_per_row, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().reason().find("row 1"), std::string::npos) << status.error().message();
}

INSTANTIATE_TEST_SUITE_P(Types, NonlinearFormat, ::testing::Values("iq4_nl", "iq4_xs"));

}  // namespace
}  // namespace quant
