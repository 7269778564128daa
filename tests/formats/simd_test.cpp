// The SIMD kernels against the scalar ones: for every format with a fast path and every kernel level this CPU
// supports, the quantized bytes and the dequantized floats must be identical to the scalar path's, on ggml's
// vector inputs (with and without importance weights), random rows and edge rows (zeros, signed zeros, ties,
// huge, tiny, subnormal, NaN, Inf). Also: level selection, exhaustive f16 widening, strided f32 -> f16/bf16,
// and the error sums ErrorStats keeps.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "formats/simd_kernels.h"
#include "quant/formats.h"
#include "quant/half.h"
#include "quant/kernel_level.h"
#include "test_data.h"

namespace quant {
namespace {

// Restores the level that was active when the test started.
class LevelGuard {
 public:
  LevelGuard() : saved_(active_kernel_level()) {}
  ~LevelGuard() { (void)set_kernel_level(saved_); }

 private:
  KernelLevel saved_;
};

std::vector<KernelLevel> fast_levels() {
  std::vector<KernelLevel> levels;
  for (KernelLevel level : supported_kernel_levels()) {
    if (level != KernelLevel::scalar) levels.push_back(level);
  }
  return levels;
}

// Formats whose table entry dispatches to a fast kernel for quantizing or dequantizing.
std::vector<const FormatInfo*> formats_with_fast_paths() {
  std::vector<const FormatInfo*> result;
  for (const FormatInfo& format : all_formats()) {
    const bool fast_quantize = format.quantize != nullptr && format.quantize != formats::scalar_quantize(format.id);
    const bool fast_dequantize =
        format.dequantize != nullptr && format.dequantize != formats::scalar_dequantize(format.id);
    if (fast_quantize || fast_dequantize) result.push_back(&format);
  }
  return result;
}

// Equal bits, or both NaN (a NaN sum's payload is not part of the contract).
bool same_double(double a, double b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  uint64_t x, y;
  std::memcpy(&x, &a, 8);
  std::memcpy(&y, &b, 8);
  return x == y;
}

std::string bits_of(float f) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", float_bits(f));
  return text;
}

// Quantizes and dequantizes `input` at `level` through the table (raw kernels: no validation, so rows with
// non-finite scales are compared too).
struct Outcome {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};

Outcome run_at(KernelLevel level, const FormatInfo& format, const std::vector<float>& input, int64_t nrows,
               int64_t n_per_row, const float* importance) {
  EXPECT_TRUE(set_kernel_level(level).ok());
  Outcome outcome;
  outcome.bytes.assign(*row_bytes(format, n_per_row) * static_cast<uint64_t>(nrows), 0xA5);
  format.quantize(input.data(), outcome.bytes.data(), nrows, n_per_row, importance);
  outcome.values.assign(input.size(), -1.0f);
  if (format.dequantize != nullptr) format.dequantize(outcome.bytes.data(), outcome.values.data(), nrows * n_per_row);
  return outcome;
}

// Compares every fast level with scalar on one input; reports the first differing byte and value.
void expect_same_at_every_level(const FormatInfo& format, const std::vector<float>& input, int64_t nrows,
                                int64_t n_per_row, const float* importance, const std::string& what) {
  LevelGuard guard;
  const Outcome scalar = run_at(KernelLevel::scalar, format, input, nrows, n_per_row, importance);
  for (KernelLevel level : fast_levels()) {
    const Outcome fast = run_at(level, format, input, nrows, n_per_row, importance);
    SCOPED_TRACE(std::string(format.name) + " at " + std::string(kernel_level_name(level)) + " on " + what);
    ASSERT_EQ(fast.bytes.size(), scalar.bytes.size());
    for (size_t i = 0; i < fast.bytes.size(); ++i) {
      ASSERT_EQ(int(fast.bytes[i]), int(scalar.bytes[i])) << "byte " << i << " (block " << i / format.block_bytes << ")";
    }
    for (size_t i = 0; i < fast.values.size(); ++i) {
      ASSERT_EQ(float_bits(fast.values[i]), float_bits(scalar.values[i]))
          << "value " << i << ": " << fast.values[i] << " vs " << scalar.values[i];
    }
  }
}

std::vector<float> read_input(const std::string& name) {
  return testing::read_floats(testing::data_path("ggml-vectors/inputs/" + name + ".f32"));
}

// ---------------------------------------------------------------------------------------- level selection

TEST(KernelLevels, NamesRoundTrip) {
  for (KernelLevel level : {KernelLevel::scalar, KernelLevel::avx2, KernelLevel::avx512}) {
    EXPECT_EQ(parse_kernel_level(kernel_level_name(level)), level);
  }
  EXPECT_EQ(parse_kernel_level("AVX2"), KernelLevel::avx2);
  EXPECT_FALSE(parse_kernel_level("sse9").has_value());
  EXPECT_FALSE(parse_kernel_level("").has_value());
}

TEST(KernelLevels, SupportedLevelsAreConsistent) {
  EXPECT_TRUE(kernel_level_supported(KernelLevel::scalar));
  const auto levels = supported_kernel_levels();
  ASSERT_FALSE(levels.empty());
  EXPECT_EQ(levels.front(), KernelLevel::scalar);
  EXPECT_EQ(levels.back(), best_supported_level());
  LevelGuard guard;
  for (KernelLevel level : {KernelLevel::scalar, KernelLevel::avx2, KernelLevel::avx512}) {
    const Status status = set_kernel_level(level);
    EXPECT_EQ(status.ok(), kernel_level_supported(level));
    if (status.ok()) {
      EXPECT_EQ(active_kernel_level(), level);
    }
  }
}

TEST(KernelLevels, FastPathsExistWhereTheCpuHasThem) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  std::vector<std::string> names;
  for (const FormatInfo* format : formats_with_fast_paths()) names.emplace_back(format->name);
  for (const char* expected :
       {"f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq1_s", "iq1_m",
        "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq4_nl", "iq4_xs"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
}

// ------------------------------------------------------------------------------------ ggml vector inputs

TEST(SimdKernels, GgmlVectorInputsMatchScalar) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  const char* inputs[] = {"const", "constneg", "gauss", "halfties", "onehuge", "outliers",
                          "ramp",  "rowscales", "studentt3", "tiny", "zeros"};
  const std::vector<float> imat_a = testing::read_floats(testing::data_path("ggml-vectors/imatrix/imatA.f32"));
  const std::vector<float> imat_z = testing::read_floats(testing::data_path("ggml-vectors/imatrix/imatZ.f32"));
  for (const FormatInfo* format : formats_with_fast_paths()) {
    for (const char* name : inputs) {
      const std::vector<float> input = read_input(name);
      ASSERT_EQ(input.size(), 4u * 1024u);
      if (!format->requires_importance) expect_same_at_every_level(*format, input, 4, 1024, nullptr, name);
      if (format->reads_importance) {
        expect_same_at_every_level(*format, input, 4, 1024, imat_a.data(), std::string(name) + "/imatA");
        expect_same_at_every_level(*format, input, 4, 1024, imat_z.data(), std::string(name) + "/imatZ");
      }
    }
  }
}

// ----------------------------------------------------------------------------------- random and edge rows

// Rows of 1024 values drawn from several distributions and scales, with edge values sprinkled in.
std::vector<float> random_rows(uint32_t seed, int64_t nrows, int64_t n_per_row, bool with_specials) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(nrows * n_per_row));
  const float scales[] = {1.0f, 1e-3f, 1e3f, 1e-30f, 3e4f};
  for (int64_t r = 0; r < nrows; ++r) {
    const float scale = scales[r % 5];
    for (int64_t i = 0; i < n_per_row; ++i) {
      float v = (r % 2 == 0 ? normal(rng) : uniform(rng)) * scale;
      if (rng() % 7 == 0) v = std::round(v * 4.0f) / 4.0f;  // many exact ties at quarter steps
      values[static_cast<size_t>(r * n_per_row + i)] = v;
    }
  }
  if (with_specials) {
    const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                              -std::numeric_limits<float>::quiet_NaN(), FLT_MAX, -FLT_MAX, 1e-40f, -1e-45f,
                              FLT_MIN, 65504.0f, 65520.0f, 0.5f, -0.5f, 1.5f, 2.5f};
    for (size_t i = 0; i < values.size(); i += 1 + rng() % 97) values[i] = specials[rng() % std::size(specials)];
  }
  return values;
}

// Whole blocks of one repeated pattern: every value a block can be made of, one block per pattern.
std::vector<float> edge_blocks(int64_t block_values, int64_t* nrows) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<std::vector<float>> patterns = {
      {0.0f}, {-0.0f}, {0.0f, -0.0f}, {-0.0f, 0.0f, 1.0f}, {0.0f, -0.0f, -1.0f}, {1.0f}, {-1.0f},
      {1.0f, -1.0f}, {-1.0f, 1.0f}, {3.0f, -3.0f, 1.0f}, {1e30f, -1e30f}, {FLT_MAX}, {-FLT_MAX, 1.0f},
      {1e-40f}, {-1e-42f, 1e-45f}, {FLT_MIN, -FLT_MIN}, {1e-38f, 2e-38f}, {inf}, {-inf}, {inf, -inf},
      {inf, 1.0f}, {nan}, {nan, 1.0f}, {1.0f, nan, -2.0f}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f}, {65504.0f, -65520.0f},
      {7.5f, -8.5f, 0.25f}, {1e-8f, 1e-7f}};
  std::vector<float> values;
  for (const auto& pattern : patterns) {
    for (int64_t i = 0; i < block_values; ++i) values.push_back(pattern[static_cast<size_t>(i) % pattern.size()]);
  }
  *nrows = static_cast<int64_t>(patterns.size());
  return values;
}

TEST(SimdKernels, RandomRowsMatchScalar) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  std::vector<float> importance(1024);
  std::mt19937 rng(7);
  for (float& w : importance) w = std::uniform_real_distribution<float>(0.0f, 4.0f)(rng);
  for (const FormatInfo* format : formats_with_fast_paths()) {
    for (uint32_t seed = 1; seed <= 3; ++seed) {
      for (bool specials : {false, true}) {
        const std::vector<float> input = random_rows(seed, 10, 1024, specials);
        const std::string what = "random seed " + std::to_string(seed) + (specials ? " with specials" : "");
        if (!format->requires_importance) expect_same_at_every_level(*format, input, 10, 1024, nullptr, what);
        if (format->reads_importance) {
          expect_same_at_every_level(*format, input, 10, 1024, importance.data(), what + " weighted");
        }
      }
    }
  }
}

TEST(SimdKernels, EdgeBlocksMatchScalar) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  for (const FormatInfo* format : formats_with_fast_paths()) {
    // Each pattern fills one block (at least 32 values, so the float types see whole vectors too).
    const int64_t block_values = std::max<int64_t>(format->block_size, 32);
    int64_t nrows = 0;
    const std::vector<float> input = edge_blocks(block_values, &nrows);
    std::vector<float> importance(static_cast<size_t>(block_values), 1.0f);
    if (!format->requires_importance) {
      expect_same_at_every_level(*format, input, nrows, block_values, nullptr, "edge blocks");
    }
    if (format->reads_importance) {
      expect_same_at_every_level(*format, input, nrows, block_values, importance.data(), "edge blocks weighted");
    }
  }
}

// Random rows with the edge values of random_rows but only finite ones (NaN and infinities replaced by huge
// finite values), so that blocks stay on the fast paths that send non-finite blocks to the scalar kernel.
TEST(SimdKernels, FiniteEdgeValuesMatchScalar) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  std::vector<float> importance(1024);
  std::mt19937 rng(11);
  for (float& w : importance) w = std::uniform_real_distribution<float>(0.0f, 4.0f)(rng);
  for (const FormatInfo* format : formats_with_fast_paths()) {
    for (uint32_t seed = 21; seed <= 23; ++seed) {
      std::vector<float> input = random_rows(seed, 10, 1024, true);
      for (float& v : input) {
        if (!std::isfinite(v)) v = std::signbit(v) ? -FLT_MAX : 3e38f;
      }
      const std::string what = "finite specials seed " + std::to_string(seed);
      if (!format->requires_importance) expect_same_at_every_level(*format, input, 10, 1024, nullptr, what);
      if (format->reads_importance) {
        expect_same_at_every_level(*format, input, 10, 1024, importance.data(), what + " weighted");
      }
    }
  }
}

// Many blocks of plain uniform and gaussian values: rare paths of the searches (about one q3_K super-block in
// 300 needs the fifth refinement sweep of make_q3_quants) are reached only over thousands of blocks.
TEST(SimdKernels, ManyBlocksMatchScalar) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  constexpr int64_t kRows = 384;
  constexpr int64_t kRow = 1024;
  std::mt19937 rng(2024);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> input(static_cast<size_t>(kRows * kRow));
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t i = 0; i < kRow; ++i) input[size_t(r * kRow + i)] = r % 2 == 0 ? uniform(rng) : normal(rng);
  }
  std::vector<float> importance(kRow);
  for (float& w : importance) w = std::uniform_real_distribution<float>(0.0f, 4.0f)(rng);
  for (const FormatInfo* format : formats_with_fast_paths()) {
    if (!format->requires_importance) expect_same_at_every_level(*format, input, kRows, kRow, nullptr, "many blocks");
    if (format->reads_importance) {
      expect_same_at_every_level(*format, input, kRows, kRow, importance.data(), "many blocks weighted");
    }
  }
}

// Rows of four 256-value super-blocks whose 16-value groups differ in kind: all-zero groups beside non-zero
// ones, one large group among tiny ones, constant groups, groups with a single non-zero value, values on
// exact halves of a step, and one row whose third block alone holds a NaN (so one block of the row takes the
// scalar kernel and its neighbours the fast one).
std::vector<float> group_pattern_rows(int64_t* nrows) {
  constexpr int kRow = 1024;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> rows;
  auto row_of = [&](auto value_at) {
    std::vector<float> row(kRow);
    for (int i = 0; i < kRow; ++i) row[size_t(i)] = value_at(i / 16, i % 16);
    rows.push_back(row);
  };
  row_of([&](int group, int) { return group % 2 == 0 ? 0.0f : normal(rng); });
  row_of([&](int group, int) { return group % 16 == 5 ? 1e4f * normal(rng) : 1e-3f * normal(rng); });
  row_of([&](int group, int) { return 0.25f * float(group % 9) - 1.0f; });
  row_of([&](int group, int i) { return i == group % 16 ? (group % 3 == 0 ? -2.5f : 3.0f) : 0.0f; });
  row_of([&](int group, int i) { return 0.5f * float((i * 7 + group) % 9) - 2.0f; });
  row_of([&](int group, int i) { return group % 4 == 0 ? 1e-20f * float(i - 8) : float(i % 5) - 2.0f; });
  row_of([&](int, int) { return normal(rng); });
  rows.back()[2 * 256 + 77] = std::numeric_limits<float>::quiet_NaN();
  row_of([&](int, int) { return normal(rng); });
  rows.back()[3 * 256 + 3] = -std::numeric_limits<float>::infinity();
  std::vector<float> values;
  for (const auto& row : rows) values.insert(values.end(), row.begin(), row.end());
  *nrows = static_cast<int64_t>(rows.size());
  return values;
}

// Importance vectors of 1024 columns with zeros (whole groups and single columns), huge and tiny weights,
// and one holding a NaN and an infinity (the blocks that read them take the scalar kernel).
std::vector<std::vector<float>> importance_patterns() {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> uniform(0.0f, 2.0f);
  std::vector<std::vector<float>> patterns(5, std::vector<float>(1024));
  for (int i = 0; i < 1024; ++i) {
    const float w = uniform(rng);
    patterns[0][size_t(i)] = (i / 16) % 3 == 0 ? 0.0f : w;              // zero groups
    patterns[1][size_t(i)] = i % 5 == 0 ? 0.0f : w;                     // scattered zeros
    patterns[2][size_t(i)] = (i / 16) % 4 == 1 ? 1e30f * w : 1e-30f * w;  // huge beside tiny
    patterns[3][size_t(i)] = i % 7 == 0 ? 1e-42f : w;                   // subnormal weights
    patterns[4][size_t(i)] = w;
  }
  patterns[4][300] = std::numeric_limits<float>::quiet_NaN();
  patterns[4][800] = std::numeric_limits<float>::infinity();
  return patterns;
}

TEST(SimdKernels, GroupPatternsAndImportanceEdgesMatchScalar) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  int64_t nrows = 0;
  const std::vector<float> input = group_pattern_rows(&nrows);
  const auto importances = importance_patterns();
  for (const FormatInfo* format : formats_with_fast_paths()) {
    if (1024 % format->block_size != 0) continue;
    if (!format->requires_importance) expect_same_at_every_level(*format, input, nrows, 1024, nullptr, "group patterns");
    if (!format->reads_importance) continue;
    for (size_t k = 0; k < importances.size(); ++k) {
      expect_same_at_every_level(*format, input, nrows, 1024, importances[k].data(),
                                 "group patterns, importance pattern " + std::to_string(k));
    }
  }
}

// Dequantizing arbitrary bytes (every bit pattern a block field can hold, f16 scales NaN and infinite
// included) gives the same floats at every level, bit for bit (a NaN's payload is not part of the contract).
TEST(SimdKernels, RandomBlocksDequantizeLikeScalar) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  LevelGuard guard;
  std::mt19937 rng(17);
  for (const FormatInfo& format : all_formats()) {
    if (format.dequantize == nullptr || format.dequantize == formats::scalar_dequantize(format.id)) continue;
    const int64_t nblocks = 400;
    std::vector<uint8_t> bytes(format.block_bytes * size_t(nblocks));
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    const int64_t n = nblocks * format.block_size;
    std::vector<float> expected(static_cast<size_t>(n)), actual(static_cast<size_t>(n));
    ASSERT_TRUE(set_kernel_level(KernelLevel::scalar).ok());
    format.dequantize(bytes.data(), expected.data(), n);
    for (KernelLevel level : fast_levels()) {
      ASSERT_TRUE(set_kernel_level(level).ok());
      std::fill(actual.begin(), actual.end(), -1.0f);
      format.dequantize(bytes.data(), actual.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(actual[size_t(i)]) && std::isnan(expected[size_t(i)])) continue;
        ASSERT_EQ(float_bits(actual[size_t(i)]), float_bits(expected[size_t(i)]))
            << format.name << " value " << i << " (block " << i / format.block_size << ") at "
            << kernel_level_name(level);
      }
    }
  }
}

TEST(SimdKernels, OddLengthsOfPlainFloatsMatchScalar) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  // f16 and bf16 rows of every length from 1 to 70: vector bodies and scalar tails.
  for (const char* name : {"f16", "bf16"}) {
    const FormatInfo& format = *find_format(name);
    for (int64_t n = 1; n <= 70; ++n) {
      const std::vector<float> input = random_rows(static_cast<uint32_t>(n), 1, n, true);
      expect_same_at_every_level(format, input, 1, n, nullptr, "length " + std::to_string(n));
    }
  }
}

// ----------------------------------------------------------------------------------- plain conversions

TEST(SimdKernels, EveryHalfWidensLikeScalar) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  LevelGuard guard;
  std::vector<uint16_t> halves(65536);
  for (uint32_t h = 0; h < 65536; ++h) halves[h] = static_cast<uint16_t>(h);
  for (const char* name : {"f16", "bf16"}) {
    const FormatInfo& format = *find_format(name);
    std::vector<float> expected(65536), actual(65536);
    ASSERT_TRUE(set_kernel_level(KernelLevel::scalar).ok());
    format.dequantize(halves.data(), expected.data(), 65536);
    for (uint32_t h = 0; h < 65536; ++h) {
      const float reference = format.id == TypeId::f16 ? fp16_to_fp32(static_cast<uint16_t>(h))
                                                       : bf16_to_fp32(static_cast<uint16_t>(h));
      ASSERT_EQ(float_bits(expected[h]), float_bits(reference));
    }
    for (KernelLevel level : fast_levels()) {
      ASSERT_TRUE(set_kernel_level(level).ok());
      format.dequantize(halves.data(), actual.data(), 65536);
      for (uint32_t h = 0; h < 65536; ++h) {
        ASSERT_EQ(float_bits(actual[h]), float_bits(expected[h])) << name << " 0x" << std::hex << h << " at "
                                                                  << kernel_level_name(level);
      }
    }
  }
}

TEST(SimdKernels, StridedFloatsNarrowLikeScalar) {
  if (fast_levels().empty()) GTEST_SKIP() << "this CPU has no AVX2";
  LevelGuard guard;
  // About a million f32 bit patterns spread over all of them (every exponent, many mantissas), plus the
  // rounding boundaries of f16 around each of its exponents.
  std::vector<float> values;
  for (uint64_t bits = 0; bits < (uint64_t(1) << 32); bits += 4099) values.push_back(float_from_bits(uint32_t(bits)));
  for (uint32_t exponent = 100; exponent < 150; ++exponent) {
    for (uint32_t low : {0x0000u, 0x0fffu, 0x1000u, 0x1001u, 0x2000u, 0x3000u, 0x1fffu, 0x7fffu, 0x8000u, 0x8001u}) {
      for (uint32_t sign : {0u, 0x80000000u}) values.push_back(float_from_bits(sign | (exponent << 23) | low));
    }
  }
  for (const char* name : {"f16", "bf16"}) {
    const FormatInfo& format = *find_format(name);
    const int64_t n = static_cast<int64_t>(values.size());
    std::vector<uint16_t> expected(values.size()), actual(values.size());
    ASSERT_TRUE(set_kernel_level(KernelLevel::scalar).ok());
    format.quantize(values.data(), expected.data(), 1, n, nullptr);
    for (KernelLevel level : fast_levels()) {
      ASSERT_TRUE(set_kernel_level(level).ok());
      format.quantize(values.data(), actual.data(), 1, n, nullptr);
      for (size_t i = 0; i < values.size(); ++i) {
        ASSERT_EQ(actual[i], expected[i]) << name << " of " << bits_of(values[i]) << " at " << kernel_level_name(level);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------ error sums

TEST(SimdKernels, ErrorSumsDoNotDependOnTheLevel) {
  LevelGuard guard;
  for (int64_t n : {0, 1, 3, 4, 5, 31, 1024, 1027}) {
    std::vector<float> reference = random_rows(static_cast<uint32_t>(n + 11), 1, n, n > 100);
    std::vector<float> reconstructed = random_rows(static_cast<uint32_t>(n + 12), 1, n, false);
    for (int64_t i = 0; i < n; ++i) reconstructed[size_t(i)] = reference[size_t(i)] + 0.01f * reconstructed[size_t(i)];
    formats::ErrorSums scalar;
    scalar.max_abs = 0.125;
    formats::error_sums_scalar(reference.data(), reconstructed.data(), n, &scalar);
    // The fixed order: lane i % 4, lanes combined pairwise.
    double lanes[4] = {};
    for (int64_t i = 0; i < n; ++i) {
      const double d = double(reference[size_t(i)]) - double(reconstructed[size_t(i)]);
      lanes[i % 4] += d * d;
    }
    EXPECT_TRUE(same_double(scalar.sum_sq_error, (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])));
    for (KernelLevel level : fast_levels()) {
      ASSERT_TRUE(set_kernel_level(level).ok());
      formats::ErrorSums fast;
      fast.max_abs = 0.125;
      formats::accumulate_error_sums(reference.data(), reconstructed.data(), n, &fast);
      SCOPED_TRACE("n = " + std::to_string(n) + " at " + std::string(kernel_level_name(level)));
      EXPECT_TRUE(same_double(fast.sum_sq_error, scalar.sum_sq_error)) << fast.sum_sq_error << " vs " << scalar.sum_sq_error;
      EXPECT_TRUE(same_double(fast.sum_sq_reference, scalar.sum_sq_reference)) << fast.sum_sq_reference << " vs " << scalar.sum_sq_reference;
      EXPECT_TRUE(same_double(fast.sum_sq_reconstructed, scalar.sum_sq_reconstructed)) << fast.sum_sq_reconstructed << " vs " << scalar.sum_sq_reconstructed;
      EXPECT_TRUE(same_double(fast.dot, scalar.dot)) << fast.dot << " vs " << scalar.dot;
      EXPECT_TRUE(same_double(fast.max_abs, scalar.max_abs)) << fast.max_abs << " vs " << scalar.max_abs;
    }
  }
}

}  // namespace
}  // namespace quant
