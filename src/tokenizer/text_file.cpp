// Reading a text file as llama.cpp's tools read `-f FILE`.
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "quant/tokenizer.h"

namespace quant {

Result<std::string> read_text_file(const std::string& path, TextFileMode mode) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return io_error(fmt::format("cannot open text file: {}", std::strerror(errno))).in_file(path);
  std::string content((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) return io_error("cannot read text file").in_file(path);
  // common/arg.cpp's -f handler removes one trailing newline; llama-tokenize reads the bytes verbatim.
  if (mode == TextFileMode::prompt && !content.empty() && content.back() == '\n') content.pop_back();
  return content;
}

}  // namespace quant
