// The saved plan is a --tensor-type-file: parsed back with llama-quantize's rules (parse_tensor_type_list, which
// lowercases the pattern as llama-quantize does) and applied by make_plan, it gives every tensor its chosen type.
#include <algorithm>
#include <regex>

#include <gtest/gtest.h>

#include "quant/automix.h"

namespace quant {
namespace {

TEST(ExactNamePattern, MatchesOnlyThatName) {
  EXPECT_EQ(exact_name_pattern("blk.0.attn_q.weight"), "^blk\\.0\\.attn_q\\.weight$");
  const std::regex pattern(exact_name_pattern("blk.1.ffn_up.weight"));
  EXPECT_TRUE(std::regex_search("blk.1.ffn_up.weight", pattern));
  EXPECT_FALSE(std::regex_search("blk.11.ffn_up.weight", pattern));
  EXPECT_FALSE(std::regex_search("blk.1.ffn_up.weight.extra", pattern));
  EXPECT_FALSE(std::regex_search("blkx1.ffn_up.weight", pattern));
}

TEST(ExactNamePattern, SurvivesLowercasingAndTheFileSyntax) {
  // Upper case, '=', spaces and regex specials: the pattern must still match the name after llama-quantize
  // lowercases it, and hold no white space or '=' that would split it.
  for (const std::string name : {"Model.Embed(0)+[x]", "a=b", "with space", "dollar$caret^", "back\\slash"}) {
    const std::string pattern = exact_name_pattern(name);
    EXPECT_EQ(pattern.find_first_of(" \t\n="), std::string::npos) << pattern;
    auto parsed = parse_tensor_type_override(pattern + "=q4_K");
    ASSERT_TRUE(parsed.ok()) << pattern;
    EXPECT_TRUE(std::regex_search(name, std::regex(parsed->pattern))) << name << " vs " << parsed->pattern;
    EXPECT_FALSE(std::regex_search(name + "x", std::regex(parsed->pattern))) << name;
  }
}

TEST(TensorTypeFileText, ReproducesThePlanThroughMakePlan) {
  const std::vector<AutomixTensor> chosen = {
      {"token_embd.weight", {256, 512}, TypeId::f16, TypeId::iq4_xs, 0, 0, true, false},
      {"output_norm.weight", {256}, TypeId::f32, TypeId::f32, 0, 0, false, false},
      {"blk.0.attn_q.weight", {256, 256}, TypeId::f16, TypeId::q3_K, 0, 0, true, false},
      {"blk.0.attn_norm.weight", {256}, TypeId::f32, TypeId::f32, 0, 0, false, false},
      {"blk.0.ffn_down.weight", {768, 256}, TypeId::f16, TypeId::f16, 0, 0, true, false},
  };
  const std::string text = tensor_type_file_text(chosen);
  EXPECT_EQ(text,
            "^token_embd\\.weight$=iq4_xs\n^blk\\.0\\.attn_q\\.weight$=q3_K\n^blk\\.0\\.ffn_down\\.weight$=f16\n");
  auto overrides = parse_tensor_type_list(text);
  ASSERT_TRUE(overrides.ok());
  std::vector<PlanTensor> tensors;
  for (const AutomixTensor& t : chosen) tensors.push_back({t.name, t.shape, t.source_type});
  ModelParams model;
  model.arch = "llama";
  model.n_layer = 1;
  model.n_head = 4;
  model.n_head_kv = 2;
  PlanOptions options;
  options.file_type = FileType::q4_K_M;
  options.types.tensor_types = *overrides;
  auto plan = make_plan(model, tensors, options);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  for (const AutomixTensor& t : chosen) {
    const auto it = std::find_if(plan->tensors.begin(), plan->tensors.end(),
                                 [&](const TensorPlan& p) { return p.name == t.name; });
    ASSERT_NE(it, plan->tensors.end());
    EXPECT_EQ(it->target_type, t.type) << t.name;
  }
}

}  // namespace
}  // namespace quant
