// Calibration text as users have it, for importance matrices computed from text (imatrix_from_text):
//   - plain text (any name but the two below): the file's bytes as they are, no escape processing, one trailing
//     '\n' removed — how llama.cpp's `-f FILE` reads a prompt (common/arg.cpp), so llama-imatrix and we read
//     the same text;
//   - JSON Lines (`*.jsonl`, `*.ndjson`): one JSON object per line (blank lines skipped), each one document:
//       {"text": "..."}                                                the text
//       {"messages": [{"role": "...", "content": "..."}, ...]}         a chat (OpenAI style); a content that is a
//                                                                      list of parts contributes their "text"s
//       {"conversations": [{"from": "...", "value": "..."}, ...]}      a chat (ShareGPT style)
//     The first of these fields present is used; other fields are ignored. A chat is flattened to its turns'
//     texts in order; roles are dropped (without the model's chat template there is no faithful way to render
//     them). Documents and turns are joined with a blank line ("\n\n"); empty ones are left out.
// Text must be UTF-8 without NUL bytes: anything else is taken for a binary file and refused, as is a text that
// is empty. Errors are invalid_input naming the file and the byte offset (plain text) or the line (JSONL).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "quant/error.h"

namespace quant {

enum class TextFormat { automatic, plain, jsonl };

struct CalibrationText {
  std::string text;
  TextFormat format = TextFormat::plain;  // what was read (never automatic)
  int64_t documents = 0;                  // JSONL documents with text; 1 for plain text
};

// The format `automatic` picks for a path: jsonl for names ending in .jsonl or .ndjson, plain otherwise.
TextFormat text_format_for(std::string_view path);
std::string_view text_format_name(TextFormat format);  // "text" or "jsonl"

// Reads a calibration text file (see the header comment). I/O failures are io errors naming the path.
Result<CalibrationText> read_calibration_text(const std::string& path, TextFormat format = TextFormat::automatic);

// The JSON Lines reader on bytes already in memory; `source` names them in errors.
Result<CalibrationText> parse_jsonl_text(std::string_view bytes, const std::string& source);

// invalid_input naming `source` and the offset of the first NUL byte or invalid UTF-8 sequence, if any.
Status check_text_is_utf8(std::string_view text, const std::string& source);

}  // namespace quant
