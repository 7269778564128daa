// The pre-tokenizer regexes llama.cpp does not hand to std::regex but to hand-written splitters
// (unicode_regex_split_custom in its src/unicode.cpp), reproduced here case by case: their results differ from
// the regex's in corner cases (a lone trailing space, digits after other text...), and llama.cpp's ids follow
// the splitters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace quant::text {

enum class CustomSplit {
  none,          // not special: run the regex
  gpt2,          // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
  llama3,        // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  qwen2,         // as llama3 with \p{N} for \p{N}{1,3}
  qwen35,        // as qwen2 with [\p{L}\p{M}]+ for \p{L}+
  kimi_k2,       // "\p{Han}+": Han runs, then Kimi-K2's letter/number/punctuation rules
  digit_groups,  // "\p{AFMoE_digits}" and Tiny Aya's \d{1,3}(?=(?:\d{3})*\b): digit runs cut in threes from the end
  newlines,      // [^\n]+|[\n]+
};

// The splitter llama.cpp uses for a regex (compared by text, as llama.cpp does), or CustomSplit::none.
CustomSplit custom_split_for(std::string_view regex);

// Splits each piece of `cpts` (consecutive lengths in `offsets`) with `kind`; `flags` holds codepoint_flags()
// of every code point. Returns the new piece lengths (never zero).
std::vector<size_t> run_custom_split(CustomSplit kind, const std::vector<uint32_t>& cpts,
                                     const std::vector<uint16_t>& flags, const std::vector<size_t>& offsets);

}  // namespace quant::text
