// Tokenizer: text -> token ids exactly as llama.cpp (commit 34af94c, src/llama-vocab.cpp and src/unicode.cpp)
// tokenizes it, from a GGUF's `tokenizer.ggml.*` metadata or from a vocabulary built by code.
//
// Two steps, two types:
//   Vocabulary  the vocabulary as stored: the `tokenizer.ggml.*` keys (tokens, scores, token types, merges,
//               special ids, add_bos/add_eos/add_space_prefix flags, pre-tokenizer name...) plus `general.name`
//               and `general.architecture`. A plain value: load_vocabulary() reads it from GGUF metadata (a list
//               of KeyValue, so split GGUFs and other containers work too); an importer may fill it directly.
//               Optional fields are unset when the key is absent; llama.cpp's defaults are applied later.
//   Tokenizer   built from a Vocabulary: resolves llama.cpp's per-model defaults (special ids, add_bos...), the
//               token attributes (control / user-defined / byte, plus llama.cpp's text-based fixes) and the
//               pre-tokenizer, and tokenizes. Immutable and cheap to copy; tokenize() is safe from many threads.
//
// Models: SPM ("llama": score-ordered bigram merges, byte fallback, space prefix / escaping), BPE ("gpt2":
// merges by rank, with llama.cpp's pre-tokenizer for every `tokenizer.ggml.pre` value llama.cpp accepts), WPM
// ("bert"), UGM ("t5") and RWKV ("rwkv"). Anything else is refused with ErrorKind::impossible naming it.
// What matches llama.cpp by definition, and how it was checked: docs/tokenizer.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quant/error.h"
#include "quant/gguf_values.h"
#include "quant/model_source.h"

namespace quant {

// A token id, as llama.cpp's llama_token.
using TokenId = int32_t;
// "No such token" (llama.cpp's LLAMA_TOKEN_NULL).
inline constexpr TokenId kNoToken = -1;

// The values of `tokenizer.ggml.token_type` (gguf-py's TokenType, llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6,
};

// Per-token attribute bits (llama.cpp's llama_token_attr), as the Tokenizer resolves them.
enum TokenAttribute : uint32_t {
  kTokenAttrUndefined = 0,
  kTokenAttrUnknown = 1u << 0,
  kTokenAttrUnused = 1u << 1,
  kTokenAttrNormal = 1u << 2,
  kTokenAttrControl = 1u << 3,
  kTokenAttrUserDefined = 1u << 4,
  kTokenAttrByte = 1u << 5,
  kTokenAttrNormalized = 1u << 6,
  kTokenAttrLstrip = 1u << 7,
  kTokenAttrRstrip = 1u << 8,
  kTokenAttrSingleWord = 1u << 9,
};

// The vocabulary as stored in `tokenizer.ggml.*` (key names in the comments).
struct Vocabulary {
  std::string source;  // the file or folder it came from, for messages ("model.gguf")

  std::string model;                          // tokenizer.ggml.model: "llama" (SPM), "gpt2" (BPE), "bert" (WPM),
                                              //   "t5" (UGM), "rwkv"; required
  std::string pre;                            // tokenizer.ggml.pre; empty when absent
  std::vector<std::string> tokens;            // tokenizer.ggml.tokens: id -> text, as stored; required
  std::vector<float> scores;                  // tokenizer.ggml.scores: empty, or one per token
  std::vector<int32_t> token_types;           // tokenizer.ggml.token_type (TokenType values): empty, or one per token
  std::vector<std::string> merges;            // tokenizer.ggml.merges: "left right", in rank order (BPE)
  std::vector<uint8_t> precompiled_charsmap;  // tokenizer.ggml.precompiled_charsmap (UGM's normalizer)

  // Special token ids as stored (u32 keys); unset = absent, and the model's default applies.
  struct SpecialIds {
    std::optional<uint32_t> bos;      // tokenizer.ggml.bos_token_id
    std::optional<uint32_t> eos;      // tokenizer.ggml.eos_token_id
    std::optional<uint32_t> eot;      // tokenizer.ggml.eot_token_id
    std::optional<uint32_t> eom;      // tokenizer.ggml.eom_token_id
    std::optional<uint32_t> unk;      // tokenizer.ggml.unknown_token_id
    std::optional<uint32_t> sep;      // tokenizer.ggml.seperator_token_id (sic, llama.cpp's spelling)
    std::optional<uint32_t> pad;      // tokenizer.ggml.padding_token_id
    std::optional<uint32_t> mask;     // tokenizer.ggml.mask_token_id
    std::optional<uint32_t> fim_pre;  // tokenizer.ggml.fim_pre_token_id (or the older prefix_token_id)
    std::optional<uint32_t> fim_suf;  // tokenizer.ggml.fim_suf_token_id (or suffix_token_id)
    std::optional<uint32_t> fim_mid;  // tokenizer.ggml.fim_mid_token_id (or middle_token_id)
    std::optional<uint32_t> fim_pad;  // tokenizer.ggml.fim_pad_token_id
    std::optional<uint32_t> fim_rep;  // tokenizer.ggml.fim_rep_token_id
    std::optional<uint32_t> fim_sep;  // tokenizer.ggml.fim_sep_token_id
  } special;

  // Flags as stored (bool keys); unset = absent, and llama.cpp's default for the model applies.
  std::optional<bool> add_bos;                   // tokenizer.ggml.add_bos_token
  std::optional<bool> add_eos;                   // tokenizer.ggml.add_eos_token
  std::optional<bool> add_sep;                   // tokenizer.ggml.add_sep_token
  std::optional<bool> add_space_prefix;          // tokenizer.ggml.add_space_prefix
  std::optional<bool> remove_extra_whitespaces;  // tokenizer.ggml.remove_extra_whitespaces
  std::optional<bool> normalizer_lowercase;      // tokenizer.ggml.normalizer.lowercase
  std::optional<bool> normalizer_strip_accents;  // tokenizer.ggml.normalizer.strip_accents

  std::string name;          // general.name (llama.cpp keys a few token attributes on it: phi-3's rstrip)
  std::string architecture;  // general.architecture
};

// Reads the vocabulary from GGUF metadata. `source` names the file in messages. A missing required key, a key
// of the wrong type (as strict as llama.cpp's loader: ids are u32, flags bool) or arrays whose lengths disagree
// with the token list is ErrorKind::invalid_input naming the source and key. Names (model, pre-tokenizer) and
// special ids are read as stored; Tokenizer::create judges them and the token list (a special id outside the
// vocabulary is a warning there and the default id stays, as in llama.cpp).
Result<Vocabulary> load_vocabulary(std::span<const KeyValue> metadata, std::string_view source);
// The vocabulary of a model (a GGUF file, a split GGUF, a Hugging Face folder: anything open_model() opens).
Result<Vocabulary> load_vocabulary(const ModelSource& model);

// The metadata a GGUF writer stores for `vocabulary` (the inverse of load_vocabulary): the tokenizer.ggml.*
// keys that are set, in gguf-py's order, plus general.name / general.architecture when non-empty.
std::vector<KeyValue> vocabulary_metadata(const Vocabulary& vocabulary);

// The tokenizer models llama.cpp distinguishes.
enum class TokenizerKind { spm, bpe, wpm, ugm, rwkv };

class TokenizerImpl;

class Tokenizer {
 public:
  // Builds the tokenizer. An unknown or unsupported tokenizer model or pre-tokenizer is ErrorKind::impossible
  // naming it. An inconsistent vocabulary is ErrorKind::invalid_input naming the source and key: besides what
  // load_vocabulary() checks (a hand-built Vocabulary gets the same checks here), a duplicate token, a merge
  // that is not "left right" or names a piece that is not a token, missing merges for BPE.
  static Result<Tokenizer> create(Vocabulary vocabulary);

  // The token ids of `text`, exactly as llama.cpp's llama_tokenize(vocab, text, add_special, parse_special):
  // add_special adds BOS/EOS (CLS/SEP for WPM) as the vocabulary says; parse_special also matches control tokens
  // in the text (user-defined tokens are always matched, as in llama.cpp). How llama.cpp's tools call it:
  // llama-perplexity tokenize(text, true, false); llama-imatrix tokenize(text, true, its --parse-special);
  // llama-tokenize tokenize(text, add_bos() && !--no-bos, !--no-parse-special). Invalid UTF-8 is tokenized as llama.cpp
  // does (bytes it cannot decode become U+FFFD for BPE and WPM; SPM falls back to byte tokens). Fails (never
  // crashes) only where llama.cpp would abort: a code point beyond U+10FFFF reaching the BPE/WPM decoder, a
  // byte with no byte token in an SPM vocabulary, BOS/EOS requested but undefined.
  Result<std::vector<TokenId>> tokenize(std::string_view text, bool add_special = true,
                                        bool parse_special = false) const;

  // The text of a token as llama-tokenize prints it (llama.cpp's token_to_piece with special = true): the
  // decoded bytes of a normal token (BPE's byte-level characters mapped back, SPM's U+2581 as spaces, a byte
  // token's byte), the stored text of control / user-defined / unknown tokens. Empty for an id out of range.
  std::string token_to_piece(TokenId id) const;

  int32_t n_vocab() const;
  std::string_view token_text(TokenId id) const;  // as stored (empty tokens read as "[EMPTY_<id>]"); empty if out of range
  float token_score(TokenId id) const;
  uint32_t token_attributes(TokenId id) const;      // TokenAttribute bits; 0 out of range

  // Special ids after llama.cpp's defaults; kNoToken when the model has none.
  TokenId bos() const;
  TokenId eos() const;
  TokenId eot() const;
  TokenId unk() const;
  TokenId sep() const;
  TokenId pad() const;
  TokenId newline() const;        // llama.cpp's linefeed id ("\n" tokenized, or SPM's <0x0A>)
  bool add_bos() const;           // tokenize(add_special = true) starts with bos()
  bool add_eos() const;           // ... and ends with eos()
  bool is_end_of_generation(TokenId id) const;

  TokenizerKind kind() const;
  std::string_view kind_name() const;       // "SPM", "BPE", "WPM", "UGM", "RWKV"
  const std::string& pre_tokenizer() const;  // the pre-tokenizer in use ("default" when tokenizer.ggml.pre is absent)
  const Vocabulary& vocabulary() const;
  // Things llama.cpp would log as warnings when loading this vocabulary (e.g. a missing pre-tokenizer).
  const std::vector<std::string>& warnings() const;

 private:
  explicit Tokenizer(std::shared_ptr<const TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const TokenizerImpl> impl_;
};

// Reads a model's vocabulary and builds the tokenizer (errors as the steps above, naming the model).
Result<Tokenizer> load_tokenizer(const ModelSource& model);
// The same for one GGUF file.
Result<Tokenizer> load_tokenizer(const std::string& gguf_path);

// Every `tokenizer.ggml.pre` value llama.cpp 34af94c accepts for BPE vocabularies, all supported here.
std::vector<std::string_view> supported_pre_tokenizers();

// How a text file is read.
enum class TextFileMode {
  // As llama.cpp's common `-f FILE` option reads a prompt for llama-perplexity and llama-imatrix
  // (common/arg.cpp): the bytes as they are, no escape processing, one trailing '\n' removed.
  prompt,
  // As llama-tokenize `-f FILE` reads it at 34af94c (tools/tokenize/tokenize.cpp): every byte, nothing removed.
  verbatim,
};

// Reads a whole text file (any bytes; not checked as UTF-8). I/O failures are ErrorKind::io naming the path.
Result<std::string> read_text_file(const std::string& path, TextFileMode mode = TextFileMode::prompt);

}  // namespace quant
