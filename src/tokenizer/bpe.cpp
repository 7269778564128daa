// BPE ("gpt2" and kin): words from the pre-tokenizer, then the lowest-ranked merge first, as llama.cpp's
// llm_tokenizer_bpe_session. Merges are looked up by piece ids (token ids, plus ids for merge results that are
// not tokens, given once when the tokenizer is built), so tokenizing allocates no strings per merge.
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

int32_t piece_id(const TokenizerImpl& t, std::string_view text) {
  if (const TokenId id = t.find(text); id != kNoToken) return id;
  return t.merges.extra_ids.find(text, -1);
}

int32_t intern(TokenizerImpl& t, std::string_view text) {
  if (const int32_t id = piece_id(t, text); id >= 0) return id;
  const int32_t id = int32_t(t.texts.size() + t.merges.extra_pieces.size());
  t.merges.extra_pieces.emplace_back(text);
  t.merges.extra_ids.insert(t.merges.extra_pieces.back(), id);
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
    // Every merge of real vocabularies joins two tokens; one that names anything else is a damaged list.
    const TokenId left_id = find(left);
    const TokenId right_id = find(right);
    if (left_id == kNoToken || right_id == kNoToken) {
      return invalid_input(fmt::format("metadata key 'tokenizer.ggml.merges' entry {} ('{}') names '{}', which is "
                                       "not a token", rank, merge, left_id == kNoToken ? left : right))
          .in_file(vocab.source);
    }
    const int32_t result_id = intern(*this, std::string(left) + std::string(right));
    // The first rank of a pair wins (llama.cpp's bpe_ranks.emplace).
    merges.by_pair.insert(left_id, right_id, text::PairIndex::Entry{int32_t(rank), result_id});
  }
  return Status::success();
}

Status TokenizerImpl::encode_bpe_word(std::string_view word, std::vector<TokenId>& out) const {
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Bigram> queue;
  symbols.clear();
  queue.clear();

  auto add_bigram = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t left_piece = symbols[size_t(left)].piece;
    const int32_t right_piece = symbols[size_t(right)].piece;
    if (left_piece < 0 || right_piece < 0) return;
    const text::PairIndex::Entry* merge = merges.by_pair.find(left_piece, right_piece);
    if (merge == nullptr) return;
    queue.push_back(Bigram{left, right, merge->first, left_piece, right_piece, merge->second});
    std::push_heap(queue.begin(), queue.end(), BigramOrder());
  };

  size_t offset = 0;
  // llama.cpp takes a word that is a token whole (ignore_merges), and Gemma 4's newline runs.
  if (ignore_merges || (gemma4_newlines && word.find_first_not_of('\n') == std::string_view::npos)) {
    if (const TokenId whole = find(word); whole != kNoToken) {
      symbols.push_back(Symbol{-1, -1, 0, uint32_t(word.size()), whole});
      offset = word.size();
    }
  }
  while (offset < word.size()) {
    const size_t length = std::min(word.size() - offset, text::utf8_sequence_length(word[offset]));
    const int32_t index = int32_t(symbols.size());
    symbols.push_back(Symbol{index - 1, offset + length == word.size() ? -1 : index + 1, uint32_t(offset),
                             uint32_t(length), piece_id(*this, word.substr(offset, length))});
    offset += length;
  }
  // llama.cpp asserts that no piece it looks a merge up for holds a space; only a pre-tokenizer that neither
  // byte-encodes nor escapes spaces (tokenizer.ggml.pre "whitespace" on a gpt2 model) can get there.
  if (symbols.size() > 1 && word.find(' ') != std::string_view::npos) {
    return invalid_input("a word with a space reaches the BPE merges (llama.cpp aborts here: pre-tokenizer '" +
                         pre_name + "' on tokenizer model '" + vocab.model + "')")
        .in_file(vocab.source);
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
      const TokenId id = byte_tokens[uint8_t(word[symbol.start + i])];
      if (id != kNoToken) out.push_back(id);
    }
  }
  return Status::success();
}

Status TokenizerImpl::encode_bpe_words(std::string_view text, std::vector<TokenId>& out) const {
  thread_local text::Words words;
  QUANT_TRY(pre_tokenizer.split(text, byte_encode, words));
  for (size_t i = 0; i < words.size(); ++i) QUANT_TRY(encode_bpe_word(words[i], out));
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
