// tq1_0 and tq2_0 (src/formats/ternary.cpp): the block layouts as docs/formats/ternary-microfloat-lowbit.md
// describes them, error bounds that follow from a ternary grid, and validation. Bit-exactness with ggml is
// checked by vectors_test.cpp.
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

constexpr int64_t kBlock = 256;

size_t scale_offset(TypeId id) { return id == TypeId::tq1_0 ? 52 : 64; }

class Ternary : public ::testing::TestWithParam<TypeId> {
 protected:
  const FormatInfo& format() const { return format_of(GetParam()); }
};

// Each value becomes -d, 0 or +d with d the f16 block maximum: nearest of the three for the exact maximum, so
// the error is at most half the maximum plus the f16 rounding of the scale.
TEST_P(Ternary, GaussianRoundTripWithinTernaryBound) {
  const std::vector<float> x = gaussian_pairs(8 * kBlock, 21);
  const std::vector<uint8_t> q = quantize(format(), x);
  const std::vector<float> y = dequantize(format(), q, x.size());
  double squared_error = 0, squared_bound = 0;
  for (size_t b = 0; b < x.size() / kBlock; ++b) {
    float amax = 0;
    for (int64_t j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[b * kBlock + j]));
    uint16_t stored;
    std::memcpy(&stored, &q[b * format().block_bytes + scale_offset(GetParam())], 2);
    const float d = fp16_to_fp32(stored);
    EXPECT_EQ(stored, fp32_to_fp16(amax)) << "block " << b;
    const float bound = (amax / 2 + std::fabs(amax - d)) * (1 + 1e-6f);
    for (int64_t j = 0; j < kBlock; ++j) {
      const size_t i = b * kBlock + j;
      EXPECT_TRUE(y[i] == d || y[i] == 0.0f || y[i] == -d) << "value " << i << " is not on the grid: " << y[i];
      EXPECT_LE(std::fabs(x[i] - y[i]), bound) << "value " << i;
      squared_error += double(x[i] - y[i]) * double(x[i] - y[i]);
      squared_bound += double(bound) * double(bound);
    }
  }
  const double rmse = std::sqrt(squared_error / x.size());
  EXPECT_LE(rmse, std::sqrt(squared_bound / x.size()));
  EXPECT_GT(rmse, 0.0);
}

TEST_P(Ternary, TernaryValuesRoundTripExactly) {
  std::vector<float> x(2 * kBlock);
  for (size_t i = 0; i < x.size(); ++i) {
    const float a = i < kBlock ? 0.375f : 1536.0f;  // f16-representable block maxima
    x[i] = float(int(i * 7 % 3) - 1) * a;
  }
  EXPECT_EQ(dequantize(format(), quantize(format(), x), x.size()), x);
}

TEST_P(Ternary, ZerosGiveZeroScale) {
  const std::vector<float> x(kBlock, 0.0f);
  const std::vector<uint8_t> q = quantize(format(), x);
  EXPECT_EQ(q[scale_offset(GetParam())], 0);
  EXPECT_EQ(q[scale_offset(GetParam()) + 1], 0);
  EXPECT_EQ(dequantize(format(), q, x.size()), x);
}

// A subnormal block maximum makes ggml's 1 / d infinite; lroundf of the infinite (or NaN, for zeros)
// products gives LONG_MIN on x86-64 glibc, and ggml's `+ 1` truncated to int makes every trit 1 (zero).
TEST_P(Ternary, SubnormalMaximumGivesAllZeroTrits) {
  std::vector<float> x(kBlock);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 3) - 1) * 1e-39f;
  const std::vector<uint8_t> q = quantize(format(), x);
  if (GetParam() == TypeId::tq2_0) {
    for (size_t byte = 0; byte < 64; ++byte) EXPECT_EQ(q[byte], 0x55) << "byte " << byte;  // four codes 1
  } else {
    for (size_t byte = 0; byte < 48; ++byte) EXPECT_EQ(q[byte], (121 * 256 + 242) / 243) << "byte " << byte;
    for (size_t byte = 48; byte < 52; ++byte) EXPECT_EQ(q[byte], (120 * 256 + 242) / 243) << "byte " << byte;
  }
}

TEST_P(Ternary, ValidationRejectsNonFiniteScale) {
  std::vector<uint8_t> blocks(3 * format().block_bytes, 0x11);
  EXPECT_TRUE(validate_blocks(format(), blocks.data(), 3).ok());
  for (uint16_t bad : {uint16_t(0x7c00), uint16_t(0xfc00), uint16_t(0x7e00), uint16_t(0x7c01)}) {
    std::memcpy(&blocks[1 * format().block_bytes + scale_offset(GetParam())], &bad, 2);
    const Status status = validate_blocks(format(), blocks.data(), 3);
    ASSERT_FALSE(status.ok()) << std::hex << bad;
    EXPECT_EQ(status.error().kind(), ErrorKind::invalid_input);
    EXPECT_NE(status.error().reason().find("block 1"), std::string::npos) << status.error().reason();
  }
}

// A NaN or infinite input reaches the f16 scale (ggml's MAX keeps a NaN), so the output fails validation.
TEST_P(Ternary, NonFiniteInputRefusedThroughValidation) {
  for (float bad : {std::nanf(""), INFINITY}) {
    std::vector<float> x = gaussian_pairs(2 * kBlock, 22);
    x[kBlock + 255] = bad;  // last value of the second block: a NaN earlier would be replaced by later values
    std::vector<uint8_t> out(*row_bytes(format(), 2 * kBlock));
    const Status status = quantize_rows(format(), x.data(), out.data(), 1, 2 * kBlock, nullptr);
    ASSERT_FALSE(status.ok()) << bad;
    EXPECT_NE(status.error().reason().find("block 1"), std::string::npos) << status.error().reason();
  }
}

TEST_P(Ternary, RowsNotMultipleOfBlockRefused) {
  std::vector<float> x(384, 1.0f);
  std::vector<uint8_t> out(1024);
  const Status status = quantize_rows(format(), x.data(), out.data(), 1, 384, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind(), ErrorKind::impossible);
  EXPECT_FALSE(row_bytes(format(), 384).has_value());
}

TEST_P(Ternary, ImportanceWeightsAreIgnored) {
  EXPECT_FALSE(format().reads_importance);
  const std::vector<float> x = gaussian_pairs(kBlock, 23);
  std::vector<float> weights(kBlock);
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = float(i % 5);
  std::vector<uint8_t> with(*row_bytes(format(), kBlock));
  ASSERT_TRUE(quantize_rows(format(), x.data(), with.data(), 1, kBlock, weights.data()).ok());
  EXPECT_EQ(with, quantize(format(), x));
}

INSTANTIATE_TEST_SUITE_P(Formats, Ternary, ::testing::Values(TypeId::tq1_0, TypeId::tq2_0),
                         [](const auto& case_info) { return std::string(format_of(case_info.param).name); });

// A trit pattern over one block: value i is trit(i) - 1 times the scale.
int trit(size_t i) { return int((i * 5 + i / 7) % 3); }

// Where value i of a tq1_0 block lives, per the documented layout: its byte and its place in that byte's
// base-3 number (0 = most significant).
struct TritPlace { size_t byte; int place; };
TritPlace tq1_0_place(size_t i) {
  if (i < 160) return {i % 32, int(i / 32)};
  if (i < 240) return {32 + (i - 160) % 16, int((i - 160) / 16)};
  return {48 + (i - 240) % 4, int((i - 240) / 4)};
}

// Builds the block from the layout description: each byte's trits as a base-3 number with five places (the
// last four bytes leave the fifth place 0), stored as ceil(number * 256 / 243).
std::vector<uint8_t> tq1_0_block_by_hand(float scale) {
  int number[52] = {};
  for (size_t i = 0; i < kBlock; ++i) {
    const TritPlace p = tq1_0_place(i);
    int weight = 1;
    for (int k = p.place; k < 4; ++k) weight *= 3;
    number[p.byte] += trit(i) * weight;
  }
  std::vector<uint8_t> block(54);
  for (size_t byte = 0; byte < 52; ++byte) block[byte] = uint8_t((number[byte] * 256 + 242) / 243);
  const uint16_t d = fp32_to_fp16(scale);
  std::memcpy(&block[52], &d, 2);
  return block;
}

TEST(Tq1_0, LayoutMatchesDocumentation) {
  const float scale = 0.8125f;
  const std::vector<uint8_t> block = tq1_0_block_by_hand(scale);
  const std::vector<float> y = dequantize(format_of(TypeId::tq1_0), block, kBlock);
  std::vector<float> expected(kBlock);
  for (size_t i = 0; i < kBlock; ++i) expected[i] = float(trit(i) - 1) * scale;
  EXPECT_EQ(y, expected);
  EXPECT_EQ(quantize(format_of(TypeId::tq1_0), expected), block);
}

TEST(Tq2_0, LayoutMatchesDocumentation) {
  const float scale = 2.5f;
  std::vector<uint8_t> block(66, 0);
  std::vector<float> expected(kBlock);
  for (size_t i = 0; i < kBlock; ++i) {
    const size_t half = i / 128, k = i % 128;
    block[32 * half + k % 32] |= uint8_t(trit(i) << (2 * (k / 32)));
    expected[i] = float(trit(i) - 1) * scale;
  }
  const uint16_t d = fp32_to_fp16(scale);
  std::memcpy(&block[64], &d, 2);
  EXPECT_EQ(dequantize(format_of(TypeId::tq2_0), block, kBlock), expected);
  EXPECT_EQ(quantize(format_of(TypeId::tq2_0), expected), block);
  // Code 3, which the quantizer never writes, reads as +2 scales.
  block[0] = 0xff;
  EXPECT_EQ(dequantize(format_of(TypeId::tq2_0), block, kBlock)[0], 2 * scale);
}

TEST(TernaryFormats, BitsPerWeight) {
  EXPECT_DOUBLE_EQ(format_of(TypeId::tq1_0).bits_per_weight(), 1.6875);
  EXPECT_DOUBLE_EQ(format_of(TypeId::tq2_0).bits_per_weight(), 2.0625);
}

}  // namespace
}  // namespace quant
