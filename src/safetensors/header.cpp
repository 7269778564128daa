// The safetensors header: dtypes, the JSON entries, and the check that the tensors tile the data section.
// The rules are the safetensors library's (Rust `validate`): offsets sorted must start at 0, each begin equals
// the previous end, the last end equals the data section's size, and end - begin = elements x bits / 8.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "core/checked_math.h"
#include "core/json_error_text.h"
#include "quant/safetensors.h"

namespace quant {
namespace {

constexpr SafetensorsDtypeInfo kDtypes[] = {
    {SafetensorsDtype::boolean, "BOOL", 8},     {SafetensorsDtype::u8, "U8", 8},
    {SafetensorsDtype::i8, "I8", 8},            {SafetensorsDtype::i16, "I16", 16},
    {SafetensorsDtype::u16, "U16", 16},         {SafetensorsDtype::i32, "I32", 32},
    {SafetensorsDtype::u32, "U32", 32},         {SafetensorsDtype::i64, "I64", 64},
    {SafetensorsDtype::u64, "U64", 64},         {SafetensorsDtype::f16, "F16", 16},
    {SafetensorsDtype::bf16, "BF16", 16},       {SafetensorsDtype::f32, "F32", 32},
    {SafetensorsDtype::f64, "F64", 64},         {SafetensorsDtype::c64, "C64", 64},
    {SafetensorsDtype::f8_e5m2, "F8_E5M2", 8},  {SafetensorsDtype::f8_e4m3, "F8_E4M3", 8},
    {SafetensorsDtype::f8_e8m0, "F8_E8M0", 8},  {SafetensorsDtype::f6_e2m3, "F6_E2M3", 6},
    {SafetensorsDtype::f6_e3m2, "F6_E3M2", 6},  {SafetensorsDtype::f4, "F4", 4},
};

using Json = nlohmann::ordered_json;

// A non-negative JSON integer, or an error naming what it was meant to be.
Result<uint64_t> json_count(const Json& value, const char* what) {
  if (!value.is_number_unsigned()) {
    return invalid_input(fmt::format("{} must be a non-negative integer, got {}", what, value.dump()));
  }
  return value.get<uint64_t>();
}

// One tensor entry, checked on its own: dtype, shape, byte count, offsets inside the data section.
Result<SafetensorsTensor> parse_entry(const std::string& name, const Json& entry, uint64_t data_start,
                                      uint64_t data_bytes, const SafetensorsLimits& limits) {
  if (name.empty() || name.size() > limits.max_name_bytes) {
    return invalid_input(fmt::format("tensor name length {} is outside 1..{}", name.size(), limits.max_name_bytes));
  }
  if (!entry.is_object()) return invalid_input("header entry is not an object");
  const auto dtype_it = entry.find("dtype");
  const auto shape_it = entry.find("shape");
  const auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) return invalid_input("missing or non-string \"dtype\"");
  if (shape_it == entry.end() || !shape_it->is_array()) return invalid_input("missing or non-array \"shape\"");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return invalid_input("\"data_offsets\" must be an array [begin, end]");
  }
  SafetensorsTensor tensor;
  tensor.name = name;
  const std::string dtype_name = dtype_it->get<std::string>();
  const std::optional<SafetensorsDtype> dtype = parse_safetensors_dtype(dtype_name);
  if (!dtype) return invalid_input(fmt::format("unknown dtype \"{}\"", dtype_name));
  tensor.dtype = *dtype;
  if (shape_it->size() > limits.max_rank) {
    return invalid_input(fmt::format("shape has {} dimensions, over the cap of {}", shape_it->size(), limits.max_rank));
  }
  for (const Json& dim : *shape_it) {
    QUANT_ASSIGN_OR_RETURN(const uint64_t extent, json_count(dim, "a shape dimension"));
    tensor.shape.push_back(extent);
    const std::optional<uint64_t> count = checked_mul(tensor.element_count, extent);
    if (!count) return invalid_input(fmt::format("shape {} overflows 64-bit sizes", shape_it->dump()));
    tensor.element_count = *count;
  }
  const std::optional<uint64_t> bits = checked_mul(tensor.element_count, dtype_info(tensor.dtype).bits);
  if (!bits) return invalid_input(fmt::format("shape {} overflows 64-bit sizes", shape_it->dump()));
  QUANT_ASSIGN_OR_RETURN(tensor.begin, json_count((*offsets_it)[0], "data_offsets begin"));
  QUANT_ASSIGN_OR_RETURN(tensor.end, json_count((*offsets_it)[1], "data_offsets end"));
  if (tensor.begin > tensor.end) {
    return invalid_input(fmt::format("data_offsets [{}, {}] run backwards", tensor.begin, tensor.end));
  }
  if (tensor.end > data_bytes) {
    return invalid_input(
        fmt::format("data_offsets end {} lies past the data section ({} bytes)", tensor.end, data_bytes));
  }
  if (*bits % 8 != 0) {
    return invalid_input(fmt::format("{} elements of {} do not fill whole bytes", tensor.element_count, dtype_name));
  }
  if (tensor.byte_size() != *bits / 8) {
    return Error(invalid_input(fmt::format("data_offsets hold {} bytes but shape and dtype need {}",
                                           tensor.byte_size(), *bits / 8)))
        .at_offset(data_start + tensor.begin);
  }
  tensor.file_offset = data_start + tensor.begin;
  return tensor;
}

// The tensors sorted by offset must tile [0, data_bytes) exactly.
Status check_tiling(std::vector<SafetensorsTensor>& tensors, uint64_t data_start, uint64_t data_bytes,
                    const std::string& path) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    return a.end != b.end ? a.end < b.end : a.name < b.name;
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsTensor& tensor = tensors[i];
    if (tensor.begin < covered) {
      const SafetensorsTensor& previous = tensors[i - 1];
      return Error(invalid_input(fmt::format("data_offsets [{}, {}] overlap those of '{}' [{}, {}]", tensor.begin,
                                             tensor.end, previous.name, previous.begin, previous.end)))
          .in_file(path)
          .in_tensor(tensor.name)
          .at_offset(data_start + tensor.begin);
    }
    if (tensor.begin > covered) {
      const std::string after = i == 0 ? std::string("the start of the data section")
                                       : fmt::format("'{}'", tensors[i - 1].name);
      return Error(invalid_input(fmt::format("data_offsets [{}, {}] leave bytes {}..{} after {} unused (the "
                                             "format allows no gaps)",
                                             tensor.begin, tensor.end, covered, tensor.begin, after)))
          .in_file(path)
          .in_tensor(tensor.name)
          .at_offset(data_start + covered);
    }
    covered = tensor.end;
  }
  if (covered != data_bytes) {
    return Error(invalid_input(fmt::format("the data section holds {} bytes but its tensors cover {} (the format "
                                           "allows no trailing bytes)",
                                           data_bytes, covered)))
        .in_file(path)
        .at_offset(data_start + covered);
  }
  return Status::success();
}

}  // namespace

std::span<const SafetensorsDtypeInfo> all_safetensors_dtypes() { return kDtypes; }

const SafetensorsDtypeInfo& dtype_info(SafetensorsDtype dtype) {
  for (const SafetensorsDtypeInfo& info : kDtypes) {
    if (info.dtype == dtype) return info;
  }
  return kDtypes[0];  // unreachable: every enumerator has an entry
}

std::optional<SafetensorsDtype> parse_safetensors_dtype(std::string_view name) {
  for (const SafetensorsDtypeInfo& info : kDtypes) {
    if (info.name == name) return info.dtype;
  }
  return std::nullopt;
}

std::string SafetensorsTensor::shape_string() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

const SafetensorsTensor* SafetensorsHeader::find(std::string_view name) const {
  for (const SafetensorsTensor& tensor : tensors) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

std::vector<const SafetensorsTensor*> SafetensorsHeader::by_name() const {
  std::vector<const SafetensorsTensor*> sorted;
  sorted.reserve(tensors.size());
  for (const SafetensorsTensor& tensor : tensors) sorted.push_back(&tensor);
  // std::string compares bytes as unsigned char: UTF-8 byte order, which is code point order (Python's).
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->name < b->name; });
  return sorted;
}

Result<SafetensorsHeader> parse_safetensors_header(std::span<const uint8_t> json, uint64_t file_size,
                                                   const std::string& path, const SafetensorsLimits& limits) {
  constexpr uint64_t kJsonStart = kSafetensorsLengthBytes;
  SafetensorsHeader header;
  header.header_bytes = json.size();
  if (json.size() > limits.max_header_bytes) {
    return invalid_input(fmt::format("safetensors header length {} exceeds the cap of {} bytes", json.size(),
                                     limits.max_header_bytes))
        .in_file(path)
        .at_offset(0);
  }
  if (json.size() > file_size || file_size - json.size() < kJsonStart) {
    return invalid_input("safetensors header runs past end of file").in_file(path).at_offset(kJsonStart);
  }
  header.data_start = kJsonStart + json.size();
  header.data_bytes = file_size - header.data_start;
  // The safetensors library requires the header to open with '{' (no leading whitespace).
  if (json.empty() || json[0] != '{') {
    return invalid_input("safetensors header is not a JSON object (must start with '{')")
        .in_file(path)
        .at_offset(kJsonStart);
  }

  // nlohmann keeps one of duplicate keys silently; a tensor named twice is damage, so watch for it.
  std::set<std::string> top_level_keys;
  std::string duplicate_key;
  uint64_t entries = 0;
  auto watch_keys = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key && parsed.is_string()) {
      ++entries;
      if (!top_level_keys.insert(parsed.get<std::string>()).second && duplicate_key.empty()) {
        duplicate_key = parsed.get<std::string>();
      }
    }
    return true;
  };
  Json root;
  try {
    root = Json::parse(json.begin(), json.end(), watch_keys);
  } catch (const Json::parse_error& e) {
    return invalid_input(fmt::format("safetensors header is not valid JSON: {}", json_error_text(e)))
        .in_file(path)
        .at_offset(kJsonStart + std::min<uint64_t>(e.byte == 0 ? 0 : e.byte - 1, json.size()));
  } catch (const Json::exception& e) {
    // Not a syntax error but a value the parser cannot hold, e.g. a number beyond double's range (out_of_range).
    return invalid_input(fmt::format("safetensors header holds a value that cannot be read: {}", json_error_text(e)))
        .in_file(path)
        .at_offset(kJsonStart);
  }
  if (!root.is_object()) return invalid_input("safetensors header is not a JSON object").in_file(path).at_offset(8);
  if (!duplicate_key.empty()) {
    return invalid_input("safetensors header names this tensor twice").in_file(path).in_tensor(duplicate_key);
  }
  if (entries > limits.max_tensors + 1) {
    return invalid_input(fmt::format("safetensors header lists {} entries, over the cap of {}", entries,
                                     limits.max_tensors))
        .in_file(path);
  }

  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return invalid_input("__metadata__ must be an object of strings").in_file(path);
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return invalid_input(fmt::format("__metadata__ value for '{}' is not a string", key)).in_file(path);
        }
        header.metadata.emplace_back(key, value.get<std::string>());
      }
      continue;
    }
    auto tensor = parse_entry(name, entry, header.data_start, header.data_bytes, limits);
    if (!tensor) return std::move(tensor).error().in_file(path).in_tensor(name);
    header.tensors.push_back(std::move(tensor).value());
  }
  QUANT_TRY(check_tiling(header.tensors, header.data_start, header.data_bytes, path));
  return header;
}

Result<SafetensorsHeader> read_safetensors_header(const ReadAtFunction& read_at, uint64_t file_size,
                                                  const std::string& path, const SafetensorsLimits& limits) {
  if (file_size < kSafetensorsLengthBytes) {
    return invalid_input(fmt::format("file of {} bytes is too short for a safetensors header", file_size))
        .in_file(path)
        .at_offset(0);
  }
  uint8_t length_bytes[kSafetensorsLengthBytes];
  QUANT_TRY(read_at(0, length_bytes));
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | length_bytes[i];
  if (length > limits.max_header_bytes) {
    return invalid_input(
               fmt::format("safetensors header length {} exceeds the cap of {} bytes", length, limits.max_header_bytes))
        .in_file(path)
        .at_offset(0);
  }
  if (length > file_size - kSafetensorsLengthBytes) {
    return invalid_input(fmt::format("safetensors header runs past end of file (needs {} bytes, {} left)", length,
                                     file_size - kSafetensorsLengthBytes))
        .in_file(path)
        .at_offset(kSafetensorsLengthBytes);
  }
  std::vector<uint8_t> json(static_cast<size_t>(length));
  QUANT_TRY(read_at(kSafetensorsLengthBytes, json));
  return parse_safetensors_header(json, file_size, path, limits);
}

}  // namespace quant
