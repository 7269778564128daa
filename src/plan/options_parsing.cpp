// Parsing of the plan's command-line values: --tensor-type REGEX=TYPE (and its file), ggml type names, and
// --override-kv KEY=TYPE:VALUE, with llama-quantize's rules (tools/quantize/quantize.cpp, common/common.cpp).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "quant/plan.h"

namespace quant {
namespace {

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// C's atol: optional white space and sign, then digits; anything after them is ignored, no digits give 0.
// Out-of-range values saturate as glibc's strtol does.
int64_t read_like_atol(const std::string& text) {
  errno = 0;
  const long long value = std::strtoll(text.c_str(), nullptr, 10);
  return static_cast<int64_t>(value);
}

}  // namespace

Result<TypeId> parse_ggml_type_name(std::string_view text) {
  if (const FormatInfo* format = find_format(text)) return format->id;
  return usage_error(fmt::format("invalid ggml type '{}'", text));
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
    return usage_error(fmt::format("invalid quantization type '{}' in tensor type '{}'", type_name, text));
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
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error(io_error(fmt::format("cannot open tensor type file: {}", std::strerror(errno)))).in_file(path);
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return Error(io_error("cannot read tensor type file")).in_file(path);
  auto parsed = parse_tensor_type_list(contents.str());
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
    result.int_value = read_like_atol(std::string(rest.substr(4)));
  } else if (rest.starts_with("float:")) {
    result.kind = KvOverride::Kind::floating;
    // atof is strtod without error reporting; the CLI runs in the "C" locale, as llama-quantize sets it.
    result.float_value = std::strtod(std::string(rest.substr(6)).c_str(), nullptr);
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
