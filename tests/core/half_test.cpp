#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "quant/half.h"

namespace quant {
namespace {

TEST(Half, EveryHalfWidensAndNarrowsBackToItself) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ(fp32_to_fp16(f) & 0x7e00u, 0x7e00u) << h;
      continue;
    }
    EXPECT_EQ(fp32_to_fp16(f), h) << std::hex << h;
  }
}

TEST(Half, RoundsTiesToEven) {
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00u);                // tie between 1 and 1+2^-10: to even (1)
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02u);            // tie to even upwards
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bffu);
  EXPECT_EQ(fp32_to_fp16(65519.99f), 0x7bffu);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00u);                       // rounds to infinity
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000u);                        // tie between 0 and the smallest subnormal
  EXPECT_EQ(fp32_to_fp16(0x1.8p-25f), 0x0001u);
  EXPECT_EQ(fp32_to_fp16(-0x1p-24f), 0x8001u);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7c00u);
  EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::quiet_NaN()), 0xfe00u);
}

TEST(BFloat16, RoundsToNearestEvenAndKeepsNaNQuiet) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80u);
  EXPECT_EQ(fp32_to_bf16(float_from_bits(0x3f808000u)), 0x3f80u);  // tie to even (down)
  EXPECT_EQ(fp32_to_bf16(float_from_bits(0x3f818000u)), 0x3f82u);  // tie to even (up)
  EXPECT_EQ(fp32_to_bf16(float_from_bits(0x7f800001u)), 0x7fc0u);  // signalling NaN made quiet
  EXPECT_EQ(bf16_to_fp32(0x3f80u), 1.0f);
}

}  // namespace
}  // namespace quant
