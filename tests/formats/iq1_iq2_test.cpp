// Properties of the grid i-quants iq2_xxs, iq2_xs, iq2_s, iq1_s and iq1_m that follow from their definition:
// the codebooks and their neighbour lists are well formed, the round-trip error of gaussian rows lies between
// what the bit rate allows and what a 1-bit sign quantizer achieves, zero rows stay zero, rows are independent,
// the quantizers are safe to run on several threads, importance weights are required where ggml requires them,
// blocks with a non-finite scale are rejected, and rows that are not whole blocks are refused. Bit-exactness
// with ggml is checked by vectors_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "formats/format_test_util.h"
#include "formats/iq_grid_search.h"
#include "formats/iq_grids.h"
#include "quant/formats.h"

namespace quant {
namespace {

using testing::dequantize;
using testing::gaussian;
using testing::quantize;
using testing::rmse;
using formats::IqGrid;
using formats::IqGridSearch;

constexpr int64_t kBlock = 256;
const char* const kTypes[] = {"iq2_xxs", "iq2_xs", "iq2_s", "iq1_s", "iq1_m"};

// Positive importance weights of varying size, like an imatrix row.
std::vector<float> importance_weights(size_t n, uint32_t seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> spread(0.1f, 3.0f);
  std::vector<float> weights(n);
  for (float& w : weights) w = spread(engine);
  return weights;
}

const FormatInfo& format_named(const std::string& name) {
  const FormatInfo* format = find_format(name);
  EXPECT_NE(format, nullptr) << name;
  return *format;
}

// The error of the best 1-bit quantizer with one scale per 256 values: x ~ sign(x) * mean |x| over the block.
double sign_quantizer_rmse(const std::vector<float>& x) {
  std::vector<float> approx(x.size());
  for (size_t b = 0; b < x.size(); b += kBlock) {
    double mean_abs = 0.0;
    for (size_t i = b; i < b + kBlock; ++i) mean_abs += std::fabs(x[i]);
    mean_abs /= kBlock;
    for (size_t i = b; i < b + kBlock; ++i) approx[i] = static_cast<float>(x[i] < 0 ? -mean_abs : mean_abs);
  }
  return rmse(x, approx);
}

// ---------------------------------------------------------------------------------------------------------------
// Concurrency.

// The codebooks' search tables are built on first use; quantizing every type from several threads at once
// must give the same bytes as one thread does. This test comes first in the file so that gtest runs it before
// any other test has built the tables: the threads race to build them.
TEST(IqConcurrency, QuantizingFromSeveralThreadsMatchesOneThread) {
  const int64_t nrows = 4, n_per_row = 512;
  const std::vector<float> x = gaussian(static_cast<size_t>(nrows * n_per_row), 99);
  const std::vector<float> weights = importance_weights(static_cast<size_t>(n_per_row), 98);
  std::vector<std::vector<uint8_t>> parallel(2 * std::size(kTypes));
  std::vector<std::thread> threads;
  for (size_t t = 0; t < parallel.size(); ++t) {
    threads.emplace_back([&, t] {
      const FormatInfo& format = *find_format(kTypes[t % std::size(kTypes)]);
      std::vector<uint8_t> bytes(*row_bytes(format, n_per_row) * nrows);
      if (quantize_rows(format, x.data(), bytes.data(), nrows, n_per_row, weights.data())) parallel[t] = bytes;
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t t = 0; t < parallel.size(); ++t) {
    const FormatInfo& format = format_named(kTypes[t % std::size(kTypes)]);
    EXPECT_EQ(parallel[t], quantize(format, x, nrows, weights.data())) << format.name;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The codebooks.

struct GridFacts {
  IqGrid grid;
  size_t points;
  int neighbour_distances;  // how many distinct distances a neighbour list spans (ggml's nwant)
};
const GridFacts kGrids[] = {
    {IqGrid::iq2_xxs, 256, 2}, {IqGrid::iq2_xs, 512, 2}, {IqGrid::iq2_s, 1024, 1}, {IqGrid::iq1, 2048, 3}};

int squared_distance(const std::array<int8_t, 8>& point, uint16_t code) {
  int d2 = 0;
  for (int i = 0; i < 8; ++i) {
    const int step = point[i] - formats::iq_code_level(code, i);
    d2 += step * step;
  }
  return d2;
}

TEST(IqGrids, CodebooksHaveTheirSizeAndOnlyLevelsZeroToTwo) {
  for (const GridFacts& facts : kGrids) {
    const auto codes = formats::iq_grid_codes(facts.grid);
    ASSERT_EQ(codes.size(), facts.points);
    EXPECT_TRUE(std::is_sorted(codes.begin(), codes.end()));
    EXPECT_EQ(std::adjacent_find(codes.begin(), codes.end()), codes.end()) << "duplicate grid point";
    for (const uint16_t code : codes) {
      for (int i = 0; i < 8; ++i) EXPECT_LE(formats::iq_code_level(code, i), 2) << code;
    }
  }
}

// Checks the neighbour lists against a plain sort of every grid point by (distance, index), on every
// off-grid code of levels 0..2.
TEST(IqGrids, NeighbourListsAreTheNearestPointsInDistanceThenIndexOrder) {
  for (const GridFacts& facts : kGrids) {
    const IqGridSearch& search = IqGridSearch::of(facts.grid);
    ASSERT_EQ(static_cast<size_t>(search.size()), facts.points);
    int off_grid = 0;
    for (int code = 0; code < 1 << 16; ++code) {
      bool has_level_three = false;
      for (int i = 0; i < 8; ++i) has_level_three |= formats::iq_code_level(static_cast<uint16_t>(code), i) == 3;
      if (has_level_three) continue;
      if (search.index_of(static_cast<uint16_t>(code)) >= 0) {
        const auto& levels = search.levels(search.index_of(static_cast<uint16_t>(code)));
        EXPECT_EQ(formats::iq_pack_levels(levels.data()), code);
        continue;
      }
      if (++off_grid % 7 != 0) continue;  // a seventh of them keeps the test fast
      std::vector<std::pair<int, int>> ranked;
      for (int p = 0; p < search.size(); ++p) ranked.push_back({squared_distance(search.levels(p), code), p});
      std::sort(ranked.begin(), ranked.end());
      std::vector<uint16_t> expected;
      int distinct = 0;
      for (size_t j = 0; j < ranked.size(); ++j) {
        if (j == 0 || ranked[j].first != ranked[j - 1].first) ++distinct;
        if (distinct > facts.neighbour_distances) break;
        expected.push_back(static_cast<uint16_t>(ranked[j].second));
      }
      const auto listed = search.neighbours(static_cast<uint16_t>(code));
      ASSERT_EQ(std::vector<uint16_t>(listed.begin(), listed.end()), expected) << "code " << code;
      // The same list as codes, for the SIMD searches, readable for kListPadding entries past its end.
      const auto as_codes = search.neighbour_code_list(static_cast<uint16_t>(code));
      ASSERT_EQ(as_codes.count, int(listed.size()));
      for (size_t k = 0; k < listed.size(); ++k) {
        ASSERT_EQ(as_codes.codes[k], formats::iq_pack_levels(search.levels(listed[k]).data())) << code;
      }
      volatile uint16_t past_end = as_codes.codes[as_codes.count + IqGridSearch::kListPadding - 1];
      (void)past_end;
    }
    EXPECT_GT(off_grid, 0);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Round trips.

// bits per weight -> the rate-distortion bound for a gaussian source: no quantizer at R bits per value gets
// below sigma * 2^-R. The sample is finite, so allow 10% below it.
double shannon_floor(const FormatInfo& format, double sigma) { return 0.9 * sigma * std::pow(2.0, -format.bits_per_weight()); }

TEST(IqRoundTrip, GaussianErrorLiesBetweenTheRateBoundAndASignQuantizer) {
  const int64_t nrows = 8, n_per_row = 1024;
  const double sigma = 0.02;
  const std::vector<float> x = gaussian(static_cast<size_t>(nrows * n_per_row), 7, sigma);
  const std::vector<float> uniform(static_cast<size_t>(n_per_row), 1.0f);
  const std::vector<float> varied = importance_weights(static_cast<size_t>(n_per_row), 11);
  const double sign_only = sign_quantizer_rmse(x);
  for (const char* name : kTypes) {
    const FormatInfo& format = format_named(name);
    for (const std::vector<float>* weights : {&uniform, &varied}) {
      const std::vector<float> y = dequantize(format, quantize(format, x, nrows, weights->data()), x.size());
      const double error = rmse(x, y);
      EXPECT_GT(error, shannon_floor(format, sigma)) << name << ": better than the bit rate allows";
      EXPECT_LT(error, sign_only) << name << ": no better than one sign bit per weight";
    }
  }
}

TEST(IqRoundTrip, MoreBitsGiveSmallerErrorWithinEachFamily) {
  const int64_t nrows = 8, n_per_row = 1024;
  const std::vector<float> x = gaussian(static_cast<size_t>(nrows * n_per_row), 21);
  const std::vector<float> weights(static_cast<size_t>(n_per_row), 1.0f);
  auto error_of = [&](const char* name) {
    const FormatInfo& format = format_named(name);
    return rmse(x, dequantize(format, quantize(format, x, nrows, weights.data()), x.size()));
  };
  EXPECT_LT(error_of("iq2_xs"), error_of("iq2_xxs"));
  EXPECT_LT(error_of("iq2_s"), error_of("iq2_xs"));
  EXPECT_LT(error_of("iq1_m"), error_of("iq1_s"));
  EXPECT_LT(error_of("iq2_xxs"), error_of("iq1_m"));
}

TEST(IqRoundTrip, ZeroRowsGiveZeroBlocksAndExactZeros) {
  const std::vector<float> x(2 * kBlock, 0.0f);
  const std::vector<float> weights(kBlock, 1.0f);
  for (const char* name : kTypes) {
    const FormatInfo& format = format_named(name);
    const std::vector<uint8_t> bytes = quantize(format, x, 2, weights.data());
    EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; })) << name;
    for (const float v : dequantize(format, bytes, x.size())) EXPECT_EQ(v, 0.0f) << name;
  }
}

TEST(IqRoundTrip, RowsAreQuantizedIndependently) {
  const int64_t nrows = 3, n_per_row = 512;
  std::vector<float> x = gaussian(static_cast<size_t>(nrows * n_per_row), 5);
  for (size_t i = static_cast<size_t>(n_per_row); i < x.size(); ++i) x[i] *= 40.0f;  // rows of different size
  const std::vector<float> weights = importance_weights(static_cast<size_t>(n_per_row), 3);
  for (const char* name : kTypes) {
    const FormatInfo& format = format_named(name);
    const std::vector<uint8_t> together = quantize(format, x, nrows, weights.data());
    const size_t row_size = *row_bytes(format, n_per_row);
    for (int64_t r = 0; r < nrows; ++r) {
      const std::vector<float> row(x.begin() + r * n_per_row, x.begin() + (r + 1) * n_per_row);
      const std::vector<uint8_t> alone = quantize(format, row, 1, weights.data());
      EXPECT_TRUE(std::equal(alone.begin(), alone.end(), together.begin() + static_cast<ptrdiff_t>(r * row_size)))
          << name << " row " << r;
    }
  }
}

// ggml aborts or reads out of bounds on some non-finite or overflowing inputs; we must do neither. The result
// is either quantized data or an error about a non-finite scale.
TEST(IqRoundTrip, NonFiniteAndHugeInputsAreHandledWithoutCrashing) {
  const std::vector<float> weights(kBlock, 1.0f);
  const float specials[] = {std::nanf(""), INFINITY, -INFINITY, 3e38f, -1e30f, 1e-40f};
  for (const char* name : kTypes) {
    const FormatInfo& format = format_named(name);
    for (const float special : specials) {
      std::vector<float> x = gaussian(kBlock, 8);
      for (size_t i = 0; i < x.size(); i += 37) x[i] = special;
      std::vector<uint8_t> bytes(format.block_bytes);
      const Status status = quantize_rows(format, x.data(), bytes.data(), 1, kBlock, weights.data());
      if (!status.ok()) {
        EXPECT_NE(status.error().message().find("not finite"), std::string::npos) << name;
      }
      std::vector<float> y(kBlock);
      EXPECT_TRUE(dequantize_values(format, bytes.data(), y.data(), kBlock).ok());
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Refusals and validation.

TEST(IqRefusals, TypesThatRequireImportanceWeightsRefuseWithoutThem) {
  const std::vector<float> x = gaussian(kBlock, 1);
  for (const char* name : {"iq2_xxs", "iq2_xs", "iq1_s", "iq1_m"}) {
    const FormatInfo& format = format_named(name);
    EXPECT_TRUE(format.requires_importance) << name;
    std::vector<uint8_t> bytes(format.block_bytes);
    const Status status = quantize_rows(format, x.data(), bytes.data(), 1, kBlock, nullptr);
    ASSERT_FALSE(status.ok()) << name;
    EXPECT_EQ(status.error().kind(), ErrorKind::impossible);
    EXPECT_NE(status.error().message().find("importance"), std::string::npos) << status.error().message();
  }
  // iq2_s works without them (ggml derives weights from the values), and they change the result.
  const FormatInfo& iq2_s = format_named("iq2_s");
  EXPECT_FALSE(iq2_s.requires_importance);
  const std::vector<float> weights = importance_weights(kBlock, 2);
  EXPECT_NE(quantize(iq2_s, x, 1, nullptr), quantize(iq2_s, x, 1, weights.data()));
}

TEST(IqRefusals, RowsThatAreNotWholeBlocksAreRefused) {
  const std::vector<float> x(3 * kBlock, 1.0f);
  const std::vector<float> weights(3 * kBlock, 1.0f);
  std::vector<uint8_t> bytes(4096);
  for (const char* name : kTypes) {
    const FormatInfo& format = format_named(name);
    EXPECT_EQ(format.block_size, kBlock);
    for (const int64_t n_per_row : {int64_t{32}, int64_t{128}, int64_t{300}, int64_t{3 * kBlock - 1}}) {
      EXPECT_FALSE(row_bytes(format, n_per_row).has_value()) << name << " " << n_per_row;
      const Status status = quantize_rows(format, x.data(), bytes.data(), 1, n_per_row, weights.data());
      ASSERT_FALSE(status.ok()) << name << " " << n_per_row;
      EXPECT_EQ(status.error().kind(), ErrorKind::impossible);
    }
  }
}

// Where each type keeps the f16 bits of its super-block scale d: two bytes at the start of the block, except
// iq1_m, which spreads them over the top nibbles of the four 16-bit scale words at byte 48.
void set_scale_bits(const std::string& type, uint8_t* block, uint16_t bits) {
  if (type != "iq1_m") {
    block[0] = static_cast<uint8_t>(bits);
    block[1] = static_cast<uint8_t>(bits >> 8);
    return;
  }
  for (int w = 0; w < 4; ++w) {
    uint8_t* high = block + 48 + 2 * w + 1;
    *high = static_cast<uint8_t>((*high & 0x0f) | (((bits >> (4 * w)) & 0xf) << 4));
  }
}

TEST(IqValidation, BlocksWithAnInfiniteOrNanScaleAreRejected) {
  const std::vector<float> x = gaussian(3 * kBlock, 4);
  const std::vector<float> weights(kBlock, 1.0f);
  for (const char* name : kTypes) {
    const FormatInfo& format = format_named(name);
    const std::vector<uint8_t> good = quantize(format, x, 3, weights.data());
    ASSERT_TRUE(validate_blocks(format, good.data(), 3).ok()) << name;
    for (const uint16_t bad_bits : {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e00}, uint16_t{0x7c01}}) {
      std::vector<uint8_t> bad = good;
      set_scale_bits(name, bad.data() + format.block_bytes, bad_bits);  // block 1 of 3
      const Status status = validate_blocks(format, bad.data(), 3);
      ASSERT_FALSE(status.ok()) << name << " " << bad_bits;
      EXPECT_EQ(status.error().kind(), ErrorKind::invalid_input);
      EXPECT_NE(status.error().message().find("block 1"), std::string::npos) << status.error().message();
    }
    // The largest finite f16 is a valid scale.
    std::vector<uint8_t> large = good;
    set_scale_bits(name, large.data(), 0x7bff);
    EXPECT_TRUE(validate_blocks(format, large.data(), 3).ok()) << name;
  }
}

TEST(IqValidation, Iq1mReadsItsScaleFromTheScaleWordsNotTheFirstBytes) {
  const FormatInfo& format = format_named("iq1_m");
  std::vector<uint8_t> block(format.block_bytes, 0);
  block[0] = 0x00;
  block[1] = 0x7c;  // would be an infinite d in the other layouts; here it is grid index bits
  EXPECT_TRUE(validate_blocks(format, block.data(), 1).ok());
  set_scale_bits("iq1_m", block.data(), 0x7c00);
  EXPECT_FALSE(validate_blocks(format, block.data(), 1).ok());
}

}  // namespace
}  // namespace quant
