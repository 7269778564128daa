// nlohmann::json's exception text without its "[json.exception.<kind>.<id>] " tag, for error messages: ours name
// the file and offset themselves and say what is wrong in words ("parse error at line 1, column 1: ..."), never a
// library's exception tag.
#pragma once

#include <exception>
#include <string_view>

namespace quant {

inline std::string_view json_error_text(const std::exception& e) {
  std::string_view text = e.what();
  if (text.starts_with("[json.exception.")) {
    if (const size_t end = text.find("] "); end != std::string_view::npos) text.remove_prefix(end + 2);
  }
  return text;
}

}  // namespace quant
