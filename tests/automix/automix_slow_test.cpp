// automix() end to end on tiny-llama (tests/data/models) with its imatrix: every file at or under its budget and
// exactly the predicted size, pins kept, the reachable range enforced, the cache reused or refused, the plan and
// frontier files written. The measurer samples about 16384 values a tensor to keep the test quick.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "automix/scratch.h"
#include "quant/automix.h"
#include "quant/convert.h"
#include "quant/gguf.h"
#include "test_data.h"

namespace quant {
namespace {

namespace fs = std::filesystem;
using testing::Scratch;
using testing::data_path;

const std::string kModel = data_path("models/tiny-llama-f16.gguf");
const std::string kImatrix = data_path("imatrix/tiny-llama.imatrix.gguf");

// One measurement for the whole test program: every request shares this cache (the cache test uses its own).
const std::string& shared_cache() {
  static const Scratch dir;
  static const std::string path = dir / "shared-cache.json";
  return path;
}

AutomixRequest request_for(uint64_t budget, const std::string& output) {
  AutomixRequest request;
  request.input = kModel;
  request.output = output;
  request.budget.file_bytes = budget;
  request.budget_text = std::to_string(budget);
  request.imatrix_path = kImatrix;
  request.measurer = make_weighted_error_measurer(16384);
  request.threads = 2;
  request.sensitivity_cache = shared_cache();
  return request;
}

std::map<std::string, TypeId> types_in(const std::string& path) {
  auto file = GgufFile::open(path);
  EXPECT_TRUE(file.ok());
  std::map<std::string, TypeId> types;
  for (const TensorInfo& t : file->tensors()) types[t.name] = t.type;
  return types;
}

TEST(Automix, FilesAreAtOrUnderTheBudgetAndExactlyAsPredicted) {
  Scratch dir;
  double previous_cost = 1e300;
  // The byte sizes of llama-quantize's Q2_K, Q3_K_M and Q5_K_M of this model with this imatrix.
  for (uint64_t budget : {1486720u, 1877888u, 2652544u}) {
    const std::string output = dir / ("auto-" + std::to_string(budget) + ".gguf");
    auto result = automix(request_for(budget, output));
    ASSERT_TRUE(result.ok()) << result.error().message();
    EXPECT_LE(result->file_bytes, budget);
    EXPECT_GT(result->file_bytes, budget - budget / 50) << "a budget this large should be nearly used";
    EXPECT_EQ(fs::file_size(output), result->file_bytes);
    ASSERT_TRUE(result->conversion.has_value());
    EXPECT_EQ(result->conversion->output_bytes, result->file_bytes);
    const auto written = types_in(output);
    for (const AutomixTensor& t : result->tensors) EXPECT_EQ(written.at(t.name), t.type) << t.name;
    EXPECT_LT(result->predicted_cost, previous_cost) << "a larger budget never costs more";
    previous_cost = result->predicted_cost;
    // Tensors that are never quantized (norms) keep their type; the rest got a measured type.
    for (const AutomixTensor& t : result->tensors) {
      if (t.name.find("norm") != std::string::npos) {
        EXPECT_FALSE(t.quantizable) << t.name;
        EXPECT_EQ(t.type, t.source_type) << t.name;
      } else {
        EXPECT_TRUE(t.quantizable) << t.name;
      }
    }
  }
}

TEST(Automix, PinsWinAndTheBudgetStillHolds) {
  Scratch dir;
  AutomixRequest request = request_for(1877888, dir / "pinned.gguf");
  request.pins = {{"attn_v", TypeId::q8_0}, {"blk\\.0\\.ffn_down", TypeId::q6_K}};
  auto result = automix(request);
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_LE(result->file_bytes, 1877888u);
  for (const AutomixTensor& t : result->tensors) {
    if (t.name.find("attn_v") != std::string::npos) {
      EXPECT_EQ(t.type, TypeId::q8_0) << t.name;
      EXPECT_TRUE(t.pinned);
    } else if (t.name == "blk.0.ffn_down.weight") {
      EXPECT_EQ(t.type, TypeId::q6_K);
    } else {
      EXPECT_FALSE(t.pinned) << t.name;
    }
  }
  EXPECT_EQ(types_in(dir / "pinned.gguf").at("blk.2.attn_v.weight"), TypeId::q8_0);
}

TEST(Automix, BudgetsOutsideTheReachableRangeAreRefusedWithTheRange) {
  Scratch dir;
  auto low = automix(request_for(100000, dir / "low.gguf"));
  ASSERT_FALSE(low.ok());
  EXPECT_EQ(low.error().kind(), ErrorKind::impossible);
  EXPECT_TRUE(std::regex_search(low.error().message(), std::regex("below the smallest file.*reachable range is "
                                                                  "[0-9]+ to [0-9]+ bytes")))
      << low.error().message();
  auto high = automix(request_for(8000000, dir / "high.gguf"));
  ASSERT_FALSE(high.ok());
  EXPECT_EQ(high.error().kind(), ErrorKind::impossible);
  EXPECT_NE(high.error().message().find("above the unquantized size"), std::string::npos) << high.error().message();
  EXPECT_FALSE(fs::exists(dir / "low.gguf"));
  EXPECT_FALSE(fs::exists(dir / "high.gguf"));

  // The range's ends themselves are reachable.
  AutomixRequest request = request_for(1, dir / "x.gguf");
  request.dry_run = true;
  request.budget.file_bytes = 1;
  auto probe = automix(request);
  ASSERT_FALSE(probe.ok());
  std::smatch m;
  const std::string message = probe.error().message();
  ASSERT_TRUE(std::regex_search(message, m, std::regex("([0-9]+) to ([0-9]+) bytes")));
  for (const std::string& end : {m[1].str(), m[2].str()}) {
    request.budget.file_bytes = std::stoull(end);
    auto at_end = automix(request);
    ASSERT_TRUE(at_end.ok()) << at_end.error().message();
    EXPECT_EQ(at_end->file_bytes, request.budget.file_bytes);
  }
}

TEST(Automix, BitsPerWeightBudgets) {
  Scratch dir;
  AutomixRequest request = request_for(0, dir / "bpw.gguf");
  request.budget.kind = SizeBudget::Kind::bits_per_weight;
  request.budget.bits_per_weight = 4.5;
  request.dry_run = true;
  auto result = automix(request);
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_LE(result->bits_per_weight, 4.5);
  EXPECT_GT(result->bits_per_weight, 4.4);
  // llama.cpp's BPW: 8 x tensor data bytes / parameters, from the written types.
  uint64_t data = 0;
  int64_t parameters = 0;
  for (const AutomixTensor& t : result->tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    parameters += n;
    data += uint64_t(n) / uint64_t(format_of(t.type).block_size) * format_of(t.type).block_bytes;
  }
  EXPECT_DOUBLE_EQ(result->bits_per_weight, 8.0 * double(data) / double(parameters));
}

TEST(Automix, TheCacheIsReusedForAnotherBudgetAndRefusedForAnotherImatrix) {
  Scratch dir;
  AutomixRequest request = request_for(2283904, "");
  request.dry_run = true;
  request.sensitivity_cache = dir / "cache.json";
  auto first = automix(request);
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_FALSE(first->cache_used);
  ASSERT_TRUE(fs::exists(dir / "cache.json"));
  request.budget.file_bytes = 1713024;
  auto second = automix(request);
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_TRUE(second->cache_used);
  // The same measurements: the first budget again gives the same choice.
  request.budget.file_bytes = 2283904;
  auto third = automix(request);
  ASSERT_TRUE(third.ok());
  ASSERT_EQ(third->tensors.size(), first->tensors.size());
  for (size_t i = 0; i < first->tensors.size(); ++i) EXPECT_EQ(third->tensors[i].type, first->tensors[i].type);

  request.imatrix_path = data_path("imatrix/rows256.imatrix.gguf");  // another model's: no entry matches
  auto refused = automix(request);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind(), ErrorKind::impossible);
  EXPECT_NE(refused.error().message().find("importance matrix"), std::string::npos) << refused.error().message();
}

TEST(Automix, DryRunWritesThePlanAndFrontierButNoModel) {
  Scratch dir;
  AutomixRequest request = request_for(2283904, dir / "model.gguf");
  request.dry_run = true;
  request.save_plan = dir / "plan.txt";
  request.frontier = FrontierOptions{dir / "frontier", 6};
  auto result = automix(request);
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_FALSE(fs::exists(dir / "model.gguf"));
  EXPECT_TRUE(result->output.empty());
  std::ifstream plan(dir / "plan.txt");
  std::stringstream text;
  text << plan.rdbuf();
  EXPECT_EQ(text.str(), result->plan_text);
  EXPECT_EQ(std::count(result->plan_text.begin(), result->plan_text.end(), '\n'), 30);  // 28 block weights + 2
  ASSERT_TRUE(result->frontier.has_value());
  EXPECT_EQ(result->frontier->ours.size(), 6u);
  for (size_t i = 1; i < result->frontier->ours.size(); ++i) {
    EXPECT_GT(result->frontier->ours[i].file_bytes, result->frontier->ours[i - 1].file_bytes);
    EXPECT_LE(result->frontier->ours[i].cost, result->frontier->ours[i - 1].cost);
  }
  bool has_q4_k_m = false;
  for (const FrontierPoint& p : result->frontier->mixes) has_q4_k_m = has_q4_k_m || p.label == "Q4_K_M";
  EXPECT_TRUE(has_q4_k_m);
  for (const char* ext : {".csv", ".json", ".svg"}) EXPECT_TRUE(fs::exists(dir / (std::string("frontier") + ext)));
  std::ifstream json_file(dir / "frontier.json");
  const nlohmann::json json = nlohmann::json::parse(json_file);
  EXPECT_EQ(json["auto"].size(), 6u);
  EXPECT_EQ(json["unit"], result->cost_unit);
}

TEST(Automix, RefusesAQuantizedModel) {
  Scratch dir;
  ConvertRequest convert_request;
  convert_request.input = kModel;
  convert_request.targets.push_back({"Q8_0", dir / "q8.gguf"});
  ASSERT_TRUE(convert(convert_request).ok());
  AutomixRequest request = request_for(2000000, dir / "out.gguf");
  request.input = dir / "q8.gguf";
  auto result = automix(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind(), ErrorKind::impossible);
  EXPECT_NE(result.error().message().find("unquantized model"), std::string::npos) << result.error().message();
}

}  // namespace
}  // namespace quant
