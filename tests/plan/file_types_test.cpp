// The TYPE table: names, aliases, numeric ids, default types (facts of llama-quantize, reference notes §2b/§2c).
#include <gtest/gtest.h>

#include "quant/plan.h"

namespace quant {
namespace {

TEST(FileTypes, NamesAreCaseInsensitiveAndAliasesMeanTheMediumMix) {
  struct Case {
    const char* text;
    FileType id;
    const char* default_type;
  };
  const Case cases[] = {
      {"q4_k_m", FileType::q4_K_M, "q4_K"}, {"Q4_K", FileType::q4_K_M, "q4_K"},  {"q3_k", FileType::q3_K_M, "q3_K"},
      {"Q5_K", FileType::q5_K_M, "q5_K"},   {"IQ2_S", FileType::iq2_s, "iq2_xs"}, {"iq2_m", FileType::iq2_m, "iq2_s"},
      {"IQ3_XS", FileType::iq3_xs, "iq3_s"}, {"IQ3_M", FileType::iq3_m, "iq3_s"}, {"Q2_K_S", FileType::q2_K_S, "q2_K"},
      {"MXFP4_MOE", FileType::mxfp4_moe, "mxfp4"}, {"bf16", FileType::bf16, "bf16"}, {"F32", FileType::all_f32, "f32"},
  };
  for (const Case& c : cases) {
    auto parsed = parse_file_type(c.text);
    ASSERT_TRUE(parsed.ok()) << c.text;
    EXPECT_EQ((*parsed)->id, c.id) << c.text;
    EXPECT_EQ(format_of((*parsed)->default_type).name, c.default_type) << c.text;
  }
}

TEST(FileTypes, NumericIdsResolveToTheFirstEntry) {
  const std::pair<const char*, const char*> cases[] = {
      {"2", "Q4_0"},  {"7", "Q8_0"},      {"15", "Q4_K"},  {"12", "Q3_K"},   {"18", "Q6_K"},  {"0", "F32"},
      {"1", "F16"},   {"32", "BF16"},     {"38", "MXFP4_MOE"}, {"40", "Q1_0"}, {"41", "Q2_0"}, {"21", "Q2_K_S"},
  };
  for (const auto& [text, name] : cases) {
    auto parsed = parse_file_type(text);
    ASSERT_TRUE(parsed.ok()) << text;
    EXPECT_EQ((*parsed)->name, name) << text;
  }
}

TEST(FileTypes, CopyCopiesAndUnknownNamesAreUsageErrors) {
  auto copy = parse_file_type("copy");
  ASSERT_TRUE(copy.ok());
  EXPECT_TRUE((*copy)->copy_only);
  for (const char* bad : {"Q4_K_X", "", "4", "39", "15x", "q8_1"}) {
    auto parsed = parse_file_type(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().kind(), ErrorKind::usage);
  }
}

// An unknown name says what to type instead: the near miss, or else every name.
TEST(FileTypes, UnknownNamesSuggestTheNearestOrListThemAll) {
  const struct {
    const char* typed;
    const char* suggested;
  } near[] = {{"q4km", "did you mean Q4_K_M?"}, {"Q4-K-M", "did you mean Q4_K_M?"}, {"iq2xs", "did you mean IQ2_XS?"},
              {"Q8_O", "did you mean Q8_0?"}, {"q6k", "did you mean Q6_K?"}, {"bf61", "did you mean BF16?"}};
  for (const auto& c : near) {
    auto parsed = parse_file_type(c.typed);
    ASSERT_FALSE(parsed.ok()) << c.typed;
    EXPECT_NE(parsed.error().reason().find(c.suggested), std::string::npos) << parsed.error().reason();
    EXPECT_NE(parsed.error().reason().find(std::string("'") + c.typed + "'"), std::string::npos);
  }
  auto far = parse_file_type("banana");
  ASSERT_FALSE(far.ok());
  EXPECT_EQ(far.error().reason().find("did you mean"), std::string::npos) << far.error().reason();
  for (const FileTypeInfo& info : all_file_types()) {
    EXPECT_NE(far.error().reason().find(std::string(info.name)), std::string::npos) << info.name;
  }
}

TEST(FileTypes, EveryEntryHasADescriptionAndACanonicalEntry) {
  size_t count = 0;
  for (const FileTypeInfo& info : all_file_types()) {
    EXPECT_FALSE(info.description.empty()) << info.name;
    const FileTypeInfo* canonical = find_file_type(info.id);
    ASSERT_NE(canonical, nullptr) << info.name;
    EXPECT_EQ(canonical->id, info.id);
    EXPECT_FALSE(canonical->copy_only);
    ++count;
  }
  EXPECT_EQ(count, 39u);  // 35 file types, the 3 aliases and COPY
  EXPECT_EQ(find_file_type(FileType::q4_K_M)->name, "Q4_K_M");
}

}  // namespace
}  // namespace quant
