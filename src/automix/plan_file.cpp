// The chosen mix as a llama-quantize --tensor-type-file.
//
// llama-quantize reads the file as whitespace-separated words (`file >> arg`), splits each at its first '=',
// lowercases the part before it and compiles it as an ECMAScript std::regex, tried with regex_search in file order
// (tools/quantize/quantize.cpp, src/llama-quant.cpp). So each tensor gets `^NAME$=TYPE` with NAME escaped: regex
// specials with a backslash, and anything lowercasing, '=' or white space would change written as \xHH (hex digits
// and 'x' are unchanged by lowercasing).
#include <cctype>

#include <fmt/format.h>

#include "quant/automix.h"

namespace quant {

std::string exact_name_pattern(std::string_view name) {
  std::string pattern = "^";
  for (const char c : name) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) {
      pattern += '\\';
      pattern += c;
    } else if (std::isupper(byte) || std::isspace(byte) || c == '=' || byte < 0x20 || byte >= 0x7f) {
      pattern += fmt::format("\\x{:02x}", byte);
    } else {
      pattern += c;
    }
  }
  pattern += '$';
  return pattern;
}

std::string tensor_type_file_text(std::span<const AutomixTensor> tensors) {
  std::string text;
  for (const AutomixTensor& tensor : tensors) {
    if (!tensor.quantizable) continue;
    text += fmt::format("{}={}\n", exact_name_pattern(tensor.name), format_of(tensor.type).name);
  }
  return text;
}

}  // namespace quant
