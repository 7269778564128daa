// Table-driven check of the plan against llama.cpp's golden quant-type snapshots: for every model and every
// file type, each listed tensor must get the listed type and every other quantizable tensor the default type.
#include <algorithm>
#include <filesystem>
#include <functional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "plan/schema_models.h"
#include "plan/schema_moe_models.h"
#include "quant/plan.h"
#include "test_data.h"

namespace quant {
namespace {

using testing::Snapshot;
using testing::SnapshotModel;

struct SnapshotCase {
  std::string file;  // under tests/data/quant-type-snapshots/
  std::function<SnapshotModel(const Snapshot&)> build;
};

// GoogleTest prints a failing parameter with this instead of its raw bytes.
void PrintTo(const SnapshotCase& snapshot_case, std::ostream* out) { *out << snapshot_case.file; }

// How each snapshot model is laid out (from the architectures' tensor lists in llama.cpp and the models'
// configurations: head sizes, tied embeddings).
std::vector<SnapshotCase> snapshot_cases() {
  using testing::build_dense_model;
  using testing::build_qwen_hybrid_model;
  using testing::DenseLayout;
  return {
      {"qwen3-0.6b.schema",
       [](const Snapshot& s) { return build_dense_model(s, {"qwen3", 128, false, true, false, false}); }},
      {"qwen3-14b.schema",
       [](const Snapshot& s) { return build_dense_model(s, {"qwen3", 128, false, true, false, false}); }},
      {"meta-llama-3.1-70b-instruct.schema",
       [](const Snapshot& s) { return build_dense_model(s, {"llama", 128, false, false, false, true}); }},
      {"gemma-3-4b-it.schema",
       [](const Snapshot& s) { return build_dense_model(s, {"gemma3", 256, true, true, true, false}); }},
      {"gpt-oss-120b.schema", [](const Snapshot& s) { return testing::build_gpt_oss_model(s); }},
      {"deepseek-v3.1.schema", [](const Snapshot& s) { return testing::build_deepseek_v3_model(s); }},
      {"glm-4.6v.schema", [](const Snapshot& s) { return testing::build_glm4_moe_model(s); }},
      {"qwen3-coder-next.schema",
       [](const Snapshot& s) {
         return build_qwen_hybrid_model(s, {"qwen3next", {16, 32, 128, 128, 4, false}, 256, 512});
       }},
      {"qwen3.5-397b-a17b.schema",
       [](const Snapshot& s) {
         return build_qwen_hybrid_model(s, {"qwen35moe", {16, 64, 128, 128, 4, true}, 256, 1024});
       }},
      {"qwen3.6-27b.schema",  // the file llama.cpp names qwen3.6-27b holds Qwen3.5-27B (its "# Model" line)
       [](const Snapshot& s) {
         return build_qwen_hybrid_model(s, {"qwen35", {16, 48, 128, 128, 4, true}, 256, 0});
       }},
      {"nemotron-nano-3-30b-a3b.schema", [](const Snapshot& s) { return testing::build_nemotron_h_moe_model(s); }},
      {"step-3.5-flash.schema", [](const Snapshot& s) { return testing::build_step35_model(s); }},
  };
}

// A snapshot added to tests/data without a layout here would otherwise go unchecked.
TEST(SnapshotCases, EverySnapshotFileHasAModelLayout) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(testing::data_path("quant-type-snapshots"))) {
    if (entry.path().extension() == ".schema") files.push_back(entry.path().filename().string());
  }
  std::vector<std::string> covered;
  for (const SnapshotCase& snapshot_case : snapshot_cases()) covered.push_back(snapshot_case.file);
  std::sort(files.begin(), files.end());
  std::sort(covered.begin(), covered.end());
  EXPECT_EQ(files, covered);
  EXPECT_EQ(files.size(), 12u);  // llama.cpp's tests/snapshots at the reference commit
}

class SnapshotTest : public ::testing::TestWithParam<SnapshotCase> {};

TEST_P(SnapshotTest, EveryFileTypeMatchesTheGoldenList) {
  const Snapshot snapshot = testing::read_snapshot(testing::data_path("quant-type-snapshots/" + GetParam().file));
  const SnapshotModel model = GetParam().build(snapshot);
  ASSERT_FALSE(snapshot.sections.empty());
  size_t sections_checked = 0;
  for (const testing::SnapshotSection& section : snapshot.sections) {
    SCOPED_TRACE(section.file_type);
    auto file_type = parse_file_type(section.file_type);
    ASSERT_TRUE(file_type.ok()) << section.file_type;
    EXPECT_EQ(format_of((*file_type)->default_type).name, section.default_type);
    EXPECT_EQ(section.changed.size(), section.listed) << "a tensor is listed twice";

    PlanOptions options;
    options.file_type = (*file_type)->id;
    options.dry_run = true;  // the snapshots are made without an imatrix and without reading data
    auto plan = make_plan(model.params, model.tensors, options);
    ASSERT_TRUE(plan.ok()) << plan.error().message();

    std::vector<std::string> mismatches;
    std::set<std::string> listed_missing;  // listed names the rebuilt model lacks (or does not quantize)
    for (const auto& [name, type] : section.changed) listed_missing.insert(name);
    size_t quantizable = 0;
    for (const TensorPlan& tensor : plan->tensors) {
      if (tensor.rule == PlanRule::not_quantized) continue;
      ++quantizable;
      std::string expected = section.default_type;
      if (auto it = section.changed.find(tensor.name); it != section.changed.end()) {
        expected = it->second;
        listed_missing.erase(tensor.name);
      }
      const std::string got(format_of(tensor.target_type).name);
      if (got != expected) mismatches.push_back(fmt::format("{}: expected {}, got {} ({})", tensor.name, expected, got, tensor.why));
    }
    // Naming the first missing tensor tells a wrong layout (e.g. a dense block rebuilt as experts) from a rule.
    EXPECT_TRUE(listed_missing.empty()) << listed_missing.size() << " of " << section.changed.size()
                                        << " listed tensors are not quantized tensors of the rebuilt model, first: "
                                        << (listed_missing.empty() ? "" : *listed_missing.begin());
    EXPECT_GT(quantizable, 0u);
    EXPECT_TRUE(mismatches.empty()) << mismatches.size() << " mismatches, first: " << (mismatches.empty() ? "" : mismatches.front());
    ++sections_checked;
  }
  EXPECT_EQ(sections_checked, 33u);  // every file type llama.cpp's snapshot lists
}

INSTANTIATE_TEST_SUITE_P(Models, SnapshotTest, ::testing::ValuesIn(snapshot_cases()),
                         [](const ::testing::TestParamInfo<SnapshotCase>& case_info) {
                           std::string name = case_info.param.file.substr(0, case_info.param.file.find(".schema"));
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace quant
