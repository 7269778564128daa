// Reading a text file as llama.cpp's tools read `-f FILE`.
#include "core/input_files.h"
#include "quant/tokenizer.h"

namespace quant {

Result<std::string> read_text_file(const std::string& path, TextFileMode mode) {
  // Only a regular file, opened without blocking (a FIFO is refused, not waited on); 4 GiB is far beyond any
  // evaluation text and keeps a wrong path from filling memory.
  QUANT_ASSIGN_OR_RETURN(std::string content, read_input_file(path, uint64_t(1) << 32, "text file"));
  // common/arg.cpp's -f handler removes one trailing newline; llama-tokenize reads the bytes verbatim.
  if (mode == TextFileMode::prompt && !content.empty() && content.back() == '\n') content.pop_back();
  return content;
}

}  // namespace quant
