// GGUF metadata values: factories that own their bytes, views built by the reader, element access and the
// v3 encoding the writer emits.
#include <cstring>
#include <limits>
#include <string>

#include "gguf/value_builder.h"
#include "quant/gguf.h"

namespace quant {
namespace {

uint64_t read_length(const uint8_t* at, uint8_t width) {
  if (width == 4) {
    uint32_t n;
    std::memcpy(&n, at, 4);
    return n;
  }
  uint64_t n;
  std::memcpy(&n, at, 8);
  return n;
}

void append(std::vector<uint8_t>& out, const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  out.insert(out.end(), bytes, bytes + size);
}

void append_u64(std::vector<uint8_t>& out, uint64_t v) { append(out, &v, 8); }
void append_u32(std::vector<uint8_t>& out, uint32_t v) { append(out, &v, 4); }

// Shared, immutable bytes laid out as v3 length-prefixed strings, and the offset of each.
template <typename Strings>
Value build_string_array(const Strings& items) {
  auto buffer = std::make_shared<std::vector<uint8_t>>();
  std::vector<uint64_t> offsets;
  offsets.reserve(items.size());
  for (const auto& item : items) {
    offsets.push_back(buffer->size());
    append_u64(*buffer, item.size());
    append(*buffer, item.data(), item.size());
  }
  const uint8_t* data = buffer->data();
  const uint64_t size = buffer->size();
  return ValueBuilder::string_array_view(std::move(buffer), data, size, 8, std::move(offsets));
}

}  // namespace

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::u8: return "u8";
    case ValueType::i8: return "i8";
    case ValueType::u16: return "u16";
    case ValueType::i16: return "i16";
    case ValueType::u32: return "u32";
    case ValueType::i32: return "i32";
    case ValueType::f32: return "f32";
    case ValueType::boolean: return "bool";
    case ValueType::string: return "string";
    case ValueType::array: return "array";
    case ValueType::u64: return "u64";
    case ValueType::i64: return "i64";
    case ValueType::f64: return "f64";
  }
  return "unknown";
}

size_t value_type_size(ValueType type) {
  switch (type) {
    case ValueType::u8: case ValueType::i8: case ValueType::boolean: return 1;
    case ValueType::u16: case ValueType::i16: return 2;
    case ValueType::u32: case ValueType::i32: case ValueType::f32: return 4;
    case ValueType::u64: case ValueType::i64: case ValueType::f64: return 8;
    case ValueType::string: case ValueType::array: return 0;
  }
  return 0;
}

Value ValueBuilder::scalar(ValueType type, const uint8_t* bytes) {
  Value out;
  out.type_ = type;
  std::memcpy(out.scalar_, bytes, value_type_size(type));
  return out;
}

Value ValueBuilder::string_view(std::shared_ptr<const void> owner, const uint8_t* bytes, uint64_t length) {
  Value out;
  out.type_ = ValueType::string;
  out.bytes_ = bytes;
  out.byte_count_ = length;
  out.owner_ = std::move(owner);
  return out;
}

Value ValueBuilder::scalar_array_view(std::shared_ptr<const void> owner, ValueType element_type,
                                      const uint8_t* bytes, uint64_t count) {
  Value out;
  out.type_ = ValueType::array;
  out.element_type_ = element_type;
  out.count_ = count;
  out.bytes_ = bytes;
  out.byte_count_ = count * value_type_size(element_type);  // the reader checked this product
  out.owner_ = std::move(owner);
  return out;
}

Value ValueBuilder::string_array_view(std::shared_ptr<const void> owner, const uint8_t* bytes, uint64_t byte_count,
                                      uint8_t length_bytes, std::vector<uint64_t> offsets) {
  Value out;
  out.type_ = ValueType::array;
  out.element_type_ = ValueType::string;
  out.count_ = offsets.size();
  out.bytes_ = bytes;
  out.byte_count_ = byte_count;
  out.string_length_bytes_ = length_bytes;
  out.owner_ = std::move(owner);
  out.string_offsets_ = std::make_shared<const std::vector<uint64_t>>(std::move(offsets));
  return out;
}

Value ValueBuilder::nested_array(std::vector<Value> items) {
  Value out;
  out.type_ = ValueType::array;
  out.element_type_ = ValueType::array;
  out.count_ = items.size();
  out.arrays_ = std::make_shared<const std::vector<Value>>(std::move(items));
  return out;
}

Value Value::string(std::string_view text) {
  auto owned = std::make_shared<std::string>(text);
  const auto* data = reinterpret_cast<const uint8_t*>(owned->data());
  return ValueBuilder::string_view(std::move(owned), data, text.size());
}

Value Value::array_of_strings(std::span<const std::string> items) { return build_string_array(items); }
Value Value::array_of_strings(std::span<const std::string_view> items) { return build_string_array(items); }

Value Value::array_of_scalars(ValueType element_type, const void* data, size_t count) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  auto owned = std::make_shared<std::vector<uint8_t>>(bytes, bytes + count * value_type_size(element_type));
  const uint8_t* view = owned->data();
  return ValueBuilder::scalar_array_view(std::move(owned), element_type, view, count);
}

Value Value::array_of_arrays(std::vector<Value> items) { return ValueBuilder::nested_array(std::move(items)); }

bool Value::to_int64(int64_t* out) const {
  uint64_t u;
  switch (type_) {
    case ValueType::i8: *out = as<int8_t>(); return true;
    case ValueType::i16: *out = as<int16_t>(); return true;
    case ValueType::i32: *out = as<int32_t>(); return true;
    case ValueType::i64: *out = as<int64_t>(); return true;
    default:
      if (!to_uint64(&u) || u > uint64_t(std::numeric_limits<int64_t>::max())) return false;
      *out = int64_t(u);
      return true;
  }
}

bool Value::to_uint64(uint64_t* out) const {
  int64_t s;
  switch (type_) {
    case ValueType::u8: *out = as<uint8_t>(); return true;
    case ValueType::boolean: *out = scalar_[0] != 0 ? 1 : 0; return true;
    case ValueType::u16: *out = as<uint16_t>(); return true;
    case ValueType::u32: *out = as<uint32_t>(); return true;
    case ValueType::u64: *out = as<uint64_t>(); return true;
    case ValueType::i8: s = as<int8_t>(); break;
    case ValueType::i16: s = as<int16_t>(); break;
    case ValueType::i32: s = as<int32_t>(); break;
    case ValueType::i64: s = as<int64_t>(); break;
    default: return false;
  }
  if (s < 0) return false;
  *out = uint64_t(s);
  return true;
}

std::string_view Value::as_string() const {
  if (type_ != ValueType::string) return {};
  return std::string_view(reinterpret_cast<const char*>(bytes_), byte_count_);
}

std::string_view Value::string_at(uint64_t i) const {
  if (type_ != ValueType::array || element_type_ != ValueType::string || i >= count_) return {};
  const uint8_t* at = bytes_ + (*string_offsets_)[i];
  const uint64_t length = read_length(at, string_length_bytes_);
  return std::string_view(reinterpret_cast<const char*>(at + string_length_bytes_), length);
}

const Value& Value::array_at(uint64_t i) const {
  static const Value empty_array = array_of_arrays({});
  if (type_ != ValueType::array || element_type_ != ValueType::array || i >= count_) return empty_array;
  return (*arrays_)[i];
}

Value Value::element(uint64_t i) const {
  if (type_ != ValueType::array || i >= count_) return Value();
  if (element_type_ == ValueType::array) return (*arrays_)[i];
  if (element_type_ == ValueType::string) {
    const std::string_view text = string_at(i);
    return ValueBuilder::string_view(owner_, reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }
  return ValueBuilder::scalar(element_type_, bytes_ + i * value_type_size(element_type_));
}

std::span<const uint8_t> Value::raw_elements() const {
  if (type_ != ValueType::array || value_type_size(element_type_) == 0) return {};
  return {bytes_, static_cast<size_t>(byte_count_)};
}

uint64_t Value::encoded_size_v3() const {
  switch (type_) {
    case ValueType::string: return 8 + byte_count_;
    case ValueType::array: {
      uint64_t size = 4 + 8;  // element type, count
      if (element_type_ == ValueType::array) {
        for (const Value& item : *arrays_) size += item.encoded_size_v3();
      } else if (element_type_ == ValueType::string) {
        // Re-encoding v1's 4-byte length prefixes as 8-byte ones adds 4 bytes per string.
        size += byte_count_ + (string_length_bytes_ == 8 ? 0 : 4 * count_);
      } else {
        size += byte_count_;
      }
      return size;
    }
    default: return value_type_size(type_);
  }
}

void Value::encode_v3(std::vector<uint8_t>& out) const {
  switch (type_) {
    case ValueType::string:
      append_u64(out, byte_count_);
      append(out, bytes_, byte_count_);
      return;
    case ValueType::array:
      append_u32(out, static_cast<uint32_t>(element_type_));
      append_u64(out, count_);
      if (element_type_ == ValueType::array) {
        for (const Value& item : *arrays_) item.encode_v3(out);
      } else if (element_type_ == ValueType::string && string_length_bytes_ != 8) {
        for (uint64_t i = 0; i < count_; ++i) {
          const std::string_view text = string_at(i);
          append_u64(out, text.size());
          append(out, text.data(), text.size());
        }
      } else {
        append(out, bytes_, byte_count_);  // packed scalars, or strings already in the v3 layout
      }
      return;
    default: append(out, scalar_, value_type_size(type_)); return;
  }
}

bool Value::operator==(const Value& other) const {
  if (type_ != other.type_) return false;
  if (type_ == ValueType::string) return as_string() == other.as_string();
  if (type_ != ValueType::array) return std::memcmp(scalar_, other.scalar_, value_type_size(type_)) == 0;
  if (element_type_ != other.element_type_ || count_ != other.count_) return false;
  if (element_type_ == ValueType::array) return *arrays_ == *other.arrays_;
  if (element_type_ == ValueType::string) {
    for (uint64_t i = 0; i < count_; ++i) {
      if (string_at(i) != other.string_at(i)) return false;
    }
    return true;
  }
  return byte_count_ == other.byte_count_ && (byte_count_ == 0 || std::memcmp(bytes_, other.bytes_, byte_count_) == 0);
}

int64_t TensorInfo::element_count() const {
  int64_t count = 1;
  for (int64_t ne : shape) count *= ne;  // the reader and writer checked this product for overflow
  return count;
}

int64_t TensorInfo::rows() const {
  int64_t count = 1;
  for (size_t i = 1; i < shape.size(); ++i) count *= shape[i];
  return count;
}

}  // namespace quant
