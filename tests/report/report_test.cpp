#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "quant/report.h"

namespace quant {
namespace {

TEST(ErrorStats, MetricsOfAKnownError) {
  const std::vector<float> x = {3, 4, 0, 0};
  const std::vector<float> y = {3, 3, 0, 1};  // errors 0, 1, 0, -1
  ErrorStats stats;
  stats.add(x.data(), y.data(), 4);
  EXPECT_DOUBLE_EQ(stats.rmse(), std::sqrt(2.0 / 4.0));
  EXPECT_DOUBLE_EQ(stats.max_abs_error(), 1.0);
  EXPECT_DOUBLE_EQ(stats.sqnr_db(), 10.0 * std::log10(25.0 / 2.0));
  EXPECT_DOUBLE_EQ(stats.cosine(), 21.0 / (5.0 * std::sqrt(19.0)));
}

TEST(ErrorStats, ExactAndDegenerateCases) {
  const std::vector<float> zeros(8, 0.0f), ones(8, 1.0f);
  ErrorStats exact;
  exact.add(ones.data(), ones.data(), 8);
  EXPECT_TRUE(std::isinf(exact.sqnr_db()));
  EXPECT_DOUBLE_EQ(exact.cosine(), 1.0);
  ErrorStats both_zero;
  both_zero.add(zeros.data(), zeros.data(), 8);
  EXPECT_DOUBLE_EQ(both_zero.cosine(), 1.0);
  EXPECT_DOUBLE_EQ(both_zero.rmse(), 0.0);
  ErrorStats lost;
  lost.add(ones.data(), zeros.data(), 8);
  EXPECT_DOUBLE_EQ(lost.cosine(), 0.0);
  EXPECT_DOUBLE_EQ(lost.rmse(), 1.0);
}

TEST(ErrorStats, MergingPartsEqualsOnePass) {
  std::vector<float> x(100), y(100);
  for (int i = 0; i < 100; ++i) { x[i] = std::sin(float(i)); y[i] = x[i] + 0.01f * float(i % 7 - 3); }
  ErrorStats whole, first, second;
  whole.add(x.data(), y.data(), 100);
  first.add(x.data(), y.data(), 37);
  second.add(x.data() + 37, y.data() + 37, 63);
  first.merge(second);
  EXPECT_NEAR(first.rmse(), whole.rmse(), 1e-15);
  EXPECT_EQ(first.max_abs_error(), whole.max_abs_error());
  EXPECT_NEAR(first.cosine(), whole.cosine(), 1e-15);
}

TEST(ConversionReport, JsonHasTotalsAndNullForInfiniteSqnr) {
  ConversionReport report;
  report.input = "in.gguf";
  report.output = "out.gguf";
  report.input_bytes = 400;
  report.output_bytes = 100;
  TensorReport t;
  t.name = "w";
  t.shape = {4, 2};
  t.converted = true;
  const std::vector<float> v(8, 1.0f);
  t.error.add(v.data(), v.data(), 8);
  t.bytes_out = 8;
  report.tensors.push_back(t);
  const nlohmann::json j = to_json(report);
  EXPECT_EQ(j["totals"]["ratio"], 4.0);
  EXPECT_EQ(j["totals"]["bits_per_weight"], 8.0);
  EXPECT_TRUE(j["tensors"][0]["error"]["sqnr_db"].is_null());
  EXPECT_EQ(j["tensors"][0]["type_out"], "f32");
}

}  // namespace
}  // namespace quant
