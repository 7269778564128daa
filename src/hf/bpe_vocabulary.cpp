// GPT-2 BPE vocabularies from tokenizer.json, as convert_hf_to_gguf.py's _set_vocab_gpt2 writes them
// (conversion/base.py get_vocab_base and get_vocab_base_pre, gguf-py's SpecialVocab with load_merges).
#include <fmt/format.h>

#include <algorithm>

#include "hf/hf_tokenizer.h"
#include "hf/pre_tokenizer_hashes.h"
#include "hf/special_vocab.h"
#include "hf/strings.h"
#include "hf/vocabulary.h"

namespace quant::hf {
namespace {

// gguf-py's TokenType values the converter writes on this path.
enum TokenType : int32_t { kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5 };

struct BpeVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::string pre;
};

// get_vocab_base_pre: the converter's name for the tokenizer's handling of its fixed text.
Result<std::string> pre_tokenizer_name(const HfTokenizer& tokenizer, const std::string& dir) {
  QUANT_ASSIGN_OR_RETURN(const std::vector<int64_t> ids, tokenizer.encode(pre_tokenizer_check_text()));
  const std::string hash = pre_tokenizer_hash(ids);
  const std::string_view name = pre_tokenizer_for_hash(hash);
  if (name.empty()) {
    return Error(impossible(fmt::format("the BPE pre-tokenizer was not recognized (chkhsh {}): the converter "
                                        "refuses it too (get_vocab_base_pre)",
                                        hash)))
        .in_file(dir + "/tokenizer.json");
  }
  return std::string(name);
}

// get_vocab_base.
Result<BpeVocab> read_bpe_vocab(const std::string& dir, const HParams& hparams) {
  QUANT_ASSIGN_OR_RETURN(std::optional<Json> config, read_json_file(dir, "config.json"));
  QUANT_ASSIGN_OR_RETURN(const HfTokenizer tokenizer, HfTokenizer::load(dir, config.value_or(Json::object())));
  int64_t max_id = -1;
  for (const auto& [text, id] : tokenizer.vocab()) max_id = std::max(max_id, id);
  // self.hparams.get("vocab_size", len(tokenizer.vocab)).
  int64_t vocab_size = int64_t(tokenizer.vocab().size());
  if (const auto it = hparams.config.find("vocab_size"); it != hparams.config.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > (int64_t(1) << 26)) {
      return Error(impossible(fmt::format("vocab_size {} is not a vocabulary size", it->dump()))).in_file(hparams.path);
    }
    vocab_size = it->get<int64_t>();
  }
  if (max_id >= vocab_size) {
    return Error(invalid_input(fmt::format("the tokenizer has id {}, past vocab_size {} (the converter asserts "
                                           "against this)",
                                           max_id, vocab_size)))
        .in_file(hparams.path);
  }
  BpeVocab v;
  QUANT_ASSIGN_OR_RETURN(v.pre, pre_tokenizer_name(tokenizer, dir));

  std::vector<const std::string*> by_id(size_t(vocab_size), nullptr);
  for (const auto& [text, id] : tokenizer.vocab()) by_id[size_t(id)] = &text;
  v.tokens.reserve(size_t(vocab_size));
  v.types.reserve(size_t(vocab_size));
  for (int64_t i = 0; i < vocab_size; ++i) {
    if (by_id[size_t(i)] == nullptr) {
      v.tokens.push_back(fmt::format("[PAD{}]", i));
      v.types.push_back(kUnused);
      continue;
    }
    std::string token = *by_id[size_t(i)];
    if (!tokenizer.is_added(token)) {
      v.tokens.push_back(std::move(token));
      v.types.push_back(kNormal);
      continue;
    }
    const auto added = tokenizer.added_tokens().find(i);
    if (added == tokenizer.added_tokens().end()) {
      return Error(invalid_input(fmt::format("token {} is an added token's text at another id", i)))
          .in_file(dir + "/tokenizer.json");
    }
    // llama.cpp expects control and user-defined tokens pre-normalized: the converter round-trips the ones
    // the tokenizer does not normalize.
    if (!added->second.normalized) {
      QUANT_ASSIGN_OR_RETURN(token, tokenizer.decode_added(added->second));
    }
    if (added->second.special || looks_special(token)) {
      v.types.push_back(kControl);
    } else {
      token = replace_all(token, "\xe2\x96\x81", " ");
      v.types.push_back(kUserDefined);
    }
    v.tokens.push_back(std::move(token));
  }
  return v;
}

}  // namespace

Status add_gpt2_vocabulary(const std::string& dir, const HParams& hparams, MetadataList& out) {
  QUANT_ASSIGN_OR_RETURN(const BpeVocab v, read_bpe_vocab(dir, hparams));
  out.set("tokenizer.ggml.model", Value::string("gpt2"));
  out.set("tokenizer.ggml.pre", Value::string(v.pre));
  out.set("tokenizer.ggml.tokens", Value::array_of_strings(std::span<const std::string>(v.tokens)));
  out.set("tokenizer.ggml.token_type", Value::array_of<int32_t>(v.types));
  QUANT_ASSIGN_OR_RETURN(const SpecialVocab special,
                         SpecialVocab::load(dir, SpecialVocab::default_types(), std::nullopt, /*load_merges=*/true));
  special.add_to(out);
  return Status::success();
}

}  // namespace quant::hf
