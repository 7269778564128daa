// What a tensor is, as llama-quantize sees it: its role (from its name), whether it is quantized at all, its
// block number, and the order tensors are written in.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "quant/plan.h"

namespace quant::plan_detail {

// Broad roles the mix rules distinguish, found by substring as llama.cpp does (so "ffn_down_exps" and
// "ffn_down_shexp" are ffn_down, and "attn_k_b" is none of the attention roles).
enum class TensorRole {
  token_embedding,  // token_embd.weight, per_layer_token_embd.weight
  output,           // output.weight
  attn_qkv, attn_kv_b, attn_v, attn_k, attn_q, attn_output,
  ffn_up, ffn_gate, ffn_down,
  other,
};

TensorRole role_of(std::string_view name);
// attn_v, and the fused attn_qkv and attn_kv_b that llama.cpp counts (and treats) as attn_v.
bool counts_as_attn_v(TensorRole role);
// The role's name for messages.
std::string_view role_name(TensorRole role);

// ggml_n_dims: the number of dimensions up to the last one larger than 1 (at least 1).
int significant_dims(std::span<const int64_t> shape);

// Why a tensor is never quantized, or nullopt when it may be. `leave_output` is --leave-output-tensor.
std::optional<std::string_view> never_quantized_reason(const PlanTensor& tensor, bool leave_output);

// The N of a name starting "blk.N", read the way C's sscanf("blk.%d.") reads it, or nullopt.
std::optional<int> block_number(std::string_view name);

// Indices of `tensors` in llama-quantize's output order: block number (-1 for tensors outside blocks), then
// name (bytewise).
std::vector<size_t> output_order(std::span<const PlanTensor> tensors);

}  // namespace quant::plan_detail
