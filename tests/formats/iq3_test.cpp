// Properties of iq3_xxs and iq3_s that follow from their definition: the codebooks and their search tables, grid
// points encoded as themselves, a gaussian round trip close to the best the codebook allows, broken scales
// rejected, rows that are not whole super-blocks refused. Bit-exactness with ggml is checked by vectors_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "formats/format_test_util.h"
#include "formats/iq3_grids.h"
#include "quant/formats.h"

namespace quant {
namespace {

using testing::gaussian;
using testing::rmse;
using testing::round_trip;
using formats::Iq3Grid;
using formats::Iq3GridSearch;
using formats::iq3_code_level;
using formats::iq3_grid_codes;

Iq3Grid grid_of(const std::string& type) { return type == "iq3_xxs" ? Iq3Grid::xxs : Iq3Grid::s; }

// What a level decodes to, relative to the block scale.
double level_value(Iq3Grid grid, int level) {
  return grid == Iq3Grid::xxs ? formats::kIq3XxsLevelValue[level] : 2 * level + 1;
}

// The least squared error any encoding of this 32-value block can reach with this codebook, searched
// exhaustively: every group of 4 magnitudes takes its nearest grid point, over a fine sweep of block scales.
// Real blocks do worse (4-bit block scales, signs tied to magnitudes, a greedy search), so this is a floor.
double codebook_floor(const float* x, Iq3Grid grid) {
  const auto codes = iq3_grid_codes(grid);
  const double top = level_value(grid, 7);
  double largest = 0.0;
  for (int i = 0; i < 32; ++i) largest = std::max(largest, std::fabs(double(x[i])));
  double best = INFINITY;
  for (int step = 0; step <= 48; ++step) {
    const double scale = largest / (top * (0.6 + 0.6 * step / 48.0));  // the largest value at 0.6..1.2 x top
    double total = 0.0;
    for (int g = 0; g < 8; ++g) {
      double group_best = INFINITY;
      for (const uint16_t code : codes) {
        double error = 0.0;
        for (int i = 0; i < 4; ++i) {
          const double diff = scale * level_value(grid, iq3_code_level(code, i)) - std::fabs(double(x[4 * g + i]));
          error += diff * diff;
        }
        group_best = std::min(group_best, error);
      }
      total += group_best;
    }
    best = std::min(best, total);
  }
  return best;
}

class Iq3Format : public ::testing::TestWithParam<std::string> {
 protected:
  const FormatInfo& format() const { return *find_format(GetParam()); }
  Iq3Grid grid() const { return grid_of(GetParam()); }
};

TEST_P(Iq3Format, GaussianRoundTripStaysNearTheCodebookFloor) {
  const std::vector<float> x = gaussian(2 * 512, 31);
  double floor_sq = 0.0;
  for (size_t b = 0; b < x.size() / 32; ++b) floor_sq += codebook_floor(x.data() + 32 * b, grid());
  const double bound = 1.5 * std::sqrt(floor_sq / double(x.size()));
  const double plain = rmse(x, round_trip(format(), x, 2));
  EXPECT_LT(plain, bound) << GetParam();
  EXPECT_GT(plain, 0.0);

  std::vector<float> importance = gaussian(512, 32);
  for (float& w : importance) w = std::fabs(w) + 0.1f;
  EXPECT_LT(rmse(x, round_trip(format(), x, 2, importance.data())), bound) << GetParam();
}

// Groups that are grid points (the odd values 2l + 1, signed) come back as the same points and signs, all
// with one common scale: each block also holds a point with level 7, so the block's largest value is 15 and
// the first trial scale fits exactly. Every point of the codebook is used once.
TEST_P(Iq3Format, GridPointsAreEncodedAsThemselves) {
  const auto codes = iq3_grid_codes(grid());
  const Iq3GridSearch& search = Iq3GridSearch::of(grid());
  int anchor = -1;  // a grid point holding level 7, placed first in every block
  for (size_t i = 0; i < codes.size() && anchor < 0; ++i) {
    if (iq3_code_level(codes[i], 0) == 7) anchor = static_cast<int>(i);
  }
  ASSERT_GE(anchor, 0);
  std::vector<uint16_t> groups;  // 8 per block: the anchor, then the codebook in order, cycling to fill
  for (size_t next = 0; next < codes.size() || groups.size() % 64 != 0;) {
    if (groups.size() % 8 == 0) groups.push_back(codes[static_cast<size_t>(anchor)]);
    groups.push_back(codes[next++ % codes.size()]);
  }

  std::vector<float> x(groups.size() * 4);
  for (size_t g = 0; g < groups.size(); ++g) {
    for (int i = 0; i < 4; ++i) x[4 * g + i] = float(2 * iq3_code_level(groups[g], i) + 1);
  }
  std::mt19937 engine(5);
  for (size_t v = 0; v < x.size(); v += 8) {
    uint32_t negative = engine() & 0xff;
    // iq3_xxs can only store an even number of negatives in each 8 values.
    if (grid() == Iq3Grid::xxs && __builtin_popcount(negative) % 2 != 0) negative ^= 0x80;
    for (int i = 0; i < 8; ++i) {
      if ((negative >> i) & 1) x[v + size_t(i)] = -x[v + size_t(i)];
    }
  }
  const std::vector<float> importance(256, 1.0f);
  for (const bool weighted : {false, true}) {
    const std::vector<float> y = round_trip(format(), x, int64_t(x.size() / 256), weighted ? importance.data() : nullptr);
    const double common = y[0] / (level_value(grid(), iq3_code_level(groups[0], 0)) * (x[0] < 0 ? -1 : 1));
    ASSERT_GT(common, 0.0);
    for (size_t i = 0; i < x.size(); ++i) {
      const double expected = common * level_value(grid(), iq3_code_level(groups[i / 4], int(i % 4))) * (x[i] < 0 ? -1 : 1);
      ASSERT_NEAR(y[i], expected, 1e-6 * std::fabs(expected)) << GetParam() << " value " << i << " weighted " << weighted;
    }
  }
  EXPECT_GE(search.index_of(codes[0]), 0);
}

TEST_P(Iq3Format, AllZeroSuperBlockDecodesToZero) {
  const std::vector<float> x(256, 0.0f);
  for (const float y : round_trip(format(), x, 1)) EXPECT_EQ(y, 0.0f);
}

TEST_P(Iq3Format, RejectsRowsThatAreNotWholeSuperBlocks) {
  for (const int64_t n_per_row : {int64_t{128}, int64_t{288}}) {
    const std::vector<float> x(static_cast<size_t>(n_per_row), 1.0f);
    std::vector<uint8_t> bytes(1024);
    const Status status = quantize_rows(format(), x.data(), bytes.data(), 1, n_per_row, nullptr);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().kind(), ErrorKind::impossible);
    std::vector<float> out(static_cast<size_t>(n_per_row));
    EXPECT_FALSE(dequantize_values(format(), bytes.data(), out.data(), n_per_row).ok());
  }
}

TEST_P(Iq3Format, RejectsSuperBlocksWithAnInfiniteOrNaNScale) {
  std::vector<uint8_t> blocks(3 * format().block_bytes, 0);
  EXPECT_TRUE(validate_blocks(format(), blocks.data(), 3).ok());
  for (const uint16_t bad : {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e00}}) {
    std::vector<uint8_t> broken = blocks;
    std::memcpy(broken.data() + 2 * format().block_bytes, &bad, 2);  // d opens every super-block
    const Status status = validate_blocks(format(), broken.data(), 3);
    ASSERT_FALSE(status.ok());
    EXPECT_NE(status.error().reason().find("block 2"), std::string::npos) << status.error().message();
  }
}

TEST_P(Iq3Format, ReportsTheRowWhoseScaleOverflowsHalf) {
  std::vector<float> x = gaussian(2 * 256, 33);
  x[256 + 40] = 1.0e8f;  // its block scale (about 1e8 / 15) divided by 31 is beyond the largest f16
  std::vector<uint8_t> bytes(*row_bytes(format(), 256) * 2);
  const Status status = quantize_rows(format(), x.data(), bytes.data(), 2, 256, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().reason().find("row 1"), std::string::npos) << status.error().message();
}

INSTANTIATE_TEST_SUITE_P(Types, Iq3Format, ::testing::Values("iq3_xxs", "iq3_s"));

TEST(Iq3Grids, CodebooksAreDistinctAscendingCodes) {
  EXPECT_EQ(iq3_grid_codes(Iq3Grid::xxs).size(), 256u);
  EXPECT_EQ(iq3_grid_codes(Iq3Grid::s).size(), 512u);
  for (const Iq3Grid grid : {Iq3Grid::xxs, Iq3Grid::s}) {
    const auto codes = iq3_grid_codes(grid);
    EXPECT_TRUE(std::adjacent_find(codes.begin(), codes.end(), std::greater_equal<uint16_t>()) == codes.end());
    EXPECT_LT(codes.back(), 4096);
  }
}

// Entries of ggml's decoding tables (ggml-common.h, byte i is value i): iq3xxs_grid[5] = 0x04040c3e,
// [100] = 0x14040c1c, [255] = 0x3e341c04; iq3s_grid[4] = 0x0101010f, [300] = 0x07030503, [511] = 0x0f0f0101.
TEST(Iq3Grids, DecodedPointsMatchGgmlTables) {
  auto decode = [](Iq3Grid grid, int index) {
    uint32_t word = 0;
    for (int i = 0; i < 4; ++i) {
      word |= uint32_t(level_value(grid, iq3_code_level(iq3_grid_codes(grid)[size_t(index)], i))) << (8 * i);
    }
    return word;
  };
  EXPECT_EQ(decode(Iq3Grid::xxs, 5), 0x04040c3eu);
  EXPECT_EQ(decode(Iq3Grid::xxs, 100), 0x14040c1cu);
  EXPECT_EQ(decode(Iq3Grid::xxs, 255), 0x3e341c04u);
  EXPECT_EQ(decode(Iq3Grid::s, 4), 0x0101010fu);
  EXPECT_EQ(decode(Iq3Grid::s, 300), 0x07030503u);
  EXPECT_EQ(decode(Iq3Grid::s, 511), 0x0f0f0101u);
}

TEST(Iq3Grids, SearchTablesMapCodesAndListNearestPoints) {
  for (const Iq3Grid grid : {Iq3Grid::xxs, Iq3Grid::s}) {
    const auto codes = iq3_grid_codes(grid);
    const Iq3GridSearch& search = Iq3GridSearch::of(grid);
    for (size_t i = 0; i < codes.size(); ++i) {
      ASSERT_EQ(search.index_of(codes[i]), int(i));
      ASSERT_TRUE(search.neighbours(codes[i]).empty());
    }
    auto distance = [](uint16_t a, uint16_t b) {
      int sum = 0;
      for (int i = 0; i < 4; ++i) sum += (iq3_code_level(a, i) - iq3_code_level(b, i)) * (iq3_code_level(a, i) - iq3_code_level(b, i));
      return sum;
    };
    // ggml's rule (iq3xs_init_impl): every point sorted by (distance, index), kept up to the 2nd (iq3_xxs) or
    // 3rd (iq3_s) distinct distance.
    const int kept_distances = grid == Iq3Grid::xxs ? 2 : 3;
    for (uint16_t code = 0; code < 4096; ++code) {
      if (search.index_of(code) >= 0) continue;
      std::vector<std::pair<int, int>> ranked;
      for (size_t p = 0; p < codes.size(); ++p) ranked.push_back({distance(code, codes[p]), int(p)});
      std::sort(ranked.begin(), ranked.end());
      std::vector<uint16_t> expected;
      int distinct = 0;
      for (size_t j = 0; j < ranked.size(); ++j) {
        if (j == 0 || ranked[j].first != ranked[j - 1].first) ++distinct;
        if (distinct > kept_distances) break;
        expected.push_back(static_cast<uint16_t>(ranked[j].second));
      }
      const auto list = search.neighbours(code);
      ASSERT_EQ(std::vector<uint16_t>(list.begin(), list.end()), expected) << "code " << code;
      // The same list as codes, for the SIMD searches, readable for kListPadding entries past its end.
      const auto as_codes = search.neighbour_code_list(code);
      ASSERT_EQ(as_codes.count, int(list.size()));
      for (size_t k = 0; k < list.size(); ++k) ASSERT_EQ(as_codes.codes[k], codes[list[k]]) << code;
      volatile uint16_t past_end = as_codes.codes[as_codes.count + Iq3GridSearch::kListPadding - 1];
      (void)past_end;
    }
  }
}

TEST(Iq3Grids, SearchTablesAreBuiltOnceAcrossThreads) {
  std::vector<const Iq3GridSearch*> seen(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < seen.size(); ++t) {
    threads.emplace_back([&seen, t] { seen[t] = &Iq3GridSearch::of(t % 2 ? Iq3Grid::s : Iq3Grid::xxs); });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(seen[0], seen[2]);
  EXPECT_EQ(seen[1], seen[3]);
  EXPECT_NE(seen[0], seen[1]);
}

}  // namespace
}  // namespace quant
