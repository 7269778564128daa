// Internal: the supported Hugging Face architectures, as rows of a table. Each row says which GGUF architecture
// it becomes, how tensor names map, which transforms its tensors need, which hyper-parameter list and which
// vocabulary path convert_hf_to_gguf.py (34af94c) uses for it. Adding a model of an existing family is adding a
// row; the code that interprets the rows is shared.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace quant::hf {

// Which set_gguf_parameters the converter runs (conversion/base.py TextModel, gemma.py, phi.py).
enum class ParamSet { text_model, gemma, gemma2, phi3 };
// Which set_vocab the converter runs.
enum class VocabPath {
  llama,   // LlamaModel: tokenizer.model, else tokenizer.json (Llama-HF or GPT-2 BPE)
  qwen2,   // Qwen2Model: tokenizer.model, else GPT-2 BPE
  gemma,   // GemmaModel: tokenizer.model, plus CodeGemma's FIM ids, add_space_prefix false
  gemma2,  // Gemma2Model: tokenizer.model, add_space_prefix false
  phi3,    // Phi3MiniModel: its own SentencePiece reading (added tokens from tokenizer.json too)
};

// "model.layers.{bid}.self_attn.q_proj" -> "blk.{bid}.attn_q" (the .weight/.bias suffix is kept as found).
struct NameRule {
  std::string_view hf;
  std::string_view gguf;
};

struct Architecture {
  std::string_view hf_name;    // config.json "architectures"[0]
  std::string_view gguf_name;  // general.architecture
  ParamSet params;
  VocabPath vocab;
  std::span<const NameRule> names;
  bool permute_qk = false;         // LlamaModel undoes HF's rotary layout of q/k rows (undo_permute)
  bool norm_plus_one = false;      // Gemma stores RMSNorm weights as w - 1: the converter adds 1
  bool skip_lm_head = false;       // Gemma ties the output to the embeddings and drops lm_head.weight
  bool llama_parameters = false;   // vocab_size and rope.dimension_count after the common keys; rope_freqs
  bool qwen_pooling = false;       // Qwen2Model reads a sentence-transformers pooling config (refused here)
  bool qwen3_reranker = false;     // Qwen3Model converts rerankers differently (refused here)
  bool phi3_rope_factors = false;  // Phi-3 long-context rope factor tensors
  bool strips_text_model = false;  // LlamaModel drops "text_model." from names
};

// The row for an architecture name, or nullptr.
const Architecture* find_architecture(std::string_view hf_name);
// Every supported name, for messages and docs.
std::string supported_architecture_names();

// Maps a checkpoint tensor name (".weight"/".bias" suffixes tried as the converter's TensorNameMap does) for a
// model of `block_count` blocks; empty when the table has no rule for it.
std::string map_tensor_name(const Architecture& arch, std::string_view name, int64_t block_count);

}  // namespace quant::hf
