#include "tokenizer/custom_splits.h"

#include "tokenizer/unicode.h"

namespace quant::text {
namespace {

constexpr uint32_t kOutOfRange = 0xFFFFFFFF;

// One piece being split: code points and flags read as llama.cpp's _get_cpt/_get_flags (out-of-range
// positions read as kOutOfRange / no flags), and the pieces cut so far.
class Piece {
 public:
  Piece(const std::vector<uint32_t>& cpts, const std::vector<uint16_t>& flags, size_t begin, size_t end,
        std::vector<size_t>& out)
      : cpts_(cpts), flags_(flags), begin_(begin), end_(end), last_cut_(begin), out_(out) {}

  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  uint32_t cpt(size_t pos) const { return inside(pos) ? cpts_[pos] : kOutOfRange; }
  uint16_t flags(size_t pos) const { return inside(pos) ? flags_[pos] : 0; }
  bool letter(size_t pos) const { return flags(pos) & kFlagLetter; }
  bool number(size_t pos) const { return flags(pos) & kFlagNumber; }
  bool mark(size_t pos) const { return flags(pos) & kFlagMark; }
  bool whitespace(size_t pos) const { return flags(pos) & kFlagWhitespace; }
  size_t last_cut() const { return last_cut_; }

  // Ends the current word at `pos` (llama.cpp's _add_token); returns its length, empty words are dropped.
  size_t cut(size_t pos) {
    const size_t length = pos - last_cut_;
    if (length > 0) out_.push_back(length);
    last_cut_ = pos;
    return length;
  }

 private:
  bool inside(size_t pos) const { return pos >= begin_ && pos < end_; }
  const std::vector<uint32_t>& cpts_;
  const std::vector<uint16_t>& flags_;
  size_t begin_, end_, last_cut_;
  std::vector<size_t>& out_;
};

bool is_cr_or_lf(uint32_t cpt) { return cpt == '\r' || cpt == '\n'; }

// 's 't 'm 'd 're 've 'll at pos (an apostrophe): the contraction's length, or 0. `fold` lowercases (Llama 3 and
// its kin match case-insensitively, GPT-2 does not).
size_t contraction_length(const Piece& p, size_t pos, bool fold) {
  if (p.cpt(pos) != '\'' || pos + 1 >= p.end()) return 0;
  auto at = [&](size_t i) { return fold ? to_lower(p.cpt(i)) : p.cpt(i); };
  const uint32_t next = at(pos + 1);
  if (next == 's' || next == 't' || next == 'm' || next == 'd') return 2;
  if (pos + 2 < p.end()) {
    const uint32_t after = at(pos + 2);
    if ((next == 'r' && after == 'e') || (next == 'v' && after == 'e') || (next == 'l' && after == 'l')) return 3;
  }
  return 0;
}

// The whitespace tail llama.cpp's Llama 3 family shares: \s*[\r\n]+ | \s+(?!\S) | \s+ | a single code point.
void split_whitespace_llama3(Piece& p, size_t& pos) {
  size_t count = 0;
  size_t after_last_newline = 0;
  while (p.whitespace(pos + count)) {
    if (is_cr_or_lf(p.cpt(pos + count))) after_last_newline = pos + count + 1;
    ++count;
  }
  if (after_last_newline > 0) {
    pos = after_last_newline;
  } else if (count > 1 && p.cpt(pos + count) != kOutOfRange) {
    pos += count - 1;
  } else if (count > 0) {
    pos += count;
  } else {
    ++pos;
  }
  p.cut(pos);
}

// ` ?[^\s\p{L}\p{N}]+[\r\n]*` as the Llama 3 family runs it: `start_flags` decides entry (llama.cpp tests the
// current code point's flags, Kimi-K2 the look-ahead's), `exclude` the letter-like classes.
bool split_other_llama3(Piece& p, size_t& pos, uint16_t entry_flags, uint16_t exclude) {
  const uint32_t cpt = p.cpt(pos);
  uint16_t ahead = cpt == ' ' ? p.flags(pos + 1) : p.flags(pos);
  if ((ahead & exclude) || entry_flags == 0) return false;
  pos += (cpt == ' ');
  while (!(ahead & exclude) && ahead != 0) ahead = p.flags(++pos);
  while (is_cr_or_lf(p.cpt(pos))) ++pos;
  p.cut(pos);
  return true;
}

// \p{N}{1,3}: digit runs cut every three from the left.
void split_digits_by_three(Piece& p, size_t& pos) {
  size_t group_start = pos;
  while (p.number(pos)) {
    if (++pos - group_start >= 3) {
      p.cut(pos);
      group_start = pos;
    }
  }
  p.cut(pos);
}

void split_gpt2(Piece& p) {
  for (size_t pos = p.begin(); pos < p.end();) {
    const uint32_t cpt = p.cpt(pos);
    if (const size_t n = contraction_length(p, pos, /*fold=*/false)) {
      pos += p.cut(pos + n);
      continue;
    }
    uint16_t ahead = cpt == ' ' ? p.flags(pos + 1) : p.flags(pos);
    if (ahead & kFlagLetter) {  // ' ?\p{L}+'
      pos += (cpt == ' ');
      while (ahead & kFlagLetter) ahead = p.flags(++pos);
      p.cut(pos);
      continue;
    }
    if (ahead & kFlagNumber) {  // ' ?\p{N}+'
      pos += (cpt == ' ');
      while (ahead & kFlagNumber) ahead = p.flags(++pos);
      p.cut(pos);
      continue;
    }
    constexpr uint16_t kWordLike = kFlagWhitespace | kFlagLetter | kFlagNumber;
    if (!(ahead & kWordLike) && ahead != 0) {  // ' ?[^\s\p{L}\p{N}]+'
      pos += (cpt == ' ');
      while (!(ahead & kWordLike) && ahead != 0) ahead = p.flags(++pos);
      p.cut(pos);
      continue;
    }
    size_t count = 0;
    while (p.whitespace(pos + count)) ++count;
    if (count > 1 && p.cpt(pos + count) != kOutOfRange) {  // '\s+(?!\S)'
      pos += count - 1;
      p.cut(pos);
      continue;
    }
    if (count > 0) {  // '\s+' (llama.cpp's splitter has it though the regex does not)
      pos += count;
      p.cut(pos);
      continue;
    }
    p.cut(++pos);
  }
}

// Llama 3, Qwen2 and Qwen3.5 differ in the digit rule and in whether marks join letters.
void split_llama3_family(Piece& p, CustomSplit kind) {
  const bool marks_join_letters = kind == CustomSplit::qwen35;
  const uint16_t letter_like = marks_join_letters ? uint16_t(kFlagLetter | kFlagMark) : uint16_t(kFlagLetter);
  for (size_t pos = p.begin(); pos < p.end();) {
    const uint32_t cpt = p.cpt(pos);
    const uint16_t flags = p.flags(pos);
    if (const size_t n = contraction_length(p, pos, /*fold=*/true)) {
      pos += p.cut(pos + n);
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+  (Qwen3.5: [\p{L}\p{M}]+)
    if (!(is_cr_or_lf(cpt) || (flags & kFlagNumber))) {
      if ((flags & letter_like) || (p.flags(pos + 1) & letter_like)) {
        ++pos;
        while (p.flags(pos) & letter_like) ++pos;
        p.cut(pos);
        continue;
      }
    }
    if (flags & kFlagNumber) {
      if (kind == CustomSplit::llama3) {
        split_digits_by_three(p, pos);
      } else {
        p.cut(++pos);  // \p{N}: one digit at a time
      }
      continue;
    }
    if (split_other_llama3(p, pos, flags, uint16_t(kFlagWhitespace | kFlagNumber | letter_like))) continue;
    split_whitespace_llama3(p, pos);
  }
}

void split_kimi_k2(Piece& p) {
  auto plain_letter = [&](size_t pos) { return p.letter(pos) && !is_han(p.cpt(pos)); };
  for (size_t pos = p.begin(); pos < p.end();) {
    const uint32_t cpt = p.cpt(pos);
    const uint16_t flags = p.flags(pos);
    if (is_han(cpt)) {  // \p{Han}+
      while (is_han(p.cpt(pos))) ++pos;
      p.cut(pos);
      continue;
    }
    const bool may_lead = !(is_cr_or_lf(cpt) || (flags & (kFlagLetter | kFlagNumber)));
    if (plain_letter(pos) || (may_lead && plain_letter(pos + 1))) {
      // [^\r\n\p{L}\p{N}]?[letters]+ with an optional contraction after the letters
      bool has_leading = false;
      if (may_lead) {
        has_leading = true;
        ++pos;
      }
      bool has_letters = false;
      while (plain_letter(pos)) {
        has_letters = true;
        ++pos;
      }
      if (has_letters || (!has_leading && plain_letter(pos))) {
        if (!has_letters) ++pos;
        while (plain_letter(pos)) ++pos;
        pos += contraction_length(p, pos, /*fold=*/true);
        p.cut(pos);
        continue;
      }
      if (has_leading) --pos;
    }
    if (flags & kFlagNumber) {
      split_digits_by_three(p, pos);
      continue;
    }
    // Kimi-K2 tests the look-ahead's flags where Llama 3 tests the current code point's.
    const uint16_t ahead = cpt == ' ' ? p.flags(pos + 1) : flags;
    if (split_other_llama3(p, pos, ahead, uint16_t(kFlagWhitespace | kFlagLetter | kFlagNumber))) continue;
    split_whitespace_llama3(p, pos);
  }
}

// Digit runs cut so that the first group takes the remainder (1 or 2 digits) and the rest go in threes. As in
// llama.cpp, text before a digit run stays attached to the run's first group.
void split_digit_groups(Piece& p) {
  for (size_t pos = p.begin(); pos < p.end();) {
    if (!p.number(pos)) {
      ++pos;
      continue;
    }
    const size_t digits_begin = pos;
    while (pos < p.end() && p.number(pos)) ++pos;
    const size_t count = pos - digits_begin;
    size_t cut = digits_begin + count % 3;
    if (count % 3 > 0) p.cut(cut);
    while (cut < digits_begin + count) {
      cut += 3;
      p.cut(cut);
    }
  }
  if (p.last_cut() < p.end()) p.cut(p.end());
}

void split_newline_runs(Piece& p) {
  size_t pos = p.begin();
  while (pos < p.end()) {
    const bool newline = p.cpt(pos) == '\n';
    while (pos < p.end() && (p.cpt(pos) == '\n') == newline) ++pos;
    p.cut(pos);
  }
}

}  // namespace

CustomSplit custom_split_for(std::string_view regex) {
  static constexpr std::string_view kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
  static constexpr std::string_view kLlama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+";
  static constexpr std::string_view kLlama3Adapted =
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static constexpr std::string_view kQwen2 =
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static constexpr std::string_view kQwen35 =
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
      "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  if (regex == kGpt2) return CustomSplit::gpt2;
  if (regex == kLlama3 || regex == kLlama3Adapted) return CustomSplit::llama3;
  if (regex == kQwen2) return CustomSplit::qwen2;
  if (regex == kQwen35) return CustomSplit::qwen35;
  if (regex == "\\p{Han}+") return CustomSplit::kimi_k2;
  if (regex == "\\p{AFMoE_digits}" || regex == "\\d{1,3}(?=(?:\\d{3})*\\b)") return CustomSplit::digit_groups;
  if (regex == "[^\\n]+|[\\n]+") return CustomSplit::newlines;
  return CustomSplit::none;
}

std::vector<size_t> run_custom_split(CustomSplit kind, const std::vector<uint32_t>& cpts,
                                     const std::vector<uint16_t>& flags, const std::vector<size_t>& offsets) {
  std::vector<size_t> out;
  out.reserve(offsets.size());
  size_t start = 0;
  for (const size_t length : offsets) {
    Piece piece(cpts, flags, start, start + length, out);
    start += length;
    switch (kind) {
      case CustomSplit::gpt2: split_gpt2(piece); break;
      case CustomSplit::llama3:
      case CustomSplit::qwen2:
      case CustomSplit::qwen35: split_llama3_family(piece, kind); break;
      case CustomSplit::kimi_k2: split_kimi_k2(piece); break;
      case CustomSplit::digit_groups: split_digit_groups(piece); break;
      case CustomSplit::newlines: split_newline_runs(piece); break;
      case CustomSplit::none: break;
    }
  }
  return out;
}

}  // namespace quant::text
