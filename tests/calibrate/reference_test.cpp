// Walks every reference dataset x method x dtype of tests/data/calibration (made by real torch 2.11, real
// onnxruntime 1.30 and the checked pytorch-quantization re-implementation) and compares float32 bits of ranges
// and scales, and zero points, with what each --convention produces.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "quant/calibrate.h"
#include "quant/half.h"
#include "test_data.h"

namespace quant {
namespace {

using nlohmann::json;

struct Dataset {
  std::string name;
  std::vector<float> values;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> offsets;
  json expected;
};

const std::vector<std::string> kDatasets = {"gaussian", "gaussian_small", "student_t3", "gaussian_outliers",
                                            "relu",     "drift",          "imatrix"};

Dataset load(const std::string& name) {
  Dataset d;
  d.name = name;
  d.values = testing::read_floats(testing::data_path("calibration/" + name + ".f32"));
  std::ifstream in(testing::data_path("calibration/" + name + ".json"));
  json doc = json::parse(in);
  d.shapes = doc["batch_shapes"].get<std::vector<std::vector<int64_t>>>();
  d.offsets = doc["batch_offsets_elements"].get<std::vector<int64_t>>();
  d.expected = doc["expected"];
  return d;
}

uint32_t hex_bits(const json& j) { return static_cast<uint32_t>(std::stoul(j.get<std::string>(), nullptr, 16)); }
uint32_t bits_of(float f) { return float_bits(f); }

CalibrationResult run(const Dataset& d, const CalibrationOptions& options) {
  auto made = Calibrator::create(options);
  EXPECT_TRUE(made.ok()) << (made.ok() ? "" : made.error().message());
  if (!made.ok()) return {};
  Calibrator& calibrator = **made;
  for (int pass = 0; pass < calibrator.passes_needed(); ++pass) {
    calibrator.start_pass(pass);
    for (size_t b = 0; b < d.shapes.size(); ++b) {
      int64_t n = 1;
      for (int64_t s : d.shapes[b]) n *= s;
      EXPECT_TRUE(calibrator.observe({d.values.data() + d.offsets[b], static_cast<size_t>(n)}, d.shapes[b]).ok());
    }
  }
  auto result = calibrator.finish();
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message());
  return result.ok() ? *result : CalibrationResult{};
}

// The torch observer keys of the reference files, as our specs.
struct TorchKey {
  const char* key;
  QuantSpec spec;
};
const TorchKey kTorchKeys[] = {
    {"qint8_affine", {8, true, false, false, false}},
    {"qint8_symmetric", {8, true, true, false, false}},
    {"qint8_symmetric_-127_127", {8, true, true, true, false}},
    {"qint8_symmetric_reduce_range", {8, true, true, false, true}},
    {"quint8_affine", {8, false, false, false, false}},
    {"quint8_affine_reduce_range", {8, false, false, false, true}},
    {"quint8_symmetric", {8, false, true, false, false}},
    {"int4_affine_qint8_-8_7", {4, true, false, false, false}},
    {"int4_symmetric_qint8_-8_7", {4, true, true, false, false}},
    {"uint4_affine_quint8_0_15", {4, false, false, false, false}},
    {"uint4_symmetric_quint8_0_15", {4, false, true, false, false}},
};

TEST(TorchConvention, MinMaxAndMovingAverageMatchTorch211BitForBit) {
  int compared = 0;
  for (const std::string& name : kDatasets) {
    const Dataset d = load(name);
    for (const auto& [observer, method] :
         {std::pair<std::string, CalibrationMethod>{"MinMaxObserver", CalibrationMethod::minmax},
          {"MovingAverageMinMaxObserver(averaging_constant=0.01)", CalibrationMethod::ema}}) {
      const json& table = d.expected["torch_2_11_actual"][observer];
      for (const TorchKey& k : kTorchKeys) {
        SCOPED_TRACE(name + " " + observer + " " + k.key);
        const json& e = table.at(k.key);
        CalibrationOptions o;
        o.convention = Convention::torch;
        o.method = method;
        o.spec = k.spec;
        const CalibrationResult r = run(d, o);
        ASSERT_EQ(r.qparams.size(), 1u);
        EXPECT_EQ(bits_of(r.lo[0]), bits_of(e["min_val"].get<float>()));
        EXPECT_EQ(bits_of(r.hi[0]), bits_of(e["max_val"].get<float>()));
        EXPECT_EQ(bits_of(r.qparams[0].scale), hex_bits(e["scale_f32"]));
        EXPECT_EQ(r.qparams[0].zero_point, e["zero_point"].get<int64_t>());
        EXPECT_EQ(r.qparams[0].range.min, e["quant_min"].get<int64_t>());
        EXPECT_EQ(r.qparams[0].range.max, e["quant_max"].get<int64_t>());
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 7 * 2 * 11);
}

const TorchKey kTorchHistogramKeys[] = {
    {"qint8_symmetric", {8, true, true, false, false}},
    {"quint8_affine", {8, false, false, false, false}},
    {"int4_symmetric_qint8_-8_7", {4, true, true, false, false}},
    {"uint4_affine_quint8_0_15", {4, false, false, false, false}},
};

TEST(TorchConvention, HistogramObserverMatchesTorch211) {
  for (const std::string& name : kDatasets) {
    const Dataset d = load(name);
    const json& table = d.expected["torch_2_11_actual"]["HistogramObserver(bins=2048)"];
    for (const TorchKey& k : kTorchHistogramKeys) {
      SCOPED_TRACE(name + " HistogramObserver " + k.key);
      const json& e = table.at(k.key);
      CalibrationOptions o;
      o.convention = Convention::torch;
      o.method = CalibrationMethod::mse;
      o.spec = k.spec;
      const CalibrationResult r = run(d, o);
      ASSERT_EQ(r.qparams.size(), 1u);
      EXPECT_EQ(bits_of(r.observed_min[0]), bits_of(e["hist_min_val"].get<float>()));
      EXPECT_EQ(bits_of(r.observed_max[0]), bits_of(e["hist_max_val"].get<float>()));
      EXPECT_EQ(bits_of(r.lo[0]), bits_of(e["search_min"].get<float>()));
      EXPECT_EQ(bits_of(r.hi[0]), bits_of(e["search_max"].get<float>()));
      EXPECT_EQ(bits_of(r.qparams[0].scale), hex_bits(e["scale_f32"]));
      EXPECT_EQ(r.qparams[0].zero_point, e["zero_point"].get<int64_t>());
    }
  }
}

// onnxruntime 1.30 calibrator names of the reference files, as our options.
struct OrtCase {
  const char* key;
  CalibrationMethod method;
  bool symmetric;
  double percentile;
  bool both_tails;
};
const OrtCase kOrtCases[] = {
    {"minmax", CalibrationMethod::minmax, false, 0, false},
    {"minmax_symmetric", CalibrationMethod::minmax, true, 0, false},
    {"minmax_moving_average_stride1", CalibrationMethod::ema, false, 0, false},
    {"entropy_bins2048_q128", CalibrationMethod::entropy, false, 0, false},
    {"percentile_default", CalibrationMethod::percentile, false, 99.999, false},
    {"percentile_99.99_symmetric", CalibrationMethod::percentile, false, 99.99, false},
    {"percentile_asymmetric", CalibrationMethod::percentile, false, 99.999, true},
};
const std::pair<const char*, QuantSpec> kOrtDtypes[] = {
    {"int8_symmetric", {8, true, true, false, false}},     {"int8_asymmetric", {8, true, false, false, false}},
    {"uint8_symmetric", {8, false, true, false, false}},   {"uint8_asymmetric", {8, false, false, false, false}},
    {"uint8_asymmetric_reduce_range", {8, false, false, false, true}},
    {"int4_symmetric", {4, true, true, false, false}},     {"uint4_asymmetric", {4, false, false, false, false}},
};

TEST(OnnxruntimeConvention, CalibratorsAndQParamsMatchOnnxruntime130BitForBit) {
  int ranges = 0, qparams = 0;
  for (const std::string& name : kDatasets) {
    const Dataset d = load(name);
    const json& ort = d.expected["ort_1_30_actual"];
    for (const OrtCase& c : kOrtCases) {
      if (!ort["range_raw"].contains(c.key)) continue;  // real ORT refused (ragged batches)
      SCOPED_TRACE(name + " onnxruntime " + c.key);
      CalibrationOptions o;
      o.convention = Convention::onnxruntime;
      o.method = c.method;
      o.spec.symmetric = c.symmetric;
      if (c.percentile > 0) o.percentile = c.percentile;
      o.percentile_both_tails = c.both_tails;
      const CalibrationResult r = run(d, o);
      ASSERT_EQ(r.lo.size(), 1u);
      const json& raw = ort["range_raw"][c.key];
      EXPECT_EQ(bits_of(r.lo[0]), hex_bits(raw["lo_f32"]));
      EXPECT_EQ(bits_of(r.hi[0]), hex_bits(raw["hi_f32"]));
      ++ranges;
      for (const auto& [dtype, spec] : kOrtDtypes) {
        SCOPED_TRACE(dtype);
        const json& e = ort["qparams"][c.key][dtype];
        auto p = compute_qparams(r.lo[0], r.hi[0], spec, Convention::onnxruntime);
        ASSERT_TRUE(p.ok());
        EXPECT_EQ(bits_of(p->scale), hex_bits(e["scale_f32"]));
        EXPECT_EQ(p->zero_point, e["zero_point"].get<int64_t>());
        EXPECT_EQ(p->range.min, e["qmin"].get<int64_t>());
        EXPECT_EQ(p->range.max, e["qmax"].get<int64_t>());
        ++qparams;
      }
    }
  }
  EXPECT_EQ(ranges, 6 * 7 + 3);
  EXPECT_EQ(qparams, ranges * 7);
}

struct TrtCase {
  const char* key;
  CalibrationMethod method;
  QuantSpec spec;
  double percentile;
  const char* detail;  // the bin / centre index the reference reports
};
const TrtCase kTrtCases[] = {
    {"max", CalibrationMethod::minmax, {8, true, true, false, false}, 0, nullptr},
    {"max_int4", CalibrationMethod::minmax, {4, true, true, false, false}, 0, nullptr},
    {"max_uint8", CalibrationMethod::minmax, {8, false, true, false, false}, 0, nullptr},
    {"entropy_int8", CalibrationMethod::entropy, {8, true, true, false, false}, 0, "entropy_int8_bin"},
    {"entropy_int4", CalibrationMethod::entropy, {4, true, true, false, false}, 0, "entropy_int4_bin"},
    {"entropy_uint8", CalibrationMethod::entropy, {8, false, true, false, false}, 0, "entropy_uint8_bin"},
    {"mse_int8", CalibrationMethod::mse, {8, true, true, false, false}, 0, "mse_int8_center_index"},
    {"mse_int4", CalibrationMethod::mse, {4, true, true, false, false}, 0, "mse_int4_center_index"},
    {"mse_uint8", CalibrationMethod::mse, {8, false, true, false, false}, 0, "mse_uint8_center_index"},
    {"percentile_99.9", CalibrationMethod::percentile, {8, true, true, false, false}, 99.9, "percentile_99.9_bin"},
    {"percentile_99.99", CalibrationMethod::percentile, {8, true, true, false, false}, 99.99, "percentile_99.99_bin"},
    {"percentile_99.999", CalibrationMethod::percentile, {8, true, true, false, false}, 99.999,
     "percentile_99.999_bin"},
};

TEST(TensorrtConvention, CalibratorsMatchPytorchQuantizationBitForBit) {
  int compared = 0;
  for (const std::string& name : kDatasets) {
    const Dataset d = load(name);
    const json& trt = d.expected["trt_reimpl"];
    for (const TrtCase& c : kTrtCases) {
      if (!trt["amax"].contains(c.key)) continue;
      SCOPED_TRACE(name + " tensorrt " + c.key);
      CalibrationOptions o;
      o.convention = Convention::tensorrt;
      o.method = c.method;
      o.spec = c.spec;
      if (c.percentile > 0) o.percentile = c.percentile;
      const CalibrationResult r = run(d, o);
      ASSERT_EQ(r.hi.size(), 1u);
      if (c.detail) {
        ASSERT_TRUE(r.histogram.has_value());
        EXPECT_EQ(r.histogram->chosen_index, trt["details"][c.detail].get<int64_t>());
        EXPECT_EQ(r.histogram->bins, trt["details"]["histogram"]["num_bins"].get<int64_t>());
      }
      EXPECT_EQ(bits_of(r.hi[0]), bits_of(trt["amax"][c.key].get<float>()));
      const json& s = trt["int_scale_zp(amax/maxbound, zp=0)"][c.key];
      EXPECT_EQ(bits_of(r.qparams[0].scale), hex_bits(s["scale_f32"]));
      EXPECT_EQ(r.qparams[0].zero_point, 0);
      ++compared;
    }
  }
  EXPECT_GE(compared, 7 * 9);
}

TEST(PerChannel, MinMaxAndMovingAverageMatchEveryReference) {
  const Dataset d = load("perchannel");
  const std::pair<const char*, QuantSpec> keys[] = {
      {"qint8_per_channel_symmetric", {8, true, true, false, false}},
      {"qint8_per_channel_symmetric_-127_127", {8, true, true, true, false}},
      {"int4_per_channel_symmetric_-8_7", {4, true, true, false, false}},
      {"int4_per_channel_symmetric_-7_7", {4, true, true, true, false}},
      {"quint8_per_channel_affine", {8, false, false, false, false}},
  };
  for (const auto& [observer, method] :
       {std::pair<std::string, CalibrationMethod>{"PerChannelMinMaxObserver", CalibrationMethod::minmax},
        {"MovingAveragePerChannelMinMaxObserver(averaging_constant=0.01)", CalibrationMethod::ema}}) {
    for (const auto& [key, spec] : keys) {
      SCOPED_TRACE(observer + " " + key);
      const json& e = d.expected["torch_2_11_actual"][observer][key];
      CalibrationOptions o;
      o.convention = Convention::torch;
      o.method = method;
      o.spec = spec;
      o.channel_axis = 0;
      const CalibrationResult r = run(d, o);
      ASSERT_EQ(r.qparams.size(), 16u);
      for (size_t c = 0; c < 16; ++c) {
        EXPECT_EQ(bits_of(r.lo[c]), bits_of(e["min_val"][c].get<float>())) << "channel " << c;
        EXPECT_EQ(bits_of(r.hi[c]), bits_of(e["max_val"][c].get<float>())) << "channel " << c;
        EXPECT_EQ(bits_of(r.qparams[c].scale), hex_bits(e["scale_f32"][c])) << "channel " << c;
        EXPECT_EQ(r.qparams[c].zero_point, e["zero_point"][c].get<int64_t>()) << "channel " << c;
      }
    }
  }
  // onnxruntime weights: compute_scale_zp per channel on the per-channel min/max.
  const json& ort = d.expected["ort_1_30_actual"]["per_channel_weights(min/max per channel over all batches)"];
  for (const auto& [dtype, spec] : {std::pair<const char*, QuantSpec>{"int8_symmetric", {8, true, true, false, false}},
                                    {"int4_symmetric", {4, true, true, false, false}},
                                    {"uint8_asymmetric", {8, false, false, false, false}}}) {
    SCOPED_TRACE(std::string("onnxruntime per channel ") + dtype);
    CalibrationOptions o;
    o.convention = Convention::onnxruntime;
    o.spec = spec;
    o.channel_axis = 0;
    const CalibrationResult r = run(d, o);
    ASSERT_EQ(r.qparams.size(), 16u);
    for (size_t c = 0; c < 16; ++c) {
      EXPECT_EQ(bits_of(r.observed_min[c]), bits_of(ort["min"][c].get<float>())) << "channel " << c;
      EXPECT_EQ(bits_of(r.qparams[c].scale), hex_bits(ort[dtype]["scale_f32"][c])) << "channel " << c;
      EXPECT_EQ(r.qparams[c].zero_point, ort[dtype]["zero_point"][c].get<int64_t>()) << "channel " << c;
    }
  }
  // pytorch-quantization MaxCalibrator(axis=0).
  const json& trt = d.expected["trt_reimpl"]["MaxCalibrator(axis=0)"];
  CalibrationOptions o;
  o.convention = Convention::tensorrt;
  o.spec.symmetric = true;
  o.channel_axis = 0;
  const CalibrationResult r = run(d, o);
  ASSERT_EQ(r.qparams.size(), 16u);
  for (size_t c = 0; c < 16; ++c) {
    EXPECT_EQ(bits_of(r.hi[c]), bits_of(trt["amax"][c].get<float>())) << "channel " << c;
    EXPECT_EQ(r.qparams[c].scale, trt["int8_scale(amax/127)"][c].get<float>()) << "channel " << c;
  }
}

}  // namespace
}  // namespace quant
