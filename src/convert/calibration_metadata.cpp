#include "convert/calibration_metadata.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>

#include "core/input_files.h"
#include "quant/calibrate.h"

namespace quant::convert_internal {
namespace {

// A table is read whole; its keys end up in a GGUF header, which our reader caps at 256 MiB, so a larger table
// could only make an output nothing can open.
constexpr uint64_t kMaxTableBytes = uint64_t(256) << 20;
// GGUF stores a key's length in a u64, but ggml's gguf-py and the spec keep keys under 65536 bytes.
constexpr size_t kMaxKeyBytes = 65535;

// The checks GGUF needs beyond what the JSON reader checks: names a key can hold, one value per channel in
// every array, zero points that fit the i32 the keys store.
Status check_table(const CalibrationTable& table) {
  for (const CalibrationEntry& e : table.entries) {
    const std::string where = fmt::format("tensor '{}' method {}", e.tensor, method_name(e.method));
    if (e.tensor.empty()) return invalid_input("calibration table has an entry with an empty tensor name");
    const size_t channels = e.result.qparams.size();
    if (channels == 0) return invalid_input(fmt::format("{}: no scale", where));
    for (size_t n : {e.result.observed_min.size(), e.result.observed_max.size(), e.result.lo.size(),
                     e.result.hi.size()}) {
      if (n != channels) {
        return invalid_input(fmt::format("{}: {} scales but {} values in another per-channel array", where,
                                         channels, n));
      }
    }
    for (const QParams& p : e.result.qparams) {
      if (p.zero_point < std::numeric_limits<int32_t>::min() || p.zero_point > std::numeric_limits<int32_t>::max()) {
        return invalid_input(fmt::format("{}: zero point {} does not fit the i32 GGUF stores", where, p.zero_point));
      }
    }
  }
  return Status::success();
}

Value to_gguf_value(const MetadataValue& value) {
  return std::visit(
      [](const auto& v) -> Value {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, uint32_t>) return Value::u32(v);
        else if constexpr (std::is_same_v<T, int32_t>) return Value::i32(v);
        else if constexpr (std::is_same_v<T, bool>) return Value::boolean(v);
        else if constexpr (std::is_same_v<T, std::string>) return Value::string(v);
        else if constexpr (std::is_same_v<T, std::vector<std::string>>) return Value::array_of_strings(v);
        else return Value::array_of(v);  // float or int32_t arrays
      },
      value.value);
}

bool has_calibration_prefix(std::string_view key) { return key.starts_with(kCalibrationKeyPrefix); }

}  // namespace

Result<std::vector<KeyValue>> load_calibration_metadata(const ConvertRequest& request) {
  const std::string& path = request.calibration_table;
  for (const KvOverride& o : request.kv_overrides) {
    if (has_calibration_prefix(o.key)) {
      return usage_error(fmt::format("--override-kv '{}' conflicts with --calibration, whose table sets every "
                                     "{}* key: drop one of them", o.key, kCalibrationKeyPrefix));
    }
  }
  QUANT_ASSIGN_OR_RETURN(const std::string text, read_input_file(path, kMaxTableBytes, "calibration table"));
  Result<CalibrationTable> parsed = calibration_table_from_json(text);
  // Whatever the table reader rejects (an unknown method or dtype name included) is a fault of the file, not of
  // the command line.
  if (!parsed) return invalid_input(parsed.error().reason()).in_file(path);
  const CalibrationTable& table = parsed.value();
  Status valid = check_table(table);
  if (!valid) return std::move(valid).error().in_file(path);

  std::vector<KeyValue> keys;
  for (const MetadataEntry& entry : calibration_table_to_gguf_metadata(table)) {
    if (entry.key.size() > kMaxKeyBytes) {
      return invalid_input(fmt::format("key '{}...' is {} bytes, over GGUF's {}", entry.key.substr(0, 64),
                                       entry.key.size(), kMaxKeyBytes))
          .in_file(path);
    }
    keys.push_back(KeyValue{entry.key, to_gguf_value(entry.value)});
  }
  return keys;
}

void append_calibration_metadata(std::vector<KeyValue>& metadata, const std::vector<KeyValue>& calibration) {
  if (calibration.empty()) return;
  std::erase_if(metadata, [](const KeyValue& kv) { return has_calibration_prefix(kv.key); });
  metadata.insert(metadata.end(), calibration.begin(), calibration.end());
}

}  // namespace quant::convert_internal
