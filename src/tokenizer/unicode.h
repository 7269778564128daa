// Unicode as llama.cpp's tokenizer sees it (src/unicode.cpp at 34af94c), with the properties taken from ICU.
//
// llama.cpp decodes UTF-8 leniently and classifies code points with tables generated from UnicodeData.txt of
// Unicode 15.1. We take the general category, White_Space, the simple lowercase mapping and the canonical
// decomposition from ICU instead. On Debian 12's ICU 72 (Unicode 15.0) an exhaustive comparison over all
// 0x110000 code points found exactly one difference: the 627 characters Unicode 15.1 added (U+2FFC..U+2FFF,
// U+31EF: So; U+2EBF0..U+2EE5D: Lo), which llama.cpp classifies and ICU 72 calls unassigned. They are added
// here when ICU predates 15.1; with an ICU newer than 15.1, characters assigned after 15.1 are treated as
// unassigned, as llama.cpp's tables do (docs/tokenizer.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace quant::text {

// llama.cpp's code point flags (unicode_cpt_flags): one general-category bit, plus White_Space.
enum CodepointFlag : uint16_t {
  kFlagUndefined = 0x0001,    // Cn, and anything beyond U+10FFFF
  kFlagNumber = 0x0002,       // \p{N}
  kFlagLetter = 0x0004,       // \p{L}
  kFlagSeparator = 0x0008,    // \p{Z}
  kFlagMark = 0x0010,         // \p{M}
  kFlagPunctuation = 0x0020,  // \p{P}
  kFlagSymbol = 0x0040,       // \p{S}
  kFlagControl = 0x0080,      // \p{C} (Cc, Cf, Co, Cs)
  kFlagCategories = 0x00FF,
  kFlagWhitespace = 0x0100,   // White_Space
};

// The flags of a code point. Out-of-range values (> U+10FFFF) are kFlagUndefined, as in llama.cpp.
uint16_t codepoint_flags(uint32_t cpt);

// The replacement character llama.cpp substitutes for bytes it cannot decode.
inline constexpr uint32_t kReplacementCharacter = 0xFFFD;

// Bytes of the UTF-8 sequence a lead byte announces, as llama.cpp's unicode_len_utf8: 1 for ASCII and for
// continuation bytes, 2 for 0xC0-0xDF, 3 for 0xE0-0xEF, 4 for 0xF0-0xFF.
inline size_t utf8_sequence_length(char lead) {
  static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[static_cast<uint8_t>(lead) >> 4];
}

// The length of the UTF-8 sequence at `offset` when llama.cpp's unicode_cpt_from_utf8 accepts it (a lead byte
// and its continuation bytes, all present; overlong forms and surrogates pass), or 0 when it throws.
size_t valid_utf8_length(std::string_view text, size_t offset);

// The code point at `offset`, advancing it, as decode_utf8 decodes it (U+FFFD and one byte when invalid).
uint32_t decode_utf8_at(std::string_view text, size_t& offset);

// Decodes UTF-8 exactly as llama.cpp's unicode_cpts_from_utf8: a byte that does not start a complete sequence
// becomes U+FFFD and decoding resumes at the next byte; overlong forms and surrogates are decoded as they come,
// and a 4-byte lead 0xF5-0xF7 can give values up to 0x1FFFFF (which llama.cpp cannot encode back).
std::vector<uint32_t> decode_utf8(std::string_view text);

// Writes the UTF-8 encoding of `cpt` (at most 4 bytes) and returns its length; 0 beyond U+10FFFF, where
// llama.cpp throws.
size_t encode_utf8(uint32_t cpt, char out[4]);
// Appends the UTF-8 encoding of `cpt`; false (nothing appended) beyond U+10FFFF.
bool append_utf8(uint32_t cpt, std::string& out);

// The first code point of the canonical decomposition (llama.cpp's unicode_cpts_normalize_nfd keeps only it).
uint32_t nfd_first(uint32_t cpt);

// Simple lowercase mapping (UnicodeData field 13), as llama.cpp's unicode_tolower.
uint32_t to_lower(uint32_t cpt);

// llama.cpp's unicode_cpt_is_han: the CJK ideograph blocks it lists.
bool is_han(uint32_t cpt);

// GPT-2's byte-level encoding: the printable code point each byte stands for, as UTF-8 (1 or 2 bytes).
std::string_view byte_to_unicode(uint8_t byte);
// The byte a GPT-2 byte-level character (a code point) stands for; -1 when it is not one of the 256.
int unicode_to_byte(uint32_t cpt);

}  // namespace quant::text
