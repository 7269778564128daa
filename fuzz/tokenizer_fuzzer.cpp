// libFuzzer target: the vocabulary loader and the tokenizer. An input is a text and a GGUF file:
//   u16 text length (little-endian) | text bytes | GGUF bytes
// The GGUF's tokenizer.ggml.* metadata is loaded and, when it makes a tokenizer, the text is tokenized with and
// without BOS/EOS and special-token parsing. Every id must be a token of the vocabulary (or -1, llama.cpp's
// undefined unknown id), every piece readable, and the metadata written back must load to the same vocabulary;
// a violated invariant traps so libFuzzer keeps the input. Seeds: make_tokenizer_seeds.
#include <cstdint>
#include <string_view>
#include <vector>

#include "memory_file.h"
#include "quant/gguf.h"
#include "quant/tokenizer.h"

namespace {

void check(bool invariant) {
  if (!invariant) __builtin_trap();
}

void tokenize_and_check(const quant::Tokenizer& tokenizer, std::string_view text, bool add_special,
                        bool parse_special) {
  auto ids = tokenizer.tokenize(text, add_special, parse_special);
  if (!ids) {
    (void)ids.error().message();
    return;
  }
  for (const quant::TokenId id : *ids) {
    check(id >= quant::kNoToken && id < tokenizer.n_vocab());
    (void)tokenizer.token_to_piece(id);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t text_length = std::min<size_t>(size_t(data[0]) | (size_t(data[1]) << 8), size - 2);
  const std::string_view text(reinterpret_cast<const char*>(data + 2), text_length);
  static quant::fuzz::MemoryFile memory("tokenizer-fuzz");
  auto file = quant::GgufFile::open(memory.hold(data + 2 + text_length, size - 2 - text_length));
  if (!file) return 0;
  auto vocabulary = quant::load_vocabulary(*file);
  if (!vocabulary) {
    (void)vocabulary.error().message();
    return 0;
  }
  // What a writer stores reads back as the same vocabulary.
  auto again = quant::load_vocabulary(quant::vocabulary_metadata(*vocabulary), "again");
  check(again.ok() && again->tokens == vocabulary->tokens && again->merges == vocabulary->merges &&
        again->token_types == vocabulary->token_types && again->special.bos == vocabulary->special.bos);

  auto tokenizer = quant::Tokenizer::create(std::move(vocabulary).value());
  if (!tokenizer) {
    (void)tokenizer.error().message();
    return 0;
  }
  tokenize_and_check(*tokenizer, text, true, false);
  tokenize_and_check(*tokenizer, text, false, true);
  for (quant::TokenId id = -1; id <= tokenizer->n_vocab() && id < 64; ++id) {
    (void)tokenizer->token_to_piece(id);
    (void)tokenizer->token_text(id);
    (void)tokenizer->token_attributes(id);
  }
  return 0;
}
