// Internal: a checkpoint's tokenizer.json as `transformers.AutoTokenizer.from_pretrained(dir)` (transformers
// 4.57.6, the converter's pinned version, over the `tokenizers` crate) presents it to the converter's
// get_vocab_base: the vocabulary with its added tokens, the added-token flags, encode(text) with the special
// tokens the post-processor adds, and decode(encode(token)) for an added token.
//
// What transformers adds on top of tokenizer.json is reproduced for the tokenizer classes our architectures use,
// as rows of a table (src/hf/hf_tokenizer.cpp): the class's default special tokens (added to the vocabulary
// when tokenizer.json lacks them), tokenizer_config.json's added_tokens_decoder, and LlamaTokenizerFast's
// post-processor rebuilt from add_bos_token/add_eos_token. The class is tokenizer_config.json's tokenizer_class,
// else config.json's, else the one AutoTokenizer maps config.json's model_type to. Anything outside what is
// reproduced (another model type than BPE, a normalizer or pre-tokenizer component the pipeline lacks, an added
// token inside the converter's fixed text, ids the tokenizers crate would assign differently) is refused with
// ErrorKind::impossible naming it; files transformers itself cannot load are ErrorKind::invalid_input.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hf/checkpoint_files.h"
#include "hf/tokenizer_pipeline.h"

namespace quant::hf {

struct HfAddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false;
  bool normalized = true;
};

class HfTokenizer {
 public:
  // Loads dir/tokenizer.json and dir/tokenizer_config.json; `config` is config.json. Without `with_pipeline` the
  // normalizer and pre-tokenizer are not read (nor is encode() available): gguf-py's LlamaHfVocab never encodes.
  static Result<HfTokenizer> load(const std::string& dir, const Json& config, bool with_pipeline = true);

  // tokenizer.vocab: every token text with its id (the model's vocabulary, added tokens over it).
  const std::unordered_map<std::string, int64_t>& vocab() const { return vocab_; }
  // added_tokens_decoder: id -> added token.
  const std::map<int64_t, HfAddedToken>& added_tokens() const { return added_; }
  // tokenizer.vocab_size: the model's vocabulary without the added tokens.
  int64_t model_size() const { return model_size_; }
  // all_special_tokens: the class's special tokens (bos, eos, unk, sep, pad, cls, mask, additional ones).
  const std::vector<std::string>& special_texts() const { return special_texts_; }
  // True when `content` is an added token's text (get_added_vocab()).
  bool is_added(const std::string& content) const { return added_ids_.contains(content); }

  // tokenizer.encode(text): the model's ids with the post-processor's special tokens.
  Result<std::vector<int64_t>> encode(std::string_view text) const;
  // tokenizer.decode(tokenizer.encode(token.content, add_special_tokens=False)).
  Result<std::string> decode_added(const HfAddedToken& token) const;

 private:
  std::string file_;  // tokenizer.json, for messages
  std::unordered_map<std::string, int64_t> vocab_;
  int64_t model_size_ = 0;
  std::vector<std::string> special_texts_;
  std::map<int64_t, HfAddedToken> added_;
  std::unordered_map<std::string, int64_t> added_ids_;
  std::optional<TokenizerPipeline> pipeline_;
  std::vector<int64_t> prefix_, suffix_;  // what the post-processor puts around a single sequence
  bool byte_level_decoder_ = false;
  bool decoder_is_identity_ = false;  // no decoder
  bool cleanup_may_apply_ = true;     // clean_up_tokenization_spaces is not known to be off
};

}  // namespace quant::hf
