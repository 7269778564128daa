// The Unicode layer: llama.cpp's lenient UTF-8 decoding (src/unicode.cpp's unicode_cpt_from_utf8 rules), code
// point flags from ICU with llama.cpp's Unicode 15.1 as the reference version, and GPT-2's byte-level table.
#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

#include <unicode/uchar.h>

namespace quant::text {
namespace {

TEST(DecodeUtf8, FollowsLlamaCppsRules) {
  struct Case {
    std::string bytes;
    std::vector<uint32_t> cpts;
  };
  const Case cases[] = {
      {"a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", {0x61, 0xE9, 0x20AC, 0x1F600}},
      {"\xC0\xAF", {0x2F}},                          // overlong forms are decoded, not refused
      {"\xED\xA0\x80", {0xD800}},                    // so are surrogates
      {"\xF5\x80\x80\x80", {0x140000}},              // 4-byte leads up to 0xF7 reach 0x1FFFFF
      {"\x80\xBF", {0xFFFD, 0xFFFD}},                // a continuation byte cannot lead
      {"\xE2\x82", {0xFFFD, 0xFFFD}},                // cut sequence: one U+FFFD per byte, resuming after the lead
      {"\xE2\x82" "a", {0xFFFD, 0xFFFD, 0x61}},
      {"\xF8\x88\x80\x80\x80", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},  // no 5-byte forms
      {std::string("\0x", 2), {0x00, 0x78}},
  };
  for (const Case& c : cases) EXPECT_EQ(decode_utf8(c.bytes), c.cpts) << c.bytes;
  EXPECT_EQ(valid_utf8_length("\xE2\x82\xAC", 0), 3u);
  EXPECT_EQ(valid_utf8_length("\xE2\x82", 0), 0u);
  EXPECT_EQ(valid_utf8_length("\xFF", 0), 0u);
  std::string out;
  EXPECT_TRUE(append_utf8(0x10FFFF, out));
  EXPECT_EQ(out, "\xF4\x8F\xBF\xBF");
  EXPECT_FALSE(append_utf8(0x110000, out));
  EXPECT_EQ(out, "\xF4\x8F\xBF\xBF");  // nothing appended
}

TEST(CodepointFlags, CategoriesAndWhitespace) {
  EXPECT_EQ(codepoint_flags('a'), kFlagLetter);
  EXPECT_EQ(codepoint_flags('7'), kFlagNumber);
  EXPECT_EQ(codepoint_flags(' '), kFlagSeparator | kFlagWhitespace);
  EXPECT_EQ(codepoint_flags('\n'), kFlagControl | kFlagWhitespace);
  EXPECT_EQ(codepoint_flags('~'), kFlagSymbol);
  EXPECT_EQ(codepoint_flags('_'), kFlagPunctuation);
  EXPECT_EQ(codepoint_flags(0x0301), kFlagMark);
  EXPECT_EQ(codepoint_flags(0x00A0), kFlagSeparator | kFlagWhitespace);
  EXPECT_EQ(codepoint_flags(0x0085), kFlagControl | kFlagWhitespace);
  EXPECT_EQ(codepoint_flags(0x200B), kFlagControl);  // zero width space: Cf, not White_Space
  EXPECT_EQ(codepoint_flags(0xE000), kFlagControl);  // private use
  EXPECT_EQ(codepoint_flags(0xD800), kFlagControl);  // surrogate
  EXPECT_EQ(codepoint_flags(0xFFFD), kFlagSymbol);
  EXPECT_EQ(codepoint_flags(0x0378), kFlagUndefined);  // unassigned
  EXPECT_EQ(codepoint_flags(0x110000), kFlagUndefined);
  EXPECT_EQ(codepoint_flags(0x1FFFFF), kFlagUndefined);
}

// llama.cpp's tables are Unicode 15.1: its additions are classified whatever ICU's version, later additions
// are not.
TEST(CodepointFlags, FollowUnicode15_1) {
  EXPECT_EQ(codepoint_flags(0x2EBF0), kFlagLetter);  // CJK Extension I
  EXPECT_EQ(codepoint_flags(0x2EE5D), kFlagLetter);
  EXPECT_EQ(codepoint_flags(0x2EE5E), kFlagUndefined);
  EXPECT_EQ(codepoint_flags(0x2FFC), kFlagSymbol);   // ideographic description characters
  EXPECT_EQ(codepoint_flags(0x2FFF), kFlagSymbol);
  EXPECT_EQ(codepoint_flags(0x31EF), kFlagSymbol);
  EXPECT_EQ(codepoint_flags(0x1C89), kFlagUndefined);  // Unicode 16.0
  EXPECT_EQ(codepoint_flags(0x10D40), kFlagUndefined);
}

TEST(CaseAndDecomposition, AsLlamaCppsTables) {
  EXPECT_EQ(to_lower('A'), uint32_t('a'));
  EXPECT_EQ(to_lower(0x00C4), 0x00E4u);  // Ä
  EXPECT_EQ(to_lower(0x0130), 0x0069u);  // İ: the simple mapping drops the dot
  EXPECT_EQ(to_lower(0x1E9E), 0x00DFu);  // ẞ
  EXPECT_EQ(to_lower(0x00DF), 0x00DFu);
  EXPECT_EQ(nfd_first(0x00E9), 0x0065u);  // é -> e
  EXPECT_EQ(nfd_first(0x1E69), 0x0073u);  // ṩ -> s (two marks follow)
  EXPECT_EQ(nfd_first(0xAC00), 0x1100u);  // Hangul syllable -> leading jamo
  EXPECT_EQ(nfd_first(0x0344), 0x0308u);
  EXPECT_EQ(nfd_first('a'), uint32_t('a'));
  EXPECT_EQ(nfd_first(0xFB01), 0xFB01u);  // compatibility only: not decomposed
}

TEST(ByteLevel, Gpt2Table) {
  EXPECT_EQ(byte_to_unicode(' '), "\xC4\xA0");  // Ġ
  EXPECT_EQ(byte_to_unicode('\n'), "\xC4\x8A");  // Ċ
  EXPECT_EQ(byte_to_unicode('A'), "A");
  EXPECT_EQ(byte_to_unicode(0xE9), "\xC3\xA9");
  EXPECT_EQ(byte_to_unicode(0x00), "\xC4\x80");  // U+0100
  EXPECT_EQ(byte_to_unicode(0xAD), "\xC5\x83");  // the last of the 68 remapped bytes: U+0143
  for (int b = 0; b < 256; ++b) {
    const std::vector<uint32_t> cpt = decode_utf8(byte_to_unicode(uint8_t(b)));
    ASSERT_EQ(cpt.size(), 1u);
    EXPECT_EQ(unicode_to_byte(cpt[0]), b);
  }
  EXPECT_EQ(unicode_to_byte(0x80), -1);  // U+0080 stands for no byte
  EXPECT_EQ(unicode_to_byte(0x4E2D), -1);
}

TEST(Han, LlamaCppsBlocks) {
  EXPECT_TRUE(is_han(0x4E2D));
  EXPECT_TRUE(is_han(0x2EBEF));
  EXPECT_FALSE(is_han(0x2EBF0));  // llama.cpp's list stops before CJK Extension I
  EXPECT_FALSE(is_han(0x3042));  // hiragana
  EXPECT_FALSE(is_han('a'));
}

}  // namespace
}  // namespace quant::text
