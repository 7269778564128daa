#include "model/layout.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>

namespace quant::model {
namespace {

struct Expected {
  std::vector<int64_t> shape;
  Presence presence;
  bool matmul;  // multiplied by activations (needs a dot-product type)
};

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

}  // namespace

std::string layer_tensor(int layer, std::string_view suffix) { return fmt::format("blk.{}.{}", layer, suffix); }

Status check_layout(const ModelSource& source, ModelHyperparameters& hp) {
  const ArchitectureInfo& arch = *hp.architecture;
  auto tensor_error = [&](const std::string& name, std::string reason) {
    return Error(invalid_input(std::move(reason))).in_file(source.path()).in_tensor(name);
  };

  const TensorInfo* embd = source.find_tensor("token_embd.weight");
  if (embd == nullptr) return tensor_error("token_embd.weight", "is missing");
  if (embd->shape.size() != 2 || embd->shape[0] != hp.n_embd || embd->shape[1] < 1) {
    return tensor_error("token_embd.weight", fmt::format("has shape {}, expected [{}, n_vocab]",
                                                         shape_text(embd->shape), hp.n_embd));
  }
  hp.n_vocab = embd->shape[1];
  if (const Value* tokens = source.find("tokenizer.ggml.tokens"); tokens != nullptr && tokens->is_array() &&
                                                                   int64_t(tokens->size()) != hp.n_vocab) {
    return tensor_error("token_embd.weight", fmt::format("has {} rows but the vocabulary (tokenizer.ggml.tokens) "
                                                         "has {} tokens", hp.n_vocab, tokens->size()));
  }
  hp.tied_output = source.find_tensor("output.weight") == nullptr;
  hp.fused_qkv = source.find_tensor(layer_tensor(0, "attn_qkv.weight")) != nullptr;

  const int64_t n_q = hp.n_head * hp.head_dim_k;
  const int64_t n_k = hp.n_head_kv * hp.head_dim_k;
  const int64_t n_v = hp.n_head_kv * hp.head_dim_v;
  std::map<std::string, Expected> expected;
  expected["token_embd.weight"] = {{hp.n_embd, hp.n_vocab}, Presence::required, false};
  expected["output_norm.weight"] = {{hp.n_embd}, Presence::required, false};
  expected["output.weight"] = {{hp.n_embd, hp.n_vocab}, Presence::optional, true};
  expected["output.bias"] = {{hp.n_vocab}, arch.output_bias, false};
  expected["rope_freqs.weight"] = {{hp.n_rot / 2}, arch.rope_freqs, false};
  for (int il = 0; il < hp.n_layer; ++il) {
    auto add = [&](std::string_view suffix, std::vector<int64_t> shape, Presence presence, bool matmul) {
      expected[layer_tensor(il, suffix)] = {std::move(shape), presence, matmul};
    };
    add("attn_norm.weight", {hp.n_embd}, Presence::required, false);
    if (hp.fused_qkv) {
      add("attn_qkv.weight", {hp.n_embd, n_q + n_k + n_v}, Presence::required, true);
      add("attn_qkv.bias", {n_q + n_k + n_v}, arch.qkv_bias, false);
    } else {
      add("attn_q.weight", {hp.n_embd, n_q}, Presence::required, true);
      add("attn_k.weight", {hp.n_embd, n_k}, Presence::required, true);
      add("attn_v.weight", {hp.n_embd, n_v}, Presence::required, true);
      add("attn_q.bias", {n_q}, arch.qkv_bias, false);
      add("attn_k.bias", {n_k}, arch.qkv_bias, false);
      add("attn_v.bias", {n_v}, arch.qkv_bias, false);
    }
    add("attn_q_norm.weight", {hp.head_dim_k}, arch.qk_norm, false);
    add("attn_k_norm.weight", {hp.head_dim_k}, arch.qk_norm, false);
    add("attn_output.weight", {n_q, hp.n_embd}, Presence::required, true);
    add("attn_output.bias", {hp.n_embd}, arch.attn_output_bias, false);
    add("ffn_norm.weight", {hp.n_embd}, Presence::required, false);
    add("ffn_gate.weight", {hp.n_embd, hp.n_ff}, Presence::required, true);
    add("ffn_up.weight", {hp.n_embd, hp.n_ff}, Presence::required, true);
    add("ffn_down.weight", {hp.n_ff, hp.n_embd}, Presence::required, true);
    add("ffn_gate.bias", {hp.n_ff}, arch.ffn_bias, false);
    add("ffn_up.bias", {hp.n_ff}, arch.ffn_bias, false);
    add("ffn_down.bias", {hp.n_embd}, arch.ffn_bias, false);
  }

  for (const TensorInfo& tensor : source.tensors()) {
    const auto it = expected.find(tensor.name);
    if (it == expected.end() || it->second.presence == Presence::absent) {
      return tensor_error(tensor.name, fmt::format("is not a tensor of a {} model (llama.cpp refuses the file too)",
                                                   arch.name));
    }
  }
  for (const auto& [name, want] : expected) {
    const TensorInfo* tensor = source.find_tensor(name);
    if (tensor == nullptr) {
      if (want.presence == Presence::required) return tensor_error(name, "is missing");
      continue;
    }
    // ggml drops trailing dimensions of 1; a file may still store them.
    std::vector<int64_t> shape = tensor->shape;
    while (shape.size() > want.shape.size() && shape.back() == 1) shape.pop_back();
    if (shape != want.shape) {
      return tensor_error(name, fmt::format("has shape {}, expected {} for this {} model", shape_text(tensor->shape),
                                            shape_text(want.shape), arch.name));
    }
    const FormatInfo* format = find_format(tensor->type);
    if (format == nullptr || format->dequantize == nullptr) {
      return Error(impossible(fmt::format("type id {} has no float form", uint32_t(tensor->type))))
          .in_file(source.path())
          .in_tensor(name);
    }
    if (want.matmul && !activation_type_for(tensor->type)) {
      return Error(impossible(fmt::format("llama.cpp's CPU backend cannot multiply by {} weights", format->name)))
          .in_file(source.path())
          .in_tensor(name);
    }
  }
  return Status::success();
}

}  // namespace quant::model
