// q1_0 and q2_0 (src/formats/lowbit.cpp): the block layouts as docs/formats/ternary-microfloat-lowbit.md
// describes them, error bounds that follow from each format's grid, and validation. Bit-exactness with ggml
// is checked by vectors_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/format_test_util.h"
#include "quant/formats.h"
#include "quant/half.h"

namespace quant {
namespace {

using testing::dequantize;
using testing::gaussian_pairs;
using testing::quantize;

float scale_of_block(const std::vector<uint8_t>& q, size_t block) {
  uint16_t bits;
  std::memcpy(&bits, &q[block * 18], 2);
  return fp16_to_fp32(bits);
}

// q1_0 keeps each value's sign and one magnitude per block, the mean magnitude m: the block's RMSE is then
// the spread of the magnitudes around m, sqrt(mean(x^2) - m^2), plus the f16 rounding of m.
TEST(Q1_0, GaussianRoundTripWithinMeanMagnitudeBound) {
  const FormatInfo& format = format_of(TypeId::q1_0);
  const std::vector<float> x = gaussian_pairs(32 * 128, 31);
  const std::vector<uint8_t> q = quantize(format, x);
  const std::vector<float> y = dequantize(format, q, x.size());
  for (size_t b = 0; b < x.size() / 128; ++b) {
    double sum_magnitude = 0, sum_square = 0, squared_error = 0;
    for (size_t j = 0; j < 128; ++j) {
      sum_magnitude += std::fabs(x[b * 128 + j]);
      sum_square += double(x[b * 128 + j]) * x[b * 128 + j];
    }
    const double mean = sum_magnitude / 128;
    const float d = scale_of_block(q, b);
    EXPECT_NEAR(d, mean, mean / 1024) << "block " << b << ": f16 of the mean magnitude";
    for (size_t j = 0; j < 128; ++j) {
      const size_t i = b * 128 + j;
      EXPECT_EQ(y[i], x[i] >= 0 ? d : -d) << "value " << i;
      squared_error += double(x[i] - y[i]) * double(x[i] - y[i]);
    }
    const double spread = std::sqrt(sum_square / 128 - mean * mean);
    EXPECT_LE(std::sqrt(squared_error / 128), spread + std::fabs(d - mean) + 1e-6) << "block " << b;
  }
}

// q2_0's quantizer uses -d, 0 and +d with d the f16 block maximum, so each value is at most half the maximum
// (plus the scale's f16 rounding) away, and code 3 (+2d) never appears.
TEST(Q2_0, GaussianRoundTripWithinGridBound) {
  const FormatInfo& format = format_of(TypeId::q2_0);
  const std::vector<float> x = gaussian_pairs(32 * 64, 32);
  const std::vector<uint8_t> q = quantize(format, x);
  const std::vector<float> y = dequantize(format, q, x.size());
  double squared_error = 0, squared_bound = 0;
  for (size_t b = 0; b < x.size() / 64; ++b) {
    float amax = 0;
    for (size_t j = 0; j < 64; ++j) amax = std::max(amax, std::fabs(x[b * 64 + j]));
    const float d = scale_of_block(q, b);
    EXPECT_EQ(fp32_to_fp16(amax), fp32_to_fp16(d)) << "block " << b;
    for (size_t byte = 2; byte < 18; ++byte) {
      for (int k = 0; k < 4; ++k) EXPECT_NE((q[b * 18 + byte] >> (2 * k)) & 3, 3) << "block " << b;
    }
    const float bound = (amax / 2 + std::fabs(amax - d)) * (1 + 1e-6f);
    for (size_t j = 0; j < 64; ++j) {
      const size_t i = b * 64 + j;
      EXPECT_LE(std::fabs(x[i] - y[i]), bound) << "value " << i;
      squared_error += double(x[i] - y[i]) * double(x[i] - y[i]);
      squared_bound += double(bound) * double(bound);
    }
  }
  EXPECT_LE(std::sqrt(squared_error / x.size()), std::sqrt(squared_bound / x.size()));
}

TEST(Q1_0, SignedConstantMagnitudesRoundTripExactly) {
  std::vector<float> x(256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = ((i * 3 + i / 5) % 2 ? 1.0f : -1.0f) * (i < 128 ? 0.3125f : 96.0f);
  EXPECT_EQ(dequantize(format_of(TypeId::q1_0), quantize(format_of(TypeId::q1_0), x), x.size()), x);
}

TEST(Q2_0, TernaryValuesRoundTripExactly) {
  std::vector<float> x(128);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 7 % 3) - 1) * (i < 64 ? 0.75f : 4096.0f);
  EXPECT_EQ(dequantize(format_of(TypeId::q2_0), quantize(format_of(TypeId::q2_0), x), x.size()), x);
}

TEST(Q1_0, LayoutMatchesDocumentation) {
  std::vector<uint8_t> block(18, 0);
  const uint16_t d = fp32_to_fp16(1.25f);
  std::memcpy(block.data(), &d, 2);
  std::vector<float> expected(128);
  for (size_t j = 0; j < 128; ++j) {
    const bool positive = (j * 11 + j / 9) % 3 != 0;
    if (positive) block[2 + j / 8] |= uint8_t(1u << (j % 8));
    expected[j] = positive ? 1.25f : -1.25f;
  }
  EXPECT_EQ(dequantize(format_of(TypeId::q1_0), block, 128), expected);
  EXPECT_EQ(quantize(format_of(TypeId::q1_0), expected), block);
}

TEST(Q2_0, LayoutMatchesDocumentation) {
  std::vector<uint8_t> block(18, 0);
  const uint16_t d = fp32_to_fp16(0.5f);
  std::memcpy(block.data(), &d, 2);
  std::vector<float> expected(64);
  for (size_t j = 0; j < 64; ++j) {
    const int code = int((j * 5 + j / 4) % 4);
    block[2 + j / 4] |= uint8_t(code << (2 * (j % 4)));
    expected[j] = float(code - 1) * 0.5f;  // codes 0..3 read -d, 0, +d, +2d
  }
  EXPECT_EQ(dequantize(format_of(TypeId::q2_0), block, 64), expected);
}

// A subnormal block maximum makes ggml's 1 / d infinite; converting the infinite or NaN product to int gives
// x86's INT_MIN, which the clamp turns into code 0 for every value.
TEST(Q2_0, SubnormalMaximumGivesCodeZero) {
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 3) - 1) * 1e-39f;
  const std::vector<uint8_t> q = quantize(format_of(TypeId::q2_0), x);
  for (size_t byte = 2; byte < 18; ++byte) EXPECT_EQ(q[byte], 0) << "byte " << byte;
}

// ggml compares x >= 0: -0.0 counts as positive.
TEST(Q1_0, NegativeZeroIsPositive) {
  std::vector<float> x(128, 2.0f);
  x[5] = -0.0f;
  x[6] = -2.0f;
  const std::vector<uint8_t> q = quantize(format_of(TypeId::q1_0), x);
  EXPECT_EQ(q[2], 0xbf);  // bits 0..7 of the first byte: all set except bit 6
}

class LowBit : public ::testing::TestWithParam<TypeId> {
 protected:
  const FormatInfo& format() const { return format_of(GetParam()); }
};

TEST_P(LowBit, ValidationRejectsNonFiniteScale) {
  std::vector<uint8_t> blocks(4 * 18, 0x22);
  EXPECT_TRUE(validate_blocks(format(), blocks.data(), 4).ok());
  for (uint16_t bad : {uint16_t(0x7c00), uint16_t(0xfc00), uint16_t(0x7e00), uint16_t(0xfc01)}) {
    std::memcpy(&blocks[3 * 18], &bad, 2);
    const Status status = validate_blocks(format(), blocks.data(), 4);
    ASSERT_FALSE(status.ok()) << std::hex << bad;
    EXPECT_EQ(status.error().kind(), ErrorKind::invalid_input);
    EXPECT_NE(status.error().reason().find("block 3"), std::string::npos) << status.error().reason();
  }
}

TEST_P(LowBit, InfiniteInputRefusedThroughValidation) {
  std::vector<float> x = gaussian_pairs(size_t(2 * format().block_size), 33);
  x[size_t(format().block_size) + 3] = -INFINITY;
  std::vector<uint8_t> out(*row_bytes(format(), 2 * format().block_size));
  const Status status = quantize_rows(format(), x.data(), out.data(), 1, 2 * format().block_size, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().reason().find("block 1"), std::string::npos) << status.error().reason();
}

TEST_P(LowBit, RowsNotMultipleOfBlockRefused) {
  const int64_t n = format().block_size * 3 / 2;
  std::vector<float> x(static_cast<size_t>(n), 1.0f);
  std::vector<uint8_t> out(1024);
  const Status status = quantize_rows(format(), x.data(), out.data(), 1, n, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind(), ErrorKind::impossible);
  EXPECT_FALSE(row_bytes(format(), n).has_value());
}

// ggml's quantize_q1_0 / quantize_q2_0 take importance weights and do not use them.
TEST_P(LowBit, ImportanceWeightsDoNotChangeTheBytes) {
  const std::vector<float> x = gaussian_pairs(512, 34);
  std::vector<float> weights(512);
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = float(i % 7);
  std::vector<uint8_t> with(*row_bytes(format(), 512));
  ASSERT_TRUE(quantize_rows(format(), x.data(), with.data(), 1, 512, weights.data()).ok());
  EXPECT_EQ(with, quantize(format(), x));
}

INSTANTIATE_TEST_SUITE_P(Formats, LowBit, ::testing::Values(TypeId::q1_0, TypeId::q2_0),
                         [](const auto& case_info) { return std::string(format_of(case_info.param).name); });

TEST(LowBitFormats, BitsPerWeight) {
  EXPECT_DOUBLE_EQ(format_of(TypeId::q1_0).bits_per_weight(), 1.125);
  EXPECT_DOUBLE_EQ(format_of(TypeId::q2_0).bits_per_weight(), 2.25);
}

}  // namespace
}  // namespace quant
