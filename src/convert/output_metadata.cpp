#include "convert/output_metadata.h"

#include <algorithm>
#include <string_view>

namespace quant::convert_internal {
namespace {

bool dropped_from_input(std::string_view key) {
  return key == "general.quantization_version" || key == "general.file_type" || key == "split.no" ||
         key == "split.count" || key == "split.tensors.count";
}

void set_last(std::vector<KeyValue>& metadata, std::string key, Value value) {
  metadata.erase(std::remove_if(metadata.begin(), metadata.end(), [&](const KeyValue& kv) { return kv.key == key; }),
                 metadata.end());
  metadata.push_back(KeyValue{std::move(key), std::move(value)});
}

Value override_value(const KvOverride& o) {
  switch (o.kind) {
    case KvOverride::Kind::integer: return Value::u32(o.written_u32());
    case KvOverride::Kind::floating: return Value::f32(o.written_f32());
    case KvOverride::Kind::boolean: return Value::boolean(o.bool_value);
    case KvOverride::Kind::string: return Value::string(o.string_value);
  }
  return Value::string(o.string_value);
}

}  // namespace

std::vector<KeyValue> output_metadata(const ModelSource& input, uint32_t file_type,
                                      const std::vector<KvOverride>& overrides) {
  std::vector<KeyValue> metadata;
  metadata.reserve(input.metadata().size() + 2 + overrides.size());
  for (const KeyValue& kv : input.metadata()) {
    if (!dropped_from_input(kv.key)) metadata.push_back(kv);
  }
  metadata.push_back(KeyValue{"general.quantization_version", Value::u32(kQuantizationVersion)});
  metadata.push_back(KeyValue{"general.file_type", Value::u32(file_type)});
  for (const KvOverride& o : overrides) set_last(metadata, o.key, override_value(o));
  return metadata;
}

std::vector<KeyValue> with_overrides(std::vector<KeyValue> metadata, const std::vector<KvOverride>& overrides) {
  for (const KvOverride& o : overrides) set_last(metadata, o.key, override_value(o));
  return metadata;
}

KvOverride string_override(std::string key, const std::string& value) {
  KvOverride o;
  o.key = std::move(key);
  o.kind = KvOverride::Kind::string;
  o.string_value = value.substr(0, 127);  // llama-quantize copies into a 128-byte buffer
  return o;
}

KvOverride integer_override(std::string key, int64_t value) {
  KvOverride o;
  o.key = std::move(key);
  o.kind = KvOverride::Kind::integer;
  o.int_value = value;
  return o;
}

}  // namespace quant::convert_internal
