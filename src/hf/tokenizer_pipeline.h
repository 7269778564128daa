// Internal: the Hugging Face `tokenizers` pipeline (Rust crate, the library behind transformers' fast
// tokenizers) for the parts tokenizer.json describes and the converter exercises when it names a BPE
// pre-tokenizer: it tokenizes one fixed text and hashes the ids (conversion/base.py get_vocab_base_pre).
//
//   normalizer     NFC, NFD, NFKC, NFKD, or a Sequence of them (Unicode normalization by ICU)
//   pre_tokenizer  Split (a Regex or String pattern; Removed, Isolated, Contiguous, MergedWithPrevious,
//                  MergedWithNext; invert), ByteLevel (add_prefix_space, use_regex with GPT-2's pattern),
//                  Digits (individual_digits), or a Sequence of them
//   model          BPE: vocabulary, merges by rank, ignore_merges, unk_token, byte_fallback
// Anything else in those fields is refused (ErrorKind::impossible, naming it): this is not a general
// tokenizer, only the part whose output the converter hashes, and a refusal is better than a wrong name.
// Regex patterns are written for Oniguruma; they run here on PCRE2 (UTF, Unicode properties), which agrees
// with Oniguruma on the constructs tokenizer.json pre-tokenizers use (\p{..} classes, \s, (?i:..), (?!..)),
// with match and depth limits so a hostile pattern fails instead of running away.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hf/checkpoint_files.h"
#include "quant/error.h"

namespace quant::hf {

// tokenizer.json's "model" of type BPE.
struct BpeModel {
  std::unordered_map<std::string, int64_t> vocab;  // token -> id
  // (left id << 32 | right id) -> (rank, id of the merged token); a later duplicate replaces an earlier one, as
  // the Rust crate's map collects them.
  std::unordered_map<uint64_t, std::pair<int64_t, int64_t>> merges;
  bool ignore_merges = false;  // a word that is a token is taken whole
  bool byte_fallback = false;  // an unknown character becomes its <0xXX> byte tokens
  std::optional<int64_t> unk_id;
  bool fuse_unk = false;
};

class PipelineStep;

class TokenizerPipeline {
 public:
  // Builds from tokenizer.json's "normalizer" and "pre_tokenizer" (null for none). `file` names tokenizer.json in
  // errors.
  static Result<TokenizerPipeline> create(const Json& normalizer, const Json& pre_tokenizer, BpeModel model,
                                          const std::string& file);

  // The model's ids for `text` (UTF-8), no special tokens: normalize, pre-tokenize, BPE each piece.
  Result<std::vector<int64_t>> encode(std::string_view text) const;
  // `text` after the normalizer (UTF-8), to find added tokens that match normalized text.
  Result<std::string> normalize(std::string_view text) const;

  const BpeModel& model() const { return model_; }

 private:
  std::vector<int> normalizers_;  // ICU normalization forms, applied in order
  std::vector<std::shared_ptr<const PipelineStep>> steps_;
  BpeModel model_;
  std::string file_;
};

// The byte-level alphabet of GPT-2 (bytes_to_unicode): the code point that stands for byte `b`.
uint32_t byte_level_char(uint8_t b);
// The byte a code point of that alphabet stands for, or -1.
int byte_level_byte(uint32_t cpt);

}  // namespace quant::hf
