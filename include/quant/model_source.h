// A model as the library reads it: metadata keys and a list of tensors whose bytes can be read in any order,
// wherever they are stored.
//
// Every consumer (convert, info, eval, imatrix) reads models through this interface, so each kind of input is
// written once:
//   - one GGUF file (GgufFile implements ModelSource directly);
//   - the shards of a split GGUF (`NAME-0000i-of-0000n.gguf`), read as the one model they make;
//   - a Hugging Face checkpoint folder, presented as the GGUF that convert_hf_to_gguf.py would write from it
//     (metadata built from config and tokenizer files, tensors renamed and converted as they are read).
// `open_model` picks the kind from the path. Tensor data is never held by a source: read_tensor reads the bytes
// asked for, so memory stays bounded by what the caller reads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "quant/error.h"
#include "quant/gguf_values.h"

namespace quant {

// How a source writes one of its own target types, for a source that defines those bytes itself: a Hugging Face
// checkpoint written as convert_hf_to_gguf.py writes its outtypes (docs/hf.md). It replaces llama-quantize's plan
// and metadata rules for that target.
struct SourcePlanTensor {
  TensorInfo source;  // what read_tensor reads for this tensor (any type the source offers for it)
  TypeId target;      // the type written
  std::string why;    // one line for reports
};
struct SourcePlan {
  std::vector<KeyValue> metadata;          // every key in order, general.file_type included
  std::vector<SourcePlanTensor> tensors;   // in output order
};

class ModelSource {
 public:
  virtual ~ModelSource() = default;

  // What the user named (a file or a folder): messages and default output names use it.
  virtual const std::string& path() const = 0;
  // Bytes of input on disk (every shard or checkpoint file), for reports.
  virtual uint64_t input_bytes() const = 0;

  // Metadata in the order a GGUF writer would write it.
  virtual const std::vector<KeyValue>& metadata() const = 0;
  virtual const Value* find(std::string_view key) const = 0;
  // The scalar (or std::string / std::string_view) stored under key; an invalid-input error naming the file and
  // key if it is missing or holds another type. A string_view points into this source's metadata.
  template <typename T>
  Result<T> get(std::string_view key) const;

  // Tensors in the model's order: names, types and shapes as a GGUF file of this model holds them. `offset` is
  // the source's own business (for split models, relative to the tensor's shard).
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  virtual const TensorInfo* find_tensor(std::string_view name) const = 0;
  // Reads out.size() bytes of `tensor` (one of tensors()) from offset_in_tensor. Errors name the file and tensor.
  // Safe to call from several threads at once (the forward pass reads each tile of a weight on the thread that
  // multiplies by it): sources read with pread and keep no state between reads.
  virtual Status read_tensor(const TensorInfo& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const = 0;
  // The file that holds `tensor` (its shard for split models, its safetensors file for checkpoints): errors about
  // the tensor's bytes name it.
  virtual const std::string& file_of(const TensorInfo& tensor) const { (void)tensor; return path(); }
  // Every file this source is made of: no output may replace one of them (quant/atomic_file.h's
  // OutputPolicy::inputs). The path itself for a GGUF file, every shard of a split model, every regular file at
  // the top of a checkpoint folder (weights, configuration, tokenizer, model card: the folder is one input).
  virtual std::vector<std::string> files() const { return {path()}; }
  // For a split GGUF model (quant/split.h): how many shards it is stored in, and the 0-based shard holding
  // `tensor` (llama-quantize --keep-split writes one output shard per input shard). 1 and 0 for other sources.
  virtual uint32_t split_count() const { return 1; }
  virtual uint32_t split_index_of(const TensorInfo& tensor) const { (void)tensor; return 0; }

  // The plan for writing this model as llama_ftype `file_type` when the source itself defines those bytes (see
  // SourcePlan); nullopt when it does not (then llama-quantize's rules apply to tensors()). Errors: the source
  // cannot be written as that type (impossible) or is damaged.
  virtual Result<std::optional<SourcePlan>> source_plan(uint32_t file_type) const {
    (void)file_type;
    return std::optional<SourcePlan>();
  }

  // The whole tensor's bytes.
  Result<std::vector<uint8_t>> read_tensor_data(const TensorInfo& tensor) const;
  // Total of every tensor's data (unpadded) and parameters.
  uint64_t total_tensor_bytes() const;
  uint64_t total_elements() const;

 protected:
  // "FILE: metadata key 'KEY' REASON" as an invalid-input error.
  Error key_error(std::string_view key, std::string reason) const;
};

// Opens the model at `path`: a GGUF file, any shard of a split GGUF, or a Hugging Face checkpoint folder.
// Errors: io when the path cannot be read, invalid_input for a damaged file, impossible for an input kind this
// build cannot read (named in the message).
Result<std::unique_ptr<ModelSource>> open_model(const std::string& path);

// The files the model at `path` is made of, found without reading them, for refusing an output that would replace
// one before any work starts: a folder's top-level regular files (links followed), every shard a split model's
// name implies (present or not), else the path. ModelSource::files() says the same of an opened model.
std::vector<std::string> model_files(const std::string& path);

template <typename T>
Result<T> ModelSource::get(std::string_view key) const {
  const Value* value = find(key);
  if (value == nullptr) return key_error(key, "missing");
  if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>) {
    if (value->type() != ValueType::string) {
      return key_error(key, std::string("is ") + std::string(value_type_name(value->type())) + ", expected string");
    }
    return T(value->as_string());
  } else {
    if (!value->holds<T>()) {
      return key_error(key, std::string("is ") + std::string(value_type_name(value->type())) + ", expected " +
                                std::string(value_type_name(ValueTypeOf<T>::value)));
    }
    return value->as<T>();
  }
}

}  // namespace quant
