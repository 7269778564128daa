// SPM ("llama"): SentencePiece's BPE as llama.cpp runs it (llm_tokenizer_spm_session): the text, spaces
// already escaped to U+2581, starts as one symbol per UTF-8 sequence; the adjacent pair forming the
// highest-scoring token merges first (ties: leftmost); symbols that end up as no token become byte tokens.
#include <fmt/format.h>

#include <algorithm>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace quant {
namespace {

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t start;
  uint32_t length;
};

struct Bigram {
  int32_t left;
  int32_t right;
  float score;
  uint32_t size;
};

// llama.cpp's llm_bigram_spm::comparator for its std::priority_queue: highest score first, then leftmost.
struct BigramOrder {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return (l.score < r.score) || (l.score == r.score && l.left > r.left);
  }
};

}  // namespace

Status TokenizerImpl::encode_spm(std::string_view text, std::vector<TokenId>& out) const {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  // A lead byte announces its sequence length; llama.cpp trusts it (cut at the end of the text), so invalid
  // UTF-8 groups bytes as the lead byte says.
  for (size_t offset = 0; offset < text.size();) {
    const size_t length = std::min(text.size() - offset, text::utf8_sequence_length(text[offset]));
    const int32_t index = int32_t(symbols.size());
    symbols.push_back(Symbol{index - 1, offset + length == text.size() ? -1 : index + 1, uint32_t(offset),
                             uint32_t(length)});
    offset += length;
  }
  if (symbols.empty()) return Status::success();

  std::vector<Bigram> queue;
  auto add_bigram = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[size_t(left)];
    const Symbol& r = symbols[size_t(right)];
    const TokenId id = find(text.substr(l.start, l.length + r.length));
    if (id == kNoToken) return;
    queue.push_back(Bigram{left, right, scores[size_t(id)], l.length + r.length});
    std::push_heap(queue.begin(), queue.end(), BigramOrder());
  };
  for (size_t i = 1; i < symbols.size(); ++i) add_bigram(int32_t(i - 1), int32_t(i));

  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), BigramOrder());
    const Bigram bigram = queue.back();
    queue.pop_back();
    Symbol& left = symbols[size_t(bigram.left)];
    Symbol& right = symbols[size_t(bigram.right)];
    if (left.length == 0 || right.length == 0 || left.length + right.length != bigram.size) continue;  // outdated
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[size_t(right.next)].prev = bigram.left;
    add_bigram(left.prev, bigram.left);
    add_bigram(bigram.left, left.next);
  }

  for (int32_t i = 0; i != -1; i = symbols[size_t(i)].next) {
    const Symbol& symbol = symbols[size_t(i)];
    const std::string_view piece = text.substr(symbol.start, symbol.length);
    if (const TokenId id = find(piece); id != kNoToken) {
      out.push_back(id);
      continue;
    }
    // Byte fallback: <0xXX>, else the byte itself as a token (llama.cpp's byte_to_token).
    for (const char c : piece) {
      const TokenId id = byte_tokens[uint8_t(c)];
      if (id == kNoToken) {
        return invalid_input(fmt::format("the text needs byte 0x{:02X} as a token, and the vocabulary has neither "
                                         "<0x{:02X}> nor the byte itself (llama.cpp aborts here)",
                                         uint8_t(c), uint8_t(c)))
            .in_file(vocab.source);
      }
      out.push_back(id);
    }
  }
  return Status::success();
}

}  // namespace quant
