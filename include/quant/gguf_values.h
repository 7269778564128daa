// The vocabulary shared by GGUF files and every model source: metadata values (Value, with its type tags as stored
// on disk), key-value pairs, and tensor descriptors (TensorInfo). gguf.h reads and writes them; model_source.h
// serves them from any kind of input.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "quant/formats.h"

namespace quant {

static_assert(std::endian::native == std::endian::little, "GGUF is little-endian; big-endian hosts are not supported");

// The GGUF metadata value types, with their on-disk ids.
enum class ValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
  u64 = 10, i64 = 11, f64 = 12,
};
inline constexpr uint32_t kValueTypeCount = 13;

// "u32", "string", "array"... (the names gguf-py uses, lowercase).
std::string_view value_type_name(ValueType type);
// Bytes of one stored value of a fixed-size type; 0 for string and array.
size_t value_type_size(ValueType type);

// The ValueType a C++ scalar type maps to (bool -> boolean, float -> f32...). Used by the typed accessors.
template <typename T> struct ValueTypeOf;
template <> struct ValueTypeOf<uint8_t> { static constexpr ValueType value = ValueType::u8; };
template <> struct ValueTypeOf<int8_t> { static constexpr ValueType value = ValueType::i8; };
template <> struct ValueTypeOf<uint16_t> { static constexpr ValueType value = ValueType::u16; };
template <> struct ValueTypeOf<int16_t> { static constexpr ValueType value = ValueType::i16; };
template <> struct ValueTypeOf<uint32_t> { static constexpr ValueType value = ValueType::u32; };
template <> struct ValueTypeOf<int32_t> { static constexpr ValueType value = ValueType::i32; };
template <> struct ValueTypeOf<float> { static constexpr ValueType value = ValueType::f32; };
template <> struct ValueTypeOf<bool> { static constexpr ValueType value = ValueType::boolean; };
template <> struct ValueTypeOf<uint64_t> { static constexpr ValueType value = ValueType::u64; };
template <> struct ValueTypeOf<int64_t> { static constexpr ValueType value = ValueType::i64; };
template <> struct ValueTypeOf<double> { static constexpr ValueType value = ValueType::f64; };

// One metadata value: a scalar, a string or an array (of scalars, strings or arrays).
//
// Values read from a file are views into the file's header bytes (kept alive by a shared owner), so a 150k-entry
// vocabulary is one Value with one index, not 150k heap strings; copying a Value shares those bytes. Values
// built with the factories own their bytes the same way. Scalars are stored little-endian as in the file.
class Value {
 public:
  Value() = default;  // a u8 zero; only so containers can default-construct

  static Value u8(uint8_t v) { return scalar(ValueType::u8, v); }
  static Value i8(int8_t v) { return scalar(ValueType::i8, v); }
  static Value u16(uint16_t v) { return scalar(ValueType::u16, v); }
  static Value i16(int16_t v) { return scalar(ValueType::i16, v); }
  static Value u32(uint32_t v) { return scalar(ValueType::u32, v); }
  static Value i32(int32_t v) { return scalar(ValueType::i32, v); }
  static Value f32(float v) { return scalar(ValueType::f32, v); }
  static Value boolean(bool v) { return scalar(ValueType::boolean, uint8_t(v ? 1 : 0)); }
  static Value u64(uint64_t v) { return scalar(ValueType::u64, v); }
  static Value i64(int64_t v) { return scalar(ValueType::i64, v); }
  static Value f64(double v) { return scalar(ValueType::f64, v); }
  static Value string(std::string_view text);
  static Value array_of_strings(std::span<const std::string> items);
  static Value array_of_strings(std::span<const std::string_view> items);
  // An array of a scalar type: Value::array_of<float>(values), Value::array_of<int32_t>(ids).
  template <typename T>
  static Value array_of(std::span<const T> items) {
    return array_of_scalars(ValueTypeOf<T>::value, items.data(), items.size());
  }
  template <typename T>
  static Value array_of(const std::vector<T>& items) { return array_of<T>(std::span<const T>(items)); }
  // An array whose elements are themselves arrays (the spec allows it; ggml does not read it).
  static Value array_of_arrays(std::vector<Value> items);

  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::array; }

  // True when the stored scalar type is exactly T's (no conversions).
  template <typename T>
  bool holds() const { return type_ == ValueTypeOf<T>::value; }
  // The scalar as T; the caller checks holds<T>() first (a wrong T reads zero bytes as T: never UB).
  template <typename T>
  T as() const {
    static_assert(std::is_arithmetic_v<T>);
    if (!holds<T>()) return T{};
    if constexpr (std::is_same_v<T, bool>) {
      return scalar_[0] != 0;
    } else {
      T out;
      std::memcpy(&out, scalar_, sizeof(T));
      return out;
    }
  }
  // Any integer scalar (u8..i64, bool) widened to int64/uint64 when it fits; false for other types.
  bool to_int64(int64_t* out) const;
  bool to_uint64(uint64_t* out) const;
  // The string (empty view unless type() == string).
  std::string_view as_string() const;

  // Arrays: the element type, the number of elements, and element access (i < size()).
  ValueType element_type() const { return element_type_; }
  uint64_t size() const { return count_; }
  std::string_view string_at(uint64_t i) const;  // element_type() == string
  const Value& array_at(uint64_t i) const;       // element_type() == array
  template <typename T>
  T scalar_at(uint64_t i) const {                // element_type() == ValueTypeOf<T>
    T out{};
    if (element_type_ != ValueTypeOf<T>::value || i >= count_) return out;
    if constexpr (std::is_same_v<T, bool>) {
      return bytes_[i] != 0;
    } else {
      std::memcpy(&out, bytes_ + i * sizeof(T), sizeof(T));
      return out;
    }
  }
  // Element i of any array as a standalone Value (a scalar, string or array); allocation-free for scalars.
  Value element(uint64_t i) const;
  // The packed little-endian elements of a fixed-size array (size() * value_type_size(element_type()) bytes).
  std::span<const uint8_t> raw_elements() const;

  // Bytes this value takes when written as GGUF v3 (after the i32 type tag).
  uint64_t encoded_size_v3() const;
  // Appends the v3 encoding (after the type tag) to out.
  void encode_v3(std::vector<uint8_t>& out) const;
  // Same type, same elements, same bytes.
  bool operator==(const Value& other) const;

 private:
  friend class ValueBuilder;  // src/gguf: builds views into parsed header bytes
  template <typename T>
  static Value scalar(ValueType type, T v) {
    Value out;
    out.type_ = type;
    std::memcpy(out.scalar_, &v, sizeof(T));
    return out;
  }
  static Value array_of_scalars(ValueType element_type, const void* data, size_t count);

  ValueType type_ = ValueType::u8;
  ValueType element_type_ = ValueType::u8;  // arrays only
  uint8_t string_length_bytes_ = 8;         // width of each string's length prefix in bytes_ (4 in v1 files)
  uint8_t scalar_[8] = {};                  // scalars, little-endian
  uint64_t count_ = 0;                      // arrays: elements
  const uint8_t* bytes_ = nullptr;          // string: its bytes; arrays of scalars: packed elements;
  uint64_t byte_count_ = 0;                 //   arrays of strings: the length-prefixed strings, back to back
  std::shared_ptr<const void> owner_;       // keeps bytes_ alive
  std::shared_ptr<const std::vector<uint64_t>> string_offsets_;  // arrays of strings: start of element i
  std::shared_ptr<const std::vector<Value>> arrays_;             // arrays of arrays
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  TypeId type = TypeId::f32;
  std::vector<int64_t> shape;  // ne0 (the row length, contiguous) first; 1 to 4 dimensions
  uint64_t offset = 0;         // relative to the data section
  uint64_t size_bytes = 0;     // unpadded

  int64_t element_count() const;
  int64_t row_length() const { return shape.empty() ? 1 : shape[0]; }
  int64_t rows() const;  // product of ne1..ne3
};

}  // namespace quant
