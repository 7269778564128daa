// Test helpers: reading llama.cpp's quant-type snapshot files (tests/data/quant-type-snapshots/*.schema) and
// rebuilding the tensor list of each model from its header line.
//
// llama.cpp's test-quant-type-selection reads the real GGUF header of each model, keeps the tensors
// llama-quantize may quantize, sorts them in output order and prints, for every file type, the tensors whose
// type differs from the default. A schema file therefore fixes the names of the tensors whose type changes;
// the others we rebuild from the architecture's tensor layout (names and shapes as llama.cpp's converter
// writes them), which the test then checks against every line.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/plan.h"

namespace quant::testing {

struct SnapshotSection {
  std::string file_type;  // "Q4_K_M"
  std::string default_type;
  std::map<std::string, std::string> changed;  // tensor name -> ggml type name
  size_t listed = 0;                           // lines in the section (to catch duplicates)
};

struct Snapshot {
  std::string model;                          // "# Model: Qwen3-0.6B"
  std::map<std::string, int64_t> header;      // n_embd, n_ff, n_vocab, n_layer, n_head, n_head_kv, n_expert
  std::vector<SnapshotSection> sections;
};

inline Snapshot read_snapshot(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  Snapshot snapshot;
  SnapshotSection* section = nullptr;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (line.rfind("# Model: ", 0) == 0) {
      snapshot.model = line.substr(9);
    } else if (line[0] == '#') {
      // "# n_embd=1024, n_ff=3072, ..."
      std::istringstream fields(line.substr(1));
      for (std::string field; fields >> field;) {
        if (!field.empty() && field.back() == ',') field.pop_back();
        const size_t equals = field.find('=');
        if (equals != std::string::npos) snapshot.header[field.substr(0, equals)] = std::stoll(field.substr(equals + 1));
      }
    } else if (line[0] == '[') {
      const size_t close = line.find(']');
      if (close == std::string::npos) throw std::runtime_error("bad section line: " + line);
      snapshot.sections.push_back({line.substr(1, close - 1), line.substr(close + 2), {}, 0});
      section = &snapshot.sections.back();
    } else {
      const size_t space = line.rfind(' ');
      if (!section || space == std::string::npos) throw std::runtime_error("bad tensor line: " + line);
      section->changed[line.substr(0, space)] = line.substr(space + 1);
      ++section->listed;
    }
  }
  return snapshot;
}

// A model rebuilt for the plan: its parameters and its tensors (f32, as the reference test makes them).
struct SnapshotModel {
  ModelParams params;
  std::vector<PlanTensor> tensors;
};

class TensorListBuilder {
 public:
  explicit TensorListBuilder(std::vector<PlanTensor>& out) : out_(out) {}
  void add(const std::string& name, std::vector<int64_t> shape) { out_.push_back({name, std::move(shape), TypeId::f32}); }
  void add_block(int layer, const std::string& suffix, std::vector<int64_t> shape) {
    add("blk." + std::to_string(layer) + "." + suffix, std::move(shape));
  }

 private:
  std::vector<PlanTensor>& out_;
};

// Header value, or `fallback` when the snapshot does not list it.
inline int64_t header_value(const Snapshot& snapshot, const std::string& key, int64_t fallback = 0) {
  auto it = snapshot.header.find(key);
  return it == snapshot.header.end() ? fallback : it->second;
}

inline ModelParams params_from(const Snapshot& snapshot, const std::string& arch) {
  ModelParams params;
  params.arch = arch;
  params.n_layer = header_value(snapshot, "n_layer");
  params.n_head = header_value(snapshot, "n_head");
  params.n_head_kv = header_value(snapshot, "n_head_kv");
  params.n_expert = header_value(snapshot, "n_expert");
  params.is_70b_class = infers_70b_class(arch, params.n_layer, params.n_head, params.n_head_kv);
  return params;
}

// The dense transformer layout shared by llama, qwen3 and gemma3: token embedding, optional output projection,
// per layer q/k/v/output attention and gated feed-forward, with the 1-D norms the plan must leave alone.
struct DenseLayout {
  std::string arch;
  int64_t head_dim;
  bool tied_embeddings;         // no output.weight
  bool qk_norm;                 // attn_q_norm / attn_k_norm per layer (qwen3, gemma3)
  bool sandwich_norms;          // gemma3's post_attention_norm / post_ffw_norm
  bool rope_freqs;              // llama 3.1's rope_freqs.weight
};

inline SnapshotModel build_dense_model(const Snapshot& snapshot, const DenseLayout& layout) {
  SnapshotModel model;
  model.params = params_from(snapshot, layout.arch);
  const int64_t n_embd = header_value(snapshot, "n_embd");
  const int64_t n_ff = header_value(snapshot, "n_ff");
  const int64_t n_vocab = header_value(snapshot, "n_vocab");
  const int64_t q_width = model.params.n_head * layout.head_dim;
  const int64_t kv_width = model.params.n_head_kv * layout.head_dim;
  TensorListBuilder add(model.tensors);
  add.add("token_embd.weight", {n_embd, n_vocab});
  if (!layout.tied_embeddings) add.add("output.weight", {n_embd, n_vocab});
  add.add("output_norm.weight", {n_embd});
  if (layout.rope_freqs) add.add("rope_freqs.weight", {layout.head_dim / 2});
  for (int layer = 0; layer < model.params.n_layer; ++layer) {
    add.add_block(layer, "attn_norm.weight", {n_embd});
    add.add_block(layer, "attn_q.weight", {n_embd, q_width});
    add.add_block(layer, "attn_k.weight", {n_embd, kv_width});
    add.add_block(layer, "attn_v.weight", {n_embd, kv_width});
    add.add_block(layer, "attn_output.weight", {q_width, n_embd});
    if (layout.qk_norm) {
      add.add_block(layer, "attn_q_norm.weight", {layout.head_dim});
      add.add_block(layer, "attn_k_norm.weight", {layout.head_dim});
    }
    if (layout.sandwich_norms) {
      add.add_block(layer, "post_attention_norm.weight", {n_embd});
      add.add_block(layer, "post_ffw_norm.weight", {n_embd});
    }
    add.add_block(layer, "ffn_norm.weight", {n_embd});
    add.add_block(layer, "ffn_gate.weight", {n_embd, n_ff});
    add.add_block(layer, "ffn_up.weight", {n_embd, n_ff});
    add.add_block(layer, "ffn_down.weight", {n_ff, n_embd});
  }
  return model;
}

// gpt-oss: grouped-query attention with 64-value heads, attention sinks, and every feed-forward as 3-D expert
// tensors (ne2 = n_expert) behind a router; rows of n_embd = 2880 do not fill 256-value blocks.
inline SnapshotModel build_gpt_oss_model(const Snapshot& snapshot) {
  SnapshotModel model;
  model.params = params_from(snapshot, "gpt-oss");
  const int64_t n_embd = header_value(snapshot, "n_embd");
  const int64_t n_ff = header_value(snapshot, "n_ff");
  const int64_t n_vocab = 201088;  // the header's n_vocab is 0 (no vocabulary in the metadata); rows do not matter
  const int64_t head_dim = 64;
  const int64_t n_expert = model.params.n_expert;
  TensorListBuilder add(model.tensors);
  add.add("token_embd.weight", {n_embd, n_vocab});
  add.add("output.weight", {n_embd, n_vocab});
  add.add("output_norm.weight", {n_embd});
  for (int layer = 0; layer < model.params.n_layer; ++layer) {
    add.add_block(layer, "attn_norm.weight", {n_embd});
    add.add_block(layer, "attn_q.weight", {n_embd, model.params.n_head * head_dim});
    add.add_block(layer, "attn_k.weight", {n_embd, model.params.n_head_kv * head_dim});
    add.add_block(layer, "attn_v.weight", {n_embd, model.params.n_head_kv * head_dim});
    add.add_block(layer, "attn_output.weight", {model.params.n_head * head_dim, n_embd});
    add.add_block(layer, "attn_sinks.weight", {model.params.n_head});
    add.add_block(layer, "post_attention_norm.weight", {n_embd});
    add.add_block(layer, "ffn_gate_inp.weight", {n_embd, n_expert});
    add.add_block(layer, "ffn_gate_exps.weight", {n_embd, n_ff, n_expert});
    add.add_block(layer, "ffn_up_exps.weight", {n_embd, n_ff, n_expert});
    add.add_block(layer, "ffn_down_exps.weight", {n_ff, n_embd, n_expert});
  }
  return model;
}

}  // namespace quant::testing
