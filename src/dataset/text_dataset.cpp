// Calibration text files: plain text read as llama.cpp's `-f` reads it, and JSON Lines documents and chats
// flattened to one text (include/quant/text_dataset.h).
#include "quant/text_dataset.h"

#include <fmt/format.h>

#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/input_files.h"
#include "core/json_error_text.h"

namespace quant {
namespace {

constexpr std::string_view kSeparator = "\n\n";

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// The length of the UTF-8 sequence starting at text[i] (1..4), or 0 when it is not a valid one: no overlong
// forms, no surrogates, nothing above U+10FFFF (RFC 3629).
size_t utf8_sequence_length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t length = 0;
  uint8_t low = 0x80, high = 0xBF;  // the valid range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) low = 0xA0;
    if (b0 == 0xED) high = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) low = 0x90;
    if (b0 == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

// Appends a piece of text, with the separator before every piece but the first; empty pieces are left out.
void append_piece(std::string& out, int64_t& pieces, std::string_view piece) {
  if (piece.empty()) return;
  if (pieces > 0) out.append(kSeparator);
  out.append(piece);
  ++pieces;
}

// The text of a chat turn's content: a string, or a list of parts whose "text" strings are taken.
Result<std::string> content_text(const nlohmann::json& content, const std::string& where) {
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return invalid_input(fmt::format("{}: content must be a string or a list of parts", where));
  std::string text;
  int64_t parts = 0;
  for (const nlohmann::json& part : content) {
    if (part.is_string()) {
      append_piece(text, parts, part.get_ref<const std::string&>());
    } else if (part.is_object()) {
      const auto it = part.find("text");
      if (it == part.end()) continue;  // an image or other non-text part
      if (!it->is_string()) return invalid_input(fmt::format("{}: a part's \"text\" must be a string", where));
      append_piece(text, parts, it->get_ref<const std::string&>());
    } else {
      return invalid_input(fmt::format("{}: a content part must be an object or a string", where));
    }
  }
  return text;
}

// One JSONL document's text. `line` is 1-based, for messages.
Result<std::string> document_text(const nlohmann::json& object, int64_t line) {
  const std::string where = fmt::format("line {}", line);
  if (!object.is_object()) return invalid_input(fmt::format("{}: expected a JSON object", where));
  if (const auto text = object.find("text"); text != object.end()) {
    if (!text->is_string()) return invalid_input(fmt::format("{}: \"text\" must be a string", where));
    return text->get<std::string>();
  }
  // OpenAI-style {role, content} turns, or ShareGPT-style {from, value} turns.
  struct ChatField {
    const char* list;
    const char* content;
  };
  for (const ChatField field : {ChatField{"messages", "content"}, ChatField{"conversations", "value"}}) {
    const auto turns = object.find(field.list);
    if (turns == object.end()) continue;
    if (!turns->is_array()) return invalid_input(fmt::format("{}: \"{}\" must be a list of turns", where, field.list));
    std::string text;
    int64_t pieces = 0;
    for (size_t i = 0; i < turns->size(); ++i) {
      const nlohmann::json& turn = (*turns)[i];
      const std::string turn_where = fmt::format("{}, {}[{}]", where, field.list, i);
      if (!turn.is_object()) return invalid_input(fmt::format("{}: a turn must be an object", turn_where));
      const auto content = turn.find(field.content);
      if (content == turn.end()) continue;
      QUANT_ASSIGN_OR_RETURN(std::string piece, content_text(*content, turn_where));
      append_piece(text, pieces, piece);
    }
    return text;
  }
  return invalid_input(fmt::format("{}: no \"text\", \"messages\" or \"conversations\" field", where));
}

}  // namespace

TextFormat text_format_for(std::string_view path) {
  return ends_with(path, ".jsonl") || ends_with(path, ".ndjson") ? TextFormat::jsonl : TextFormat::plain;
}

std::string_view text_format_name(TextFormat format) { return format == TextFormat::jsonl ? "jsonl" : "text"; }

Status check_text_is_utf8(std::string_view text, const std::string& source) {
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '\0') {
      return Error(invalid_input("NUL byte: this looks like a binary file, not UTF-8 text")).in_file(source).at_offset(i);
    }
    const size_t length = utf8_sequence_length(text, i);
    if (length == 0) {
      return Error(invalid_input(fmt::format("byte 0x{:02x} is not valid UTF-8: calibration text must be UTF-8",
                                             static_cast<uint8_t>(text[i]))))
          .in_file(source)
          .at_offset(i);
    }
    i += length;
  }
  return Status::success();
}

Result<CalibrationText> parse_jsonl_text(std::string_view bytes, const std::string& source) {
  CalibrationText result;
  result.format = TextFormat::jsonl;
  int64_t line_number = 0;
  for (size_t start = 0; start < bytes.size();) {
    size_t end = bytes.find('\n', start);
    if (end == std::string_view::npos) end = bytes.size();
    std::string_view line = bytes.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(line.begin(), line.end());
    } catch (const nlohmann::json::exception& e) {
      return Error(invalid_input(fmt::format("line {}: not valid JSON ({})", line_number, json_error_text(e)))).in_file(source);
    }
    auto text = document_text(object, line_number);
    if (!text) return std::move(text).error().in_file(source);
    if (const Status utf8 = check_text_is_utf8(*text, source); !utf8) {
      // JSON strings are UTF-8 by definition; a NUL can still come from "\u0000".
      return Error(invalid_input(fmt::format("line {}: {}", line_number, utf8.error().reason()))).in_file(source);
    }
    append_piece(result.text, result.documents, *text);
  }
  if (result.text.empty()) {
    return Error(invalid_input(fmt::format("no text in {} lines of JSON", line_number))).in_file(source);
  }
  return result;
}

Result<CalibrationText> read_calibration_text(const std::string& path, TextFormat format) {
  // Only a regular file, opened without blocking (a FIFO is refused, not waited on); 4 GiB is far beyond any
  // calibration text and keeps a wrong path from filling memory.
  QUANT_ASSIGN_OR_RETURN(std::string bytes, read_input_file(path, uint64_t(1) << 32, "text file"));
  if (format == TextFormat::automatic) format = text_format_for(path);
  if (format == TextFormat::jsonl) return parse_jsonl_text(bytes, path);
  CalibrationText result;
  result.format = TextFormat::plain;
  result.documents = 1;
  // common/arg.cpp's -f handler removes one trailing newline.
  if (!bytes.empty() && bytes.back() == '\n') bytes.pop_back();
  QUANT_TRY(check_text_is_utf8(bytes, path));
  if (bytes.empty()) return Error(invalid_input("the text is empty")).in_file(path);
  result.text = std::move(bytes);
  return result;
}

}  // namespace quant
