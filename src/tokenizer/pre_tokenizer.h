// BPE pre-tokenizers: how llama.cpp cuts a text into words before merging (src/unicode.cpp's
// unicode_regex_split at 34af94c), and the table of every `tokenizer.ggml.pre` value it accepts.
//
// A pre-tokenizer is llama.cpp's list of regexes, applied one after another, each to every piece the previous
// one left (matches and the gaps between them both become pieces). A regex llama.cpp recognises by its text is
// run by a hand-written splitter reproducing llama.cpp's own (GPT-2, Llama 3, Qwen2, Qwen3.5, Kimi-K2, digit
// groups, newline runs); any other runs on PCRE2 exactly as llama.cpp runs it on std::regex:
//   - a regex naming Unicode categories (\p{L}, \p{N}, \p{P}, \p{M}, \p{S}, \p{Lu}...) sees the "collapsed" text,
//     where every non-ASCII code point is one unit: 0x0B for whitespace, 0xD1..0xD5 for N, L, P, M, S, 0xD0 for
//     anything else; each \p{X} becomes that unit plus X's ASCII members (as llama.cpp lists them);
//   - any other regex sees the code points, non-ASCII whitespace replaced by 0x0B.
// Matching is ECMAScript's leftmost-first backtracking, which PCRE2 shares for these patterns ($ only at the
// end, \s \d \w ASCII-only as in the C locale), and iteration follows std::regex_iterator (an empty match is
// retried as a non-empty one at the same place before moving on).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "quant/error.h"

namespace quant::text {

// What llama.cpp does besides splitting, per pre-tokenizer (flags set in llama_vocab::impl::load).
struct PreTokenizerSpec {
  std::string_view type;                 // llama.cpp's LLAMA_VOCAB_PRE_TYPE_<type>, lower case: "llama3", "gpt2"...
  std::vector<std::string_view> names;   // the tokenizer.ggml.pre values that select it
  std::vector<std::string_view> regexes; // llama.cpp's regex list, in order
  bool ignore_merges = false;            // a word that is a token is taken whole
  bool add_bos = false;                  // default of add_bos_token becomes true
  bool add_sep = false;                  // default of add_sep_token becomes true
  bool no_bos = false;                   // the default BOS id is cleared (ChatGLM)
  bool escape_whitespaces = false;       // spaces become U+2581 before splitting (SPM-style BPE)
  bool byte_encode = true;               // words are GPT-2 byte-level encoded before merging
  bool lowercase_default_off = false;    // the normalizer's lowercase default becomes false (whitespace model)
};

// The spec for a tokenizer.ggml.pre value (already resolved: "" means llama.cpp's "default"); null if unknown.
const PreTokenizerSpec* find_pre_tokenizer(std::string_view name);
// Every name find_pre_tokenizer() knows, in table order.
std::vector<std::string_view> pre_tokenizer_names();

class RegexStep;

// The words of a text, back to back in one buffer (no allocation per word).
struct Words {
  std::string bytes;
  std::vector<size_t> ends;  // end offset of each word in bytes
  size_t size() const { return ends.size(); }
  std::string_view operator[](size_t i) const {
    const size_t begin = i == 0 ? 0 : ends[i - 1];
    return std::string_view(bytes).substr(begin, ends[i] - begin);
  }
};

// A compiled pre-tokenizer. Immutable; split() may run on many threads at once.
class PreTokenizer {
 public:
  // Compiles llama.cpp's regex list. A regex PCRE2 cannot compile is an internal error (ErrorKind::impossible).
  static Result<PreTokenizer> create(const std::vector<std::string_view>& regexes);

  // Cuts `text` into words as llama.cpp's unicode_regex_split: pieces are re-encoded from the decoded code
  // points (so undecodable bytes are U+FFFD), then GPT-2 byte-level encoded when `byte_encode`. Fails where
  // llama.cpp throws: a code point beyond U+10FFFF, or a regex that exhausts PCRE2's resources.
  Status split(std::string_view text, bool byte_encode, Words& words) const;

 private:
  std::vector<std::shared_ptr<const RegexStep>> steps_;
  bool collapse_ = false;  // some regex names a Unicode category
};

}  // namespace quant::text
