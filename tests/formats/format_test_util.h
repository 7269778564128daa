// Shared helpers of the format property tests (tests/formats/*_test.cpp): deterministic gaussian rows,
// quantize / dequantize through the format table with the status checked, and the RMSE between two rows.
//
// The two gaussian generators give different samples for the same seed; each test keeps the one its bounds
// were written against.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "quant/formats.h"

namespace quant::testing {

// Deterministic standard normal values times `sigma` (Box-Muller in double over mt19937, whose output the
// standard fixes; the cosine branch only).
inline std::vector<float> gaussian(size_t n, uint32_t seed, double sigma = 1.0) {
  std::mt19937 engine(seed);
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) {
    const double u1 = (static_cast<double>(engine()) + 1.0) / 4294967297.0;
    const double u2 = static_cast<double>(engine()) / 4294967296.0;
    values[i] = static_cast<float>(sigma * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  return values;
}

// Deterministic standard normal values, Box-Muller in float over mt19937 taking both the cosine and the sine
// of each pair (independent of the library's normal_distribution).
inline std::vector<float> gaussian_pairs(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> values(n);
  for (size_t i = 0; i < n; i += 2) {
    const float u1 = std::max(uniform(rng), 1e-7f), u2 = uniform(rng);
    const float radius = std::sqrt(-2.0f * std::log(u1));
    values[i] = radius * std::cos(6.2831853f * u2);
    if (i + 1 < n) values[i + 1] = radius * std::sin(6.2831853f * u2);
  }
  return values;
}

// The bytes of x quantized as `nrows` equal rows, with `importance` (null or one weight per row value);
// a failed status is a test failure.
inline std::vector<uint8_t> quantize(const FormatInfo& format, const std::vector<float>& x, int64_t nrows = 1,
                                     const float* importance = nullptr) {
  const int64_t n_per_row = static_cast<int64_t>(x.size()) / nrows;
  std::vector<uint8_t> bytes(*row_bytes(format, n_per_row) * static_cast<uint64_t>(nrows));
  const Status status = quantize_rows(format, x.data(), bytes.data(), nrows, n_per_row, importance);
  EXPECT_TRUE(status.ok()) << format.name << ": " << status.error().message();
  return bytes;
}

// The first n values `bytes` decode to; a failed status is a test failure.
inline std::vector<float> dequantize(const FormatInfo& format, const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> values(n);
  const Status status = dequantize_values(format, bytes.data(), values.data(), static_cast<int64_t>(n));
  EXPECT_TRUE(status.ok()) << format.name << ": " << status.error().message();
  return values;
}

// x quantized as `nrows` rows and decoded again.
inline std::vector<float> round_trip(const FormatInfo& format, const std::vector<float>& x, int64_t nrows = 1,
                                     const float* importance = nullptr) {
  return dequantize(format, quantize(format, x, nrows, importance), x.size());
}

// The root mean square of a - b, in double.
inline double rmse(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
  return std::sqrt(sum / double(a.size()));
}

}  // namespace quant::testing
