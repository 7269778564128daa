// Internal: the tokenizer.* keys, following the set_vocab each architecture uses in convert_hf_to_gguf.py.
#pragma once

#include <string>

#include "hf/architectures.h"
#include "hf/hparams.h"
#include "hf/metadata_list.h"

namespace quant::hf {

// Appends the vocabulary keys for `arch` read from the folder `dir`. Errors: impossible for a tokenizer this
// build does not convert (SentencePiece-style tokenizer.json without tokenizer.model, Mistral's tekken, a
// tokenizer.json outside what hf_tokenizer.h reproduces), invalid_input for damaged files.
Status add_vocabulary(const Architecture& arch, const std::string& dir, const HParams& hparams, MetadataList& out);

// _set_vocab_gpt2: the GPT-2 BPE vocabulary of tokenizer.json (bpe_vocabulary.cpp).
Status add_gpt2_vocabulary(const std::string& dir, const HParams& hparams, MetadataList& out);

// TextModel.does_token_look_special: added tokens that are written as control tokens even when not special.
bool looks_special(const std::string& text);

}  // namespace quant::hf
