// Parsing of the plan's command-line values: --tensor-type REGEX=TYPE (and its file), ggml type names, and
// --override-kv KEY=TYPE:VALUE, with llama-quantize's rules (tools/quantize/quantize.cpp, common/common.cpp).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <optional>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/input_files.h"
#include "quant/plan.h"
#include "quant/suggest.h"

namespace quant {
namespace {

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// An --override-kv integer: an optional sign and decimal digits, nothing else. llama-quantize reads it with atol
// (junk ignored, no digits giving 0) and writes the absolute value as u32 (cut to 32 bits); we refuse what that
// would silently change, so the value written is always the value typed (or its magnitude, as documented).
std::optional<int64_t> read_whole_integer(const std::string& text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(value);
}

// An --override-kv float: the whole text a finite number that float32 holds (llama-quantize uses atof, which
// reads "abc" as 0 and "1e99" as inf once stored in the f32 it writes).
std::optional<double> read_whole_float(const std::string& text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !std::isfinite(value)) return std::nullopt;
  if (std::fabs(value) > double(std::numeric_limits<float>::max())) return std::nullopt;
  return value;
}

}  // namespace

namespace {

// "did you mean q4_K?", or the list of ggml type names when nothing is close.
std::string ggml_type_hint(std::string_view text) {
  std::vector<std::string_view> names;
  for (const FormatInfo& format : all_formats()) names.push_back(format.name);
  const std::string suggestion = did_you_mean(text, names);
  return suggestion.empty() ? fmt::format("ggml types are {}", fmt::join(names, ", ")) : suggestion;
}

}  // namespace

Result<TypeId> parse_ggml_type_name(std::string_view text) {
  if (const FormatInfo* format = find_format(text)) return format->id;
  return usage_error(fmt::format("invalid ggml type '{}': {}", text, ggml_type_hint(text)));
}

Result<TensorTypeOverride> parse_tensor_type_override(std::string_view text) {
  const size_t equals = text.find('=');
  if (equals == std::string_view::npos) {
    return usage_error(fmt::format("malformed tensor type '{}' (expected REGEX=TYPE)", text));
  }
  if (equals == 0) return usage_error(fmt::format("missing tensor name in tensor type '{}'", text));
  if (equals + 1 == text.size()) {
    return usage_error(fmt::format("missing quantization type in tensor type '{}'", text));
  }
  std::string pattern(text.substr(0, equals));
  // llama-quantize lowercases the pattern (not the tensor names, which are lowercase in practice).
  std::transform(pattern.begin(), pattern.end(), pattern.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string_view type_name = text.substr(equals + 1);
  const FormatInfo* format = find_format(type_name);
  if (!format) {
    return usage_error(fmt::format("invalid quantization type '{}' in tensor type '{}': {}", type_name, text,
                                   ggml_type_hint(type_name)));
  }
  return TensorTypeOverride{std::move(pattern), format->id};
}

Result<std::vector<TensorTypeOverride>> parse_tensor_type_list(std::string_view text) {
  std::vector<TensorTypeOverride> overrides;
  size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && is_space(text[pos])) ++pos;
    const size_t start = pos;
    while (pos < text.size() && !is_space(text[pos])) ++pos;
    if (pos == start) break;
    QUANT_ASSIGN_OR_RETURN(TensorTypeOverride entry, parse_tensor_type_override(text.substr(start, pos - start)));
    overrides.push_back(std::move(entry));
  }
  return overrides;
}

Result<std::vector<TensorTypeOverride>> read_tensor_type_file(const std::string& path) {
  // A list of patterns is small; 64 MiB is far beyond any real one and keeps a wrong path from filling memory.
  QUANT_ASSIGN_OR_RETURN(const std::string contents, read_input_file(path, uint64_t(64) << 20, "tensor type file"));
  auto parsed = parse_tensor_type_list(contents);
  if (!parsed) return std::move(parsed).error().in_file(path);
  return parsed;
}

uint32_t KvOverride::written_u32() const {
  // std::abs of the most negative value overflows; negate in unsigned arithmetic instead.
  const uint64_t magnitude = int_value < 0 ? uint64_t{0} - static_cast<uint64_t>(int_value)
                                           : static_cast<uint64_t>(int_value);
  return static_cast<uint32_t>(magnitude);
}

Result<KvOverride> parse_kv_override(std::string_view text) {
  const size_t equals = text.find('=');
  // llama.cpp keeps keys in a 128-byte buffer with its terminating zero.
  if (equals == std::string_view::npos || equals >= 128) {
    return usage_error(fmt::format("malformed KV override '{}' (expected KEY=TYPE:VALUE, KEY under 128 bytes)",
                                   text));
  }
  if (equals == 0) return usage_error(fmt::format("malformed KV override '{}': empty key", text));
  KvOverride result;
  result.key = std::string(text.substr(0, equals));
  const std::string_view rest = text.substr(equals + 1);
  if (rest.starts_with("int:")) {
    result.kind = KvOverride::Kind::integer;
    const std::optional<int64_t> value = read_whole_integer(std::string(rest.substr(4)));
    if (!value) {
      return usage_error(fmt::format("KV override '{}': '{}' is not a whole number", text, rest.substr(4)));
    }
    result.int_value = *value;
    const uint64_t magnitude = *value < 0 ? uint64_t{0} - uint64_t(*value) : uint64_t(*value);
    if (magnitude > UINT32_MAX) {
      return usage_error(fmt::format("KV override '{}': {} does not fit the u32 an int override is written as "
                                     "(its magnitude must be at most {})", text, *value, UINT32_MAX));
    }
  } else if (rest.starts_with("float:")) {
    result.kind = KvOverride::Kind::floating;
    // The CLI runs in the "C" locale, as llama-quantize sets it, so the decimal point is '.'.
    const std::optional<double> value = read_whole_float(std::string(rest.substr(6)));
    if (!value) {
      return usage_error(fmt::format("KV override '{}': '{}' is not a finite number float32 can hold", text,
                                     rest.substr(6)));
    }
    result.float_value = *value;
  } else if (rest.starts_with("bool:")) {
    result.kind = KvOverride::Kind::boolean;
    const std::string_view value = rest.substr(5);
    if (value == "true") {
      result.bool_value = true;
    } else if (value == "false") {
      result.bool_value = false;
    } else {
      return usage_error(fmt::format("invalid boolean value for KV override '{}' (true or false)", text));
    }
  } else if (rest.starts_with("str:")) {
    result.kind = KvOverride::Kind::string;
    const std::string_view value = rest.substr(4);
    if (value.size() > 127) {
      return usage_error(fmt::format("malformed KV override '{}': the value cannot exceed 127 bytes", text));
    }
    result.string_value = std::string(value);
  } else {
    return usage_error(fmt::format("invalid type for KV override '{}' (int:, float:, bool: or str:)", text));
  }
  return result;
}

}  // namespace quant
