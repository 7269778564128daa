// What the plan needs from an input GGUF: the model's hyper-parameters and its tensor list.
#pragma once

#include <vector>

#include "quant/gguf.h"
#include "quant/plan.h"

namespace quant::convert_internal {

// Reads general.architecture and {arch}.block_count / attention.head_count / head_count_kv / expert_count
// (per-layer arrays give their first value, as llama.cpp's size classification does). Missing keys read as 0;
// a key of the wrong type is an invalid_input error naming it.
Result<ModelParams> read_model_params(const ModelSource& file);

// The file's tensors as the plan sees them, in file order.
std::vector<PlanTensor> plan_tensors(const ModelSource& file);

}  // namespace quant::convert_internal
