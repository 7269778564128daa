// The architecture table. Name rules are the transformers module names of each family and the GGUF names
// llama.cpp's TensorNameMap (gguf-py/gguf/tensor_mapping.py) gives them for that GGUF architecture.
#include "hf/architectures.h"

#include <fmt/format.h>

#include <charconv>
#include <optional>

namespace quant::hf {
namespace {

constexpr NameRule kLlamaNames[] = {
    {"model.embed_tokens", "token_embd"},
    {"lm_head", "output"},
    {"model.norm", "output_norm"},
    {"model.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"},
    {"model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q"},
    {"model.layers.{bid}.self_attn.k_proj", "blk.{bid}.attn_k"},
    {"model.layers.{bid}.self_attn.v_proj", "blk.{bid}.attn_v"},
    {"model.layers.{bid}.self_attn.o_proj", "blk.{bid}.attn_output"},
    {"model.layers.{bid}.post_attention_layernorm", "blk.{bid}.ffn_norm"},
    {"model.layers.{bid}.mlp.gate_proj", "blk.{bid}.ffn_gate"},
    {"model.layers.{bid}.mlp.up_proj", "blk.{bid}.ffn_up"},
    {"model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"},
};

constexpr NameRule kQwen3Names[] = {
    {"model.embed_tokens", "token_embd"},
    {"lm_head", "output"},
    {"model.norm", "output_norm"},
    {"model.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"},
    {"model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q"},
    {"model.layers.{bid}.self_attn.k_proj", "blk.{bid}.attn_k"},
    {"model.layers.{bid}.self_attn.v_proj", "blk.{bid}.attn_v"},
    {"model.layers.{bid}.self_attn.o_proj", "blk.{bid}.attn_output"},
    {"model.layers.{bid}.self_attn.q_norm", "blk.{bid}.attn_q_norm"},
    {"model.layers.{bid}.self_attn.k_norm", "blk.{bid}.attn_k_norm"},
    {"model.layers.{bid}.post_attention_layernorm", "blk.{bid}.ffn_norm"},
    {"model.layers.{bid}.mlp.gate_proj", "blk.{bid}.ffn_gate"},
    {"model.layers.{bid}.mlp.up_proj", "blk.{bid}.ffn_up"},
    {"model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"},
};

// Gemma 2 has a norm before and after both attention and feed-forward.
constexpr NameRule kGemma2Names[] = {
    {"model.embed_tokens", "token_embd"},
    {"model.norm", "output_norm"},
    {"model.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"},
    {"model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q"},
    {"model.layers.{bid}.self_attn.k_proj", "blk.{bid}.attn_k"},
    {"model.layers.{bid}.self_attn.v_proj", "blk.{bid}.attn_v"},
    {"model.layers.{bid}.self_attn.o_proj", "blk.{bid}.attn_output"},
    {"model.layers.{bid}.post_attention_layernorm", "blk.{bid}.post_attention_norm"},
    {"model.layers.{bid}.pre_feedforward_layernorm", "blk.{bid}.ffn_norm"},
    {"model.layers.{bid}.post_feedforward_layernorm", "blk.{bid}.post_ffw_norm"},
    {"model.layers.{bid}.mlp.gate_proj", "blk.{bid}.ffn_gate"},
    {"model.layers.{bid}.mlp.up_proj", "blk.{bid}.ffn_up"},
    {"model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"},
};

// Phi-3 keeps q, k, v in one matrix and gate, up in another; llama.cpp's phi3 graph reads them fused.
constexpr NameRule kPhi3Names[] = {
    {"model.embed_tokens", "token_embd"},
    {"lm_head", "output"},
    {"model.norm", "output_norm"},
    {"model.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"},
    {"model.layers.{bid}.self_attn.qkv_proj", "blk.{bid}.attn_qkv"},
    {"model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q"},
    {"model.layers.{bid}.self_attn.k_proj", "blk.{bid}.attn_k"},
    {"model.layers.{bid}.self_attn.v_proj", "blk.{bid}.attn_v"},
    {"model.layers.{bid}.self_attn.o_proj", "blk.{bid}.attn_output"},
    {"model.layers.{bid}.post_attention_layernorm", "blk.{bid}.ffn_norm"},
    {"model.layers.{bid}.mlp.gate_up_proj", "blk.{bid}.ffn_up"},
    {"model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"},
};

// clang-format off
const Architecture kArchitectures[] = {
    // hf_name, gguf, params, vocab, names, permute_qk, norm+1, skip_lm_head, llama_params, pooling, reranker,
    // phi3_rope, strips_text_model
    {"LlamaForCausalLM", "llama", ParamSet::text_model, VocabPath::llama, kLlamaNames,
     true, false, false, true, false, false, false, true},
    // The converter registers Mistral's class under its Llama model (conversion/llama.py).
    {"MistralForCausalLM", "llama", ParamSet::text_model, VocabPath::llama, kLlamaNames,
     true, false, false, true, false, false, false, true},
    {"Qwen2ForCausalLM", "qwen2", ParamSet::text_model, VocabPath::qwen2, kLlamaNames,
     false, false, false, false, true, false, false, false},
    {"Qwen3ForCausalLM", "qwen3", ParamSet::text_model, VocabPath::qwen2, kQwen3Names,
     false, false, false, false, true, true, false, false},
    {"GemmaForCausalLM", "gemma", ParamSet::gemma, VocabPath::gemma, kLlamaNames,
     false, true, true, false, false, false, false, false},
    {"Gemma2ForCausalLM", "gemma2", ParamSet::gemma2, VocabPath::gemma2, kGemma2Names,
     false, true, true, false, false, false, false, false},
    {"Phi3ForCausalLM", "phi3", ParamSet::phi3, VocabPath::phi3, kPhi3Names,
     false, false, false, false, false, false, true, false},
};
// clang-format on

// Matches `name` against `pattern` ("...{bid}..."), returning the block number (or -1 for no {bid}).
std::optional<int64_t> match_rule(std::string_view pattern, std::string_view name) {
  const size_t hole = pattern.find("{bid}");
  if (hole == std::string_view::npos) return pattern == name ? std::optional<int64_t>(-1) : std::nullopt;
  const std::string_view head = pattern.substr(0, hole);
  const std::string_view tail = pattern.substr(hole + 5);
  if (name.size() <= head.size() + tail.size() || !name.starts_with(head) || !name.ends_with(tail)) return std::nullopt;
  const std::string_view digits = name.substr(head.size(), name.size() - head.size() - tail.size());
  if (digits.empty() || digits.size() > 9 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  int64_t bid = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), bid);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return bid;
}

std::string map_exact(const Architecture& arch, std::string_view name, int64_t block_count) {
  for (const NameRule& rule : arch.names) {
    const std::optional<int64_t> bid = match_rule(rule.hf, name);
    // The converter's map holds the names of blocks 0..block_count-1 only.
    if (!bid || *bid >= block_count) continue;
    std::string out(rule.gguf);
    if (const size_t hole = out.find("{bid}"); hole != std::string::npos) out.replace(hole, 5, std::to_string(*bid));
    return out;
  }
  return {};
}

}  // namespace

const Architecture* find_architecture(std::string_view hf_name) {
  for (const Architecture& arch : kArchitectures) {
    if (arch.hf_name == hf_name) return &arch;
  }
  return nullptr;
}

std::string supported_architecture_names() {
  std::string out;
  for (const Architecture& arch : kArchitectures) {
    if (!out.empty()) out += ", ";
    out += arch.hf_name;
  }
  return out;
}

std::string map_tensor_name(const Architecture& arch, std::string_view name, int64_t block_count) {
  if (std::string exact = map_exact(arch, name, block_count); !exact.empty()) return exact;
  for (std::string_view suffix : {std::string_view(".weight"), std::string_view(".bias")}) {
    if (!name.ends_with(suffix)) continue;
    std::string base = map_exact(arch, name.substr(0, name.size() - suffix.size()), block_count);
    if (!base.empty()) return base + std::string(suffix);
  }
  return {};
}

}  // namespace quant::hf
