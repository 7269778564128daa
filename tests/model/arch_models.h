// Small random-weight models of the architectures the forward pass runs, written with our GgufWriter: the same
// bytes on every machine (weights from a fixed 64-bit LCG), with tiny-llama's vocabulary (an SPM tokenizer
// llama.cpp loads for any architecture). tests/model/make_arch_references.sh writes them and records llama.cpp's
// logits for them (node-llama-cpp) in tests/data/model/arch-references.json; architecture_test.cpp writes them
// again and compares our logits with those.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/formats.h"
#include "quant/gguf.h"

namespace quant::testing {

struct ArchModelSpec {
  const char* name;          // file stem and reference key
  const char* architecture;  // general.architecture
  int64_t n_embd, n_head, n_head_kv, head_dim, n_ff, n_layer;
  bool qkv_bias, qk_norm, tied_output, rope_freqs;
  float rope_base;
  TypeId attention_type, ffn_type;  // weight types (f16, q8_0, q4_K...)
};

// llama3: GQA 4/2 heads, Llama 3 rope frequency factors, f16 attention and q4_K FFN (q8_K activations);
// qwen2: q/k/v biases, tied output, neox rope, q8_0 attention (q8_0 activations);
// qwen3: per-head q/k norms, head size 64 with n_head·64 != n_embd, bf16 attention, q6_K FFN.
inline const std::vector<ArchModelSpec>& arch_model_specs() {
  static const std::vector<ArchModelSpec> specs = {
      {"llama3", "llama", 256, 4, 2, 64, 512, 2, false, false, false, true, 500000.0f, TypeId::f16, TypeId::q4_K},
      {"qwen2", "qwen2", 256, 4, 2, 64, 512, 2, true, false, true, false, 1000000.0f, TypeId::q8_0, TypeId::f16},
      {"qwen3", "qwen3", 256, 8, 4, 64, 512, 2, false, true, false, false, 1000000.0f, TypeId::bf16, TypeId::q6_K},
  };
  return specs;
}

// Uniform values in [-scale, scale) from a 64-bit LCG (Knuth's MMIX constants).
class WeightStream {
 public:
  explicit WeightStream(uint64_t seed) : state_(seed) {}
  float next(float scale) {
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return (float(state_ >> 40) / float(1u << 24) * 2.0f - 1.0f) * scale;
  }

 private:
  uint64_t state_;
};

// Writes the model `spec` to `path`, with the vocabulary metadata of `vocab_source` (tiny-llama). Returns an empty
// string on success, else what failed.
inline std::string write_arch_model(const ArchModelSpec& spec, const std::string& vocab_source,
                                    const std::string& path) {
  auto vocab = GgufFile::open(vocab_source);
  if (!vocab) return vocab.error().message();
  int64_t n_vocab = 0;
  auto writer = GgufWriter::create(path);
  if (!writer) return writer.error().message();
  const std::string a = spec.architecture;
  auto fail = [](const Status& s) { return s ? std::string() : s.error().message(); };
  std::string error;
  auto meta = [&](const std::string& key, Value value) {
    if (error.empty()) error = fail(writer->add_metadata(key, std::move(value)));
  };
  meta("general.architecture", Value::string(a));
  meta("general.name", Value::string(std::string("random ") + spec.name));
  meta(a + ".block_count", Value::u32(uint32_t(spec.n_layer)));
  meta(a + ".context_length", Value::u32(4096));
  meta(a + ".embedding_length", Value::u32(uint32_t(spec.n_embd)));
  meta(a + ".feed_forward_length", Value::u32(uint32_t(spec.n_ff)));
  meta(a + ".attention.head_count", Value::u32(uint32_t(spec.n_head)));
  meta(a + ".attention.head_count_kv", Value::u32(uint32_t(spec.n_head_kv)));
  meta(a + ".attention.key_length", Value::u32(uint32_t(spec.head_dim)));
  meta(a + ".attention.value_length", Value::u32(uint32_t(spec.head_dim)));
  meta(a + ".rope.dimension_count", Value::u32(uint32_t(spec.head_dim)));
  meta(a + ".rope.freq_base", Value::f32(spec.rope_base));
  meta(a + ".attention.layer_norm_rms_epsilon", Value::f32(1e-6f));
  meta("general.file_type", Value::u32(1));
  for (const KeyValue& kv : vocab->metadata()) {
    if (kv.key.rfind("tokenizer.", 0) == 0) meta(kv.key, kv.value);
    if (kv.key == "tokenizer.ggml.tokens") n_vocab = int64_t(kv.value.size());
  }
  if (!error.empty()) return error;

  struct Planned {
    std::string name;
    TypeId type;
    std::vector<int64_t> shape;
    float scale;
    float offset;  // added to every value (norm weights around 1)
  };
  std::vector<Planned> tensors;
  const int64_t n_q = spec.n_head * spec.head_dim, n_kv = spec.n_head_kv * spec.head_dim;
  // Scales like a trained model's: each layer adds a modest update to the residual stream (random weights at unit
  // gain make a chaotic network in which float rounding differences grow from layer to layer).
  const float in_scale = 0.5f / std::sqrt(float(spec.n_embd));
  tensors.push_back({"token_embd.weight", TypeId::f16, {spec.n_embd, n_vocab}, spec.tied_output ? 0.08f : 1.0f, 0});
  tensors.push_back({"output_norm.weight", TypeId::f32, {spec.n_embd}, 0.2f, 1.0f});
  if (!spec.tied_output) tensors.push_back({"output.weight", TypeId::f16, {spec.n_embd, n_vocab}, 4 * in_scale, 0});
  if (spec.rope_freqs) tensors.push_back({"rope_freqs.weight", TypeId::f32, {spec.head_dim / 2}, 0.0f, 0.0f});
  for (int64_t il = 0; il < spec.n_layer; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    tensors.push_back({b + "attn_norm.weight", TypeId::f32, {spec.n_embd}, 0.2f, 1.0f});
    tensors.push_back({b + "attn_q.weight", spec.attention_type, {spec.n_embd, n_q}, in_scale, 0});
    tensors.push_back({b + "attn_k.weight", spec.attention_type, {spec.n_embd, n_kv}, in_scale, 0});
    tensors.push_back({b + "attn_v.weight", spec.attention_type, {spec.n_embd, n_kv}, in_scale, 0});
    if (spec.qkv_bias) {
      tensors.push_back({b + "attn_q.bias", TypeId::f32, {n_q}, 0.5f, 0});
      tensors.push_back({b + "attn_k.bias", TypeId::f32, {n_kv}, 0.5f, 0});
      tensors.push_back({b + "attn_v.bias", TypeId::f32, {n_kv}, 0.5f, 0});
    }
    if (spec.qk_norm) {
      tensors.push_back({b + "attn_q_norm.weight", TypeId::f32, {spec.head_dim}, 0.2f, 1.0f});
      tensors.push_back({b + "attn_k_norm.weight", TypeId::f32, {spec.head_dim}, 0.2f, 1.0f});
    }
    tensors.push_back({b + "attn_output.weight", spec.attention_type, {n_q, spec.n_embd},
                       0.5f / std::sqrt(float(n_q)), 0});
    tensors.push_back({b + "ffn_norm.weight", TypeId::f32, {spec.n_embd}, 0.2f, 1.0f});
    tensors.push_back({b + "ffn_gate.weight", spec.ffn_type, {spec.n_embd, spec.n_ff}, in_scale, 0});
    tensors.push_back({b + "ffn_up.weight", spec.ffn_type, {spec.n_embd, spec.n_ff}, in_scale, 0});
    tensors.push_back({b + "ffn_down.weight", spec.ffn_type, {spec.n_ff, spec.n_embd},
                       0.5f / std::sqrt(float(spec.n_ff)), 0});
  }
  for (const Planned& t : tensors) {
    if (error.empty()) error = fail(writer->add_tensor(t.name, t.type, t.shape));
  }
  if (error.empty()) error = fail(writer->begin());
  WeightStream stream(0x5eed0000u + uint64_t(spec.name[0]) * 131 + uint64_t(spec.name[4]));
  for (const Planned& t : tensors) {
    if (!error.empty()) break;
    int64_t count = 1;
    for (int64_t d : t.shape) count *= d;
    std::vector<float> values(static_cast<size_t>(count));
    if (t.name == "rope_freqs.weight") {
      // Llama 3 rope scaling's divisors: 1 for high frequencies rising to 8 for the lowest (their shape).
      for (int64_t i = 0; i < count; ++i) values[size_t(i)] = 1.0f + 7.0f * float(i) / float(count - 1);
    } else {
      for (float& v : values) v = t.offset + stream.next(t.scale);
    }
    const FormatInfo& format = format_of(t.type);
    const int64_t rows = count / t.shape[0];
    std::vector<uint8_t> bytes(size_t(*row_bytes(format, t.shape[0]) * uint64_t(rows)));
    if (Status s = quantize_rows(format, values.data(), bytes.data(), rows, t.shape[0], nullptr); !s) {
      return s.error().message();
    }
    error = fail(writer->write_tensor(t.name, bytes));
  }
  if (error.empty()) error = fail(writer->commit());
  return error;
}

}  // namespace quant::testing
