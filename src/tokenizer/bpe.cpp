// BPE ("gpt2" and kin): words from the pre-tokenizer, then the lowest-ranked merge first, as llama.cpp's
// llm_tokenizer_bpe_session. Merges are looked up by piece ids (every text a merge mentions gets an id once,
// when the tokenizer is built), so tokenizing allocates no strings per merge.
#include <fmt/format.h>

#include <algorithm>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace quant {
namespace {

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t start;  // byte offset in the word
  uint32_t length;
  int32_t piece;   // piece id of the text, -1 when no merge mentions it and it is no token
};

struct Bigram {
  int32_t left;
  int32_t right;
  int32_t rank;
  int32_t left_piece;
  int32_t right_piece;
  int32_t result;
};

// llama.cpp's queue order: lowest rank first, then leftmost. Kept as a binary heap with the same comparator and
// the same push/pop sequence, so even ties pop in llama.cpp's order.
struct BigramOrder {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return l.rank > r.rank || (l.rank == r.rank && l.left > r.left);
  }
};

uint64_t pair_key(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }

int32_t piece_id(const TokenizerImpl& t, std::string_view text) {
  if (const TokenId id = t.find(text); id != kNoToken) return id;
  const auto it = t.merges.extra_ids.find(text);
  return it == t.merges.extra_ids.end() ? -1 : it->second;
}

int32_t intern(TokenizerImpl& t, std::string_view text) {
  if (const int32_t id = piece_id(t, text); id >= 0) return id;
  const int32_t id = int32_t(t.texts.size() + t.merges.extra_pieces.size());
  t.merges.extra_pieces.emplace_back(text);
  t.merges.extra_ids.emplace(std::string_view(t.merges.extra_pieces.back()), id);
  return id;
}

}  // namespace

Status TokenizerImpl::build_bpe_merges() {
  if (vocab.merges.empty()) {
    if (vocab.pre == "kimi-k2") return Status::success();  // llama.cpp lets Kimi-K2 go without merges
    return invalid_input("metadata key 'tokenizer.ggml.merges' missing: a BPE vocabulary needs its merges")
        .in_file(vocab.source);
  }
  merges.by_pair.reserve(vocab.merges.size());
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    // llama.cpp copies the strings through `const char *`: a NUL byte ends them.
    const std::string_view merge = std::string_view(vocab.merges[rank]).substr(0, vocab.merges[rank].find('\0'));
    // llama.cpp splits at the first space after the first byte (a merge may start with a space).
    const size_t space = merge.find(' ', 1);
    if (space == std::string_view::npos) {
      return invalid_input(fmt::format("metadata key 'tokenizer.ggml.merges' entry {} ('{}') is not two pieces "
                                       "separated by a space", rank, merge))
          .in_file(vocab.source);
    }
    const std::string_view left = merge.substr(0, space);
    const std::string_view right = merge.substr(space + 1);
    const int32_t left_id = intern(*this, left);
    const int32_t right_id = intern(*this, right);
    const int32_t result_id = intern(*this, std::string(left) + std::string(right));
    // The first rank of a pair wins (llama.cpp's bpe_ranks.emplace).
    merges.by_pair.emplace(pair_key(left_id, right_id), BpeMerges::Merge{int32_t(rank), result_id});
  }
  return Status::success();
}

void TokenizerImpl::encode_bpe_word(std::string_view word, std::vector<TokenId>& out) const {
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Bigram> queue;
  symbols.clear();
  queue.clear();

  auto add_bigram = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t left_piece = symbols[size_t(left)].piece;
    const int32_t right_piece = symbols[size_t(right)].piece;
    if (left_piece < 0 || right_piece < 0) return;
    const auto it = merges.by_pair.find(pair_key(left_piece, right_piece));
    if (it == merges.by_pair.end()) return;
    queue.push_back(Bigram{left, right, it->second.rank, left_piece, right_piece, it->second.result});
    std::push_heap(queue.begin(), queue.end(), BigramOrder());
  };

  size_t offset = 0;
  const bool whole_word_is_token = find(word) != kNoToken;
  if ((ignore_merges && whole_word_is_token) ||
      (pre_spec->type == "gemma4" && word.find_first_not_of('\n') == std::string_view::npos && whole_word_is_token)) {
    // llama.cpp takes a word that is a token whole (ignore_merges), and Gemma 4's newline runs.
    symbols.push_back(Symbol{-1, -1, 0, uint32_t(word.size()), find(word)});
    offset = word.size();
  }
  while (offset < word.size()) {
    const size_t length = std::min(word.size() - offset, text::utf8_sequence_length(word[offset]));
    const int32_t index = int32_t(symbols.size());
    symbols.push_back(Symbol{index - 1, offset + length == word.size() ? -1 : index + 1, uint32_t(offset),
                             uint32_t(length), piece_id(*this, word.substr(offset, length))});
    offset += length;
  }
  for (size_t i = 1; i < symbols.size(); ++i) add_bigram(int32_t(i - 1), int32_t(i));

  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), BigramOrder());
    const Bigram bigram = queue.back();
    queue.pop_back();
    Symbol& left = symbols[size_t(bigram.left)];
    Symbol& right = symbols[size_t(bigram.right)];
    // Outdated: either side merged since (llama.cpp compares the texts; piece ids identify texts).
    if (left.length == 0 || right.length == 0 || left.piece != bigram.left_piece ||
        right.piece != bigram.right_piece) {
      continue;
    }
    left.length += right.length;
    left.piece = bigram.result;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[size_t(right.next)].prev = bigram.left;
    add_bigram(left.prev, bigram.left);
    add_bigram(bigram.left, left.next);
  }

  for (const Symbol& symbol : symbols) {
    if (symbol.length == 0) continue;
    if (symbol.piece >= 0 && size_t(symbol.piece) < texts.size()) {
      out.push_back(symbol.piece);
      continue;
    }
    // Not a token: each byte's token, where one exists (llama.cpp silently drops the rest).
    for (uint32_t i = 0; i < symbol.length; ++i) {
      const uint8_t byte = uint8_t(word[symbol.start + i]);
      TokenId id;
      if (byte_encode) {
        const char c = char(byte);
        id = find(std::string_view(&c, 1));
      } else {
        id = find(fmt::format("<0x{:02X}>", byte));
      }
      if (id != kNoToken) out.push_back(id);
    }
  }
}

Status TokenizerImpl::encode_bpe_words(std::string_view text, std::vector<TokenId>& out) const {
  std::vector<std::string> words;
  QUANT_TRY(pre_tokenizer.split(text, byte_encode, words));
  for (const std::string& word : words) encode_bpe_word(word, out);
  return Status::success();
}

Status TokenizerImpl::encode_bpe(std::string_view text, std::vector<TokenId>& out) const {
  switch (bpe_session) {
    case BpeSession::plain:
      return encode_bpe_words(text, out);
    case BpeSession::whitespace: {
      // llama.cpp's whitespace model: drop White_Space, lowercase if the normalizer says so, BPE each run.
      std::string segment;
      for (const uint32_t cpt : text::decode_utf8(text)) {
        if (text::codepoint_flags(cpt) & text::kFlagWhitespace) {
          if (!segment.empty()) QUANT_TRY(encode_bpe_words(segment, out));
          segment.clear();
        } else if (!text::append_utf8(lowercase ? text::to_lower(cpt) : cpt, segment)) {
          return invalid_input(fmt::format("the text decodes to code point U+{:X}, beyond U+10FFFF (llama.cpp's "
                                           "tokenizer aborts on it)", cpt));
        }
      }
      if (!segment.empty()) QUANT_TRY(encode_bpe_words(segment, out));
      return Status::success();
    }
    case BpeSession::hybrid_dna: {
      // Text outside <dna>...</dna> is plain BPE; inside, uppercased 6-mers (the last padded with 'A') are
      // looked up with llama.cpp's reserved U+E000 suffix, <oov> when absent.
      const TokenId open_id = find("<dna>"), close_id = find("</dna>"), oov_id = find("<oov>");
      if (open_id == kNoToken || close_id == kNoToken || oov_id == kNoToken) return encode_bpe_words(text, out);
      constexpr std::string_view kOpen = "<dna>", kClose = "</dna>", kMarker = "\xEE\x80\x80";
      constexpr size_t kMer = 6;
      size_t pos = 0;
      while (pos < text.size()) {
        const size_t start = text.find(kOpen, pos);
        if (start == std::string_view::npos) {
          QUANT_TRY(encode_bpe_words(text.substr(pos), out));
          break;
        }
        if (start > pos) QUANT_TRY(encode_bpe_words(text.substr(pos, start - pos), out));
        out.push_back(open_id);
        const size_t content = start + kOpen.size();
        const size_t end = text.find(kClose, content);
        std::string sequence(text.substr(content, (end == std::string_view::npos ? text.size() : end) - content));
        for (char& c : sequence) {
          if (c >= 'a' && c <= 'z') c = char(c - 32);
        }
        for (size_t i = 0; i < sequence.size(); i += kMer) {
          std::string mer = sequence.substr(i, kMer);
          mer.append(kMer - mer.size(), 'A');
          const TokenId id = find(mer + std::string(kMarker));
          out.push_back(id != kNoToken ? id : oov_id);
        }
        if (end == std::string_view::npos) break;
        out.push_back(close_id);
        pos = end + kClose.size();
      }
      return Status::success();
    }
  }
  return Status::success();
}

}  // namespace quant
