// Internal: the tokenizer.* keys, following the set_vocab each architecture uses in convert_hf_to_gguf.py.
#pragma once

#include <string>

#include "hf/architectures.h"
#include "hf/hparams.h"
#include "hf/metadata_list.h"

namespace quant::hf {

// Appends the vocabulary keys for `arch` read from the folder `dir`. Errors: impossible for a tokenizer this
// build does not convert (tokenizer.json-only BPE, Mistral's tekken), invalid_input for damaged files.
Status add_vocabulary(const Architecture& arch, const std::string& dir, const HParams& hparams, MetadataList& out);

}  // namespace quant::hf
