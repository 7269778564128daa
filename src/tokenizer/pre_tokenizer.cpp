#include "tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 32
#include <fmt/format.h>
#include <pcre2.h>

#include <array>

#include "tokenizer/custom_splits.h"
#include "tokenizer/unicode.h"

namespace quant::text {
namespace {

// llama.cpp's category placeholders in the collapsed text, and the ASCII members it lists for each category
// in the collapsed regex (k_ucat_cpt / k_ucat_map in its unicode.cpp). The lists are llama.cpp's, not
// Unicode's: \p{S} leaves out '~', which Unicode files under Sm.
struct CollapsedCategory {
  std::string_view name;  // as written in a regex
  uint16_t flag;
};
constexpr std::array<CollapsedCategory, 10> kCollapsedCategories = {{
    {"\\p{N}", kFlagNumber}, {"\\p{L}", kFlagLetter}, {"\\p{P}", kFlagPunctuation}, {"\\p{M}", kFlagMark},
    {"\\p{S}", kFlagSymbol}, {"\\p{Lu}", kFlagLetter}, {"\\p{Ll}", kFlagLetter}, {"\\p{Lt}", kFlagLetter},
    {"\\p{Lm}", kFlagLetter}, {"\\p{Lo}", kFlagLetter},
}};

constexpr uint32_t kCollapsedWhitespace = 0x0B;
constexpr uint32_t kCollapsedOther = 0xD0;

uint32_t collapsed_unit(uint16_t flag) {
  switch (flag) {
    case kFlagNumber: return 0xD1;
    case kFlagLetter: return 0xD2;
    case kFlagPunctuation: return 0xD3;
    case kFlagMark: return 0xD4;
    case kFlagSymbol: return 0xD5;
    default: return kCollapsedOther;
  }
}

std::string_view collapsed_ascii_members(uint16_t flag) {
  switch (flag) {
    case kFlagNumber: return "0-9";
    case kFlagLetter: return "A-Za-z";
    case kFlagPunctuation: return "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}";
    case kFlagSymbol: return "\\$\\+<->^`\\|";
    default: return "";  // no mark below U+0080
  }
}

bool names_a_category(std::string_view regex) {
  for (const CollapsedCategory& category : kCollapsedCategories) {
    if (regex.find(category.name) != std::string_view::npos) return true;
  }
  return false;
}

const CollapsedCategory* category_named(std::string_view name) {
  for (const CollapsedCategory& category : kCollapsedCategories) {
    if (category.name == name) return &category;
  }
  return nullptr;
}

// The regex llama.cpp runs on the collapsed text: each \p{X} becomes X's placeholder plus its ASCII members,
// bracketed unless already inside a bracket expression (the bracket tracking is llama.cpp's: a '[' or ']' not
// preceded by a backslash).
std::u32string collapse_regex(std::string_view regex) {
  std::u32string out;
  bool inside = false;
  for (size_t i = 0; i < regex.size(); ++i) {
    const char c = regex[i];
    if (c == '[' && (i == 0 || regex[i - 1] != '\\')) {
      out += U'[';
      inside = true;
      continue;
    }
    if (inside && c == ']' && regex[i - 1] != '\\') {
      out += U']';
      inside = false;
      continue;
    }
    if (c == '\\' && i + 3 < regex.size() && regex[i + 1] == 'p' && regex[i + 2] == '{') {
      const size_t close = regex.find('}', i + 3);
      if (close != std::string_view::npos && close <= i + 10) {
        if (const CollapsedCategory* category = category_named(regex.substr(i, close - i + 1))) {
          if (!inside) out += U'[';
          out += char32_t(collapsed_unit(category->flag));
          for (const char member : collapsed_ascii_members(category->flag)) out += char32_t(uint8_t(member));
          if (!inside) out += U']';
          i = close;
          continue;
        }
      }
    }
    out += char32_t(uint8_t(c));
  }
  return out;
}

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};

// What matching needs besides the pattern, made once per thread (a JIT stack is an mmap).
struct MatchResources {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match{nullptr, &pcre2_match_data_free};
  std::unique_ptr<pcre2_match_context, decltype(&pcre2_match_context_free)> context{nullptr,
                                                                                    &pcre2_match_context_free};
  std::unique_ptr<pcre2_jit_stack, decltype(&pcre2_jit_stack_free)> jit_stack{nullptr, &pcre2_jit_stack_free};
};

const MatchResources& match_resources() {
  thread_local const MatchResources resources = [] {
    MatchResources r;
    r.match.reset(pcre2_match_data_create(16, nullptr));  // llama.cpp's regexes have fewer than 16 groups
    r.context.reset(pcre2_match_context_create(nullptr));
    // Long runs of repeated groups need a deep backtracking stack: the JIT stack grows to 64 MiB, and the
    // interpreter (the fallback) may use 1 GiB of heap. No step limit: a regex that backtracks quadratically
    // (deepseek-llm's \s+$ on long whitespace runs) is slow in llama.cpp's std::regex too, not an error.
    r.jit_stack.reset(pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr));
    if (r.context) {
      if (r.jit_stack) pcre2_jit_stack_assign(r.context.get(), nullptr, r.jit_stack.get());
      pcre2_set_heap_limit(r.context.get(), 1024 * 1024);  // KiB
      pcre2_set_match_limit(r.context.get(), UINT32_MAX);
      pcre2_set_depth_limit(r.context.get(), UINT32_MAX);
    }
    return r;
  }();
  return resources;
}

}  // namespace

// One regex of a pre-tokenizer: a llama.cpp custom splitter, or a compiled PCRE2 pattern.
class RegexStep {
 public:
  CustomSplit custom = CustomSplit::none;
  bool collapsed = false;  // runs on the collapsed text
  std::unique_ptr<pcre2_code, CodeDeleter> code;
  std::string source;  // llama.cpp's regex, for messages

  // The pieces of each range of `subject` (lengths in `offsets`): matches and the gaps between them, as
  // llama.cpp's unicode_regex_split_stl cuts them with std::regex_iterator.
  Result<std::vector<size_t>> split(const std::u32string& subject, const std::vector<size_t>& offsets) const {
    const MatchResources& resources = match_resources();
    if (resources.match == nullptr || resources.context == nullptr) {
      return impossible("out of memory preparing the pre-tokenizer regex");
    }
    pcre2_match_data* const match = resources.match.get();
    pcre2_match_context* const context = resources.context.get();

    auto search = [&](PCRE2_SPTR range, size_t length, size_t from, uint32_t options, size_t* begin,
                      size_t* end) -> Result<bool> {
      int rc = pcre2_match(code.get(), range, length, from, options, match, context);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        rc = pcre2_match(code.get(), range, length, from, options | PCRE2_NO_JIT, match, context);
      }
      if (rc == PCRE2_ERROR_NOMATCH) return false;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, 256);
        std::string text;
        for (size_t i = 0; i < 256 && message[i] != 0; ++i) text.push_back(char(message[i]));
        return impossible(fmt::format("pre-tokenizer regex '{}' failed on a {}-character piece: {}", source,
                                      length, text));
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
      *begin = ovector[0];
      *end = ovector[1];
      return true;
    };

    std::vector<size_t> out;
    out.reserve(offsets.size());
    size_t start = 0;
    for (const size_t length : offsets) {
      PCRE2_SPTR range = reinterpret_cast<PCRE2_SPTR>(subject.data() + start);
      size_t piece_start = 0;  // end of the last match, relative to the range
      size_t from = 0;         // where the next search starts
      bool after_empty = false;
      while (true) {
        size_t begin = 0, end = 0;
        bool found = false;
        if (after_empty) {
          // std::regex_iterator after an empty match: first a non-empty match right here...
          QUANT_ASSIGN_OR_RETURN(found, search(range, length, from, PCRE2_ANCHORED | PCRE2_NOTEMPTY_ATSTART,
                                               &begin, &end));
          if (!found) {
            if (from == length) break;
            ++from;  // ...else move on one and search as usual.
          }
        }
        if (!found) {
          QUANT_ASSIGN_OR_RETURN(found, search(range, length, from, 0, &begin, &end));
          if (!found) break;
        }
        if (begin > piece_start) out.push_back(begin - piece_start);
        out.push_back(end - begin);  // llama.cpp keeps empty matches as empty pieces
        piece_start = end;
        from = end;
        after_empty = begin == end;
      }
      if (piece_start < length) out.push_back(length - piece_start);
      start += length;
    }
    return out;
  }
};

Result<PreTokenizer> PreTokenizer::create(const std::vector<std::string_view>& regexes) {
  PreTokenizer pre;
  for (const std::string_view regex : regexes) {
    auto step = std::make_shared<RegexStep>();
    step->source = std::string(regex);
    step->custom = custom_split_for(regex);
    if (names_a_category(regex)) pre.collapse_ = true;
    if (step->custom == CustomSplit::none) {
      std::u32string pattern;
      step->collapsed = names_a_category(regex);
      if (step->collapsed) {
        pattern = collapse_regex(regex);
      } else {
        for (const uint32_t cpt : decode_utf8(regex)) pattern += char32_t(cpt);
      }
      int error_code = 0;
      PCRE2_SIZE error_offset = 0;
      // ECMAScript's $ matches only at the very end; \s \d \w stay ASCII (the C locale std::regex uses).
      const uint32_t options = PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP;
      pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                                       &error_code, &error_offset, nullptr);
      if (code == nullptr) {
        return impossible(fmt::format("pre-tokenizer regex '{}' does not compile (PCRE2 error {} at {})", regex,
                                      error_code, error_offset));
      }
      step->code.reset(code);
      pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT (unsupported CPU) the interpreter runs
    }
    pre.steps_.push_back(std::move(step));
  }
  return pre;
}

Status PreTokenizer::split(std::string_view text, bool byte_encode, Words& words) const {
  const std::vector<uint32_t> cpts = decode_utf8(text);
  std::vector<uint16_t> flags(cpts.size());
  for (size_t i = 0; i < cpts.size(); ++i) flags[i] = codepoint_flags(cpts[i]);

  // The two texts llama.cpp's std::regex calls see, made only when some regex needs them.
  std::u32string collapsed;
  std::u32string wide;
  auto collapsed_text = [&]() -> const std::u32string& {
    if (collapsed.empty() && !cpts.empty()) {
      collapsed.resize(cpts.size());
      for (size_t i = 0; i < cpts.size(); ++i) {
        if (cpts[i] < 128) {
          collapsed[i] = char32_t(cpts[i]);
        } else if (flags[i] & kFlagWhitespace) {
          collapsed[i] = kCollapsedWhitespace;
        } else {
          collapsed[i] = collapsed_unit(uint16_t(flags[i] & kFlagCategories));
        }
      }
    }
    return collapsed;
  };
  auto wide_text = [&]() -> const std::u32string& {
    if (wide.empty() && !cpts.empty()) {
      wide.resize(cpts.size());
      for (size_t i = 0; i < cpts.size(); ++i) {
        wide[i] = (cpts[i] > 0x7F && (flags[i] & kFlagWhitespace)) ? kCollapsedWhitespace : char32_t(cpts[i]);
      }
    }
    return wide;
  };

  std::vector<size_t> offsets = {cpts.size()};
  for (const auto& step : steps_) {
    if (step->custom != CustomSplit::none) {
      std::vector<size_t> pieces = run_custom_split(step->custom, cpts, flags, offsets);
      // llama.cpp falls back to the regex when its splitter returns nothing, which happens only for empty text.
      if (!pieces.empty()) offsets = std::move(pieces);
      continue;
    }
    QUANT_ASSIGN_OR_RETURN(offsets, step->split(step->collapsed ? collapsed_text() : wide_text(), offsets));
  }

  words.bytes.clear();
  words.ends.clear();
  words.bytes.reserve(text.size() * (byte_encode ? 2 : 1));
  words.ends.reserve(offsets.size());
  size_t start = 0;
  char utf8[4];
  for (const size_t length : offsets) {
    for (size_t i = start; i < start + length; ++i) {
      // The piece is re-encoded from its code points (undecodable bytes came out as U+FFFD).
      const size_t n = encode_utf8(cpts[i], utf8);
      if (n == 0) {
        return invalid_input(fmt::format("the text decodes to code point U+{:X}, beyond U+10FFFF (llama.cpp's "
                                         "BPE tokenizer aborts on it)", cpts[i]));
      }
      if (byte_encode) {
        for (size_t k = 0; k < n; ++k) words.bytes += byte_to_unicode(uint8_t(utf8[k]));
      } else {
        words.bytes.append(utf8, n);
      }
    }
    start += length;
    words.ends.push_back(words.bytes.size());
  }
  return Status::success();
}

}  // namespace quant::text
