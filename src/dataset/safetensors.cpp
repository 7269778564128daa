// safetensors: u64 header length N | N bytes of JSON | data. The JSON maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to the data section; an optional
// "__metadata__" maps strings to strings. Written by the Python library with the header padded with spaces.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "core/checked_math.h"
#include "dataset/array_source.h"

namespace quant::dataset {
namespace {

constexpr uint64_t kLengthBytes = 8;

Result<ElementType> safetensors_element_type(const std::string& dtype) {
  if (dtype == "F32") return ElementType::f32;
  if (dtype == "F16") return ElementType::f16;
  if (dtype == "BF16") return ElementType::bf16;
  if (dtype == "F64") return ElementType::f64;
  return invalid_input(fmt::format("unsupported dtype {} (activations must be F32, F16, BF16 or F64)", dtype));
}

// A non-negative JSON integer, or an error naming what it was meant to be.
Result<uint64_t> json_count(const nlohmann::json& value, const char* what) {
  if (!value.is_number_unsigned()) {
    return invalid_input(fmt::format("{} must be a non-negative integer, got {}", what, value.dump()));
  }
  return value.get<uint64_t>();
}

}  // namespace

Result<std::vector<ArraySource>> read_safetensors_arrays(const InputFile& file, const DatasetLimits& limits) {
  const std::string& path = file.path();
  uint8_t length_bytes[kLengthBytes];
  QUANT_TRY(file.read_at(0, length_bytes, "safetensors header length"));
  const uint64_t header_length = load_u64(length_bytes);
  if (header_length > limits.max_header_bytes) {
    return invalid_input(fmt::format("safetensors header length {} exceeds the cap of {} bytes", header_length,
                                     limits.max_header_bytes)).in_file(path).at_offset(0);
  }
  if (header_length > file.size() - kLengthBytes) {
    return invalid_input(fmt::format("safetensors header runs past end of file (needs {} bytes, {} left)",
                                     header_length, file.size() - kLengthBytes)).in_file(path).at_offset(kLengthBytes);
  }
  std::vector<uint8_t> header(static_cast<size_t>(header_length));
  QUANT_TRY(file.read_at(kLengthBytes, header, "safetensors header"));
  if (header.empty() || header[0] != '{') {
    return invalid_input("safetensors header is not a JSON object (must start with '{')").in_file(path).at_offset(8);
  }

  // nlohmann keeps the last of duplicate keys silently; a duplicated tensor name is damage, so watch for it.
  std::set<std::string> top_level_keys;
  std::string duplicate_key;
  auto watch_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string()) {
      if (!top_level_keys.insert(parsed.get<std::string>()).second && duplicate_key.empty()) {
        duplicate_key = parsed.get<std::string>();
      }
    }
    return true;
  };
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(header.begin(), header.end(), watch_keys);
  } catch (const nlohmann::json::parse_error& e) {
    return invalid_input(fmt::format("safetensors header is not valid JSON: {}", e.what()))
        .in_file(path)
        .at_offset(kLengthBytes + std::min<uint64_t>(e.byte == 0 ? 0 : e.byte - 1, header_length));
  } catch (const nlohmann::json::exception& e) {
    // Not a syntax error but a value the parser cannot hold, e.g. a number beyond double's range (out_of_range).
    return invalid_input(fmt::format("safetensors header holds a value that cannot be read: {}", e.what()))
        .in_file(path)
        .at_offset(8);
  }
  if (!root.is_object()) return invalid_input("safetensors header is not a JSON object").in_file(path).at_offset(8);
  if (!duplicate_key.empty()) {
    return invalid_input("safetensors header names this tensor twice").in_file(path).in_tensor(duplicate_key);
  }
  if (root.size() > limits.max_tensors_per_file + 1) {
    return invalid_input(fmt::format("safetensors header lists {} entries, over the cap of {}", root.size(),
                                     limits.max_tensors_per_file)).in_file(path);
  }

  const uint64_t data_start = kLengthBytes + header_length;
  const uint64_t data_size = file.size() - data_start;
  std::vector<ArraySource> arrays;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [begin, end) in the data section, per array
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return invalid_input("__metadata__ must be an object of strings").in_file(path);
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return invalid_input(fmt::format("__metadata__ value for '{}' is not a string", key)).in_file(path);
        }
      }
      continue;
    }
    // Named capture: clang 14 (the fuzz build) cannot capture a structured binding implicitly.
    auto fail = [&, &tensor_name = name](std::string reason) {
      return invalid_input(std::move(reason)).in_file(path).in_tensor(tensor_name);
    };
    if (name.empty() || name.size() > limits.max_name_bytes) {
      return fail(fmt::format("tensor name length {} is outside 1..{}", name.size(), limits.max_name_bytes));
    }
    if (!entry.is_object()) return fail("header entry is not an object");
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) return fail("missing or non-string \"dtype\"");
    if (!entry.contains("shape") || !entry["shape"].is_array()) return fail("missing or non-array \"shape\"");
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2) {
      return fail("\"data_offsets\" must be an array [begin, end]");
    }

    ArraySource source;
    source.info.file = path;
    source.info.tensor = name;
    source.info.dtype = entry["dtype"].get<std::string>();
    auto element = safetensors_element_type(source.info.dtype);
    if (!element) return std::move(element).error().in_file(path).in_tensor(name);
    source.element = *element;

    std::vector<uint64_t> shape;
    for (const auto& dim : entry["shape"]) {
      auto value = json_count(dim, "a shape dimension");
      if (!value) return std::move(value).error().in_file(path).in_tensor(name);
      shape.push_back(*value);
    }
    auto begin = json_count(entry["data_offsets"][0], "data_offsets begin");
    if (!begin) return std::move(begin).error().in_file(path).in_tensor(name);
    auto end = json_count(entry["data_offsets"][1], "data_offsets end");
    if (!end) return std::move(end).error().in_file(path).in_tensor(name);
    if (*begin > *end) return fail(fmt::format("data_offsets [{}, {}] run backwards", *begin, *end));
    if (*end > data_size) {
      return fail(fmt::format("data_offsets end {} lies past the data section ({} bytes)", *end, data_size));
    }
    QUANT_TRY(set_shape(source, shape, limits));
    if (*end - *begin != source.value_bytes) {
      return fail(fmt::format("data_offsets hold {} bytes but shape and dtype need {}", *end - *begin,
                              source.value_bytes));
    }
    source.data_offset = data_start + *begin;
    ranges.emplace_back(*begin, *end);
    arrays.push_back(std::move(source));
  }

  // Read in file order (sequential I/O), and refuse arrays whose bytes overlap.
  std::vector<size_t> order(arrays.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return ranges[a] != ranges[b] ? ranges[a] < ranges[b] : arrays[a].info.tensor < arrays[b].info.tensor;
  });
  std::vector<ArraySource> sorted;
  sorted.reserve(arrays.size());
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    if (k > 0) {
      const size_t previous = order[k - 1];
      if (ranges[i].first < ranges[previous].second) {
        return invalid_input(fmt::format("data_offsets [{}, {}] overlap those of '{}' [{}, {}]", ranges[i].first,
                                         ranges[i].second, sorted.back().info.tensor, ranges[previous].first,
                                         ranges[previous].second))
            .in_file(path)
            .in_tensor(arrays[i].info.tensor)
            .at_offset(data_start + ranges[i].first);
      }
    }
    sorted.push_back(std::move(arrays[i]));
  }
  return sorted;
}

}  // namespace quant::dataset
