// Internal: Python's str.replace for the importer's few text rewrites.
#pragma once

#include <string>
#include <string_view>

namespace quant::hf {

// Every occurrence of `from` (not empty) replaced by `to`, left to right, as Python's str.replace does.
inline std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t start = 0;
  for (size_t at; (at = text.find(from, start)) != std::string_view::npos; start = at + from.size()) {
    out.append(text.substr(start, at - start));
    out.append(to);
  }
  out.append(text.substr(start));
  return out;
}

}  // namespace quant::hf
