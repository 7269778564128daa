#include "hf/metadata_list.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace quant::hf {
namespace {

Error type_error(const Json& value, const std::string& what, std::string_view expected) {
  return impossible(fmt::format("{} is {}, expected {} (convert_hf_to_gguf.py cannot write it either)", what,
                                value.dump(), expected));
}

}  // namespace

void MetadataList::set(std::string key, Value value) {
  for (KeyValue& kv : items_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  items_.push_back(KeyValue{std::move(key), std::move(value)});
}

void MetadataList::remove(std::string_view key) {
  std::erase_if(items_, [&](const KeyValue& kv) { return kv.key == key; });
}

bool MetadataList::contains(std::string_view key) const {
  for (const KeyValue& kv : items_) {
    if (kv.key == key) return true;
  }
  return false;
}

Result<Value> u32_value(const Json& value, const std::string& what) {
  if (value.is_number_unsigned() && value.get<uint64_t>() <= std::numeric_limits<uint32_t>::max()) {
    return Value::u32(uint32_t(value.get<uint64_t>()));
  }
  return type_error(value, what, "an integer from 0 to 4294967295");
}

Result<Value> i32_value(const Json& value, const std::string& what) {
  if (value.is_number_integer() && value.get<int64_t>() >= std::numeric_limits<int32_t>::min() &&
      value.get<int64_t>() <= std::numeric_limits<int32_t>::max() &&
      !(value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(std::numeric_limits<int32_t>::max()))) {
    return Value::i32(int32_t(value.get<int64_t>()));
  }
  return type_error(value, what, "a 32-bit integer");
}

Result<double> number_value(const Json& value, const std::string& what) {
  if (value.is_number_float()) return value.get<double>();
  if (value.is_number_unsigned()) return double(value.get<uint64_t>());
  if (value.is_number_integer()) return double(value.get<int64_t>());
  return type_error(value, what, "a number");
}

Result<Value> f32_value(const Json& value, const std::string& what) {
  QUANT_ASSIGN_OR_RETURN(const double number, number_value(value, what));
  const float narrowed = static_cast<float>(number);
  // Python's struct.pack("f") refuses a finite double that rounds to infinity.
  if (std::isinf(narrowed) && !std::isinf(number)) return type_error(value, what, "a number within float range");
  return Value::f32(narrowed);
}

Result<Value> u32_or_array_value(const Json& value, const std::string& what) {
  if (!value.is_array()) return u32_value(value, what);
  if (value.empty()) return type_error(value, what, "a non-empty list");
  std::vector<int32_t> items;
  for (const Json& item : value) {
    QUANT_ASSIGN_OR_RETURN(const Value v, i32_value(item, what));
    items.push_back(v.as<int32_t>());
  }
  return Value::array_of<int32_t>(items);
}

}  // namespace quant::hf
