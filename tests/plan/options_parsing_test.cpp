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
}

TEST(KvOverride, IntegersAreReadLikeAtolAndWrittenAsAbsoluteU32) {
  auto parsed = parse_kv_override("llama.block_count=int:-7");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->key, "llama.block_count");
  EXPECT_EQ(parsed->kind, KvOverride::Kind::integer);
  EXPECT_EQ(parsed->int_value, -7);
  EXPECT_EQ(parsed->written_u32(), 7u);
  EXPECT_EQ(parse_kv_override("k=int:12abc")->int_value, 12);
  EXPECT_EQ(parse_kv_override("k=int:abc")->int_value, 0);
  EXPECT_EQ(parse_kv_override("k=int:4294967298")->written_u32(), 2u);  // truncated to 32 bits
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
