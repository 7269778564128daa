// UGM ("t5"): SentencePiece's unigram model as llama.cpp runs it (llm_tokenizer_ugm_session): normalize with
// the precompiled character map (a XOR-compressed double array of replacements, from the model's
// SentencePiece normalizer), escape and merge whitespace, then the best-scoring segmentation by Viterbi over a
// token trie, unknown code points scoring 10 below the lowest normal token.
#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cstring>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace quant {
namespace {

constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";

// A bounds-checked view of the XCDA entries: BASE in bits 10-30 (shifted by bit 9), LCHECK in bits 0-7 (and
// 31), LEAF in bit 8, values in bits 0-30.
class CharsmapView {
 public:
  explicit CharsmapView(const std::vector<uint32_t>& nodes) : nodes_(nodes) {}
  Result<uint32_t> base(size_t i) const {
    QUANT_ASSIGN_OR_RETURN(const uint32_t node, at(i));
    return (node >> 10) << ((node & (1U << 9)) >> 6);
  }
  Result<uint32_t> lcheck(size_t i) const {
    QUANT_ASSIGN_OR_RETURN(const uint32_t node, at(i));
    return node & ((1U << 31) | 0xFF);
  }
  Result<bool> leaf(size_t i) const {
    QUANT_ASSIGN_OR_RETURN(const uint32_t node, at(i));
    return ((node >> 8) & 1) != 0;
  }
  Result<uint32_t> value(size_t i) const {
    QUANT_ASSIGN_OR_RETURN(const uint32_t node, at(i));
    return node & ((1U << 31) - 1);
  }

 private:
  Result<uint32_t> at(size_t i) const {
    if (i >= nodes_.size()) {
      return invalid_input("precompiled charsmap: index out of its XCDA array (llama.cpp throws here)");
    }
    return nodes_[i];
  }
  const std::vector<uint32_t>& nodes_;
};

struct Normalized {
  std::string_view text;
  size_t consumed;
};

}  // namespace

Status TokenizerImpl::build_ugm() {
  const std::vector<uint8_t>& map = vocab.precompiled_charsmap;
  if (!map.empty()) {
    if (map.size() < 4) {
      return invalid_input("metadata key 'tokenizer.ggml.precompiled_charsmap' is too small for its size header")
          .in_file(vocab.source);
    }
    uint32_t blob_size = 0;
    std::memcpy(&blob_size, map.data(), 4);
    if (uint64_t(blob_size) + 4 >= map.size()) {
      return invalid_input(fmt::format("metadata key 'tokenizer.ggml.precompiled_charsmap' announces {} bytes of "
                                       "XCDA entries but holds {} bytes", blob_size, map.size() - 4))
          .in_file(vocab.source);
    }
    charsmap_nodes.resize(blob_size / 4);
    std::memcpy(charsmap_nodes.data(), map.data() + 4, charsmap_nodes.size() * 4);
    charsmap_replacements.assign(reinterpret_cast<const char*>(map.data()) + 4 + blob_size, map.size() - 4 - blob_size);
  }
  float min_score = FLT_MAX;
  for (size_t id = 0; id < texts.size(); ++id) {
    const uint32_t attr = attributes[id];
    if (attr & kTokenAttrNormal) min_score = std::min(min_score, scores[id]);
    if (attr & (kTokenAttrNormal | kTokenAttrUserDefined | kTokenAttrUnused)) ugm_tokens.insert(texts[id], TokenId(id));
    if (attr & kTokenAttrUserDefined) ugm_user_defined.insert(texts[id], TokenId(id));
  }
  ugm_unknown_score = min_score - 10.0f;
  return Status::success();
}

Status TokenizerImpl::encode_ugm(std::string_view input, std::vector<TokenId>& out) const {
  // Normalization (llama.cpp's normalize / normalize_prefix).
  auto normalize_prefix = [&](size_t offset) -> Result<Normalized> {
    // A prefix along a user-defined token's trie path passes unchanged (llama.cpp takes the deepest trie node
    // reached, whether or not a token ends there).
    size_t depth = 0;
    for (int32_t node = 0; offset + depth < input.size();) {
      node = ugm_user_defined.child(node, uint8_t(input[offset + depth]));
      if (node < 0) break;
      ++depth;
    }
    if (depth > 0) return Normalized{input.substr(offset, depth), depth};

    size_t longest_length = 0;
    size_t longest_offset = 0;
    if (!charsmap_nodes.empty()) {
      const CharsmapView view(charsmap_nodes);
      QUANT_ASSIGN_OR_RETURN(uint32_t node, view.base(0));
      for (size_t i = offset; i < input.size(); ++i) {
        const uint8_t c = uint8_t(input[i]);
        if (c == 0) break;
        node ^= c;
        QUANT_ASSIGN_OR_RETURN(const uint32_t check, view.lcheck(node));
        if (check != c) break;
        QUANT_ASSIGN_OR_RETURN(const bool is_leaf, view.leaf(node));
        QUANT_ASSIGN_OR_RETURN(const uint32_t base, view.base(node));
        node ^= base;
        if (is_leaf) {
          longest_length = i - offset + 1;
          QUANT_ASSIGN_OR_RETURN(const uint32_t value, view.value(node));
          longest_offset = value;
        }
      }
    }
    if (longest_length > 0) {
      if (longest_offset >= charsmap_replacements.size()) {
        return invalid_input("precompiled charsmap: replacement index out of range (llama.cpp throws here)");
      }
      const size_t end = charsmap_replacements.find('\0', longest_offset);
      if (end == std::string::npos) {
        return invalid_input("precompiled charsmap: unterminated replacement (llama.cpp throws here)");
      }
      return Normalized{std::string_view(charsmap_replacements).substr(longest_offset, end - longest_offset),
                        longest_length};
    }
    // A valid UTF-8 sequence passes unchanged; otherwise one byte becomes U+FFFD.
    if (const size_t length = text::valid_utf8_length(input, offset); length > 0) {
      return Normalized{input.substr(offset, length), length};
    }
    return Normalized{"\xEF\xBF\xBD", 1};
  };

  const std::string_view space = escape_whitespaces ? kEscapedSpace : std::string_view(" ");
  const bool prepend_space = add_space_prefix;  // llama.cpp never sets treat_whitespace_as_suffix from a GGUF
  const bool merge_spaces = remove_extra_whitespaces;
  std::string normalized;
  normalized.reserve(input.size() * 3);
  bool space_prepended = false;
  bool in_word = false;
  for (size_t offset = 0; offset < input.size();) {
    QUANT_ASSIGN_OR_RETURN(const Normalized part, normalize_prefix(offset));
    for (const char c : part.text) {
      if (c != ' ') {
        if (!in_word) {
          in_word = true;
          if ((prepend_space && !space_prepended) || merge_spaces) {
            normalized.append(space);
            space_prepended = true;
          }
        }
        normalized.push_back(c);
      } else {
        in_word = false;
        if (!merge_spaces) normalized.append(space);
      }
    }
    offset += part.consumed;
  }
  if (normalized.empty()) return Status::success();

  // Viterbi over byte offsets.
  struct Best {
    TokenId token;
    size_t from;
    double score;
  };
  const size_t n = normalized.size();
  std::vector<Best> best(n + 1, Best{unk, 0, -DBL_MAX});
  best[0] = Best{unk, 0, 0.0};
  for (size_t offset = 0; offset < n;) {
    const size_t char_length = std::min(text::utf8_sequence_length(normalized[offset]), n - offset);
    bool single_codepoint_token = false;
    const Best current = best[offset];
    size_t end = offset;
    int32_t node = ugm_tokens.child(0, uint8_t(normalized[end++]));
    while (end <= n && node >= 0) {
      if (ugm_tokens.has_value(node)) {
        if (end - offset == char_length) single_codepoint_token = true;
        const TokenId id = ugm_tokens.value(node);
        // User-defined tokens score 0 (llama.cpp: makes them likelier than normal, log-probability scores).
        const double score = current.score + (has_attribute(id, kTokenAttrUserDefined) ? 0.0 : double(scores[size_t(id)]));
        if (score > best[end].score) best[end] = Best{id, offset, score};
      }
      if (end >= n) break;
      node = ugm_tokens.child(node, uint8_t(normalized[end++]));
    }
    if (!single_codepoint_token) {
      const double score = current.score + double(ugm_unknown_score);
      const size_t after = offset + char_length;
      if (score > best[after].score) best[after] = Best{unk, offset, score};
    }
    offset += char_length;
  }

  // Back from the end; consecutive unknown tokens become one.
  const size_t first = out.size();
  bool previous_unknown = false;
  for (size_t at = n;;) {
    const Best& step = best[at];
    const bool unknown = step.token == unk;
    if (!(previous_unknown && unknown)) out.push_back(step.token);
    if (step.from == 0) break;
    previous_unknown = unknown;
    at = step.from;
  }
  std::reverse(out.begin() + std::ptrdiff_t(first), out.end());
  return Status::success();
}

}  // namespace quant
