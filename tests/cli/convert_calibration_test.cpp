// Whole-program tests of `quantize INPUT --to TYPE --calibration table.json`: the table `quantize calibrate -o`
// wrote is embedded as the output's quantize.calibration.* keys (read back here with our GGUF reader) after every
// standard key, with tensor bytes identical to a run without it; a new table replaces an inherited one; a bad
// table fails before any output exists.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli_harness.h"
#include "quant/gguf.h"
#include "test_data.h"

namespace {

using nlohmann::json;
using quant::testing::data_path;
using quant::testing::empty_dir;
using quant::testing::ProgramRun;
using quant::testing::run_quantize_line;
using quant::testing::read_text;
using quant::testing::write_text;
namespace fs = std::filesystem;

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

const std::string kModel = "gguf/stories260K-rows256-F32.gguf";

// Calibrates the first two imatrix batches (tensor blk.0.attn_q.weight) into `path`; returns the table's text.
std::string make_table(const std::string& path, const std::string& options) {
  const ProgramRun run =
      run_quantize_line("calibrate -q --data " + data_path("safetensors/imatrix-batch0.safetensors") + " " +
                        data_path("safetensors/imatrix-batch1.safetensors") + " " + options + " -o " + path);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  return read_text(path);
}

std::vector<float> json_floats(const json& j) {
  std::vector<float> out;
  if (j.is_array()) {
    for (const json& x : j) out.push_back(x.get<float>());
  } else {
    out.push_back(j.get<float>());
  }
  return out;
}

std::vector<float> gguf_floats(const quant::Value& v) {
  std::vector<float> out;
  EXPECT_EQ(v.element_type(), quant::ValueType::f32);
  for (uint64_t i = 0; i < v.size(); ++i) out.push_back(v.scalar_at<float>(i));
  return out;
}

// The output's quantize.calibration.* keys hold the table's settings and, per tensor and method, its arrays.
void expect_table_in_gguf(const quant::GgufFile& file, const json& table) {
  const std::string p = "quantize.calibration.";
  EXPECT_EQ(file.get<uint32_t>(p + "version").value(), 1u);
  EXPECT_EQ(file.get<std::string>(p + "convention").value(), table["settings"]["convention"]);
  EXPECT_EQ(file.get<std::string>(p + "dtype").value(), table["settings"]["dtype"]);
  EXPECT_EQ(file.get<bool>(p + "symmetric").value(), table["settings"]["symmetric"].get<bool>());
  const json& axis = table["settings"]["per_channel_axis"];
  EXPECT_EQ(file.get<int32_t>(p + "per_channel_axis").value(), axis.is_null() ? -1 : axis.get<int32_t>());
  const quant::Value* tensors = file.find(p + "tensors");
  ASSERT_NE(tensors, nullptr);
  ASSERT_EQ(tensors->size(), table["tensors"].size());
  uint64_t i = 0;
  for (const auto& [tensor, methods] : table["tensors"].items()) {
    EXPECT_EQ(tensors->string_at(i++), tensor);
    for (const auto& [method, m] : methods.items()) {
      SCOPED_TRACE(tensor + " " + method);
      const std::string key = p + tensor + "." + method + ".";
      const std::pair<const char*, const char*> arrays[] = {{"min", "observed_min"}, {"max", "observed_max"},
                                                            {"lo", "range_min"},     {"hi", "range_max"},
                                                            {"scale", "scale"}};
      for (const auto& [suffix, field] : arrays) {
        const quant::Value* v = file.find(key + suffix);
        ASSERT_NE(v, nullptr) << key + suffix;
        const std::vector<float> got = gguf_floats(*v), want = json_floats(m[field]);
        ASSERT_EQ(got.size(), want.size()) << suffix;
        for (size_t c = 0; c < want.size(); ++c) EXPECT_EQ(bits(got[c]), bits(want[c])) << suffix << " " << c;
      }
      const quant::Value* zp = file.find(key + "zero_point");
      ASSERT_NE(zp, nullptr);
      EXPECT_EQ(zp->element_type(), quant::ValueType::i32);
      const json want = m["zero_point"].is_array() ? m["zero_point"] : json::array({m["zero_point"]});
      ASSERT_EQ(zp->size(), want.size());
      for (uint64_t c = 0; c < zp->size(); ++c) EXPECT_EQ(zp->scalar_at<int32_t>(c), want[c].get<int32_t>());
    }
  }
}

// Everything after the metadata: tensor infos, then padding and data byte for byte.
void expect_same_tensors(const std::string& a_path, const std::string& b_path) {
  auto a = quant::GgufFile::open(a_path);
  auto b = quant::GgufFile::open(b_path);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (size_t i = 0; i < a->tensors().size(); ++i) {
    const quant::TensorInfo &x = a->tensors()[i], &y = b->tensors()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.shape, y.shape);
    EXPECT_EQ(x.offset, y.offset);
    EXPECT_EQ(a->read_tensor_data(x).value(), b->read_tensor_data(y).value()) << x.name;
  }
  const std::vector<uint8_t> a_bytes = quant::testing::read_bytes(a_path), b_bytes = quant::testing::read_bytes(b_path);
  ASSERT_EQ(a_bytes.size() - a->data_offset(), b_bytes.size() - b->data_offset());
  EXPECT_TRUE(std::equal(a_bytes.begin() + a->data_offset(), a_bytes.end(), b_bytes.begin() + b->data_offset()));
}

TEST(ConvertWithCalibration, EmbedsTheTableAfterTheStandardKeysAndLeavesTensorsUnchanged) {
  const std::string dir = empty_dir("convert");
  const std::string table_path = dir + "/table.json";
  const json table = json::parse(make_table(table_path, "--symmetric --method minmax --method percentile"));
  const std::string plain = dir + "/plain.gguf", calibrated = dir + "/calibrated.gguf";
  ProgramRun run = run_quantize_line("-q " + data_path(kModel) + " --to Q8_0 -o " + plain);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  run = run_quantize_line("-q " + data_path(kModel) + " --to Q8_0 --calibration " + table_path + " -o " + calibrated);
  ASSERT_EQ(run.exit_code, 0) << run.err;

  auto without = quant::GgufFile::open(plain);
  auto with = quant::GgufFile::open(calibrated);
  ASSERT_TRUE(without && with);
  expect_table_in_gguf(*with, table);
  // The standard keys first, unchanged and in order; then only quantize.calibration.* keys.
  const auto& base = without->metadata();
  const auto& keys = with->metadata();
  ASSERT_GT(keys.size(), base.size());
  for (size_t i = 0; i < base.size(); ++i) {
    EXPECT_EQ(keys[i].key, base[i].key);
    EXPECT_TRUE(keys[i].value == base[i].value) << base[i].key;
  }
  for (size_t i = base.size(); i < keys.size(); ++i) EXPECT_TRUE(keys[i].key.starts_with("quantize.calibration."));
  EXPECT_EQ(keys.size() - base.size(), 6 + 2 * 6u);  // 5 settings and the tensor list; 6 arrays per method
  expect_same_tensors(plain, calibrated);
}

TEST(ConvertWithCalibration, PerChannelTableKeepsOneValuePerChannel) {
  const std::string dir = empty_dir("convert_per_channel");
  const std::string table_path = dir + "/table.json";
  const json table = json::parse(make_table(table_path, "--per-channel 1 --dtype uint8 --method minmax --method ema"));
  ASSERT_EQ(table["tensors"]["blk.0.attn_q.weight"]["minmax"]["scale"].size(), 64u);
  const std::string out = dir + "/out.gguf";
  const ProgramRun run =
      run_quantize_line("-q " + data_path(kModel) + " --to Q8_0 --calibration " + table_path + " -o " + out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto file = quant::GgufFile::open(out);
  ASSERT_TRUE(file);
  expect_table_in_gguf(*file, table);
  EXPECT_EQ(file->find("quantize.calibration.blk.0.attn_q.weight.ema.zero_point")->size(), 64u);
}

TEST(ConvertWithCalibration, ANewTableReplacesOneInheritedFromTheInput) {
  const std::string dir = empty_dir("convert_twice");
  const std::string first_table = dir + "/first.json", second_table = dir + "/second.json";
  make_table(first_table, "--method minmax --method ema --method mse");
  const json second = json::parse(make_table(second_table, "--dtype int4 --symmetric --method entropy"));
  const std::string first = dir + "/first.gguf";
  ProgramRun run =
      run_quantize_line("-q " + data_path(kModel) + " --to COPY --calibration " + first_table + " -o " + first);
  ASSERT_EQ(run.exit_code, 0) << run.err;

  // Without --calibration the inherited keys pass through like any other key.
  const std::string kept = dir + "/kept.gguf";
  run = run_quantize_line("-q " + first + " --to COPY -o " + kept);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(quant::GgufFile::open(kept)->find("quantize.calibration.blk.0.attn_q.weight.mse.scale"), nullptr);

  // With it, none of the first table's keys survive beside the second's.
  const std::string replaced = dir + "/replaced.gguf";
  run = run_quantize_line("-q " + first + " --to COPY --calibration " + second_table + " -o " + replaced);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto file = quant::GgufFile::open(replaced);
  ASSERT_TRUE(file);
  expect_table_in_gguf(*file, second);
  int calibration_keys = 0;
  for (const quant::KeyValue& kv : file->metadata()) calibration_keys += kv.key.starts_with("quantize.calibration.");
  EXPECT_EQ(calibration_keys, 6 + 6);
  EXPECT_EQ(file->find("quantize.calibration.blk.0.attn_q.weight.minmax.scale"), nullptr);
}

TEST(ConvertWithCalibration, BadTablesFailBeforeAnyOutputExists) {
  const std::string dir = empty_dir("convert_bad");
  const std::string good = dir + "/good.json";
  const json table = json::parse(make_table(good, "--method minmax"));
  json short_scale = table;
  short_scale["settings"]["per_channel_axis"] = 1;
  short_scale["tensors"]["blk.0.attn_q.weight"]["minmax"]["scale"] = json::array({0.5, 0.25});
  short_scale["tensors"]["blk.0.attn_q.weight"]["minmax"]["zero_point"] = json::array({0, 0});
  json wrong_version_type = table;
  wrong_version_type["version"] = "1";
  json huge_zero_point = table;
  huge_zero_point["tensors"]["blk.0.attn_q.weight"]["minmax"]["zero_point"] = int64_t(1) << 40;
  json off_grid = huge_zero_point;  // a zero point the table's own grid does not hold
  huge_zero_point["tensors"]["blk.0.attn_q.weight"]["minmax"]["qmin"] = -(int64_t(1) << 41);
  huge_zero_point["tensors"]["blk.0.attn_q.weight"]["minmax"]["qmax"] = int64_t(1) << 41;
  const struct {
    std::string name, text;
    std::string message;
  } cases[] = {
      {"truncated.json", table.dump().substr(0, 100), "not a JSON object"},
      {"other.json", R"({"format": "something else", "version": 1})", "not a quantize.calibration table"},
      {"channels.json", short_scale.dump(), "2 scales but 1 values"},
      {"version.json", wrong_version_type.dump(), "calibration table"},
      {"zero_point.json", huge_zero_point.dump(), "does not fit the i32"},
      {"off_grid.json", off_grid.dump(), "zero point 1099511627776 is outside [-128, 127]"},
      {"method.json", R"({"format":"quantize.calibration","version":1,"settings":{"convention":"quantize",)"
                      R"("dtype":"int8","symmetric":false,"per_channel_axis":null},"tensors":{"x":{"kmeans":{}}}})",
       "unknown calibration method 'kmeans'"},
  };
  const std::string out = dir + "/out.gguf";
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir + "/" + c.name;
    write_text(path, c.text);
    const ProgramRun run = run_quantize_line(data_path(kModel) + " --to Q8_0 --calibration " + path + " -o " + out);
    EXPECT_EQ(run.exit_code, 3) << run.err;
    EXPECT_NE(run.err.find(path + ": "), std::string::npos) << run.err;
    EXPECT_NE(run.err.find(c.message), std::string::npos) << run.err;
    EXPECT_FALSE(fs::exists(out));
  }
  const ProgramRun missing =
      run_quantize_line(data_path(kModel) + " --to Q8_0 --calibration " + dir + "/none.json -o " + out);
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
  EXPECT_NE(missing.err.find(dir + "/none.json"), std::string::npos) << missing.err;
  const ProgramRun conflict = run_quantize_line(data_path(kModel) + " --to Q8_0 --calibration " + good +
                                                " --override-kv quantize.calibration.dtype=str:int4 -o " + out);
  EXPECT_EQ(conflict.exit_code, 2) << conflict.err;
  EXPECT_NE(conflict.err.find("conflicts with --calibration"), std::string::npos) << conflict.err;
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") left.push_back(entry.path().filename().string());
  }
  EXPECT_TRUE(left.empty()) << left.front();
}

}  // namespace
