// libFuzzer target: the calibration-text reader (include/quant/text_dataset.h) on arbitrary bytes, as JSON Lines
// and as plain text. A JSONL file that reads must give non-empty UTF-8 text without NUL bytes and at least one
// document: anything else would reach the tokenizer as text we promised to refuse.
#include <cstdint>
#include <string_view>

#include "quant/text_dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto text = quant::parse_jsonl_text(bytes, "jsonl-fuzz");
  if (text) {
    if (text->text.empty() || text->documents < 1) __builtin_trap();
    if (!quant::check_text_is_utf8(text->text, "jsonl-fuzz")) __builtin_trap();
  } else {
    (void)text.error().message();
  }
  const quant::Status plain = quant::check_text_is_utf8(bytes, "plain-fuzz");
  if (!plain && (!plain.error().offset() || *plain.error().offset() >= size)) __builtin_trap();
  return 0;
}
