// The tokenizers pipeline for the converter's pre-tokenizer hash: normalizer, pre-tokenizer steps and the BPE
// word merge, following the Rust crate's semantics (tokenizers/src/pre_tokenizers, normalizers, models/bpe).
#include "hf/tokenizer_pipeline.h"

#define PCRE2_CODE_UNIT_WIDTH 32
#include <fmt/format.h>
#include <pcre2.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <array>

#include "tokenizer/unicode.h"

namespace quant::hf {
namespace {

using Piece = std::u32string;

// ByteLevel's own split, GPT-2's pattern (tokenizers' pre_tokenizers/byte_level.rs).
constexpr std::string_view kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum class Behavior { removed, isolated, contiguous, merged_with_previous, merged_with_next };

struct Segment {
  size_t begin = 0, end = 0;
  bool match = false;
};

std::u32string to_u32(std::string_view utf8) {
  const std::vector<uint32_t> cpts = text::decode_utf8(utf8);
  return std::u32string(cpts.begin(), cpts.end());
}

std::string to_utf8(std::u32string_view cpts) {
  std::string out;
  char buffer[4];
  for (char32_t c : cpts) out.append(buffer, text::encode_utf8(uint32_t(c), buffer));
  return out;
}

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};

// tokenizers' SplitDelimiterBehavior applied to the matches and gaps of one piece (normalizer.rs split()).
std::vector<Segment> apply_behavior(std::vector<Segment> segments, Behavior behavior) {
  std::vector<Segment> out;
  switch (behavior) {
    case Behavior::removed:
      for (const Segment& s : segments) {
        if (!s.match) out.push_back(s);
      }
      return out;
    case Behavior::isolated:
      return segments;
    case Behavior::contiguous: {
      bool previous_match = false;
      for (const Segment& s : segments) {
        if (s.match && previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.match;
      }
      return out;
    }
    case Behavior::merged_with_previous: {
      bool previous_match = false;
      for (const Segment& s : segments) {
        if (s.match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.begin, s.end, false});
        }
        previous_match = s.match;
      }
      return out;
    }
    case Behavior::merged_with_next: {
      bool previous_match = false;
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back({it->begin, it->end, false});
        }
        previous_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      return out;
    }
  }
  return out;
}

// Cuts `piece` at `segments` and appends the non-empty parts.
void cut(const Piece& piece, const std::vector<Segment>& segments, std::vector<Piece>& out) {
  for (const Segment& s : segments) {
    if (s.end > s.begin) out.push_back(piece.substr(s.begin, s.end - s.begin));
  }
}

Result<Behavior> behavior_named(const Json& name, const std::string& file) {
  static constexpr std::array<std::pair<std::string_view, Behavior>, 5> kNames = {{
      {"Removed", Behavior::removed},
      {"Isolated", Behavior::isolated},
      {"Contiguous", Behavior::contiguous},
      {"MergedWithPrevious", Behavior::merged_with_previous},
      {"MergedWithNext", Behavior::merged_with_next},
  }};
  if (name.is_string()) {
    for (const auto& [text, behavior] : kNames) {
      if (name.get_ref<const std::string&>() == text) return behavior;
    }
  }
  return Error(invalid_input(fmt::format("pre_tokenizer Split has an unknown behavior {}", name.dump()))).in_file(file);
}

bool flag(const Json& object, const char* key, bool fallback) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

}  // namespace

uint32_t byte_level_char(uint8_t b) {
  // Printable Latin-1 bytes stand for themselves; the others take U+0100 onwards, in byte order.
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> table{};
    uint32_t next = 256;
    for (int i = 0; i < 256; ++i) {
      const bool printable = (i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
      table[size_t(i)] = printable ? uint32_t(i) : next++;
    }
    return table;
  }();
  return kTable[b];
}

int byte_level_byte(uint32_t cpt) {
  for (int b = 0; b < 256; ++b) {
    if (byte_level_char(uint8_t(b)) == cpt) return b;
  }
  return -1;
}

// One pre-tokenizer step.
class PipelineStep {
 public:
  enum class Kind { split_regex, split_string, byte_level, digits };
  Kind kind = Kind::split_regex;
  std::unique_ptr<pcre2_code, CodeDeleter> regex;
  std::u32string literal;
  Behavior behavior = Behavior::isolated;
  bool invert = false;
  bool add_prefix_space = false;
  bool use_regex = true;
  bool individual_digits = false;

  // Splits every piece of `pieces` (tokenizers' PreTokenizedString::split).
  Status apply(std::vector<Piece>& pieces, const std::string& file) const {
    std::vector<Piece> out;
    for (Piece& piece : pieces) {
      switch (kind) {
        case Kind::split_regex:
        case Kind::split_string: {
          QUANT_ASSIGN_OR_RETURN(std::vector<Segment> segments, find(piece, file));
          cut(piece, apply_behavior(std::move(segments), behavior), out);
          break;
        }
        case Kind::digits: {
          std::vector<Segment> segments;
          for (size_t i = 0; i < piece.size(); ++i) {
            const int8_t type = u_charType(UChar32(piece[i]));
            const bool numeric = type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER;
            if (!segments.empty() && !segments.back().match && !numeric) {
              segments.back().end = i + 1;
            } else {
              segments.push_back({i, i + 1, numeric});
            }
          }
          cut(piece, apply_behavior(std::move(segments), individual_digits ? Behavior::isolated : Behavior::contiguous),
              out);
          break;
        }
        case Kind::byte_level: {
          if (add_prefix_space && (piece.empty() || piece[0] != U' ')) piece.insert(piece.begin(), U' ');
          std::vector<Piece> parts;
          if (use_regex) {
            QUANT_ASSIGN_OR_RETURN(std::vector<Segment> segments, find(piece, file));
            cut(piece, segments, parts);
          } else if (!piece.empty()) {
            parts.push_back(piece);
          }
          for (const Piece& part : parts) {
            Piece encoded;
            for (char c : to_utf8(part)) encoded += char32_t(byte_level_char(uint8_t(c)));
            out.push_back(std::move(encoded));
          }
          break;
        }
      }
    }
    pieces = std::move(out);
    return Status::success();
  }

 private:
  // The matches of the pattern in `piece` and the gaps between them (tokenizers' Pattern::find_matches);
  // empty matches are skipped, as the crate's match iterator steps over them.
  Result<std::vector<Segment>> find(const Piece& piece, const std::string& file) const {
    std::vector<Segment> segments;
    size_t previous = 0;
    auto add_match = [&](size_t begin, size_t end) {
      if (begin != previous) segments.push_back({previous, begin, invert});
      segments.push_back({begin, end, !invert});
      previous = end;
    };
    if (kind == Kind::split_string) {
      for (size_t at = 0; !literal.empty() && (at = piece.find(literal, at)) != Piece::npos; at += literal.size()) {
        add_match(at, at + literal.size());
      }
    } else {
      std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
          pcre2_match_data_create_from_pattern(regex.get(), nullptr), &pcre2_match_data_free);
      std::unique_ptr<pcre2_match_context, decltype(&pcre2_match_context_free)> context(
          pcre2_match_context_create(nullptr), &pcre2_match_context_free);
      if (!data || !context) return impossible("out of memory for a regex match");
      pcre2_set_match_limit(context.get(), 10'000'000);
      pcre2_set_depth_limit(context.get(), 100'000);
      size_t offset = 0;
      while (offset < piece.size()) {
        const int rc = pcre2_match(regex.get(), reinterpret_cast<PCRE2_SPTR>(piece.data()), piece.size(), offset, 0,
                                   data.get(), context.get());
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          PCRE2_UCHAR message[256];
          pcre2_get_error_message(rc, message, 256);
          return Error(
                     impossible(fmt::format("a pre_tokenizer regex failed to run: {}",
                                            to_utf8(std::u32string_view(reinterpret_cast<const char32_t*>(message))))))
              .in_file(file);
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
        const size_t begin = ovector[0], end = ovector[1];
        if (end <= begin) {
          offset = begin + 1;
          continue;
        }
        add_match(begin, end);
        offset = end;
      }
    }
    if (previous != piece.size()) segments.push_back({previous, piece.size(), invert});
    return segments;
  }
};

namespace {

Result<std::unique_ptr<pcre2_code, CodeDeleter>> compile(std::string_view pattern, const std::string& file) {
  const std::u32string units = to_u32(pattern);
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(units.data()), units.size(), PCRE2_UTF | PCRE2_UCP,
                                   &error, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, 256);
    return Error(impossible(fmt::format("pre_tokenizer regex {} cannot be compiled (at character {}): {}", pattern,
                                        error_offset,
                                        to_utf8(std::u32string_view(reinterpret_cast<const char32_t*>(message))))))
        .in_file(file);
  }
  return std::unique_ptr<pcre2_code, CodeDeleter>(code);
}

Status add_pre_tokenizer(const Json& spec, const std::string& file, int depth,
                         std::vector<std::shared_ptr<const PipelineStep>>& steps) {
  if (spec.is_null()) return Status::success();
  if (depth > 8) return Error(impossible("pre_tokenizer Sequences nest too deep")).in_file(file);
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return Error(invalid_input("a pre_tokenizer is not an object with a type")).in_file(file);
  }
  const std::string& type = spec["type"].get_ref<const std::string&>();
  auto step = std::make_shared<PipelineStep>();
  if (type == "Sequence") {
    const auto list = spec.find("pretokenizers");
    if (list == spec.end() || !list->is_array()) {
      return Error(invalid_input("pre_tokenizer Sequence has no pretokenizers list")).in_file(file);
    }
    for (const Json& child : *list) QUANT_TRY(add_pre_tokenizer(child, file, depth + 1, steps));
    return Status::success();
  }
  if (type == "Split") {
    const auto pattern = spec.find("pattern");
    if (pattern == spec.end() || !pattern->is_object()) {
      return Error(invalid_input("pre_tokenizer Split has no pattern")).in_file(file);
    }
    if (pattern->contains("Regex") && (*pattern)["Regex"].is_string()) {
      step->kind = PipelineStep::Kind::split_regex;
      QUANT_ASSIGN_OR_RETURN(step->regex, compile((*pattern)["Regex"].get_ref<const std::string&>(), file));
    } else if (pattern->contains("String") && (*pattern)["String"].is_string()) {
      step->kind = PipelineStep::Kind::split_string;
      step->literal = to_u32((*pattern)["String"].get_ref<const std::string&>());
    } else {
      return Error(invalid_input("pre_tokenizer Split's pattern is neither a Regex nor a String")).in_file(file);
    }
    QUANT_ASSIGN_OR_RETURN(step->behavior, behavior_named(spec.value("behavior", Json()), file));
    step->invert = flag(spec, "invert", false);
  } else if (type == "ByteLevel") {
    step->kind = PipelineStep::Kind::byte_level;
    step->add_prefix_space = flag(spec, "add_prefix_space", true);
    step->use_regex = flag(spec, "use_regex", true);
    if (step->use_regex) {
      QUANT_ASSIGN_OR_RETURN(step->regex, compile(kGpt2Pattern, file));
    }
  } else if (type == "Digits") {
    step->kind = PipelineStep::Kind::digits;
    step->individual_digits = flag(spec, "individual_digits", false);
  } else {
    return Error(impossible(
                     fmt::format("pre_tokenizer {} is not supported for the converter's pre-tokenizer hash", type)))
        .in_file(file);
  }
  steps.push_back(std::move(step));
  return Status::success();
}

Status add_normalizer(const Json& spec, const std::string& file, int depth, std::vector<int>& forms) {
  if (spec.is_null()) return Status::success();
  if (depth > 8) return Error(impossible("normalizer Sequences nest too deep")).in_file(file);
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return Error(invalid_input("a normalizer is not an object with a type")).in_file(file);
  }
  const std::string& type = spec["type"].get_ref<const std::string&>();
  static constexpr std::array<std::string_view, 4> kForms = {"NFC", "NFD", "NFKC", "NFKD"};
  for (size_t i = 0; i < kForms.size(); ++i) {
    if (type == kForms[i]) {
      forms.push_back(int(i));
      return Status::success();
    }
  }
  if (type == "Sequence") {
    const auto list = spec.find("normalizers");
    if (list == spec.end() || !list->is_array()) {
      return Error(invalid_input("normalizer Sequence has no normalizers list")).in_file(file);
    }
    for (const Json& child : *list) QUANT_TRY(add_normalizer(child, file, depth + 1, forms));
    return Status::success();
  }
  return Error(impossible(fmt::format("normalizer {} is not supported for the converter's pre-tokenizer hash", type)))
      .in_file(file);
}

const icu::Normalizer2* normalizer_for(int form, UErrorCode& status) {
  switch (form) {
    case 0:
      return icu::Normalizer2::getNFCInstance(status);
    case 1:
      return icu::Normalizer2::getNFDInstance(status);
    case 2:
      return icu::Normalizer2::getNFKCInstance(status);
    default:
      return icu::Normalizer2::getNFKDInstance(status);
  }
}

// The BPE model on one word (tokenizers' models/bpe/model.rs merge_word and word.rs merge_all): characters
// looked up one by one, then the lowest-ranked adjacent pair merged first, leftmost on ties, until none is left.
Status merge_word(const BpeModel& model, const std::string& word, std::vector<int64_t>& out) {
  if (model.ignore_merges) {
    if (const auto it = model.vocab.find(word); it != model.vocab.end()) {
      out.push_back(it->second);
      return Status::success();
    }
  }
  std::vector<int64_t> symbols;
  bool previous_unknown = false;
  for (size_t at = 0; at < word.size();) {
    size_t length = text::valid_utf8_length(word, at);
    if (length == 0) length = 1;
    const std::string character = word.substr(at, length);
    at += length;
    if (const auto it = model.vocab.find(character); it != model.vocab.end()) {
      symbols.push_back(it->second);
      previous_unknown = false;
      continue;
    }
    if (model.byte_fallback) {
      std::vector<int64_t> bytes;
      for (char c : character) {
        const auto it = model.vocab.find(fmt::format("<0x{:02X}>", uint8_t(c)));
        if (it == model.vocab.end()) break;
        bytes.push_back(it->second);
      }
      if (bytes.size() == character.size()) {
        symbols.insert(symbols.end(), bytes.begin(), bytes.end());
        previous_unknown = false;
        continue;
      }
    }
    if (model.unk_id) {
      if (!(model.fuse_unk && previous_unknown)) symbols.push_back(*model.unk_id);
      previous_unknown = true;
    }
  }
  while (symbols.size() > 1) {
    size_t best = symbols.size();
    std::pair<int64_t, int64_t> best_merge{INT64_MAX, 0};
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const uint64_t key = (uint64_t(symbols[i]) << 32) | uint64_t(symbols[i + 1]);
      const auto it = model.merges.find(key);
      if (it != model.merges.end() && it->second.first < best_merge.first) {
        best_merge = it->second;
        best = i;
      }
    }
    if (best == symbols.size()) break;
    symbols[best] = best_merge.second;
    symbols.erase(symbols.begin() + std::ptrdiff_t(best) + 1);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
  return Status::success();
}

}  // namespace

Result<TokenizerPipeline> TokenizerPipeline::create(const Json& normalizer, const Json& pre_tokenizer, BpeModel model,
                                                    const std::string& file) {
  TokenizerPipeline pipeline;
  pipeline.file_ = file;
  QUANT_TRY(add_normalizer(normalizer, file, 0, pipeline.normalizers_));
  QUANT_TRY(add_pre_tokenizer(pre_tokenizer, file, 0, pipeline.steps_));
  pipeline.model_ = std::move(model);
  return pipeline;
}

Result<std::string> TokenizerPipeline::normalize(std::string_view text) const {
  if (normalizers_.empty()) return std::string(text);
  icu::UnicodeString unicode = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), int32_t(text.size())));
  for (int form : normalizers_) {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* normalizer = normalizer_for(form, status);
    if (U_SUCCESS(status)) unicode = normalizer->normalize(unicode, status);
    if (U_FAILURE(status))
      return Error(impossible(fmt::format("ICU normalization failed: {}", u_errorName(status)))).in_file(file_);
  }
  std::string out;
  unicode.toUTF8String(out);
  return out;
}

Result<std::vector<int64_t>> TokenizerPipeline::encode(std::string_view text) const {
  QUANT_ASSIGN_OR_RETURN(const std::string normalized, normalize(text));
  std::vector<Piece> pieces;
  if (!normalized.empty()) pieces.push_back(to_u32(normalized));
  for (const auto& step : steps_) QUANT_TRY(step->apply(pieces, file_));
  std::vector<int64_t> ids;
  for (const Piece& piece : pieces) QUANT_TRY(merge_word(model_, to_utf8(piece), ids));
  return ids;
}

}  // namespace quant::hf
