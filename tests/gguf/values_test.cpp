// Value: factories, typed access, integer widening, element access, equality and the v3 encoding (checked
// against the byte layout of GGUF v3: u32 element type, u64 count, u64-length-prefixed strings).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "quant/gguf.h"

namespace quant {
namespace {

std::vector<uint8_t> encode(const Value& v) {
  std::vector<uint8_t> out;
  v.encode_v3(out);
  EXPECT_EQ(out.size(), v.encoded_size_v3());
  return out;
}

TEST(GgufValue, ScalarsKeepTheirExactType) {
  const Value v = Value::u32(7);
  EXPECT_TRUE(v.holds<uint32_t>());
  EXPECT_FALSE(v.holds<int32_t>());
  EXPECT_EQ(v.as<uint32_t>(), 7u);
  EXPECT_EQ(v.as<int32_t>(), 0);  // wrong type reads as zero, never reinterprets
  EXPECT_EQ(Value::f64(-0.5).as<double>(), -0.5);
  EXPECT_EQ(Value::boolean(true).as<bool>(), true);
  EXPECT_EQ(encode(Value::u16(0x1234)), (std::vector<uint8_t>{0x34, 0x12}));
  EXPECT_EQ(encode(Value::boolean(true)), (std::vector<uint8_t>{1}));
}

TEST(GgufValue, IntegerWidening) {
  int64_t s = 0;
  uint64_t u = 0;
  EXPECT_TRUE(Value::i8(-5).to_int64(&s));
  EXPECT_EQ(s, -5);
  EXPECT_FALSE(Value::i8(-5).to_uint64(&u));
  EXPECT_TRUE(Value::u64(UINT64_MAX).to_uint64(&u));
  EXPECT_EQ(u, UINT64_MAX);
  EXPECT_FALSE(Value::u64(UINT64_MAX).to_int64(&s));
  EXPECT_TRUE(Value::u32(4000000000u).to_int64(&s));
  EXPECT_EQ(s, 4000000000);
  EXPECT_FALSE(Value::f32(1.0f).to_int64(&s));
  EXPECT_FALSE(Value::string("1").to_uint64(&u));
}

TEST(GgufValue, StringsAndArraysEncodeAsVersion3) {
  EXPECT_EQ(encode(Value::string("ab")), (std::vector<uint8_t>{2, 0, 0, 0, 0, 0, 0, 0, 'a', 'b'}));
  const std::vector<std::string> words = {"x", ""};
  EXPECT_EQ(encode(Value::array_of_strings(words)),
            (std::vector<uint8_t>{8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,  // element type string, count 2
                                  1, 0, 0, 0, 0, 0, 0, 0, 'x',         // "x"
                                  0, 0, 0, 0, 0, 0, 0, 0}));           // ""
  EXPECT_EQ(encode(Value::array_of<int16_t>(std::vector<int16_t>{-1, 2})),
            (std::vector<uint8_t>{3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 2, 0}));
  EXPECT_EQ(encode(Value::array_of_arrays({Value::array_of<uint8_t>(std::vector<uint8_t>{9})})),
            (std::vector<uint8_t>{9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,    // element type array, count 1
                                  0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9}));  // [u8: 9]
}

TEST(GgufValue, ElementAccessAndBounds) {
  const std::vector<std::string_view> words = {"one", "two", "three"};
  const Value strings = Value::array_of_strings(words);
  EXPECT_EQ(strings.size(), 3u);
  EXPECT_EQ(strings.string_at(2), "three");
  EXPECT_EQ(strings.string_at(3), "");  // out of range: empty, never a read past the end
  EXPECT_EQ(strings.element(1).as_string(), "two");
  const Value floats = Value::array_of<float>(std::vector<float>{1.5f, -2.0f});
  EXPECT_EQ(floats.scalar_at<float>(1), -2.0f);
  EXPECT_EQ(floats.scalar_at<float>(2), 0.0f);
  EXPECT_EQ(floats.scalar_at<int32_t>(0), 0);  // wrong element type
  EXPECT_EQ(floats.element(0).as<float>(), 1.5f);
  EXPECT_EQ(floats.raw_elements().size(), 8u);
  EXPECT_EQ(floats.array_at(0).size(), 0u);
  EXPECT_TRUE(Value::u8(1).raw_elements().empty());
}

TEST(GgufValue, EqualityComparesTypeAndContent) {
  const std::vector<std::string> a = {"a", "b"}, b = {"a", "c"};
  EXPECT_TRUE(Value::array_of_strings(a) == Value::array_of_strings(a));
  EXPECT_FALSE(Value::array_of_strings(a) == Value::array_of_strings(b));
  EXPECT_FALSE(Value::u32(1) == Value::i32(1));
  EXPECT_TRUE(Value::string("x") == Value::string("x"));
  const Value copy = Value::array_of_strings(a);  // copies share the bytes
  const Value shared = copy;
  EXPECT_TRUE(shared == copy);
  EXPECT_EQ(value_type_name(ValueType::boolean), "bool");
  EXPECT_EQ(value_type_size(ValueType::f64), 8u);
  EXPECT_EQ(value_type_size(ValueType::string), 0u);
}

}  // namespace
}  // namespace quant
