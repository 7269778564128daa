// Unit tests of make_plan: precedence, shape fallbacks, explicit types, running counters, imatrix and requantize
// refusals, output order, COPY. Expected types come from llama-quantize's rules as documented in the reference
// notes (§2c), worked out by hand for small models.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "quant/plan.h"

namespace quant {
namespace {

// A llama-style model: rows of `width` values (ne0), feed-forward rows of `ff`, `layers` blocks.
std::vector<PlanTensor> llama_tensors(int layers, int64_t width, int64_t ff, bool tied = false,
                                      TypeId type = TypeId::f32) {
  std::vector<PlanTensor> tensors;
  tensors.push_back({"token_embd.weight", {width, 512}, type});
  if (!tied) tensors.push_back({"output.weight", {width, 512}, type});
  tensors.push_back({"output_norm.weight", {width}, TypeId::f32});
  for (int i = 0; i < layers; ++i) {
    const std::string block = "blk." + std::to_string(i) + ".";
    tensors.push_back({block + "attn_norm.weight", {width}, TypeId::f32});
    tensors.push_back({block + "attn_q.weight", {width, width}, type});
    tensors.push_back({block + "attn_k.weight", {width, width / 2}, type});
    tensors.push_back({block + "attn_v.weight", {width, width / 2}, type});
    tensors.push_back({block + "attn_output.weight", {width, width}, type});
    tensors.push_back({block + "ffn_norm.weight", {width}, TypeId::f32});
    tensors.push_back({block + "ffn_gate.weight", {width, ff}, type});
    tensors.push_back({block + "ffn_up.weight", {width, ff}, type});
    tensors.push_back({block + "ffn_down.weight", {ff, width}, type});
  }
  return tensors;
}

ModelParams llama_params(int layers, int heads = 8, int kv_heads = 4) {
  ModelParams params;
  params.arch = "llama";
  params.n_layer = layers;
  params.n_head = heads;
  params.n_head_kv = kv_heads;
  return params;
}

PlanOptions options_for(FileType type) {
  PlanOptions options;
  options.file_type = type;
  return options;
}

const TensorPlan& find(const Plan& plan, const std::string& name) {
  auto it = std::find_if(plan.tensors.begin(), plan.tensors.end(), [&](const TensorPlan& t) { return t.name == name; });
  if (it == plan.tensors.end()) throw std::runtime_error("no tensor " + name);
  return *it;
}

std::string type_of(const Plan& plan, const std::string& name) { return std::string(format_of(find(plan, name).target_type).name); }

TEST(MakePlan, NormsAndOneDimensionalTensorsKeepTheirType) {
  auto plan = make_plan(llama_params(2), llama_tensors(2, 256, 512), options_for(FileType::q4_K_M));
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  for (const char* name : {"output_norm.weight", "blk.0.attn_norm.weight", "blk.1.ffn_norm.weight"}) {
    EXPECT_EQ(find(*plan, name).rule, PlanRule::not_quantized) << name;
    EXPECT_TRUE(find(*plan, name).keeps_type()) << name;
  }
}

TEST(MakePlan, RouterGatesAndPositionEmbeddingsAreNeverQuantized) {
  std::vector<PlanTensor> tensors = llama_tensors(1, 256, 512);
  tensors.push_back({"blk.0.ffn_gate_inp.weight", {256, 8}, TypeId::f32});
  tensors.push_back({"position_embd.weight", {256, 1024}, TypeId::f32});
  tensors.push_back({"v.position_embd.weight", {256, 1024}, TypeId::f32});
  tensors.push_back({"blk.0.attn_q.bias", {256, 2}, TypeId::f32});
  auto plan = make_plan(llama_params(1), tensors, options_for(FileType::q8_0));
  ASSERT_TRUE(plan.ok());
  for (const char* name : {"blk.0.ffn_gate_inp.weight", "position_embd.weight", "v.position_embd.weight",
                           "blk.0.attn_q.bias"}) {
    EXPECT_EQ(type_of(*plan, name), "f32") << name;
  }
}

TEST(MakePlan, OutputOrderIsBlockNumberThenName) {
  std::vector<PlanTensor> tensors = llama_tensors(12, 256, 512);
  std::reverse(tensors.begin(), tensors.end());
  auto plan = make_plan(llama_params(12), tensors, options_for(FileType::q8_0));
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->tensors.size(), tensors.size());
  EXPECT_EQ(plan->tensors[0].name, "output.weight");
  EXPECT_EQ(plan->tensors[1].name, "output_norm.weight");
  EXPECT_EQ(plan->tensors[2].name, "token_embd.weight");
  EXPECT_EQ(plan->tensors[3].name, "blk.0.attn_k.weight");
  // blk.10 comes after blk.9 (numeric), though "blk.10" < "blk.9" as text.
  auto position = [&](const std::string& name) {
    return std::find_if(plan->tensors.begin(), plan->tensors.end(), [&](const TensorPlan& t) { return t.name == name; }) -
           plan->tensors.begin();
  };
  EXPECT_LT(position("blk.9.ffn_up.weight"), position("blk.10.attn_k.weight"));
  EXPECT_EQ(plan->tensors.back().name, "blk.11.ffn_up.weight");
}

TEST(MakePlan, ShapeFallbacksFollowTheTable) {
  // Rows of 64: q4_K -> q5_0, q6_K -> q8_0; rows of 172 (not a multiple of 32): f16.
  std::vector<PlanTensor> tensors = {{"blk.0.attn_q.weight", {64, 64}, TypeId::f32},
                                     {"blk.0.ffn_down.weight", {172, 64}, TypeId::f32}};
  PlanOptions options = options_for(FileType::q4_K_S);
  options.types.pure = true;
  auto plan = make_plan(llama_params(1), tensors, options);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(type_of(*plan, "blk.0.attn_q.weight"), "q5_0");
  EXPECT_EQ(find(*plan, "blk.0.attn_q.weight").fallback_from, TypeId::q4_K);
  EXPECT_EQ(type_of(*plan, "blk.0.ffn_down.weight"), "f16");
  EXPECT_EQ(plan->fallback_count, 2);

  const std::pair<FileType, const char*> cases[] = {
      {FileType::q6_K, "q8_0"},    {FileType::q5_K_S, "q5_1"},  {FileType::q3_K_S, "q4_0"},
      {FileType::q2_K, "q4_0"},    {FileType::iq4_xs, "iq4_nl"}, {FileType::iq3_s, "iq4_nl"},
      {FileType::tq1_0, "q4_0"},   {FileType::tq2_0, "q4_0"},    {FileType::q2_0, "q4_0"},
  };
  for (const auto& [file_type, expected] : cases) {
    PlanOptions pure = options_for(file_type);
    pure.types.pure = true;
    std::vector<PlanTensor> rows_of_96 = {{"blk.0.attn_q.weight", {96, 64}, TypeId::f32}};
    auto result = make_plan(llama_params(1), rows_of_96, pure);
    ASSERT_TRUE(result.ok()) << result.error().message();
    EXPECT_EQ(type_of(*result, "blk.0.attn_q.weight"), expected) << static_cast<int>(file_type);
  }
}

TEST(MakePlan, TypesWithoutFallbackRefuseShapesThatDoNotFit) {
  // 172 is not a multiple of 32, and q8_0 has no fallback: llama-quantize fails on this model.
  auto plan = make_plan(llama_params(1), llama_tensors(1, 64, 172), options_for(FileType::q8_0));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().kind(), ErrorKind::impossible);
  EXPECT_EQ(plan.error().tensor(), "blk.0.ffn_down.weight");
  EXPECT_NE(plan.error().reason().find("no fallback"), std::string::npos) << plan.error().reason();
}

TEST(MakePlan, OutputGetsQ6KAndQ8_0WhenItsRowsDoNotFit) {
  auto q4_0 = make_plan(llama_params(1), llama_tensors(1, 256, 512), options_for(FileType::q4_0));
  ASSERT_TRUE(q4_0.ok());
  EXPECT_EQ(type_of(*q4_0, "output.weight"), "q6_K");
  EXPECT_EQ(type_of(*q4_0, "token_embd.weight"), "q4_0");
  // Rows of 64 with a 256 block: q8_0 straight away (no fallback counted).
  PlanOptions options = options_for(FileType::q4_K_M);
  auto narrow = make_plan(llama_params(1), llama_tensors(1, 64, 128), options);
  ASSERT_TRUE(narrow.ok());
  EXPECT_EQ(type_of(*narrow, "output.weight"), "q8_0");
  EXPECT_FALSE(find(*narrow, "output.weight").fallback_from.has_value());
}

TEST(MakePlan, FalconOutputIsQ8_0) {
  ModelParams params = llama_params(1);
  params.arch = "falcon";
  auto plan = make_plan(params, llama_tensors(1, 256, 512), options_for(FileType::q4_K_M));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(type_of(*plan, "output.weight"), "q8_0");
}

TEST(MakePlan, TiedEmbeddingsFollowTheOutputRules) {
  auto plan = make_plan(llama_params(1), llama_tensors(1, 256, 512, /*tied=*/true), options_for(FileType::q4_K_M));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(type_of(*plan, "token_embd.weight"), "q6_K");
  // --output-tensor-type reaches a tied token_embd through the mix rules, so not under --pure.
  PlanOptions options = options_for(FileType::q4_K_M);
  options.types.output_tensor_type = TypeId::q8_0;
  auto with_type = make_plan(llama_params(1), llama_tensors(1, 256, 512, true), options);
  ASSERT_TRUE(with_type.ok());
  EXPECT_EQ(type_of(*with_type, "token_embd.weight"), "q8_0");
  options.types.pure = true;
  auto pure = make_plan(llama_params(1), llama_tensors(1, 256, 512, true), options);
  ASSERT_TRUE(pure.ok());
  EXPECT_EQ(type_of(*pure, "token_embd.weight"), "q4_K");
}

TEST(MakePlan, ExplicitTypesComeFirstAndSkipTheFallback) {
  PlanOptions options = options_for(FileType::q4_K_M);
  options.types.token_embedding_type = TypeId::q8_0;
  options.types.output_tensor_type = TypeId::f16;
  options.types.tensor_types = {{"token_embd", TypeId::q4_0}, {"output", TypeId::q4_0}, {"attn_q", TypeId::q5_0}};
  auto plan = make_plan(llama_params(1), llama_tensors(1, 256, 512), options);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(type_of(*plan, "token_embd.weight"), "q8_0");
  EXPECT_EQ(find(*plan, "token_embd.weight").rule, PlanRule::token_embedding_type);
  EXPECT_EQ(type_of(*plan, "output.weight"), "f16");
  EXPECT_EQ(type_of(*plan, "blk.0.attn_q.weight"), "q5_0");
  EXPECT_EQ(find(*plan, "blk.0.attn_q.weight").rule, PlanRule::tensor_type_override);
  // Explicit embedding/output types apply under float file types too, where patterns do not.
  options.file_type = FileType::f16;
  auto f16 = make_plan(llama_params(1), llama_tensors(1, 256, 512), options);
  ASSERT_TRUE(f16.ok());
  EXPECT_EQ(type_of(*f16, "token_embd.weight"), "q8_0");
  EXPECT_EQ(type_of(*f16, "blk.0.attn_q.weight"), "f16");
  // Taken as given: a type whose block does not divide the rows is refused rather than replaced.
  PlanOptions narrow = options_for(FileType::q8_0);
  narrow.types.output_tensor_type = TypeId::q4_K;
  auto refused = make_plan(llama_params(1), llama_tensors(1, 64, 128), narrow);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind(), ErrorKind::impossible);
  EXPECT_EQ(refused.error().tensor(), "output.weight");
}

TEST(MakePlan, FirstMatchingPatternWinsAndTheFallbackStillApplies) {
  PlanOptions options = options_for(FileType::q8_0);
  options.types.tensor_types = {{"blk\\.0\\.", TypeId::q4_K}, {"attn", TypeId::q6_K}};
  auto plan = make_plan(llama_params(2), llama_tensors(2, 64, 128), options);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(type_of(*plan, "blk.0.attn_q.weight"), "q5_0");  // q4_K first, then rows of 64 fall back
  EXPECT_EQ(type_of(*plan, "blk.1.attn_q.weight"), "q8_0");  // q6_K falls back to q8_0
  EXPECT_EQ(type_of(*plan, "blk.1.ffn_up.weight"), "q8_0");
}

TEST(MakePlan, PatternsDoNotAdvanceTheMixCounters) {
  // Q3_K_M gives the first two attn_v it sees q5_K; a pattern-matched attn_v is not seen by the mix.
  PlanOptions options = options_for(FileType::q3_K_M);
  auto plain = make_plan(llama_params(4), llama_tensors(4, 256, 512), options);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(type_of(*plain, "blk.0.attn_v.weight"), "q5_K");
  EXPECT_EQ(type_of(*plain, "blk.1.attn_v.weight"), "q5_K");
  EXPECT_EQ(type_of(*plain, "blk.2.attn_v.weight"), "q4_K");
  options.types.tensor_types = {{"blk\\.0\\.attn_v", TypeId::q8_0}};
  auto plan = make_plan(llama_params(4), llama_tensors(4, 256, 512), options);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(type_of(*plan, "blk.0.attn_v.weight"), "q8_0");
  EXPECT_EQ(type_of(*plan, "blk.1.attn_v.weight"), "q5_K");
  EXPECT_EQ(type_of(*plan, "blk.2.attn_v.weight"), "q5_K");
  EXPECT_EQ(type_of(*plan, "blk.3.attn_v.weight"), "q4_K");
}

TEST(MakePlan, PureUsesTheDefaultTypeEverywhere) {
  PlanOptions options = options_for(FileType::q4_K_M);
  options.types.pure = true;
  auto plan = make_plan(llama_params(8), llama_tensors(8, 256, 512), options);
  ASSERT_TRUE(plan.ok());
  for (const TensorPlan& tensor : plan->tensors) {
    if (tensor.rule == PlanRule::not_quantized) continue;
    EXPECT_EQ(format_of(tensor.target_type).name, "q4_K") << tensor.name;
    EXPECT_EQ(tensor.rule, PlanRule::pure_default);
  }
}

TEST(MakePlan, InputOrderRunsTheCountersInTheOrderGiven) {
  // llama-quantize --keep-split walks tensors in the input's shard order, and the dense models' ffn_down and
  // attn_v counters count in that order. Blocks given last to first: the k-th block visited is block 7 - k, and
  // the visits with more bits (0, 3, 6, 7 of 8) are blocks 7, 4, 1 and 0.
  std::vector<PlanTensor> reversed;
  const std::vector<PlanTensor> tensors = llama_tensors(8, 256, 512);
  for (int i = 7; i >= 0; --i) {
    for (const PlanTensor& t : tensors) {
      if (t.name.rfind("blk." + std::to_string(i) + ".", 0) == 0) reversed.push_back(t);
    }
  }
  PlanOptions options = options_for(FileType::q4_K_M);
  options.input_order = true;
  auto plan = make_plan(llama_params(8), reversed, options);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->tensors.size(), reversed.size());
  for (size_t k = 0; k < reversed.size(); ++k) EXPECT_EQ(plan->tensors[k].name, reversed[k].name);
  for (int i = 0; i < 8; ++i) {
    const bool more = i == 7 || i == 4 || i == 1 || i == 0;
    const std::string block = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(type_of(*plan, block + "ffn_down.weight"), more ? "q6_K" : "q4_K") << i;
    EXPECT_EQ(type_of(*plan, block + "attn_v.weight"), more ? "q6_K" : "q4_K") << i;
  }
}

TEST(MakePlan, Q4KMGivesMoreBitsLayersQ6K) {
  // 8 layers: more bits for i < 1, i >= 7, and (i - 1) % 3 == 2, i.e. layers 0, 3, 6, 7.
  auto plan = make_plan(llama_params(8), llama_tensors(8, 256, 512), options_for(FileType::q4_K_M));
  ASSERT_TRUE(plan.ok());
  for (int i = 0; i < 8; ++i) {
    const bool more = i == 0 || i == 3 || i == 6 || i == 7;
    const std::string block = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(type_of(*plan, block + "ffn_down.weight"), more ? "q6_K" : "q4_K") << i;
    EXPECT_EQ(type_of(*plan, block + "attn_v.weight"), more ? "q6_K" : "q4_K") << i;
    EXPECT_EQ(type_of(*plan, block + "ffn_up.weight"), "q4_K") << i;
  }
}

TEST(MakePlan, ImatrixChangesTheFirstFfnDownOfQ4_0) {
  PlanOptions options = options_for(FileType::q4_0);
  options.has_imatrix = true;
  auto plan = make_plan(llama_params(16), llama_tensors(16, 256, 512), options);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(type_of(*plan, "blk.0.ffn_down.weight"), "q4_1");
  EXPECT_EQ(type_of(*plan, "blk.1.ffn_down.weight"), "q4_1");
  EXPECT_EQ(type_of(*plan, "blk.2.ffn_down.weight"), "q4_0");
}

TEST(MakePlan, LowBitFileTypesRequireAnImatrix) {
  auto plan = make_plan(llama_params(2), llama_tensors(2, 256, 512), options_for(FileType::iq2_xxs));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().kind(), ErrorKind::impossible);
  // output (q5_K) and token_embd (q2_K) come first but never need one.
  EXPECT_EQ(plan.error().tensor(), "blk.0.attn_k.weight");
  EXPECT_NE(plan.error().reason().find("importance matrix"), std::string::npos);

  PlanOptions with_imatrix = options_for(FileType::iq2_xxs);
  with_imatrix.has_imatrix = true;
  auto ok = make_plan(llama_params(2), llama_tensors(2, 256, 512), with_imatrix);
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->imatrix_required);
  EXPECT_TRUE(find(*ok, "blk.0.attn_k.weight").requires_imatrix);
  EXPECT_FALSE(find(*ok, "token_embd.weight").requires_imatrix);

  PlanOptions dry_run = options_for(FileType::iq2_xxs);
  dry_run.dry_run = true;
  auto dry = make_plan(llama_params(2), llama_tensors(2, 256, 512), dry_run);
  ASSERT_TRUE(dry.ok());
  EXPECT_TRUE(dry->imatrix_required);
}

TEST(MakePlan, Q2KRequiresAnImatrixOnlyInsideQ2KS) {
  EXPECT_TRUE(make_plan(llama_params(2), llama_tensors(2, 256, 512), options_for(FileType::q2_K)).ok());
  auto plan = make_plan(llama_params(2), llama_tensors(2, 256, 512), options_for(FileType::q2_K_S));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().tensor(), "blk.0.attn_k.weight");
}

TEST(MakePlan, RequantizingIsRefusedUnlessAllowed) {
  const std::vector<PlanTensor> tensors = llama_tensors(1, 256, 512, false, TypeId::q8_0);
  auto plan = make_plan(llama_params(1), tensors, options_for(FileType::q4_K_M));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().kind(), ErrorKind::impossible);
  EXPECT_NE(plan.error().reason().find("requantizing from type q8_0 is disabled"), std::string::npos);
  EXPECT_EQ(plan.error().tensor(), "output.weight");

  PlanOptions allowed = options_for(FileType::q4_K_M);
  allowed.types.allow_requantize = true;
  EXPECT_TRUE(make_plan(llama_params(1), tensors, allowed).ok());
  // Tensors already in their target type are copied, so Q8_0 from Q8_0 needs no permission.
  EXPECT_TRUE(make_plan(llama_params(1), tensors, options_for(FileType::q8_0)).ok());
}

TEST(MakePlan, IntegerInputsCannotBeConverted) {
  std::vector<PlanTensor> tensors = {{"blk.0.attn_q.weight", {256, 4}, TypeId::i32}};
  auto plan = make_plan(llama_params(1), tensors, options_for(FileType::q8_0));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().kind(), ErrorKind::impossible);
}

TEST(MakePlan, LeaveOutputTensorKeepsIt) {
  PlanOptions options = options_for(FileType::q4_K_M);
  options.types.leave_output_tensor = true;
  auto plan = make_plan(llama_params(1), llama_tensors(1, 256, 512), options);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(type_of(*plan, "output.weight"), "f32");
  // The model is still not "tied": token_embd keeps the embedding rules.
  EXPECT_EQ(type_of(*plan, "token_embd.weight"), "q4_K");
}

TEST(MakePlan, CopyKeepsEverythingAndTheInputFileType) {
  PlanOptions options = options_for(FileType::all_f32);
  options.copy_only = true;
  const std::vector<PlanTensor> tensors = llama_tensors(1, 256, 512, false, TypeId::q8_0);
  auto guessed = make_plan(llama_params(1), tensors, options);
  ASSERT_TRUE(guessed.ok());
  for (const TensorPlan& tensor : guessed->tensors) EXPECT_TRUE(tensor.keeps_type()) << tensor.name;
  EXPECT_EQ(guessed->file_type, 7u | kFileTypeGuessedFlag);  // mostly q8_0, guessed
  options.input_file_type = 7;
  auto given = make_plan(llama_params(1), tensors, options);
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given->file_type, 7u);
}

TEST(MakePlan, Mxfp4MoeSplitsExpertsFromTheRest) {
  ModelParams params = llama_params(1);
  params.n_expert = 4;
  std::vector<PlanTensor> tensors = {{"token_embd.weight", {256, 512}, TypeId::f32},
                                     {"output.weight", {256, 512}, TypeId::f32},
                                     {"blk.0.attn_q.weight", {256, 256}, TypeId::f32},
                                     {"blk.0.ffn_up_exps.weight", {256, 512, 4}, TypeId::f32}};
  auto plan = make_plan(params, tensors, options_for(FileType::mxfp4_moe));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(type_of(*plan, "blk.0.ffn_up_exps.weight"), "mxfp4");
  EXPECT_EQ(type_of(*plan, "blk.0.attn_q.weight"), "q8_0");
  EXPECT_EQ(type_of(*plan, "token_embd.weight"), "q8_0");
  EXPECT_EQ(type_of(*plan, "output.weight"), "q8_0");
}

TEST(MakePlan, ExpertModelsReadTheLayerFromTheName) {
  ModelParams params = llama_params(2);
  params.n_expert = 4;
  std::vector<PlanTensor> tensors = {{"blk.1.ffn_down_exps.weight", {512, 256, 4}, TypeId::f32},
                                     {"ffn_down_orphan.weight", {512, 256}, TypeId::f32}};
  auto plan = make_plan(params, tensors, options_for(FileType::q4_K_M));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().kind(), ErrorKind::invalid_input);
  EXPECT_EQ(plan.error().tensor(), "ffn_down_orphan.weight");
  tensors = {{"blk.7.ffn_down_exps.weight", {512, 256, 4}, TypeId::f32}};
  auto outside = make_plan(params, tensors, options_for(FileType::q4_K_M));
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.error().kind(), ErrorKind::invalid_input);
}

TEST(MakePlan, MalformedInputsAreRejected) {
  std::vector<PlanTensor> duplicate = {{"a.weight", {256, 2}, TypeId::f32}, {"a.weight", {256, 2}, TypeId::f32}};
  EXPECT_EQ(make_plan(llama_params(1), duplicate, options_for(FileType::q8_0)).error().kind(), ErrorKind::invalid_input);
  std::vector<PlanTensor> no_shape = {{"a.weight", {}, TypeId::f32}};
  EXPECT_EQ(make_plan(llama_params(1), no_shape, options_for(FileType::q8_0)).error().kind(), ErrorKind::invalid_input);
  PlanOptions bad_regex = options_for(FileType::q8_0);
  bad_regex.types.tensor_types = {{"attn_(", TypeId::q4_0}};
  EXPECT_EQ(make_plan(llama_params(1), llama_tensors(1, 256, 512), bad_regex).error().kind(), ErrorKind::usage);
}

TEST(GuessFileType, MostCommonTypeWithTheFirstToReachItWinningTies) {
  std::vector<PlanTensor> tensors = {{"b.weight", {32, 2}, TypeId::q4_0}, {"a.weight", {32, 2}, TypeId::q8_0}};
  // In output order a.weight (q8_0) comes first, so q8_0 wins the tie.
  EXPECT_EQ(guess_file_type(tensors), 7u | kFileTypeGuessedFlag);
  tensors.push_back({"c.weight", {32, 2}, TypeId::q4_0});
  EXPECT_EQ(guess_file_type(tensors), 2u | kFileTypeGuessedFlag);
  tensors = {{"a.weight", {32, 2}, TypeId::q3_K}};
  EXPECT_EQ(guess_file_type(tensors), 12u | kFileTypeGuessedFlag);  // q3_K reads as Q3_K_M
}

TEST(Infers70bClass, LlamaWith80GqaBlocks) {
  EXPECT_TRUE(infers_70b_class("llama", 80, 64, 8));
  EXPECT_FALSE(infers_70b_class("llama", 80, 64, 64));
  EXPECT_FALSE(infers_70b_class("llama", 40, 64, 8));
  EXPECT_TRUE(infers_70b_class("qwen2", 80, 64, 8));
}

}  // namespace
}  // namespace quant
