// The tensors an architecture row implies (names and shapes as llama.cpp's loader creates them), checked against a
// model source.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "quant/model.h"

namespace quant::model {

// "blk.<layer>.<suffix>", e.g. layer_tensor(3, "attn_q.weight").
std::string layer_tensor(int layer, std::string_view suffix);

// Sets hp.n_vocab, hp.fused_qkv and hp.tied_output from the tensors, and checks that every tensor the architecture
// needs is there with llama.cpp's shape, that every matmul weight has a type ggml-cpu multiplies by, and that the
// file holds no tensor the architecture does not use (llama.cpp refuses such files too).
Status check_layout(const ModelSource& source, ModelHyperparameters& hp);

}  // namespace quant::model
