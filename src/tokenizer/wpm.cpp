// WPM ("bert"): BERT's WordPiece as llama.cpp runs it (llm_tokenizer_wpm_session): normalize (first code
// point of the canonical decomposition and accents dropped when stripping accents, lowercase), split on
// whitespace, punctuation, ASCII symbols and CJK ideographs, then greedy longest match of each word with a
// leading U+2581 (llama.cpp's GGUF stores word-initial pieces with it and continuations without "##").
#include <fmt/format.h>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace quant {
namespace {

// llama.cpp's list (from Hugging Face's BERT), including its 0x2B920 where the CJK block starts at 0x2B820.
bool is_chinese_char(uint32_t cpt) {
  return (cpt >= 0x04E00 && cpt <= 0x09FFF) || (cpt >= 0x03400 && cpt <= 0x04DBF) ||
         (cpt >= 0x20000 && cpt <= 0x2A6DF) || (cpt >= 0x2A700 && cpt <= 0x2B73F) ||
         (cpt >= 0x2B740 && cpt <= 0x2B81F) || (cpt >= 0x2B920 && cpt <= 0x2CEAF) ||
         (cpt >= 0x0F900 && cpt <= 0x0FAFF) || (cpt >= 0x2F800 && cpt <= 0x2FA1F);
}

}  // namespace

Status TokenizerImpl::encode_wpm(std::string_view text, std::vector<TokenId>& out) const {
  // Normalize and split into words.
  std::vector<std::string> words(1);
  for (uint32_t cpt : text::decode_utf8(text)) {
    if (strip_accents) cpt = text::nfd_first(cpt);
    const uint16_t flags = text::codepoint_flags(cpt);
    if (flags & text::kFlagWhitespace) {
      if (!words.back().empty()) words.emplace_back();
      continue;
    }
    if (cpt == 0 || cpt == text::kReplacementCharacter || (flags & text::kFlagControl)) continue;
    if (strip_accents && (flags & text::kFlagMark)) continue;
    std::string utf8;
    if (!text::append_utf8(lowercase ? text::to_lower(cpt) : cpt, utf8)) {
      return invalid_input(fmt::format("the text decodes to code point U+{:X}, beyond U+10FFFF (llama.cpp's "
                                       "tokenizer aborts on it)", cpt));
    }
    if ((flags & text::kFlagPunctuation) || (cpt < 0x7F && (flags & text::kFlagSymbol)) || is_chinese_char(cpt)) {
      if (!words.back().empty()) words.emplace_back();
      words.back() = utf8;  // a word of its own
      words.emplace_back();
    } else {
      words.back() += utf8;
    }
  }
  if (words.back().empty()) words.pop_back();

  // Longest match from each position, bytes at a time; a word with an unmatched position is one unknown token.
  const size_t longest = max_token_length;
  for (const std::string& word : words) {
    if (word.empty()) continue;
    const std::string prefixed = "\xE2\x96\x81" + word;
    const size_t n = prefixed.size();
    const size_t before = out.size();
    for (size_t i = 0; i < n; ++i) {
      bool matched = false;
      for (size_t j = std::min(n, i + longest + 1); j > i; --j) {
        const TokenId id = find(std::string_view(prefixed).substr(i, j - i));
        if (id != kNoToken) {
          out.push_back(id);
          matched = true;
          i = j - 1;
          break;
        }
      }
      if (!matched) {
        out.resize(before);
        break;
      }
    }
    if (out.size() == before) out.push_back(unk);
  }
  return Status::success();
}

}  // namespace quant
