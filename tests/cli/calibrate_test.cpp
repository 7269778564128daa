// Whole-program tests of `quantize calibrate` (embedding its table in a conversion is convert_calibration_test).
//
// The reference datasets of tests/data/calibration are written as .npy files (or read from the safetensors
// files made from them) and fed to the binary; its --json table must give the float32 bits of ranges and scales,
// and the zero points, that real torch 2.11, onnxruntime 1.30 and the pytorch-quantization re-implementation
// gave for the same batches. The default convention, which has no outside reference, must agree with the
// library run in-process on the same batches, and its MSE / SQNR are recomputed here from the data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli_harness.h"
#include "quant/calibrate.h"
#include "test_data.h"

namespace {

using nlohmann::json;
using quant::testing::data_path;
using quant::testing::empty_dir;
using quant::testing::ProgramRun;
using quant::testing::run_quantize;
using quant::testing::run_quantize_line;
using quant::testing::read_text;
using quant::testing::temp_dir;
using quant::testing::write_text;
namespace fs = std::filesystem;

// A NumPy .npy file, format 1.0, little-endian float32 in C order (the layout numpy.save writes).
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* values, size_t count) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t unpadded = 10 + header.size() + 1;
  header += std::string((64 - unpadded % 64) % 64, ' ') + "\n";
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(values), count * sizeof(float));
  write_text(path, bytes);
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}
uint32_t hex_bits(const json& j) { return static_cast<uint32_t>(std::stoul(j.get<std::string>(), nullptr, 16)); }
// The float32 a table stores (JSON numbers written from floats read back exactly).
uint32_t json_bits(const json& j) { return bits(j.get<float>()); }

// One reference dataset, ready to be passed to `calibrate --data`.
struct Dataset {
  std::string name;
  std::string files;   // the --data arguments
  std::string tensor;  // the name its batches are keyed by
  std::vector<float> values;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> offsets;
  json expected;
};

const std::vector<std::string> kDatasets = {"gaussian", "gaussian_small", "student_t3", "gaussian_outliers",
                                            "relu",     "drift",          "imatrix"};

// Batches of one shape become one 3-D .npy [batches, tokens, features] (one batch per slice); the ragged imatrix
// batches are read from the four safetensors files made from them.
Dataset prepare(const std::string& name) {
  Dataset d;
  d.name = name;
  d.values = quant::testing::read_floats(data_path("calibration/" + name + ".f32"));
  std::ifstream in(data_path("calibration/" + name + ".json"));
  const json doc = json::parse(in);
  d.shapes = doc["batch_shapes"].get<std::vector<std::vector<int64_t>>>();
  d.offsets = doc["batch_offsets_elements"].get<std::vector<int64_t>>();
  d.expected = doc["expected"];
  bool uniform = true;
  for (const auto& s : d.shapes) uniform = uniform && s == d.shapes[0];
  if (uniform) {
    d.tensor = name;
    const std::string path = temp_dir() + "/" + name + ".npy";
    write_npy(path, {int64_t(d.shapes.size()), d.shapes[0][0], d.shapes[0][1]}, d.values.data(), d.values.size());
    d.files = path;
  } else {
    EXPECT_EQ(name, "imatrix");
    d.tensor = "blk.0.attn_q.weight";
    for (int i = 0; i < 4; ++i) d.files += " " + data_path("safetensors/imatrix-batch" + std::to_string(i) + ".safetensors");
  }
  return d;
}

// Runs `calibrate --json` over the dataset and returns the table's methods for its tensor.
json calibrate_json(const Dataset& d, const std::string& options) {
  const ProgramRun run = run_quantize_line("--json calibrate --data " + d.files + " " + options);
  EXPECT_EQ(run.exit_code, 0) << options << "\n" << run.err;
  const json doc = json::parse(run.out, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.contains("tensors") || !doc["tensors"].contains(d.tensor)) {
    ADD_FAILURE() << "no table for '" << d.tensor << "' in: " << run.out.substr(0, 400);
    return json::object();
  }
  return doc["tensors"][d.tensor];
}

// ---------------------------------------------------------------------------------------------------------------
// The three outside references, through the binary.

struct TorchKey {
  const char* key;  // the observer configuration in the reference files
  const char* dtype;
  bool symmetric;
  bool histogram;   // HistogramObserver was run with this configuration too
};
const TorchKey kTorchKeys[] = {
    {"qint8_affine", "int8", false, false},
    {"qint8_symmetric", "int8", true, true},
    {"quint8_affine", "uint8", false, true},
    {"quint8_symmetric", "uint8", true, false},
    {"int4_affine_qint8_-8_7", "int4", false, false},
    {"int4_symmetric_qint8_-8_7", "int4", true, true},
    {"uint4_affine_quint8_0_15", "uint4", false, true},
    {"uint4_symmetric_quint8_0_15", "uint4", true, false},
};

void expect_torch_observer(const json& m, const json& e) {
  EXPECT_EQ(json_bits(m["range_min"]), bits(e["min_val"].get<float>()));
  EXPECT_EQ(json_bits(m["range_max"]), bits(e["max_val"].get<float>()));
  EXPECT_EQ(json_bits(m["scale"]), hex_bits(e["scale_f32"]));
  EXPECT_EQ(m["zero_point"], e["zero_point"]);
  EXPECT_EQ(m["qmin"], e["quant_min"]);
  EXPECT_EQ(m["qmax"], e["quant_max"]);
}

TEST(CalibrateCommand, TorchConventionGivesTorch211Observers) {
  int compared = 0;
  for (const std::string& name : kDatasets) {
    const Dataset d = prepare(name);
    const json& torch = d.expected["torch_2_11_actual"];
    for (const TorchKey& k : kTorchKeys) {
      SCOPED_TRACE(name + " torch " + k.key);
      std::string options = std::string("--convention torch --dtype ") + k.dtype + " --method minmax --method ema";
      if (k.symmetric) options += " --symmetric";
      if (k.histogram) options += " --method mse";
      const json t = calibrate_json(d, options);
      if (!t.contains("minmax")) continue;
      expect_torch_observer(t["minmax"], torch["MinMaxObserver"][k.key]);
      expect_torch_observer(t["ema"], torch["MovingAverageMinMaxObserver(averaging_constant=0.01)"][k.key]);
      compared += 2;
      if (!k.histogram) continue;
      const json& e = torch["HistogramObserver(bins=2048)"][k.key];
      const json& m = t["mse"];
      EXPECT_EQ(json_bits(m["observed_min"]), bits(e["hist_min_val"].get<float>()));
      EXPECT_EQ(json_bits(m["observed_max"]), bits(e["hist_max_val"].get<float>()));
      EXPECT_EQ(json_bits(m["range_min"]), bits(e["search_min"].get<float>()));
      EXPECT_EQ(json_bits(m["range_max"]), bits(e["search_max"].get<float>()));
      EXPECT_EQ(json_bits(m["scale"]), hex_bits(e["scale_f32"]));
      EXPECT_EQ(m["zero_point"], e["zero_point"]);
      ++compared;
    }
  }
  EXPECT_EQ(compared, 7 * (8 * 2 + 4));
}

// onnxruntime 1.30: our method (and --percentile) -> its calibrator name in the reference files, and our
// --dtype [--symmetric] -> its qparams name.
struct OrtRun {
  bool symmetric;
  const char* percentile;  // "" for the default
  std::vector<std::pair<const char*, const char*>> methods;
};
const OrtRun kOrtRuns[] = {
    {false, "", {{"minmax", "minmax"}, {"ema", "minmax_moving_average_stride1"},
                 {"entropy", "entropy_bins2048_q128"}, {"percentile", "percentile_default"}}},
    {true, "", {{"minmax", "minmax_symmetric"}, {"entropy", "entropy_bins2048_q128"},
                {"percentile", "percentile_default"}}},
    {false, "99.99", {{"percentile", "percentile_99.99_symmetric"}}},
    {true, "99.99", {{"percentile", "percentile_99.99_symmetric"}}},
};

TEST(CalibrateCommand, OnnxruntimeConventionGivesOnnxruntime130Calibrators) {
  int ranges = 0;
  for (const std::string& name : kDatasets) {
    const Dataset d = prepare(name);
    const json& ort = d.expected["ort_1_30_actual"];
    for (const OrtRun& r : kOrtRuns) {
      const std::vector<std::pair<const char*, const char*>> dtypes =
          r.symmetric ? std::vector<std::pair<const char*, const char*>>{{"int8", "int8_symmetric"},
                                                                          {"uint8", "uint8_symmetric"},
                                                                          {"int4", "int4_symmetric"}}
                      : std::vector<std::pair<const char*, const char*>>{{"int8", "int8_asymmetric"},
                                                                          {"uint8", "uint8_asymmetric"},
                                                                          {"uint4", "uint4_asymmetric"}};
      for (const auto& [dtype, ort_dtype] : dtypes) {
        std::string options = std::string("--convention onnxruntime --dtype ") + dtype;
        if (r.symmetric) options += " --symmetric";
        if (*r.percentile) options += std::string(" --percentile ") + r.percentile;
        for (const auto& [method, key] : r.methods) options += std::string(" --method ") + method;
        const json t = calibrate_json(d, options);
        for (const auto& [method, key] : r.methods) {
          if (!ort["range_raw"].contains(key)) continue;  // real ORT refused this dataset (ragged batches)
          SCOPED_TRACE(name + " onnxruntime " + key + " " + ort_dtype);
          const json& m = t[method];
          EXPECT_EQ(json_bits(m["range_min"]), hex_bits(ort["range_raw"][key]["lo_f32"]));
          EXPECT_EQ(json_bits(m["range_max"]), hex_bits(ort["range_raw"][key]["hi_f32"]));
          const json& e = ort["qparams"][key][ort_dtype];
          EXPECT_EQ(json_bits(m["scale"]), hex_bits(e["scale_f32"]));
          EXPECT_EQ(m["zero_point"], e["zero_point"]);
          EXPECT_EQ(m["qmin"], e["qmin"]);
          EXPECT_EQ(m["qmax"], e["qmax"]);
          ++ranges;
        }
      }
    }
  }
  // 6 datasets x 3 dtypes x 9 calibrations; ORT ran only minmax, minmax_symmetric and the EMA on the ragged one.
  EXPECT_EQ(ranges, 6 * 3 * 9 + 3 * 3);
}

struct TrtRun {
  const char* options;
  std::vector<std::pair<const char*, const char*>> methods;  // our method -> the reference's amax name
};
const TrtRun kTrtRuns[] = {
    {"--dtype int8", {{"minmax", "max"}, {"entropy", "entropy_int8"}, {"mse", "mse_int8"},
                      {"percentile", "percentile_99.99"}}},
    {"--dtype int4", {{"minmax", "max_int4"}, {"entropy", "entropy_int4"}, {"mse", "mse_int4"}}},
    {"--dtype uint8", {{"minmax", "max_uint8"}, {"entropy", "entropy_uint8"}, {"mse", "mse_uint8"}}},
    {"--dtype int8 --percentile 99.9", {{"percentile", "percentile_99.9"}}},
    {"--dtype int8 --percentile 99.999", {{"percentile", "percentile_99.999"}}},
};

TEST(CalibrateCommand, TensorrtConventionGivesPytorchQuantizationCalibrators) {
  int compared = 0;
  for (const std::string& name : kDatasets) {
    const Dataset d = prepare(name);
    const json& trt = d.expected["trt_reimpl"];
    for (const TrtRun& r : kTrtRuns) {
      std::string options = std::string("--convention tensorrt --symmetric ") + r.options;
      for (const auto& [method, key] : r.methods) options += std::string(" --method ") + method;
      const json t = calibrate_json(d, options);
      for (const auto& [method, key] : r.methods) {
        if (!trt["amax"].contains(key)) continue;
        SCOPED_TRACE(name + " tensorrt " + key);
        const json& m = t[method];
        EXPECT_EQ(json_bits(m["range_max"]), bits(trt["amax"][key].get<float>()));
        EXPECT_EQ(json_bits(m["scale"]), hex_bits(trt["int_scale_zp(amax/maxbound, zp=0)"][key]["scale_f32"]));
        EXPECT_EQ(m["zero_point"], 0);
        if (std::string(method) != "minmax") {
          const std::string detail = std::string(key).starts_with("mse") ? std::string(key) + "_center_index"
                                                                         : std::string(key) + "_bin";
          EXPECT_EQ(m["histogram"]["chosen_index"], trt["details"][detail]);
          EXPECT_EQ(m["histogram"]["bins"], trt["details"]["histogram"]["num_bins"]);
        }
        ++compared;
      }
    }
  }
  EXPECT_GE(compared, 7 * 9);
}

TEST(CalibrateCommand, PerChannelTablesHoldOneValuePerChannelAsEveryReference) {
  Dataset d = prepare("perchannel");  // 4 batches of [16, 256], channels along axis 0
  const json& torch = d.expected["torch_2_11_actual"];
  const std::pair<const char*, const char*> torch_runs[] = {
      {"--dtype int8 --symmetric", "qint8_per_channel_symmetric"},
      {"--dtype int4 --symmetric", "int4_per_channel_symmetric_-8_7"},
      {"--dtype uint8", "quint8_per_channel_affine"},
  };
  for (const auto& [options, key] : torch_runs) {
    SCOPED_TRACE(std::string("torch per channel ") + key);
    const json t = calibrate_json(d, std::string("--convention torch --per-channel 0 --method minmax --method ema ") +
                                         options);
    for (const auto& [method, observer] :
         {std::pair<const char*, const char*>{"minmax", "PerChannelMinMaxObserver"},
          {"ema", "MovingAveragePerChannelMinMaxObserver(averaging_constant=0.01)"}}) {
      const json& m = t[method];
      const json& e = torch[observer][key];
      for (const char* field : {"observed_min", "observed_max", "range_min", "range_max", "scale", "zero_point"}) {
        ASSERT_TRUE(m[field].is_array()) << method << " " << field;
        ASSERT_EQ(m[field].size(), 16u) << method << " " << field;
      }
      for (size_t c = 0; c < 16; ++c) {
        EXPECT_EQ(json_bits(m["range_min"][c]), bits(e["min_val"][c].get<float>())) << method << " channel " << c;
        EXPECT_EQ(json_bits(m["range_max"][c]), bits(e["max_val"][c].get<float>())) << method << " channel " << c;
        EXPECT_EQ(json_bits(m["scale"][c]), hex_bits(e["scale_f32"][c])) << method << " channel " << c;
        EXPECT_EQ(m["zero_point"][c], e["zero_point"][c]) << method << " channel " << c;
      }
    }
  }
  const json& ort = d.expected["ort_1_30_actual"]["per_channel_weights(min/max per channel over all batches)"];
  for (const auto& [options, key] : {std::pair<const char*, const char*>{"--dtype int8 --symmetric", "int8_symmetric"},
                                     {"--dtype int4 --symmetric", "int4_symmetric"},
                                     {"--dtype uint8", "uint8_asymmetric"}}) {
    SCOPED_TRACE(std::string("onnxruntime per channel ") + key);
    const json m = calibrate_json(d, std::string("--convention onnxruntime --per-channel 0 --method minmax ") +
                                         options)["minmax"];
    ASSERT_EQ(m["scale"].size(), 16u);
    for (size_t c = 0; c < 16; ++c) {
      EXPECT_EQ(json_bits(m["observed_min"][c]), bits(ort["min"][c].get<float>())) << "channel " << c;
      EXPECT_EQ(json_bits(m["scale"][c]), hex_bits(ort[key]["scale_f32"][c])) << "channel " << c;
      EXPECT_EQ(m["zero_point"][c], ort[key]["zero_point"][c]) << "channel " << c;
    }
  }
  const json& trt = d.expected["trt_reimpl"]["MaxCalibrator(axis=0)"];
  const json m = calibrate_json(d, "--convention tensorrt --symmetric --per-channel 0 --method minmax")["minmax"];
  ASSERT_EQ(m["scale"].size(), 16u);
  for (size_t c = 0; c < 16; ++c) {
    EXPECT_EQ(json_bits(m["range_max"][c]), bits(trt["amax"][c].get<float>())) << "channel " << c;
    EXPECT_EQ(json_bits(m["scale"][c]), bits(trt["int8_scale(amax/127)"][c].get<float>())) << "channel " << c;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The default convention: every method and dtype, against the library in-process and recomputed error.

quant::CalibrationResult library_result(const Dataset& d, const quant::CalibrationOptions& options) {
  auto made = quant::Calibrator::create(options);
  EXPECT_TRUE(made.ok());
  if (!made.ok()) return {};
  quant::Calibrator& calibrator = **made;
  for (int pass = 0; pass < calibrator.passes_needed(); ++pass) {
    calibrator.start_pass(pass);
    for (size_t b = 0; b < d.shapes.size(); ++b) {
      const size_t n = size_t(d.shapes[b][0] * d.shapes[b][1]);
      EXPECT_TRUE(calibrator.observe({d.values.data() + d.offsets[b], n}, d.shapes[b]).ok());
    }
  }
  auto result = calibrator.finish();
  EXPECT_TRUE(result.ok());
  return result.ok() ? *result : quant::CalibrationResult{};
}

// Mean squared error and SQNR of q = clamp(round_half_even(x / s) + z, qmin, qmax), x' = s (q - z), over all
// values, computed here independently of the library.
std::pair<double, double> quantization_error(const std::vector<float>& values, const json& m) {
  const float s = m["scale"].get<float>();
  const double z = m["zero_point"].get<double>();
  const double qmin = m["qmin"].get<double>(), qmax = m["qmax"].get<double>();
  double error = 0.0, signal = 0.0;
  for (float x : values) {
    const float scaled = std::nearbyint(x / s);  // the default rounding mode is to nearest, ties to even
    const double q = std::clamp(double(scaled) + z, qmin, qmax);
    const float back = s * static_cast<float>(q - z);
    error += (double(back) - double(x)) * (double(back) - double(x));
    signal += double(x) * double(x);
  }
  return {error / double(values.size()), 10.0 * std::log10(signal / error)};
}

TEST(CalibrateCommand, EveryMethodAndDtypeRunsAndAgreesWithTheLibrary) {
  const char* methods[] = {"minmax", "ema", "entropy", "percentile", "mse"};
  int compared = 0;
  for (const std::string& name : {std::string("gaussian_outliers"), std::string("relu")}) {
    const Dataset d = prepare(name);
    for (const char* dtype : {"int8", "uint8", "int4", "uint4", "int2", "uint7"}) {
      for (bool symmetric : {false, true}) {
        SCOPED_TRACE(name + " " + dtype + (symmetric ? " symmetric" : " affine"));
        std::string options = std::string("--dtype ") + dtype + (symmetric ? " --symmetric" : "");
        for (const char* method : methods) options += std::string(" --method ") + method;
        const json t = calibrate_json(d, options);
        quant::CalibrationOptions o;
        o.spec = *quant::parse_dtype(dtype);
        o.spec.symmetric = symmetric;
        for (const char* method : methods) {
          SCOPED_TRACE(method);
          ASSERT_TRUE(t.contains(method));
          const json& m = t[method];
          o.method = *quant::parse_method(method);
          const quant::CalibrationResult r = library_result(d, o);
          ASSERT_EQ(r.qparams.size(), 1u);
          EXPECT_EQ(json_bits(m["observed_min"]), bits(r.observed_min[0]));
          EXPECT_EQ(json_bits(m["observed_max"]), bits(r.observed_max[0]));
          EXPECT_EQ(json_bits(m["range_min"]), bits(r.lo[0]));
          EXPECT_EQ(json_bits(m["range_max"]), bits(r.hi[0]));
          EXPECT_EQ(json_bits(m["scale"]), bits(r.qparams[0].scale));
          EXPECT_EQ(m["zero_point"], r.qparams[0].zero_point);
          EXPECT_EQ(m["qmin"], r.qparams[0].range.min);
          EXPECT_EQ(m["qmax"], r.qparams[0].range.max);
          EXPECT_EQ(m["values_seen"], d.values.size());
          EXPECT_EQ(m["values_ignored"], 0);
          EXPECT_GE(m["zero_point"], m["qmin"]);
          EXPECT_LE(m["zero_point"], m["qmax"]);
          EXPECT_GT(m["scale"].get<double>(), 0.0);
          EXPECT_EQ(m.contains("histogram"), std::string(method) != "minmax" && std::string(method) != "ema");
          const auto [mse, sqnr] = quantization_error(d.values, m);
          EXPECT_NEAR(m["mse"].get<double>(), mse, 1e-9 * mse);
          EXPECT_NEAR(m["sqnr_db"].get<double>(), sqnr, 1e-9);
          ++compared;
        }
      }
    }
  }
  EXPECT_EQ(compared, 2 * 6 * 2 * 5);
}

// The printed table: one block per tensor, one row per method with its range, scale, zero point, MSE and SQNR.
TEST(CalibrateCommand, PrintedTableListsMseAndSqnrPerMethod) {
  const Dataset d = prepare("student_t3");
  const std::string table = temp_dir() + "/printed.json";
  const ProgramRun run =
      run_quantize_line("calibrate --data " + d.files + " --symmetric -o " + table +
                        " --method minmax --method ema --method entropy --method percentile --method mse");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json methods = json::parse(read_text(table))["tensors"][d.tensor];
  std::istringstream lines(run.out);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line, "convention quantize, dtype int8 symmetric");
  std::getline(lines, line);
  EXPECT_TRUE(line.starts_with(d.tensor + "  (observed [")) << line;
  std::getline(lines, line);
  std::istringstream header(line);
  std::vector<std::string> columns;
  for (std::string word; header >> word;) columns.push_back(word);
  EXPECT_EQ(columns, (std::vector<std::string>{"method", "range", "min", "range", "max", "scale", "zp", "mse", "sqnr",
                                               "dB"}));
  int rows = 0;
  for (; std::getline(lines, line); ++rows) {
    std::istringstream row(line);
    std::string method;
    double lo, hi, scale, mse, sqnr;
    int64_t zp;
    ASSERT_TRUE(row >> method >> lo >> hi >> scale >> zp >> mse >> sqnr) << line;
    ASSERT_TRUE(methods.contains(method)) << line;
    const json& m = methods[method];
    EXPECT_NEAR(mse, m["mse"].get<double>(), 1e-5 * m["mse"].get<double>()) << line;  // printed to 6 digits
    EXPECT_NEAR(sqnr, m["sqnr_db"].get<double>(), 0.005) << line;                     // printed to 0.01 dB
    EXPECT_NEAR(scale, m["scale"].get<double>(), 1e-5 * m["scale"].get<double>()) << line;
    EXPECT_EQ(zp, m["zero_point"].get<int64_t>()) << line;
  }
  EXPECT_EQ(rows, 5);
}

// ---------------------------------------------------------------------------------------------------------------
// Real files of every kind, with values known from their formula or their bytes.

// value(b, t, f) of tests/data/npy/make_test_files.py.
float formula(int64_t b, int64_t t, int64_t f) { return float(((b * 7 + t * 3 + f) % 23) - 11) * 0.125f; }

void expect_formula_channels(const json& m, int64_t batches, int64_t tokens, int64_t features) {
  ASSERT_EQ(m["observed_min"].size(), size_t(features));
  for (int64_t f = 0; f < features; ++f) {
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t b = 0; b < batches; ++b) {
      for (int64_t t = 0; t < tokens; ++t) {
        lo = std::min(lo, formula(b, t, f));
        hi = std::max(hi, formula(b, t, f));
      }
    }
    EXPECT_EQ(m["observed_min"][f].get<float>(), lo) << "feature " << f;
    EXPECT_EQ(m["observed_max"][f].get<float>(), hi) << "feature " << f;
  }
  EXPECT_EQ(m["values_seen"], batches * tokens * features);
}

TEST(CalibrateCommand, ReadsNpyAndNpzFilesPerFeature) {
  const ProgramRun npy =
      run_quantize_line("--json calibrate --per-channel 1 --method minmax --method ema --data " +
                        data_path("npy/blk.0.attn_q.weight.npy") + " " + data_path("npy/blk.0.ffn_down.weight.npy"));
  ASSERT_EQ(npy.exit_code, 0) << npy.err;
  const json npy_table = json::parse(npy.out)["tensors"];
  expect_formula_channels(npy_table["blk.0.attn_q.weight"]["minmax"], 1, 20, 8);     // 2-D float32
  expect_formula_channels(npy_table["blk.0.ffn_down.weight"]["minmax"], 2, 16, 4);   // 3-D float16

  json stored_tensors;
  for (const char* archive : {"npy/stored.npz", "npy/deflated.npz"}) {
    SCOPED_TRACE(archive);
    const ProgramRun run =
        run_quantize_line("--json calibrate --per-channel 1 --method minmax --data " + data_path(archive));
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const json doc = json::parse(run.out);
    EXPECT_EQ(doc["sources"], json::array({data_path(archive)}));
    expect_formula_channels(doc["tensors"]["blk.1.attn_k.weight"]["minmax"], 3, 17, 6);
    expect_formula_channels(doc["tensors"]["blk.1.attn_v.weight"]["minmax"], 1, 18, 6);
    if (stored_tensors.is_null()) stored_tensors = doc["tensors"];
    else EXPECT_EQ(doc["tensors"], stored_tensors);  // the same arrays, stored or deflated
  }
}

// IEEE half to float, for the model2vec float16 file's expected values.
float half_to_float(uint16_t h) {
  const int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  float magnitude = exponent == 0 ? std::ldexp(float(mantissa), -24) : std::ldexp(float(mantissa | 0x400), exponent - 25);
  if (exponent == 31) magnitude = mantissa == 0 ? INFINITY : NAN;
  return (h & 0x8000) ? -magnitude : magnitude;
}

// The per-column min and max of a safetensors file holding one [rows, 2] 'embeddings' tensor, read from its bytes.
std::pair<std::vector<float>, std::vector<float>> embedding_columns(const std::string& path, bool half) {
  const std::vector<uint8_t> bytes = quant::testing::read_bytes(path);
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const uint8_t* data = bytes.data() + 8 + header;
  const size_t width = half ? 2 : 4, count = (bytes.size() - 8 - header) / width;
  std::vector<float> lo(2, INFINITY), hi(2, -INFINITY);
  for (size_t i = 0; i < count; ++i) {
    float v;
    if (half) {
      uint16_t h;
      std::memcpy(&h, data + 2 * i, 2);
      v = half_to_float(h);
    } else {
      std::memcpy(&v, data + 4 * i, 4);
    }
    lo[i % 2] = std::min(lo[i % 2], v);
    hi[i % 2] = std::max(hi[i % 2], v);
  }
  return {lo, hi};
}

TEST(CalibrateCommand, ReadsRealSafetensorsEmbeddings) {
  for (const auto& [file, half] : {std::pair<const char*, bool>{"safetensors/model2vec-float32.safetensors", false},
                                   {"safetensors/model2vec-float16.safetensors", true}}) {
    SCOPED_TRACE(file);
    const ProgramRun run =
        run_quantize_line("--json calibrate --per-channel 1 --method minmax --data " + data_path(file));
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const json m = json::parse(run.out)["tensors"]["embeddings"]["minmax"];
    const auto [lo, hi] = embedding_columns(data_path(file), half);
    ASSERT_EQ(m["observed_min"].size(), 2u);
    for (size_t c = 0; c < 2; ++c) {
      EXPECT_EQ(json_bits(m["observed_min"][c]), bits(lo[c])) << "column " << c;
      EXPECT_EQ(json_bits(m["observed_max"][c]), bits(hi[c])) << "column " << c;
    }
    // Every histogram method runs on the real file too (per tensor).
    const ProgramRun all = run_quantize_line(
        "--json calibrate --method entropy --method percentile --method mse --data " + data_path(file));
    ASSERT_EQ(all.exit_code, 0) << all.err;
    const json methods = json::parse(all.out)["tensors"]["embeddings"];
    for (const char* method : {"entropy", "percentile", "mse"}) {
      EXPECT_LE(methods[method]["range_max"].get<float>(), std::max(std::fabs(lo[0]), std::max(std::fabs(lo[1]),
                                                                    std::max(hi[0], hi[1]))) * 1.001f) << method;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Exit codes and the output file.

TEST(CalibrateCommand, ExitCodesNameTheProblem) {
  const std::string data = data_path("npy/blk.0.attn_q.weight.npy");
  const struct {
    std::string options;
    int exit_code;
    std::string message;
  } cases[] = {
      {"--method kmeans --data " + data, 2, "unknown calibration method 'kmeans'"},
      {"--method minmax --convention tflite --data " + data, 2, "tflite"},
      {"--method minmax --dtype int9 --data " + data, 2, "int9"},
      {"--method minmax --dtype fp8 --data " + data, 2, "fp8"},
      {"--method entropy --convention torch --data " + data, 2, "torch convention has no entropy calibrator"},
      {"--method mse --convention onnxruntime --data " + data, 2, "onnxruntime convention has no mse calibrator"},
      {"--method entropy --per-channel 0 --data " + data, 2, "per tensor only"},
      {"--method minmax --percentile 101 --data " + data, 2, "percentile 101"},
      {"--data " + data, 2, "--method"},
      {"--method minmax --data /nonexistent/acts.npy", 1, "/nonexistent/acts.npy"},
      {"--method minmax --data " + data_path("safetensors/model2vec-int8.safetensors"), 3,
       data_path("safetensors/model2vec-int8.safetensors") + ": tensor 'embeddings': unsupported dtype I8"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.options);
    const ProgramRun run = run_quantize_line("calibrate " + c.options);
    EXPECT_EQ(run.exit_code, c.exit_code) << run.err;
    EXPECT_NE(run.err.find(c.message), std::string::npos) << run.err;
    EXPECT_TRUE(run.out.empty()) << run.out;
  }
}

TEST(CalibrateCommand, MalformedDataFilesExitThreeNamingTheFile) {
  const std::vector<float> values(64 * 8, 0.5f);
  const std::string dir = empty_dir("malformed");
  const std::string truncated = dir + "/truncated.npy";
  write_npy(truncated, {64, 8}, values.data(), values.size());
  fs::resize_file(truncated, fs::file_size(truncated) - 4);
  const std::string text = dir + "/notes.npy";
  write_text(text, "these are not activations\n");
  std::string bad_header = "\x93NUMPY";
  bad_header += std::string("\x01\x00\x10\x00", 4) + "{'descr': '<f4'}";
  const std::string header = dir + "/header.npy";
  write_text(header, bad_header);
  for (const std::string& file : {truncated, text, header}) {
    SCOPED_TRACE(file);
    const ProgramRun run = run_quantize_line("calibrate --method minmax --data " + file);
    EXPECT_EQ(run.exit_code, 3) << run.err;
    EXPECT_NE(run.err.find(file + ":"), std::string::npos) << run.err;
  }
}

TEST(CalibrateCommand, OutputTableIsWrittenAtomically) {
  const Dataset d = prepare("gaussian_small");
  const std::string dir = empty_dir("atomic");
  const std::string table = dir + "/table.json";
  const ProgramRun run =
      run_quantize_line("--json calibrate --data " + d.files + " --method minmax --method mse -o " + table);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(read_text(table), run.out);  // the same document on stdout and in the file
  const json doc = json::parse(read_text(table));
  EXPECT_EQ(doc["format"], "quantize.calibration");
  EXPECT_EQ(doc["version"], 1);
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir)) left.push_back(entry.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"table.json"});  // no temporary file stays behind

  // A failing run leaves the previous table as it was; a successful one replaces it whole.
  const std::string previous = read_text(table);
  const ProgramRun failed = run_quantize_line("calibrate --method minmax --force -o " + table + " --data " +
                                              data_path("safetensors/model2vec-int8.safetensors"));
  EXPECT_EQ(failed.exit_code, 3);
  EXPECT_EQ(read_text(table), previous);
  // An existing table is replaced only with --force.
  const ProgramRun kept = run_quantize_line("calibrate --data " + d.files + " --method ema -o " + table);
  EXPECT_EQ(kept.exit_code, 1) << kept.err;
  EXPECT_NE(kept.err.find("--force"), std::string::npos) << kept.err;
  EXPECT_EQ(read_text(table), previous);
  const ProgramRun replaced = run_quantize_line("calibrate --data " + d.files + " --method ema --force -o " + table);
  ASSERT_EQ(replaced.exit_code, 0) << replaced.err;
  const json now = json::parse(read_text(table));
  EXPECT_TRUE(now["tensors"][d.tensor].contains("ema"));
  EXPECT_FALSE(now["tensors"][d.tensor].contains("minmax"));
  left.clear();
  for (const auto& entry : fs::directory_iterator(dir)) left.push_back(entry.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"table.json"});

  const ProgramRun nowhere =
      run_quantize_line("calibrate --data " + d.files + " --method ema -o " + dir + "/no/such/t.json");
  EXPECT_EQ(nowhere.exit_code, 1);
  EXPECT_FALSE(fs::exists(dir + "/no"));
}

// A result no quantizer can use is refused where it is computed, naming the file and the tensor, and no table is
// written: activations so large that the scale overflows float32, a dataset with nothing in it, an array with no
// values, a tensor whose values are all NaN or infinite. Never a JSON library exception; never exit 0 with an
// empty or unusable table.
TEST(CalibrateCommand, UnusableResultsAreRefusedNamingFileAndTensor) {
  const std::string dir = empty_dir("unusable");
  // Rows alternate between ±3e38 (every channel sees both signs): an affine grid's scale, (hi - lo) / steps in
  // float32, overflows to inf. (A symmetric grid's amax / 127 does not: that table is usable and written.)
  std::vector<float> huge(64 * 8);
  for (size_t i = 0; i < huge.size(); ++i) huge[i] = ((i / 8) % 2 ? 3e38f : -3e38f) * (i % 3 == 0 ? 0.5f : 1.0f);
  write_npy(dir + "/huge.npy", {64, 8}, huge.data(), huge.size());
  const std::vector<float> none;
  write_npy(dir + "/no_tokens.npy", {0, 256}, none.data(), 0);
  write_npy(dir + "/no_batches.npy", {0, 4, 256}, none.data(), 0);
  const std::vector<float> nans(16 * 8, std::numeric_limits<float>::quiet_NaN());
  write_npy(dir + "/nans.npy", {16, 8}, nans.data(), nans.size());
  // A safetensors file with no tensors: an 8-byte header length, then "{}".
  write_text(dir + "/empty.safetensors", std::string("\x02\0\0\0\0\0\0\0{}", 10));
  const struct {
    std::string file;
    std::string methods;
    std::string tensor;  // named in the error, when there is one
    std::string reason;
  } cases[] = {
      {"huge.npy", "--method minmax", "huge", "scale"},
      {"huge.npy", "--method minmax --dtype int4", "huge", "scale"},
      {"huge.npy", "--method ema --method minmax", "huge", "scale"},
      {"huge.npy", "--method minmax --per-channel 1", "huge", "scale"},
      {"huge.npy", "--method minmax --convention torch", "huge", "scale"},
      {"no_tokens.npy", "--method minmax", "no_tokens", "nothing to calibrate"},
      {"no_batches.npy", "--method minmax", "no_batches", "nothing to calibrate"},
      {"nans.npy", "--method minmax", "nans", "finite"},
      {"nans.npy", "--method entropy", "nans", "finite"},
      {"empty.safetensors", "--method minmax", "", "no arrays"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file + " " + c.methods);
    const std::string table = dir + "/table.json";
    fs::remove(table);
    const ProgramRun run = run_quantize_line("calibrate " + c.methods + " -o " + table + " --data " + dir + "/" + c.file);
    EXPECT_EQ(run.exit_code, 4) << run.err;
    EXPECT_NE(run.err.find(dir + "/" + c.file + ":"), std::string::npos) << run.err;
    if (!c.tensor.empty()) {
      EXPECT_NE(run.err.find("tensor '" + c.tensor + "'"), std::string::npos) << run.err;
    }
    EXPECT_NE(run.err.find(c.reason), std::string::npos) << run.err;
    EXPECT_EQ(run.err.find("json"), std::string::npos) << run.err;
    EXPECT_EQ(run.err.find("exception"), std::string::npos) << run.err;
    EXPECT_TRUE(run.out.empty());
    EXPECT_FALSE(fs::exists(table));
  }
}

// Every table calibrate writes reads back with --calibration; a damaged one (a null or infinite scale, a field of
// the wrong type, a zero point off the grid) is refused with exit 3 naming the file, tensor, method and field,
// never with a JSON library exception.
TEST(CalibrateCommand, DamagedTablesAreRefusedInOurWordsWhenEmbedded) {
  const Dataset d = prepare("gaussian_small");
  const std::string dir = empty_dir("damaged_tables");
  const std::string good = dir + "/good.json";
  ASSERT_EQ(run_quantize_line("calibrate --data " + d.files + " --method minmax -o " + good).exit_code, 0);
  const json table = json::parse(read_text(good));
  const std::string model = data_path("gguf/stories260K-rows256-F32.gguf");
  const ProgramRun embedded = run_quantize({model, "--to", "Q8_0", "--calibration", good, "-o", dir + "/ok.gguf", "-q"});
  EXPECT_EQ(embedded.exit_code, 0) << embedded.err;
  const std::string at = "/tensors/" + d.tensor + "/minmax";
  const struct {
    std::string pointer;  // a JSON pointer below `at`
    json value;
    std::string reason;
  } damage[] = {
      {"/scale", nullptr, "'scale' must be a finite number, not null"},
      {"/scale", "0.5", "'scale' must be a finite number, not a string"},
      {"/scale", 0.0, "scale 0 is not a positive number"},
      {"/scale", -1.0, "is not a positive number"},
      {"/scale", 1e39, "does not fit float32"},
      {"/zero_point", 1000, "zero point 1000 is outside"},
      {"/zero_point", 0.5, "'zero_point' must be an integer"},
      {"/qmin", "low", "'qmin' must be an integer"},
      {"/range_min", json::array(), "'range_min'"},
      {"/observed_max", json::object(), "'observed_max' must be a finite number, not an object"},
  };
  for (const auto& c : damage) {
    SCOPED_TRACE(c.pointer + " = " + c.value.dump());
    json broken = table;
    broken[json::json_pointer(at + c.pointer)] = c.value;
    const std::string path = dir + "/broken.json";
    write_text(path, broken.dump(2));
    const ProgramRun run = run_quantize({model, "--to", "Q8_0", "--calibration", path, "-o", dir + "/out.gguf"});
    EXPECT_EQ(run.exit_code, 3) << run.err;
    EXPECT_NE(run.err.find(path + ":"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("tensor '" + d.tensor + "' method minmax"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find(c.reason), std::string::npos) << run.err;
    EXPECT_EQ(run.err.find("json.exception"), std::string::npos) << run.err;
    EXPECT_FALSE(fs::exists(dir + "/out.gguf"));
  }
  // Settings and structure too.
  for (const auto& [pointer, value] : std::vector<std::pair<std::string, json>>{
           {"/settings/symmetric", "yes"}, {"/settings/per_channel_axis", "x"}, {"/settings", json::array()},
           {"/tensors", 5}, {"/sources", "a"}}) {
    SCOPED_TRACE(pointer);
    json broken = table;
    broken[json::json_pointer(pointer)] = value;
    const std::string path = dir + "/broken.json";
    write_text(path, broken.dump(2));
    const ProgramRun run = run_quantize({model, "--to", "Q8_0", "--calibration", path, "-o", dir + "/out.gguf"});
    EXPECT_EQ(run.exit_code, 3) << run.err;
    EXPECT_EQ(run.err.find("json.exception"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find(pointer.substr(pointer.rfind('/') + 1)), std::string::npos) << run.err;
  }
}

// The table may never be written over a data file, named directly or through a hard link: exit 2, untouched.
TEST(CalibrateCommand, OutputOverAnInputIsRefused) {
  const std::string dir = empty_dir("calibrate_over_input");
  const std::string data = dir + "/data.npy";
  fs::copy_file(data_path("npy/v2.npy"), data);
  fs::create_hard_link(data, dir + "/table.json");
  const std::string before = quant::testing::file_sha256(data);
  for (const std::string& output : {data, dir + "/table.json"}) {
    const ProgramRun run = run_quantize_line("calibrate --method minmax --data " + data + " -o " + output);
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_NE(run.err.find("is the input file"), std::string::npos) << run.err;
  }
  EXPECT_EQ(quant::testing::file_sha256(data), before);
}

}  // namespace
