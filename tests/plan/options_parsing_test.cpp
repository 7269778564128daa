// --tensor-type, --tensor-type-file, ggml type names and --override-kv, parsed as llama-quantize parses them.
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "quant/plan.h"

namespace quant {
namespace {

TEST(TensorTypeOverride, PatternIsLowercasedAndTypeNameIsCaseInsensitive) {
  auto parsed = parse_tensor_type_override("BLK\\.[0-3]\\.ATTN_V=Q8_0");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->pattern, "blk\\.[0-3]\\.attn_v");
  EXPECT_EQ(parsed->type, TypeId::q8_0);
  // Only the first '=' separates.
  auto with_equals = parse_tensor_type_override("a=b=q4_k");
  EXPECT_FALSE(with_equals.ok());
}

TEST(TensorTypeOverride, MalformedEntriesAreUsageErrors) {
  for (const char* bad : {"attn_v", "=q8_0", "attn_v=", "attn_v=q9_0", "attn_v=Q4_K_M"}) {
    auto parsed = parse_tensor_type_override(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().kind(), ErrorKind::usage) << bad;
  }
}

TEST(TensorTypeOverride, ListsAreSplitOnAnyWhiteSpace) {
  auto parsed = parse_tensor_type_list("  attn_v=q8_0\nffn_down=Q6_K\t\r\n  token_embd=f16 \n");
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[1].pattern, "ffn_down");
  EXPECT_EQ((*parsed)[1].type, TypeId::q6_K);
  EXPECT_EQ((*parsed)[2].type, TypeId::f16);
  EXPECT_FALSE(parse_tensor_type_list("attn_v=q8_0 oops").ok());
  auto empty = parse_tensor_type_list(" \n ");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(TensorTypeOverride, FilesAreReadOrReportIoErrors) {
  const std::string path = ::testing::TempDir() + "plan_tensor_types.txt";
  {
    std::ofstream out(path);
    out << "attn_q=q5_0 attn_k=q5_1\n";
  }
  auto parsed = read_tensor_type_file(path);
  std::remove(path.c_str());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[1].type, TypeId::q5_1);
  auto missing = read_tensor_type_file(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind(), ErrorKind::io);
  EXPECT_EQ(missing.error().file(), path);
}

TEST(GgmlTypeName, AcceptsEveryGgmlNameInAnyCase) {
  EXPECT_EQ(*parse_ggml_type_name("Q4_K"), TypeId::q4_K);
  EXPECT_EQ(*parse_ggml_type_name("iq4_nl"), TypeId::iq4_nl);
  EXPECT_EQ(*parse_ggml_type_name("BF16"), TypeId::bf16);
  EXPECT_EQ(parse_ggml_type_name("q4_k_m").error().kind(), ErrorKind::usage);
  // A near miss is named; anything else gets the list.
  EXPECT_NE(parse_ggml_type_name("q4k").error().reason().find("did you mean q4_K?"), std::string::npos);
  EXPECT_NE(parse_ggml_type_name("zz").error().reason().find("iq4_nl"), std::string::npos);
}

TEST(KvOverride, IntegersAreWrittenAsAbsoluteU32AndWhatWouldChangeIsRefused) {
  auto parsed = parse_kv_override("llama.block_count=int:-7");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->key, "llama.block_count");
  EXPECT_EQ(parsed->kind, KvOverride::Kind::integer);
  EXPECT_EQ(parsed->int_value, -7);
  EXPECT_EQ(parsed->written_u32(), 7u);
  EXPECT_EQ(parse_kv_override("k=int:+4294967295")->written_u32(), 4294967295u);
  EXPECT_EQ(parse_kv_override("k=int:-4294967295")->written_u32(), 4294967295u);
  // llama-quantize's atol would write 12, 0, 0, 1215752191 and 2 here without a word: refused instead.
  for (const char* bad : {"k=int:12abc", "k=int:abc", "k=int:", "k=int: 5", "k=int:99999999999", "k=int:4294967296",
                          "k=int:-4294967296", "k=int:99999999999999999999999", "k=int:1.5"}) {
    auto refused = parse_kv_override(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.error().kind(), ErrorKind::usage) << bad;
    EXPECT_NE(refused.error().reason().find(bad), std::string::npos) << refused.error().reason();
  }
}

TEST(KvOverride, FloatsMustBeFiniteNumbersFloat32Holds) {
  EXPECT_EQ(parse_kv_override("k=float:-2.5e3")->written_f32(), -2500.0f);
  for (const char* bad : {"k=float:abc", "k=float:", "k=float:1.5x", "k=float:1e39", "k=float:-1e39", "k=float:inf",
                          "k=float:nan", "k=float:1e999"}) {
    auto refused = parse_kv_override(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.error().kind(), ErrorKind::usage) << bad;
  }
}

TEST(KvOverride, FloatsBoolsAndStrings) {
  auto number = parse_kv_override("general.x=float:0.1");
  ASSERT_TRUE(number.ok());
  EXPECT_EQ(number->kind, KvOverride::Kind::floating);
  EXPECT_EQ(number->written_f32(), 0.1f);
  EXPECT_TRUE(parse_kv_override("k=bool:true")->bool_value);
  EXPECT_FALSE(parse_kv_override("k=bool:false")->bool_value);
  EXPECT_EQ(parse_kv_override("k=bool:True").error().kind(), ErrorKind::usage);
  auto text = parse_kv_override("general.name=str:a=b:c");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->string_value, "a=b:c");
  EXPECT_TRUE(parse_kv_override("k=str:" + std::string(127, 'x')).ok());
  EXPECT_FALSE(parse_kv_override("k=str:" + std::string(128, 'x')).ok());
}

TEST(KvOverride, MalformedOverridesAreUsageErrors) {
  for (const std::string& bad : {std::string("no-equals"), std::string("k=u32:5"), std::string("=int:1"),
                                 std::string(128, 'k') + "=int:1"}) {
    auto parsed = parse_kv_override(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().kind(), ErrorKind::usage) << bad;
  }
  EXPECT_TRUE(parse_kv_override(std::string(127, 'k') + "=int:1").ok());
}

}  // namespace
}  // namespace quant
