// candidate_types: the types an automatic mix may give a tensor. Which types need importance data and which rows
// each block fills are facts of ggml (ggml-types.tsv) and llama-quantize (tensor_requires_imatrix).
#include <algorithm>

#include <gtest/gtest.h>

#include "quant/automix.h"

namespace quant {
namespace {

bool has(const std::vector<TypeId>& types, TypeId type) {
  return std::find(types.begin(), types.end(), type) != types.end();
}

TEST(CandidateTypes, RowsOf256TakeEveryWeightType) {
  const auto types = candidate_types({"blk.0.ffn_up.weight", {256, 768}, TypeId::f16}, true);
  for (TypeId type : {TypeId::f16, TypeId::q8_0, TypeId::q6_K, TypeId::q5_K, TypeId::q4_K, TypeId::q3_K,
                      TypeId::q2_K, TypeId::q4_0, TypeId::q4_1, TypeId::q5_0, TypeId::q5_1, TypeId::iq4_xs,
                      TypeId::iq4_nl, TypeId::iq3_s, TypeId::iq3_xxs, TypeId::iq2_s, TypeId::iq2_xs,
                      TypeId::iq2_xxs, TypeId::iq1_m, TypeId::iq1_s, TypeId::tq1_0, TypeId::tq2_0, TypeId::mxfp4,
                      TypeId::nvfp4, TypeId::q1_0, TypeId::q2_0, TypeId::bf16}) {
    EXPECT_TRUE(has(types, type)) << format_of(type).name;
  }
  // Never: wider than the source, or activation/integer types.
  for (TypeId type : {TypeId::f32, TypeId::q8_1, TypeId::q8_K, TypeId::i8, TypeId::f64}) {
    EXPECT_FALSE(has(types, type)) << format_of(type).name;
  }
  // Sorted by bits per weight.
  for (size_t i = 1; i < types.size(); ++i) {
    EXPECT_LE(format_of(types[i - 1]).bits_per_weight(), format_of(types[i]).bits_per_weight());
  }
}

TEST(CandidateTypes, OnlyTypesWhoseBlocksFillTheRows) {
  // 96 = 3 x 32: the 32-value blocks fit, the 64-, 128- and 256-value ones do not (llama-quantize's fallbacks
  // of the 256-value types land on q4_0, q5_0, q5_1, q8_0 and iq4_nl, all here).
  const auto types = candidate_types({"blk.0.attn_q.weight", {96, 96}, TypeId::f32}, true);
  for (TypeId type : {TypeId::q4_0, TypeId::q4_1, TypeId::q5_0, TypeId::q5_1, TypeId::q8_0, TypeId::iq4_nl,
                      TypeId::mxfp4, TypeId::f16, TypeId::bf16, TypeId::f32}) {
    EXPECT_TRUE(has(types, type)) << format_of(type).name;
  }
  for (TypeId type : {TypeId::q4_K, TypeId::q2_K, TypeId::iq4_xs, TypeId::nvfp4, TypeId::q1_0, TypeId::q2_0}) {
    EXPECT_FALSE(has(types, type)) << format_of(type).name;
  }
  // A row that fills no quantized block keeps a float type.
  const auto odd = candidate_types({"blk.0.attn_q.weight", {100, 4}, TypeId::f32}, true);
  EXPECT_EQ(odd, (std::vector<TypeId>{TypeId::f16, TypeId::bf16, TypeId::f32}));
}

TEST(CandidateTypes, TypesNeedingImportanceOnlyWithIt) {
  const PlanTensor weight{"blk.0.ffn_down.weight", {768, 256}, TypeId::f16};
  const auto without = candidate_types(weight, false);
  for (TypeId type : {TypeId::iq1_s, TypeId::iq1_m, TypeId::iq2_xxs, TypeId::iq2_xs, TypeId::iq2_s,
                      TypeId::iq3_xxs}) {
    EXPECT_FALSE(has(without, type)) << format_of(type).name;
    EXPECT_TRUE(has(candidate_types(weight, true), type)) << format_of(type).name;
  }
  EXPECT_TRUE(has(without, TypeId::iq3_s));
  EXPECT_TRUE(has(without, TypeId::iq4_xs));
  EXPECT_TRUE(has(without, TypeId::q2_K));
  // llama-quantize lets the embeddings and the output take iq2_s and iq3_xxs without importance data, but ggml
  // itself refuses iq1_s, iq1_m, iq2_xxs and iq2_xs there too.
  for (const char* name : {"token_embd.weight", "output.weight"}) {
    const auto types = candidate_types({name, {256, 1024}, TypeId::f16}, false);
    EXPECT_TRUE(has(types, TypeId::iq2_s)) << name;
    EXPECT_TRUE(has(types, TypeId::iq3_xxs)) << name;
    EXPECT_FALSE(has(types, TypeId::iq2_xxs)) << name;
    EXPECT_FALSE(has(types, TypeId::iq1_m)) << name;
  }
}

TEST(CandidateTypes, TheSourceTypeIsAlwaysACandidate) {
  const auto types = candidate_types({"blk.0.attn_q.weight", {256, 256}, TypeId::bf16}, false);
  EXPECT_TRUE(has(types, TypeId::bf16));
  EXPECT_TRUE(has(types, TypeId::f16));  // as wide: a candidate, though lossy
  EXPECT_FALSE(has(types, TypeId::f32));
}

}  // namespace
}  // namespace quant
