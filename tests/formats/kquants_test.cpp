// Properties of the k-quants beyond the reference vectors (vectors_test.cpp checks bit-exactness): the
// round-trip error on a gaussian row stays within what each format's bits allow, validation rejects blocks
// whose f16 scales are not finite, and rows that are not whole super-blocks are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "formats/format_test_util.h"
#include "quant/formats.h"

namespace quant {
namespace {

using testing::round_trip;

constexpr int64_t kSuperBlock = 256;

// A deterministic N(0, 1) sample: a 64-bit LCG feeding Box-Muller, so every platform sees the same row.
std::vector<float> gaussian(size_t n, uint64_t seed) {
  std::vector<float> values(n);
  uint64_t state = seed;
  auto uniform = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;  // in (0, 1)
  };
  for (size_t i = 0; i < n; i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(uniform()));
    const double angle = 2.0 * M_PI * uniform();
    values[i] = static_cast<float>(radius * std::cos(angle));
    if (i + 1 < n) values[i + 1] = static_cast<float>(radius * std::sin(angle));
  }
  return values;
}

struct KquantCase {
  const char* name;
  int level_bits;  // bits of each value's level: q2_K 2 ... q6_K 6
  int group_size;  // values sharing one scale
};

const KquantCase kCases[] = {
    {"q2_K", 2, 16}, {"q3_K", 3, 16}, {"q4_K", 4, 32}, {"q5_K", 5, 32}, {"q6_K", 6, 16},
};

void PrintTo(const KquantCase& c, std::ostream* os) { *os << c.name; }

// The RMSE, relative to the standard deviation, of a plain uniform quantizer with the format's 2^bits levels
// spread over each group's range, on N(0, 1) data: step / sqrt(12) with step = range / (2^bits - 1). The
// expected range of g gaussian values is about 2 * sqrt(2 ln g) (3.9 for 16, 4.2 for 32); the symmetric
// types (q3_K, q6_K) span [-max|x|, max|x|], which is about the same.
double uniform_quantizer_rmse(const KquantCase& c) {
  const double group_range = 2.0 * std::sqrt(2.0 * std::log(static_cast<double>(c.group_size)));
  const double levels = std::pow(2.0, c.level_bits) - 1.0;
  return group_range / levels / std::sqrt(12.0);
}

double weighted_rmse(const std::vector<float>& x, const std::vector<float>& y, const std::vector<float>& weight) {
  const size_t n_per_row = weight.size();
  double sum = 0, total_weight = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double diff = static_cast<double>(x[i]) - y[i];
    sum += weight[i % n_per_row] * diff * diff;
    total_weight += weight[i % n_per_row];
  }
  return std::sqrt(sum / total_weight);
}

class Kquants : public ::testing::TestWithParam<KquantCase> {
 protected:
  const FormatInfo& format() const {
    const FormatInfo* info = find_format(GetParam().name);
    EXPECT_NE(info, nullptr);
    return *info;
  }
};

TEST_P(Kquants, TableEntryIsComplete) {
  const FormatInfo& info = format();
  EXPECT_EQ(info.block_size, kSuperBlock);
  EXPECT_NE(info.quantize, nullptr);
  EXPECT_NE(info.dequantize, nullptr);
  EXPECT_NE(info.validate, nullptr);
}

TEST_P(Kquants, GaussianRoundTripErrorMatchesItsBits) {
  const KquantCase& c = GetParam();
  const std::vector<float> x = gaussian(8 * 1024, 17);
  const std::vector<float> y = round_trip(format(), x, 8, nullptr);
  const std::vector<float> unit(1024, 1.0f);
  const double rmse = weighted_rmse(x, y, unit);
  const double model = uniform_quantizer_rmse(c);
  // The scale searches must beat a plain grid spanning each group's range (ggml's land at 0.67x..0.83x on
  // this row); far below half of it would mean the round trip is not really quantizing.
  EXPECT_LT(rmse, model) << c.name << " rmse " << rmse << " vs uniform-quantizer model " << model;
  EXPECT_GT(rmse, 0.5 * model) << c.name << " rmse " << rmse << " is implausibly small for its bits";
}

TEST_P(Kquants, ScaledInputScalesTheError) {
  // Scaling the input by a power of two scales every search decision exactly, so the error scales with it
  // (as long as the f16 scales stay normal).
  const std::vector<float> x = gaussian(2 * 1024, 5);
  std::vector<float> scaled(x.size());
  for (size_t i = 0; i < x.size(); ++i) scaled[i] = x[i] * 64.0f;
  const std::vector<float> unit(1024, 1.0f);
  const double rmse = weighted_rmse(x, round_trip(format(), x, 2, nullptr), unit);
  const double scaled_rmse = weighted_rmse(scaled, round_trip(format(), scaled, 2, nullptr), unit);
  EXPECT_NEAR(scaled_rmse / rmse, 64.0, 64.0 * 1e-6);
}

TEST_P(Kquants, ImportanceWeightsLowerTheWeightedError) {
  // Half the columns matter 100 times more than the others: the weighted procedure must spend its precision
  // there, so its weighted error is lower than the unweighted procedure's.
  const std::vector<float> x = gaussian(8 * 1024, 29);
  std::vector<float> importance(1024);
  for (size_t i = 0; i < importance.size(); ++i) importance[i] = (i / 8) % 2 == 0 ? 100.0f : 1.0f;
  const double plain = weighted_rmse(x, round_trip(format(), x, 8, nullptr), importance);
  const double weighted = weighted_rmse(x, round_trip(format(), x, 8, importance.data()), importance);
  EXPECT_LT(weighted, plain) << GetParam().name;
}

TEST_P(Kquants, AllZeroRowRoundTripsToZero) {
  const std::vector<float> x(2 * kSuperBlock, 0.0f);
  for (float v : round_trip(format(), x, 1, nullptr)) EXPECT_EQ(v, 0.0f);
  const std::vector<float> importance(2 * kSuperBlock, 1.0f);
  for (float v : round_trip(format(), x, 1, importance.data())) EXPECT_EQ(v, 0.0f);
}

// Byte offsets of the f16 fields that ggml_validate_row_data checks, from ggml's block layouts.
struct ScaleFields {
  size_t d;
  int dmin;  // -1 when the type has none
};

ScaleFields scale_fields(const std::string& name) {
  if (name == "q2_K") return {80, 82};   // scales[16], qs[64], d, dmin
  if (name == "q3_K") return {108, -1};  // hmask[32], qs[64], scales[12], d
  if (name == "q4_K") return {0, 2};     // d, dmin, scales[12], qs[128]
  if (name == "q5_K") return {0, 2};     // d, dmin, scales[12], qh[32], qs[128]
  return {208, -1};                      // q6_K: ql[128], qh[64], scales[16], d
}

TEST_P(Kquants, ValidationRejectsNonFiniteScales) {
  const FormatInfo& info = format();
  const std::vector<float> x = gaussian(3 * kSuperBlock, 41);
  std::vector<uint8_t> blocks(3 * info.block_bytes);
  ASSERT_TRUE(quantize_rows(info, x.data(), blocks.data(), 1, 3 * kSuperBlock, nullptr).ok());
  ASSERT_TRUE(validate_blocks(info, blocks.data(), 3).ok());

  const ScaleFields fields = scale_fields(info.name.data());
  std::vector<size_t> offsets = {fields.d};
  if (fields.dmin >= 0) offsets.push_back(static_cast<size_t>(fields.dmin));
  for (size_t offset : offsets) {
    for (uint16_t bad : {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e00}, uint16_t{0x7d01}}) {
      std::vector<uint8_t> damaged = blocks;
      std::memcpy(damaged.data() + info.block_bytes + offset, &bad, 2);  // block 1
      const Status status = validate_blocks(info, damaged.data(), 3);
      ASSERT_FALSE(status.ok()) << "offset " << offset << " value " << bad;
      EXPECT_EQ(status.error().kind(), ErrorKind::invalid_input);
      EXPECT_NE(status.error().message().find("block 1"), std::string::npos) << status.error().message();
    }
  }
  // The largest finite f16 is fine.
  std::vector<uint8_t> extreme = blocks;
  const uint16_t max_half = 0x7bff;
  std::memcpy(extreme.data() + fields.d, &max_half, 2);
  EXPECT_TRUE(validate_blocks(info, extreme.data(), 3).ok());
}

TEST_P(Kquants, ScaleOverflowIsReportedByQuantizeRows) {
  // Values near 1e10 need group scales far beyond the f16 range (65504): the stored d becomes infinite,
  // which ggml_validate_row_data (and so quantize_rows) rejects instead of writing a broken tensor. (Much
  // larger values overflow x^2 in the float32 searches instead, and ggml then writes an all-zero block.)
  const FormatInfo& info = format();
  std::vector<float> x = gaussian(2 * kSuperBlock, 3);
  for (float& v : x) v *= 1e10f;
  std::vector<uint8_t> blocks(*row_bytes(info, kSuperBlock) * 2);
  const Status status = quantize_rows(info, x.data(), blocks.data(), 2, kSuperBlock, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind(), ErrorKind::impossible);
  EXPECT_NE(status.error().message().find("row 0"), std::string::npos) << status.error().message();
}

TEST_P(Kquants, RowsThatAreNotWholeSuperBlocksAreRefused) {
  const FormatInfo& info = format();
  for (int64_t n_per_row : {int64_t{32}, int64_t{128}, int64_t{300}, int64_t{1000}}) {
    EXPECT_FALSE(row_bytes(info, n_per_row).has_value()) << n_per_row;
    const std::vector<float> x(static_cast<size_t>(n_per_row), 1.0f);
    std::vector<uint8_t> out(4 * info.block_bytes, 0xAB);
    const Status status = quantize_rows(info, x.data(), out.data(), 1, n_per_row, nullptr);
    ASSERT_FALSE(status.ok()) << n_per_row;
    EXPECT_EQ(status.error().kind(), ErrorKind::impossible);
    for (uint8_t byte : out) ASSERT_EQ(byte, 0xAB) << "nothing may be written for a refused row";
    std::vector<float> y(static_cast<size_t>(n_per_row));
    EXPECT_FALSE(dequantize_values(info, out.data(), y.data(), n_per_row).ok()) << n_per_row;
  }
  EXPECT_EQ(*row_bytes(info, 512), 2 * info.block_bytes);
}

std::string case_name(const ::testing::TestParamInfo<KquantCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Types, Kquants, ::testing::ValuesIn(kCases), case_name);

}  // namespace
}  // namespace quant
