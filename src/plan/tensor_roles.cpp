// Tensor roles, the never-quantized list and the output order, as facts of llama.cpp's src/llama-quant.cpp and
// its model loader (weight_name_comparer).
#include "plan/tensor_roles.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <numeric>

namespace quant::plan_detail {
namespace {

bool contains(std::string_view name, std::string_view part) { return name.find(part) != std::string_view::npos; }

// Substrings that mark a tensor llama-quantize never quantizes, with the reason we report.
struct Exclusion {
  std::string_view part;
  std::string_view reason;
};
constexpr Exclusion kExcludedParts[] = {
    {"_norm.weight", "normalization weights stay as they are"},
    {"ffn_gate_inp.weight", "expert router gates stay as they are"},
    {"ffn_gate_tid2eid.weight", "token-to-expert routing tables stay as they are"},
    {"altup", "altup tensors are tiny"},
    {"laurel", "laurel tensors are tiny"},
    {"per_layer_model_proj", "per-layer model projections are small"},
    {"ssm_conv1d", "SSM conv1d weights are small"},
    {"shortconv.conv.weight", "short-convolution weights are small"},
    {"indexer.k_proj.weight", "indexer projections are tiny"},
    {"indexer.q_proj.weight", "indexer projections are tiny"},
    {"time_mix_first.weight", "RWKV time-mix weights are small"},
    {"time_mix_w0.weight", "RWKV time-mix weights are small"},
    {"time_mix_w1.weight", "RWKV time-mix weights are small"},
    {"time_mix_w2.weight", "RWKV time-mix weights are small"},
    {"time_mix_v0.weight", "RWKV time-mix weights are small"},
    {"time_mix_v1.weight", "RWKV time-mix weights are small"},
    {"time_mix_v2.weight", "RWKV time-mix weights are small"},
    {"time_mix_a0.weight", "RWKV time-mix weights are small"},
    {"time_mix_a1.weight", "RWKV time-mix weights are small"},
    {"time_mix_a2.weight", "RWKV time-mix weights are small"},
    {"time_mix_g1.weight", "RWKV time-mix weights are small"},
    {"time_mix_g2.weight", "RWKV time-mix weights are small"},
    {"time_mix_decay_w1.weight", "RWKV time-mix weights are small"},
    {"time_mix_decay_w2.weight", "RWKV time-mix weights are small"},
    {"time_mix_lerp_fused.weight", "RWKV time-mix weights are small"},
    {"attn_rel_b.weight", "relative position biases stay as they are"},
    {".position_embd", "positional embeddings stay as they are"},
    {"sam.pos_embd", "multimodal tensors stay as they are"},
    {"sam.neck.", "multimodal tensors stay as they are"},
    {"sam.net_", "multimodal tensors stay as they are"},
    {".rel_pos", "multimodal tensors stay as they are"},
    {".patch_embd", "multimodal tensors stay as they are"},
    {".patch_merger", "multimodal tensors stay as they are"},
    {"a.rvq.codebook", "audio codebooks stay as they are"},
    {"mm.a.code_embd", "audio codebooks stay as they are"},
};

// llama.cpp tests "ends in weight" as name.rfind("weight") == name.size() - 6, which (size_t arithmetic) also
// holds for every 5-byte name; we keep that quirk so the same tensors are quantized.
bool ends_in_weight_as_llama_does(std::string_view name) {
  return name.rfind("weight") == name.size() - 6;
}

}  // namespace

TensorRole role_of(std::string_view name) {
  if (name == "output.weight") return TensorRole::output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return TensorRole::token_embedding;
  // llama.cpp tests these in this order and the first match decides.
  if (contains(name, "attn_qkv.weight")) return TensorRole::attn_qkv;
  if (contains(name, "attn_kv_b.weight")) return TensorRole::attn_kv_b;
  if (contains(name, "attn_v.weight")) return TensorRole::attn_v;
  if (contains(name, "attn_k.weight")) return TensorRole::attn_k;
  if (contains(name, "attn_q.weight")) return TensorRole::attn_q;
  if (contains(name, "attn_output.weight")) return TensorRole::attn_output;
  if (contains(name, "ffn_up")) return TensorRole::ffn_up;
  if (contains(name, "ffn_gate")) return TensorRole::ffn_gate;
  if (contains(name, "ffn_down")) return TensorRole::ffn_down;
  return TensorRole::other;
}

bool counts_as_attn_v(TensorRole role) {
  return role == TensorRole::attn_v || role == TensorRole::attn_qkv || role == TensorRole::attn_kv_b;
}

std::string_view role_name(TensorRole role) {
  switch (role) {
    case TensorRole::token_embedding: return "token_embd";
    case TensorRole::output: return "output";
    case TensorRole::attn_qkv: return "attn_qkv";
    case TensorRole::attn_kv_b: return "attn_kv_b";
    case TensorRole::attn_v: return "attn_v";
    case TensorRole::attn_k: return "attn_k";
    case TensorRole::attn_q: return "attn_q";
    case TensorRole::attn_output: return "attn_output";
    case TensorRole::ffn_up: return "ffn_up";
    case TensorRole::ffn_gate: return "ffn_gate";
    case TensorRole::ffn_down: return "ffn_down";
    case TensorRole::other: return "other";
  }
  return "other";
}

int significant_dims(std::span<const int64_t> shape) {
  for (int i = static_cast<int>(shape.size()) - 1; i >= 1; --i) {
    if (shape[i] > 1) return i + 1;
  }
  return 1;
}

std::optional<std::string_view> never_quantized_reason(const PlanTensor& tensor, bool leave_output) {
  if (significant_dims(tensor.shape) < 2) return "1-D tensors stay as they are";
  const std::string_view name = tensor.name;
  if (!ends_in_weight_as_llama_does(name)) return "only tensors named *weight are quantized";
  if (leave_output && name == "output.weight") return "--leave-output-tensor";
  for (const Exclusion& exclusion : kExcludedParts) {
    if (contains(name, exclusion.part)) return exclusion.reason;
  }
  // BERT-style absolute position and token-type embeddings (LLM_TN names, the same for every architecture).
  if (name == "position_embd.weight" || name == "token_types.weight") return "positional embeddings stay as they are";
  return std::nullopt;
}

std::optional<int> block_number(std::string_view name) {
  constexpr std::string_view prefix = "blk.";
  if (!name.starts_with(prefix)) return std::nullopt;
  size_t pos = prefix.size();
  // %d skips white space and takes an optional sign.
  while (pos < name.size() && std::isspace(static_cast<unsigned char>(name[pos]))) ++pos;
  bool negative = false;
  if (pos < name.size() && (name[pos] == '+' || name[pos] == '-')) negative = name[pos++] == '-';
  if (pos == name.size() || !std::isdigit(static_cast<unsigned char>(name[pos]))) return std::nullopt;
  // glibc reads the digits as a long (saturating) and stores the low 32 bits in the int.
  int64_t value = 0;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  for (; pos < name.size() && std::isdigit(static_cast<unsigned char>(name[pos])); ++pos) {
    const int digit = name[pos] - '0';
    value = value > (kMax - digit) / 10 ? kMax : value * 10 + digit;
  }
  if (negative) value = -value;
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(value)));
}

std::vector<size_t> output_order(std::span<const PlanTensor> tensors) {
  std::vector<int> layers(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) layers[i] = block_number(tensors[i].name).value_or(-1);
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (layers[a] != layers[b]) return layers[a] < layers[b];
    return tensors[a].name < tensors[b].name;
  });
  return order;
}

}  // namespace quant::plan_detail
