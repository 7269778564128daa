// Quantize / dequantize layouts, our default convention's documented choices, FP16 casting against the probe
// of real numpy/torch conversions, histogram growth past the cap, and the table's JSON / GGUF forms.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "calibrate/histograms.h"
#include "quant/calibrate.h"
#include "quant/half.h"
#include "test_data.h"

namespace quant {
namespace {

TEST(QParams, DefaultConventionIsSymmetricOverTheNarrowGrid) {
  QuantSpec int8{8, true, true, false, false};
  auto p = compute_qparams(-2.0f, 1.27f, int8, Convention::quantize);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->range.min, -127);
  EXPECT_EQ(p->range.max, 127);
  EXPECT_EQ(p->scale, 2.0f / 127.0f);
  EXPECT_EQ(p->zero_point, 0);
  QuantSpec uint8{8, false, true, false, false};
  p = compute_qparams(-2.0f, 1.0f, uint8, Convention::quantize);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->range.max, 254);
  EXPECT_EQ(p->zero_point, 127);
  // An all-zero range: scale 1 so that dequantization gives exact zeros.
  p = compute_qparams(0.0f, 0.0f, QuantSpec{}, Convention::quantize);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->scale, 1.0f);
  EXPECT_EQ(p->zero_point, 0);
  // torch keeps eps and sets the affine zero point to qmin.
  p = compute_qparams(0.0f, 0.0f, QuantSpec{}, Convention::torch);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->scale, 1.1920928955078125e-07f);
  EXPECT_EQ(p->zero_point, -128);
}

TEST(QParams, QuantizeRoundsHalfToEvenAndClamps) {
  QParams p{0.5f, 0, {-8, 7}};
  EXPECT_EQ(quantize_value(0.25f, p), 0);   // 0.5 -> 0
  EXPECT_EQ(quantize_value(0.75f, p), 2);   // 1.5 -> 2
  EXPECT_EQ(quantize_value(100.0f, p), 7);
  EXPECT_EQ(quantize_value(-100.0f, p), -8);
  EXPECT_EQ(dequantize_value(-3, p), -1.5f);
}

TEST(QParams, PerChannelAndPerGroupLayouts) {
  const std::vector<int64_t> shape = {2, 4};
  const std::vector<float> values = {1, 2, 3, 4, 10, 20, 30, 40};
  QuantLayout channel{QuantLayout::Granularity::per_channel, 0, 0};
  std::vector<QParams> two = {{1.0f, 0, {-128, 127}}, {10.0f, 0, {-128, 127}}};
  auto codes = quantize_tensor(values, shape, channel, two);
  ASSERT_TRUE(codes.ok());
  EXPECT_EQ(*codes, (std::vector<int32_t>{1, 2, 3, 4, 1, 2, 3, 4}));
  QuantLayout group{QuantLayout::Granularity::per_group, 0, 2};
  auto count = qparams_count(shape, group);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 4);
  QuantLayout bad{QuantLayout::Granularity::per_group, 0, 3};
  EXPECT_FALSE(qparams_count(shape, bad).ok());
  EXPECT_FALSE(quantize_tensor(values, shape, channel, std::vector<QParams>(3)).ok());
}

TEST(Fp16, CastMatchesTheProbeAndCountsLosses) {
  std::ifstream in(testing::data_path("calibration/fp16_probe.json"));
  const nlohmann::json probe = nlohmann::json::parse(in);
  std::vector<float> inputs;
  for (const auto& b : probe["input_f32_bits"]) inputs.push_back(float_from_bits(std::stoul(b.get<std::string>(), nullptr, 16)));
  std::vector<uint16_t> out(inputs.size());
  const Fp16CastStats stats = cast_to_fp16(inputs, out);
  int compared = 0;
  for (const auto& [key, value] : probe.items()) {
    if (key.find("numpy") == std::string::npos || !value.is_array() || value.size() != inputs.size()) continue;
    for (size_t i = 0; i < inputs.size(); ++i) {
      EXPECT_EQ(out[i], std::stoul(value[i].get<std::string>(), nullptr, 16)) << key << " input " << i;
    }
    ++compared;
  }
  EXPECT_GE(compared, 1);
  std::vector<uint16_t> clamped(inputs.size());
  cast_to_fp16(inputs, clamped, /*clamp_for_onnx=*/true);
  const auto& onnx = probe["onnxconverter_common_clamp(1e-7,1e4)_bits"];
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(clamped[i], std::stoul(onnx[i].get<std::string>(), nullptr, 16)) << "onnx clamp input " << i;
  }
  EXPECT_EQ(stats.nan, 1u);
  EXPECT_EQ(stats.overflow, 4u);  // 65520, 100000, -100000, -65520
  EXPECT_GE(stats.underflow, 2u);
}

TEST(Histogram, DefaultConventionMergesBinsPastTheCapWhileTensorrtRefuses) {
  std::vector<float> small(1000), large(1000);
  for (int i = 0; i < 1000; ++i) {
    small[i] = static_cast<float>(i) / 1000.0f;
    large[i] = static_cast<float>(i);
  }
  calibration::AbsoluteGrowingHistogram capped(2048, 4096, true);
  ASSERT_TRUE(capped.add(small).ok());
  ASSERT_TRUE(capped.add(large).ok());
  EXPECT_LE(capped.counts().size(), 4096u);
  int64_t total = 0;
  for (int64_t c : capped.counts()) total += c;
  EXPECT_EQ(total, 2000);
  EXPECT_GE(capped.edges().back(), 999.0f);
  calibration::AbsoluteGrowingHistogram strict(2048, 4096, false);
  ASSERT_TRUE(strict.add(small).ok());
  EXPECT_FALSE(strict.add(large).ok());
}

TEST(Table, JsonRoundTripsAndGgufKeysAreNamed) {
  CalibrationTable table;
  table.spec = {8, true, true, false, false};
  CalibrationResult r;
  r.observed_min = {-1.0f};
  r.observed_max = {2.0f};
  r.lo = {-2.0f};
  r.hi = {2.0f};
  r.qparams = {{2.0f / 127.0f, 0, {-127, 127}}};
  table.entries.push_back({"blk.0.attn_q.weight", CalibrationMethod::minmax, r, 0.5, 40.0});
  const std::string text = calibration_table_to_json(table);
  auto back = calibration_table_from_json(text);
  ASSERT_TRUE(back.ok()) << back.error().message();
  ASSERT_EQ(back->entries.size(), 1u);
  EXPECT_EQ(back->entries[0].result.qparams[0].scale, 2.0f / 127.0f);
  EXPECT_EQ(back->entries[0].result.hi[0], 2.0f);
  const auto kv = calibration_table_to_gguf_metadata(table);
  bool found = false;
  for (const MetadataEntry& e : kv) {
    if (e.key == "quantize.calibration.blk.0.attn_q.weight.minmax.scale") found = true;
  }
  EXPECT_TRUE(found);
  EXPECT_FALSE(calibration_table_from_json("{\"format\": \"other\"}").ok());
}

// Damaged tables are errors, never exceptions: wrongly typed or missing fields, numbers out of range.
TEST(CalibrationTable, DamagedTablesAreErrorsNamingWhatIsWrong) {
  const struct {
    const char* text;
    const char* reason;
  } cases[] = {
      {"[1, 2]", "not a JSON object"},
      {"{\"format\": 7, \"version\": 1}", "not a quantize.calibration table"},
      {"{\"format\": \"quantize.calibration\"}", "version (missing) is not supported"},
      {"{\"format\": \"quantize.calibration\", \"version\": \"1\"}", "version \"1\" is not supported"},
      {"{\"format\": \"quantize.calibration\", \"version\": 2}", "version 2 is not supported"},
      {"{\"format\": \"quantize.calibration\", \"version\": 1E999}", "not a JSON object"},
      {"{\"format\": \"quantize.calibration\", \"version\": 1, \"settings\": 3}", "calibration table:"},
      {"{\"format\": \"quantize.calibration\", \"version\": 1}", "calibration table:"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    auto table = calibration_table_from_json(c.text);
    ASSERT_FALSE(table.ok());
    EXPECT_NE(table.error().reason().find(c.reason), std::string::npos) << table.error().message();
  }
}

}  // namespace
}  // namespace quant
