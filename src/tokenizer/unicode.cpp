#include "tokenizer/unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/uversion.h>

#include <array>
#include <memory>

namespace quant::text {
namespace {

// llama.cpp's tables were generated from Unicode 15.1 (its unicode-data.cpp knows U+2EBF0, not U+1C89).
constexpr uint8_t kLlamaUnicodeMajor = 15;
constexpr uint8_t kLlamaUnicodeMinor = 1;

// How ICU's version relates to llama.cpp's, decided once.
struct IcuVersion {
  bool older_than_llama = false;  // ICU lacks characters llama.cpp knows
  bool newer_than_llama = false;  // ICU knows characters llama.cpp calls unassigned
};

const IcuVersion& icu_version() {
  static const IcuVersion version = [] {
    UVersionInfo unicode;
    u_getUnicodeVersion(unicode);
    IcuVersion v;
    const int icu = unicode[0] * 256 + unicode[1];
    const int llama = kLlamaUnicodeMajor * 256 + kLlamaUnicodeMinor;
    v.older_than_llama = icu < llama;
    v.newer_than_llama = icu > llama;
    return v;
  }();
  return version;
}

// True when ICU knows `cpt` but it was assigned after Unicode 15.1 (only possible with a newer ICU).
bool assigned_after_llama(uint32_t cpt) {
  if (!icu_version().newer_than_llama) return false;
  UVersionInfo age;
  u_charAge(static_cast<UChar32>(cpt), age);
  return age[0] > kLlamaUnicodeMajor || (age[0] == kLlamaUnicodeMajor && age[1] > kLlamaUnicodeMinor);
}

// The characters Unicode 15.1 added, which an ICU older than 15.1 reports as unassigned.
uint16_t unicode_15_1_addition(uint32_t cpt) {
  if ((cpt >= 0x2FFC && cpt <= 0x2FFF) || cpt == 0x31EF) return kFlagSymbol;  // ideographic description, So
  if (cpt >= 0x2EBF0 && cpt <= 0x2EE5D) return kFlagLetter;                  // CJK Extension I, Lo
  return 0;
}

uint16_t category_flag(uint32_t cpt) {
  switch (u_charType(static_cast<UChar32>(cpt))) {
    case U_UNASSIGNED:
      if (icu_version().older_than_llama) {
        if (const uint16_t added = unicode_15_1_addition(cpt)) return added;
      }
      return kFlagUndefined;
    case U_CONTROL_CHAR: case U_FORMAT_CHAR: case U_PRIVATE_USE_CHAR: case U_SURROGATE:
      return kFlagControl;
    case U_UPPERCASE_LETTER: case U_LOWERCASE_LETTER: case U_TITLECASE_LETTER: case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return kFlagLetter;
    case U_NON_SPACING_MARK: case U_ENCLOSING_MARK: case U_COMBINING_SPACING_MARK:
      return kFlagMark;
    case U_DECIMAL_DIGIT_NUMBER: case U_LETTER_NUMBER: case U_OTHER_NUMBER:
      return kFlagNumber;
    case U_SPACE_SEPARATOR: case U_LINE_SEPARATOR: case U_PARAGRAPH_SEPARATOR:
      return kFlagSeparator;
    case U_DASH_PUNCTUATION: case U_START_PUNCTUATION: case U_END_PUNCTUATION: case U_CONNECTOR_PUNCTUATION:
    case U_OTHER_PUNCTUATION: case U_INITIAL_PUNCTUATION: case U_FINAL_PUNCTUATION:
      return kFlagPunctuation;
    case U_MATH_SYMBOL: case U_CURRENCY_SYMBOL: case U_MODIFIER_SYMBOL: case U_OTHER_SYMBOL:
      return kFlagSymbol;
    default:
      return kFlagUndefined;
  }
}

uint16_t compute_flags(uint32_t cpt) {
  if (assigned_after_llama(cpt)) return kFlagUndefined;
  uint16_t flags = category_flag(cpt);
  if (u_isUWhiteSpace(static_cast<UChar32>(cpt))) flags |= kFlagWhitespace;
  return flags;
}

// The Basic Multilingual Plane, where nearly all text lives, is looked up in a table built on first use.
const std::array<uint16_t, 0x10000>& bmp_flags() {
  static const std::unique_ptr<std::array<uint16_t, 0x10000>> table = [] {
    auto t = std::make_unique<std::array<uint16_t, 0x10000>>();
    for (uint32_t cpt = 0; cpt < 0x10000; ++cpt) (*t)[cpt] = compute_flags(cpt);
    return t;
  }();
  return *table;
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes for U+0100
// onwards, in byte order.
struct ByteLevelTables {
  std::array<std::string, 256> byte_to_utf8;
  std::array<int16_t, 0x200> codepoint_to_byte;  // every code point used is below U+0144
};

const ByteLevelTables& byte_level_tables() {
  static const ByteLevelTables tables = [] {
    ByteLevelTables t;
    t.codepoint_to_byte.fill(-1);
    auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t cpt = printable(b) ? uint32_t(b) : uint32_t(256 + next++);
      append_utf8(cpt, t.byte_to_utf8[b]);
      t.codepoint_to_byte[cpt] = int16_t(b);
    }
    return t;
  }();
  return tables;
}

}  // namespace

uint16_t codepoint_flags(uint32_t cpt) {
  if (cpt < 0x10000) return bmp_flags()[cpt];
  if (cpt > 0x10FFFF) return kFlagUndefined;
  return compute_flags(cpt);
}

size_t valid_utf8_length(std::string_view text, size_t offset) {
  const uint8_t lead = static_cast<uint8_t>(text[offset]);
  size_t length = 0;
  if (lead < 0x80) return 1;
  if (lead < 0xC0) return 0;  // a continuation byte cannot start a sequence
  if (lead < 0xE0) {
    length = 2;
  } else if (lead < 0xF0) {
    length = 3;
  } else if (lead < 0xF8) {
    length = 4;
  } else {
    return 0;
  }
  if (offset + length > text.size()) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((static_cast<uint8_t>(text[offset + i]) & 0xC0) != 0x80) return 0;
  }
  return length;
}

uint32_t decode_utf8_at(std::string_view text, size_t& offset) {
  const size_t length = valid_utf8_length(text, offset);
  if (length == 0) {
    offset += 1;  // llama.cpp resumes at the next byte
    return kReplacementCharacter;
  }
  const uint8_t lead = static_cast<uint8_t>(text[offset]);
  uint32_t cpt = length == 1 ? lead : length == 2 ? (lead & 0x1Fu) : length == 3 ? (lead & 0x0Fu) : (lead & 0x07u);
  for (size_t k = 1; k < length; ++k) cpt = (cpt << 6) | (static_cast<uint8_t>(text[offset + k]) & 0x3Fu);
  offset += length;
  return cpt;
}

std::vector<uint32_t> decode_utf8(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  for (size_t offset = 0; offset < text.size();) out.push_back(decode_utf8_at(text, offset));
  return out;
}

size_t encode_utf8(uint32_t cpt, char out[4]) {
  if (cpt <= 0x7F) {
    out[0] = char(cpt);
    return 1;
  }
  if (cpt <= 0x7FF) {
    out[0] = char(0xC0 | (cpt >> 6));
    out[1] = char(0x80 | (cpt & 0x3F));
    return 2;
  }
  if (cpt <= 0xFFFF) {
    out[0] = char(0xE0 | (cpt >> 12));
    out[1] = char(0x80 | ((cpt >> 6) & 0x3F));
    out[2] = char(0x80 | (cpt & 0x3F));
    return 3;
  }
  if (cpt <= 0x10FFFF) {
    out[0] = char(0xF0 | (cpt >> 18));
    out[1] = char(0x80 | ((cpt >> 12) & 0x3F));
    out[2] = char(0x80 | ((cpt >> 6) & 0x3F));
    out[3] = char(0x80 | (cpt & 0x3F));
    return 4;
  }
  return 0;
}

bool append_utf8(uint32_t cpt, std::string& out) {
  char utf8[4];
  const size_t length = encode_utf8(cpt, utf8);
  out.append(utf8, length);
  return length > 0;
}

uint32_t nfd_first(uint32_t cpt) {
  if (cpt < 0xC0 || cpt > 0x10FFFF || (cpt >= 0xD800 && cpt <= 0xDFFF)) return cpt;  // nothing decomposes there
  if (assigned_after_llama(cpt)) return cpt;
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(status);
  if (U_FAILURE(status)) return cpt;
  icu::UnicodeString decomposition;
  if (!nfd->getDecomposition(static_cast<UChar32>(cpt), decomposition) || decomposition.isEmpty()) return cpt;
  return static_cast<uint32_t>(decomposition.char32At(0));
}

uint32_t to_lower(uint32_t cpt) {
  if (cpt < 0x80) return (cpt >= 'A' && cpt <= 'Z') ? cpt + 32 : cpt;
  if (cpt > 0x10FFFF || assigned_after_llama(cpt)) return cpt;
  return static_cast<uint32_t>(u_tolower(static_cast<UChar32>(cpt)));
}

bool is_han(uint32_t cpt) {
  return (cpt >= 0x4E00 && cpt <= 0x9FFF) || (cpt >= 0x3400 && cpt <= 0x4DBF) || (cpt >= 0x20000 && cpt <= 0x2A6DF) ||
         (cpt >= 0x2A700 && cpt <= 0x2B73F) || (cpt >= 0x2B740 && cpt <= 0x2B81F) ||
         (cpt >= 0x2B820 && cpt <= 0x2CEAF) || (cpt >= 0x2CEB0 && cpt <= 0x2EBEF) || (cpt >= 0xF900 && cpt <= 0xFAFF) ||
         (cpt >= 0x2F800 && cpt <= 0x2FA1F);
}

std::string_view byte_to_unicode(uint8_t byte) { return byte_level_tables().byte_to_utf8[byte]; }

int unicode_to_byte(uint32_t cpt) {
  return cpt < 0x200 ? byte_level_tables().codepoint_to_byte[cpt] : -1;
}

}  // namespace quant::text
