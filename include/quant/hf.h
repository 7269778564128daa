// Hugging Face checkpoints: a folder with config.json, model.safetensors (or shards listed in
// model.safetensors.index.json) and tokenizer files, read as the GGUF that llama.cpp's convert_hf_to_gguf.py
// (commit 34af94c) writes from it.
//
// open_hf_checkpoint() presents the folder as a ModelSource whose metadata and tensors are those of
// `convert_hf_to_gguf.py --outtype auto` (weights f16, or bf16 when the checkpoint's first matrix is bf16; norms
// and vectors f32): metadata built from config.json, generation_config.json, the tokenizer files, the README's
// front matter and the folder's name; tensors renamed, Q/K rows permuted, norms offset (Gemma), generated tensors
// (Llama 3 rope_freqs) added, all converted as they are read, a row range at a time. Nothing is held but headers
// and the vocabulary. For the converter's own outtypes (f32, f16, bf16, q8_0, tq1_0, tq2_0) source_plan() gives
// the converter's exact output instead: its metadata order, its per-tensor types, its tensor order, quantized
// from the checkpoint's values as the converter quantizes them. docs/hf.md states the rule and lists what is
// supported and what is refused.
//
// Architectures are rows of a table (src/hf/architectures.cpp): LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM, Qwen3ForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM, Phi3ForCausalLM. Tokenizers: the
// SentencePiece model (tokenizer.model, read with libsentencepiece) where the converter uses it, and GPT-2 BPE
// tokenizer.json where it takes that path (the pre-tokenizer named by the converter's hash of its fixed text).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "quant/error.h"
#include "quant/model_source.h"

namespace quant {

// Whether `path` is a directory (the only kind of input read as a checkpoint).
bool is_checkpoint_directory(const std::string& path);

// Opens the checkpoint folder. Errors: io (a file cannot be read), invalid_input (a damaged or contradictory
// file, naming it, the tensor and the offset), impossible (an architecture, tokenizer or dtype this build does
// not convert, named in the message; exit 4).
Result<std::unique_ptr<ModelSource>> open_hf_checkpoint(const std::string& path);

// The files a checkpoint folder is made of, for the rule that no output replaces an input: every regular file at
// its top level (links followed: a Hugging Face cache links its files to blobs), sorted. Empty when the folder
// cannot be listed.
std::vector<std::string> hf_checkpoint_files(const std::string& path);

// The folder's name as the converter takes it (Python's Path(path).name: trailing separators and "." parts
// ignored), used for general.name and default output names.
std::string checkpoint_folder_name(const std::string& path);

}  // namespace quant
