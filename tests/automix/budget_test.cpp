// parse_byte_size: sizes as users type them. Decimal units follow llama-gguf-split (M = 1000^2 bytes, G = 1000^3,
// tools/gguf-split/gguf-split.cpp), binary units are the IEC ones; fractions round down to whole bytes.
#include <gtest/gtest.h>

#include "quant/automix.h"

namespace quant {
namespace {

uint64_t parsed(const char* text) {
  auto result = parse_byte_size(text);
  EXPECT_TRUE(result.ok()) << text << ": " << (result ? "" : result.error().message());
  return result ? *result : 0;
}

TEST(ParseByteSize, PlainBytes) {
  EXPECT_EQ(parsed("1486720"), 1486720u);
  EXPECT_EQ(parsed("1486720B"), 1486720u);
  EXPECT_EQ(parsed("18446744073709551615"), UINT64_MAX);
}

TEST(ParseByteSize, DecimalUnitsAsLlamaGgufSplitReadsThem) {
  EXPECT_EQ(parsed("2M"), 2000000u);
  EXPECT_EQ(parsed("2G"), 2000000000u);
  EXPECT_EQ(parsed("3K"), 3000u);
  EXPECT_EQ(parsed("1T"), 1000000000000u);
  EXPECT_EQ(parsed("5MB"), 5000000u);
  EXPECT_EQ(parsed("2m"), 2000000u);  // units are case-insensitive
}

TEST(ParseByteSize, BinaryUnits) {
  EXPECT_EQ(parsed("1KiB"), 1024u);
  EXPECT_EQ(parsed("2MiB"), 2u * 1024 * 1024);
  EXPECT_EQ(parsed("1.5GiB"), 3u * 512 * 1024 * 1024);
  EXPECT_EQ(parsed("1tib"), uint64_t(1) << 40);
}

TEST(ParseByteSize, FractionsAreExactDecimalAndRoundDown) {
  EXPECT_EQ(parsed("2.2M"), 2200000u);  // not 2199999 from a binary fraction
  EXPECT_EQ(parsed("0.1K"), 100u);
  EXPECT_EQ(parsed("1.0001K"), 1000u);  // 1000.1 bytes rounds down: a budget is never exceeded by rounding
  EXPECT_EQ(parsed("2.2837M"), 2283700u);
  EXPECT_EQ(parsed(".5K"), 500u);
}

TEST(ParseByteSize, RefusesWhatIsNotASize) {
  for (const char* text : {"", "M", "-5M", "2X", "2 M", "2MiBs", "1e6", "0", "0.0004K", "2..5M", "1.2.3",
                           "18446744073709551616", "99999999999999999999G", "20000000TiB"}) {
    auto result = parse_byte_size(text);
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ(result.error().kind(), ErrorKind::usage) << text;
    EXPECT_NE(result.error().message().find("invalid size"), std::string::npos) << result.error().message();
  }
}

}  // namespace
}  // namespace quant
