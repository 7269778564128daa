// llama-quantize's mix rules: how a file type (Q4_K_M, IQ2_XS...) departs from its default type for particular
// tensors. One function per rule family; choose_mix_type runs them in llama.cpp's order of precedence.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>

#include "plan/tensor_roles.h"
#include "quant/error.h"
#include "quant/plan.h"

namespace quant::plan_detail {

// What the rules know about the whole request.
struct MixContext {
  const ModelParams& model;
  FileType file_type;
  bool has_imatrix;
  bool tied_embeddings;                       // the model has no output.weight
  std::optional<TypeId> output_tensor_type;   // --output-tensor-type (reaches a tied token_embd through here)
  int attn_v_count;                           // tensors counted as attn_v in the whole model
  int64_t gqa;                                // n_head / n_head_kv, 0 without kv heads
};

// Running counters over the tensors the rules have seen, in output order. llama.cpp advances them only when the
// rules run for a tensor (not for explicit types or --pure), so they live here rather than in the tensor list.
struct MixCounters {
  int attn_v = 0;
  int ffn_down = 0;
  int ffn_gate = 0;
  int ffn_up = 0;
};

// The type a rule family chose, and why (empty when it left the type alone).
struct MixChoice {
  TypeId type;
  std::string why;
};

// Runs the mix rules for one quantizable tensor. Errors only for a block tensor whose layer cannot be read in a
// mixture-of-experts model (invalid_input).
Result<MixChoice> choose_mix_type(const MixContext& context, MixCounters& counters, const PlanTensor& tensor,
                                  TensorRole role, TypeId default_type);

// --- rule families (each in its own file) ---

// output.weight, and token_embd when the embeddings are tied.
MixChoice output_rule(const MixContext& context, const PlanTensor& tensor, TypeId default_type);
// token_embd with its own output tensor.
MixChoice token_embedding_rule(const MixContext& context, TypeId default_type);
// MXFP4_MOE: expert tensors (3-D) to mxfp4, the rest to q8_0.
MixChoice mxfp4_moe_rule(const MixContext& context, const PlanTensor& tensor, TensorRole role);
// IQ1_S/M and IQ2_XXS/XS/S/M: the very-low-bit family.
MixChoice very_low_bit_rule(const MixContext& context, MixCounters& counters, TensorRole role,
                            TypeId default_type);
// attn_v (and attn_qkv, attn_kv_b), attn_k, attn_q, attn_output for every other file type.
MixChoice attention_rule(const MixContext& context, MixCounters& counters, TensorRole role, TypeId default_type);
// ffn_down, ffn_gate, ffn_up for every other file type; `layer` is the layer the rules use (see layer_for).
MixChoice feed_forward_rule(const MixContext& context, TensorRole role, int layer, TypeId default_type);

// --- shared helpers ---

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third one between.
bool more_bits_layer(int layer, int layer_count);
bool is_one_of(FileType type, std::initializer_list<FileType> types);
// "mix Q4_K_M: <what> -> q6_K"
std::string mix_reason(const MixContext& context, std::string_view what, TypeId type);

}  // namespace quant::plan_detail
