// Test helpers: the tensor lists of the mixture-of-experts and hybrid snapshot models (DeepSeek-V3.1, GLM-4.6V,
// Qwen3-Coder-Next, Qwen3.5-397B-A17B, Qwen3.5-27B, Nemotron-Nano-3-30B-A3B, Step-3.5-Flash), rebuilt from the
// snapshot header and each model's published configuration.
//
// llama.cpp's test-quant-type-selection takes the tensors from the real GGUF header and a mock model whose
// n_layer, n_head, n_head_kv and n_expert are the header's values (a per-layer array contributes its first
// element, so a hybrid model whose first block is an SSM reads n_head_kv = 0). The type rules only see those
// numbers, the tensor names and the shapes; so every layer here is built from a few parts (grouped-query or
// multi-head latent attention, gated delta-net or Mamba-2 mixers, dense or expert feed-forward), and only the
// shapes that decide a rule (a row that does not fill 256-value blocks, a third dimension for experts) have to
// be exact. The golden lists then check every name and type.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "plan/schema_models.h"

namespace quant::testing {

// --- layer parts ---

struct GqaAttention {
  int64_t n_head;
  int64_t n_head_kv;
  int64_t head_dim;
  bool gated_q = false;         // attn_q also produces the output gate (twice the width): Qwen3-Next / Qwen3.5
  bool head_gate = false;       // attn_gate.weight with one gate per head: Step-3.5
  bool qk_norm = false;         // attn_q_norm / attn_k_norm
  bool biases = false;          // attn_q/k/v.bias: GLM
};

inline void add_gqa_attention(TensorListBuilder& add, int layer, int64_t n_embd, const GqaAttention& a) {
  const int64_t q_width = a.n_head * a.head_dim;
  const int64_t kv_width = a.n_head_kv * a.head_dim;
  add.add_block(layer, "attn_q.weight", {n_embd, a.gated_q ? 2 * q_width : q_width});
  add.add_block(layer, "attn_k.weight", {n_embd, kv_width});
  add.add_block(layer, "attn_v.weight", {n_embd, kv_width});
  add.add_block(layer, "attn_output.weight", {q_width, n_embd});
  if (a.biases) {
    add.add_block(layer, "attn_q.bias", {q_width});
    add.add_block(layer, "attn_k.bias", {kv_width});
    add.add_block(layer, "attn_v.bias", {kv_width});
  }
  if (a.qk_norm) {
    add.add_block(layer, "attn_q_norm.weight", {a.head_dim});
    add.add_block(layer, "attn_k_norm.weight", {a.head_dim});
  }
  if (a.head_gate) add.add_block(layer, "attn_gate.weight", {n_embd, a.n_head});
}

// DeepSeek's multi-head latent attention as llama.cpp's converter writes it: low-rank q, a shared compressed kv
// with the rope part, and the kv up-projection split per head into attn_k_b / attn_v_b (3-D, one matrix per
// head; attn_k_b's rows are the 128 no-rope dimensions, short of a 256-value block).
struct LatentAttention {
  int64_t n_head;
  int64_t q_lora_rank;
  int64_t kv_lora_rank;
  int64_t qk_nope_dim;
  int64_t qk_rope_dim;
  int64_t v_head_dim;
};

inline void add_latent_attention(TensorListBuilder& add, int layer, int64_t n_embd, const LatentAttention& a) {
  add.add_block(layer, "attn_q_a_norm.weight", {a.q_lora_rank});
  add.add_block(layer, "attn_kv_a_norm.weight", {a.kv_lora_rank});
  add.add_block(layer, "attn_q_a.weight", {n_embd, a.q_lora_rank});
  add.add_block(layer, "attn_q_b.weight", {a.q_lora_rank, a.n_head * (a.qk_nope_dim + a.qk_rope_dim)});
  add.add_block(layer, "attn_kv_a_mqa.weight", {n_embd, a.kv_lora_rank + a.qk_rope_dim});
  add.add_block(layer, "attn_k_b.weight", {a.qk_nope_dim, a.kv_lora_rank, a.n_head});
  add.add_block(layer, "attn_v_b.weight", {a.kv_lora_rank, a.v_head_dim, a.n_head});
  add.add_block(layer, "attn_output.weight", {a.n_head * a.v_head_dim, n_embd});
}

// The gated delta-net linear attention of Qwen3-Next and Qwen3.5: fused q/k/v (counted as attn_v by the rules),
// the output gate, the beta/alpha projections (one fused tensor in Qwen3-Next, two in Qwen3.5), and the small
// SSM tensors the rules never quantize.
struct DeltaNet {
  int64_t n_key_heads;
  int64_t n_value_heads;
  int64_t key_head_dim;
  int64_t value_head_dim;
  int64_t conv_kernel;
  bool split_alpha_beta;
};

inline void add_delta_net(TensorListBuilder& add, int layer, int64_t n_embd, const DeltaNet& d) {
  const int64_t key_dim = d.n_key_heads * d.key_head_dim;
  const int64_t value_dim = d.n_value_heads * d.value_head_dim;
  const int64_t qkv_width = 2 * key_dim + value_dim;
  add.add_block(layer, "attn_qkv.weight", {n_embd, qkv_width});
  add.add_block(layer, "attn_gate.weight", {n_embd, value_dim});
  if (d.split_alpha_beta) {
    add.add_block(layer, "ssm_alpha.weight", {n_embd, d.n_value_heads});
    add.add_block(layer, "ssm_beta.weight", {n_embd, d.n_value_heads});
  } else {
    add.add_block(layer, "ssm_ba.weight", {n_embd, 2 * d.n_value_heads});
  }
  add.add_block(layer, "ssm_conv1d.weight", {d.conv_kernel, qkv_width});
  add.add_block(layer, "ssm_dt.bias", {d.n_value_heads});
  add.add_block(layer, "ssm_a", {d.n_value_heads});
  add.add_block(layer, "ssm_norm.weight", {d.value_head_dim});
  add.add_block(layer, "ssm_out.weight", {value_dim, n_embd});
}

// Nemotron-H's Mamba-2 mixer: one input projection (z, x, B, C and dt together), a conv1d, per-head A/D/dt,
// a grouped norm and the output projection.
struct Mamba2 {
  int64_t d_inner;
  int64_t n_groups;
  int64_t d_state;
  int64_t n_heads;
  int64_t conv_kernel;
};

inline void add_mamba2(TensorListBuilder& add, int layer, int64_t n_embd, const Mamba2& m) {
  const int64_t conv_width = m.d_inner + 2 * m.n_groups * m.d_state;
  add.add_block(layer, "ssm_in.weight", {n_embd, m.d_inner + conv_width + m.n_heads});
  add.add_block(layer, "ssm_conv1d.weight", {m.conv_kernel, conv_width});
  add.add_block(layer, "ssm_conv1d.bias", {conv_width});
  add.add_block(layer, "ssm_dt.bias", {m.n_heads});
  add.add_block(layer, "ssm_a", {1, m.n_heads});
  add.add_block(layer, "ssm_d", {1, m.n_heads});
  add.add_block(layer, "ssm_norm.weight", {m.d_inner / m.n_groups, m.n_groups});
  add.add_block(layer, "ssm_out.weight", {m.d_inner, n_embd});
}

inline void add_dense_ffn(TensorListBuilder& add, int layer, int64_t n_embd, int64_t n_ff, bool gated) {
  if (gated) add.add_block(layer, "ffn_gate.weight", {n_embd, n_ff});
  add.add_block(layer, "ffn_up.weight", {n_embd, n_ff});
  add.add_block(layer, "ffn_down.weight", {n_ff, n_embd});
}

// Routed experts stacked along ne2 behind a router, and optionally one shared expert (2-D) beside them.
struct ExpertFfn {
  int64_t n_expert;
  int64_t expert_ff;
  int64_t shared_ff = 0;          // 0: no shared expert
  bool gated = true;              // gate/up/down (SwiGLU); false: up/down only (Nemotron's squared ReLU)
  bool routing_bias = false;      // exp_probs_b.bias (DeepSeek-style score correction)
  bool shared_gate = false;       // ffn_gate_inp_shexp: Qwen's one-output gate on the shared expert
};

inline void add_expert_ffn(TensorListBuilder& add, int layer, int64_t n_embd, const ExpertFfn& e) {
  add.add_block(layer, "ffn_gate_inp.weight", {n_embd, e.n_expert});
  if (e.routing_bias) add.add_block(layer, "exp_probs_b.bias", {e.n_expert});
  if (e.gated) add.add_block(layer, "ffn_gate_exps.weight", {n_embd, e.expert_ff, e.n_expert});
  add.add_block(layer, "ffn_up_exps.weight", {n_embd, e.expert_ff, e.n_expert});
  add.add_block(layer, "ffn_down_exps.weight", {e.expert_ff, n_embd, e.n_expert});
  if (e.shared_ff == 0) return;
  if (e.shared_gate) add.add_block(layer, "ffn_gate_inp_shexp.weight", {n_embd});
  if (e.gated) add.add_block(layer, "ffn_gate_shexp.weight", {n_embd, e.shared_ff});
  add.add_block(layer, "ffn_up_shexp.weight", {n_embd, e.shared_ff});
  add.add_block(layer, "ffn_down_shexp.weight", {e.shared_ff, n_embd});
}

// token_embd, output_norm and (untied) output.weight.
inline void add_embeddings(TensorListBuilder& add, int64_t n_embd, int64_t n_vocab) {
  add.add("token_embd.weight", {n_embd, n_vocab});
  add.add("output_norm.weight", {n_embd});
  add.add("output.weight", {n_embd, n_vocab});
}

// --- models ---

// DeepSeek-V3.1 (deepseek2): multi-head latent attention everywhere; the first 3 blocks dense, then 256 routed
// experts of 2048 and one shared expert. This GGUF has no attn_kv_b (it is split into attn_k_b / attn_v_b), so
// no tensor counts as attn_v.
inline SnapshotModel build_deepseek_v3_model(const Snapshot& snapshot) {
  SnapshotModel model;
  model.params = params_from(snapshot, "deepseek2");
  const int64_t n_embd = header_value(snapshot, "n_embd");
  const LatentAttention attention{model.params.n_head, 1536, 512, 128, 64, 128};
  const ExpertFfn experts{model.params.n_expert, 2048, 2048, true, true, false};
  TensorListBuilder add(model.tensors);
  add_embeddings(add, n_embd, header_value(snapshot, "n_vocab"));
  for (int layer = 0; layer < model.params.n_layer; ++layer) {
    add.add_block(layer, "attn_norm.weight", {n_embd});
    add_latent_attention(add, layer, n_embd, attention);
    add.add_block(layer, "ffn_norm.weight", {n_embd});
    if (layer < 3) add_dense_ffn(add, layer, n_embd, header_value(snapshot, "n_ff"), true);
    else add_expert_ffn(add, layer, n_embd, experts);
  }
  return model;
}

// GLM-4.6V's language model (glm4moe): grouped-query attention with biases and 128-value heads; block 0 dense
// (10944, short of whole 256-value blocks), then 128 routed experts of 1408 (likewise) and a shared expert.
inline SnapshotModel build_glm4_moe_model(const Snapshot& snapshot) {
  SnapshotModel model;
  model.params = params_from(snapshot, "glm4moe");
  const int64_t n_embd = header_value(snapshot, "n_embd");
  const GqaAttention attention{model.params.n_head, model.params.n_head_kv, 128, false, false, false, true};
  const ExpertFfn experts{model.params.n_expert, 1408, 1408, true, true, false};
  TensorListBuilder add(model.tensors);
  add_embeddings(add, n_embd, header_value(snapshot, "n_vocab"));
  for (int layer = 0; layer < model.params.n_layer; ++layer) {
    add.add_block(layer, "attn_norm.weight", {n_embd});
    add_gqa_attention(add, layer, n_embd, attention);
    add.add_block(layer, "post_attention_norm.weight", {n_embd});
    if (layer < 1) add_dense_ffn(add, layer, n_embd, header_value(snapshot, "n_ff"), true);
    else add_expert_ffn(add, layer, n_embd, experts);
  }
  return model;
}

// The Qwen3-Next / Qwen3.5 family: three gated delta-net blocks, then one full-attention block (gated q, 256-value
// heads, q/k norms), repeating; the feed-forward is dense (Qwen3.5-27B) or routed experts with a gated shared
// expert.
struct QwenHybridLayout {
  std::string arch;
  DeltaNet delta_net;
  int64_t head_dim;
  int64_t expert_ff;  // 0: dense feed-forward of the header's n_ff
};

inline SnapshotModel build_qwen_hybrid_model(const Snapshot& snapshot, const QwenHybridLayout& layout) {
  SnapshotModel model;
  model.params = params_from(snapshot, layout.arch);
  const int64_t n_embd = header_value(snapshot, "n_embd");
  const GqaAttention attention{model.params.n_head, model.params.n_head_kv, layout.head_dim, true, false, true, false};
  const ExpertFfn experts{model.params.n_expert, layout.expert_ff, layout.expert_ff, true, false, true};
  TensorListBuilder add(model.tensors);
  add_embeddings(add, n_embd, header_value(snapshot, "n_vocab"));
  for (int layer = 0; layer < model.params.n_layer; ++layer) {
    add.add_block(layer, "attn_norm.weight", {n_embd});
    if (layer % 4 == 3) add_gqa_attention(add, layer, n_embd, attention);
    else add_delta_net(add, layer, n_embd, layout.delta_net);
    add.add_block(layer, "post_attention_norm.weight", {n_embd});
    if (layout.expert_ff == 0) add_dense_ffn(add, layer, n_embd, header_value(snapshot, "n_ff"), true);
    else add_expert_ffn(add, layer, n_embd, experts);
  }
  return model;
}

// Nemotron-Nano-3-30B-A3B (nemotron_h_moe): each block is one mixer, Mamba-2 (M), attention (*) or routed experts
// with a shared expert (E), in the order of the model's hybrid_override_pattern. n_embd = 2688 and the expert
// widths 1856 / 3712 do not fill 256-value blocks, so most tensors fall back. The header's n_head_kv is 0 (block
// 0 is Mamba), which leaves gqa at 0; the attention blocks have 2 kv heads of 128.
inline SnapshotModel build_nemotron_h_moe_model(const Snapshot& snapshot) {
  constexpr std::string_view kPattern = "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME";
  SnapshotModel model;
  model.params = params_from(snapshot, "nemotron_h_moe");
  const int64_t n_embd = header_value(snapshot, "n_embd");
  const Mamba2 mamba{4096, 8, 128, 64, 4};
  const GqaAttention attention{model.params.n_head, 2, 128};
  const ExpertFfn experts{model.params.n_expert, 1856, 3712, false, true, false};
  TensorListBuilder add(model.tensors);
  add_embeddings(add, n_embd, header_value(snapshot, "n_vocab"));
  if (static_cast<int64_t>(kPattern.size()) != model.params.n_layer) {
    throw std::runtime_error("nemotron pattern does not match the header's n_layer");
  }
  for (int layer = 0; layer < model.params.n_layer; ++layer) {
    add.add_block(layer, "attn_norm.weight", {n_embd});
    switch (kPattern[layer]) {
      case 'M': add_mamba2(add, layer, n_embd, mamba); break;
      case '*': add_gqa_attention(add, layer, n_embd, attention); break;
      default: add_expert_ffn(add, layer, n_embd, experts); break;
    }
  }
  return model;
}

// Step-3.5-Flash (step35): grouped-query attention with q/k norms and a per-head output gate; the first 3 blocks
// dense, then 288 routed experts of 1280 and a shared expert. Its sliding-window blocks have their own head
// count, but the rules only read block 0's, so every block is built with the header's.
inline SnapshotModel build_step35_model(const Snapshot& snapshot) {
  SnapshotModel model;
  model.params = params_from(snapshot, "step35");
  const int64_t n_embd = header_value(snapshot, "n_embd");
  const GqaAttention attention{model.params.n_head, model.params.n_head_kv, 128, false, true, true, false};
  const ExpertFfn experts{model.params.n_expert, 1280, 1280, true, false, false};
  TensorListBuilder add(model.tensors);
  add_embeddings(add, n_embd, header_value(snapshot, "n_vocab"));
  for (int layer = 0; layer < model.params.n_layer; ++layer) {
    add.add_block(layer, "attn_norm.weight", {n_embd});
    add_gqa_attention(add, layer, n_embd, attention);
    add.add_block(layer, "ffn_norm.weight", {n_embd});
    if (layer < 3) add_dense_ffn(add, layer, n_embd, header_value(snapshot, "n_ff"), true);
    else add_expert_ffn(add, layer, n_embd, experts);
  }
  return model;
}

}  // namespace quant::testing
