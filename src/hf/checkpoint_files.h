// Internal: the files of a checkpoint folder. JSON files are read whole (with a size cap), safetensors headers
// are parsed and checked, and tensor bytes are read on demand with positioned reads.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "quant/error.h"
#include "quant/safetensors.h"

namespace quant::hf {

using Json = nlohmann::ordered_json;

// Reads `dir/name` as JSON: nullopt when the file does not exist; invalid_input naming it when it is not JSON
// or over `max_bytes`.
Result<std::optional<Json>> read_json_file(const std::string& dir, const std::string& name,
                                           uint64_t max_bytes = uint64_t(64) << 20);
// Reads `dir/tokenizer.json` as read_json_file does, without model.vocab: an ordered_json object indexes its
// keys linearly, so a 150,000-token vocabulary would take minutes; readers that need the vocabulary parse it
// with an unordered json (hf_tokenizer.cpp). Everything else, merges included, is kept.
Result<std::optional<Json>> read_tokenizer_json(const std::string& dir);
// Reads `dir/name` whole as bytes: nullopt when it does not exist.
Result<std::optional<std::string>> read_small_file(const std::string& dir, const std::string& name,
                                                   uint64_t max_bytes = uint64_t(64) << 20);
// Python's truthiness of a JSON value (null, false, 0, "", [] and {} are false).
bool truthy(const Json& value);

// One safetensors file of the checkpoint, open for reading.
struct Shard {
  std::string path;
  int fd = -1;
  uint64_t size = 0;
  SafetensorsHeader header;
};

// A checkpoint tensor: its entry in its shard.
struct CheckpointTensor {
  std::string name;  // as stored
  size_t shard = 0;
  const SafetensorsTensor* entry = nullptr;
};

class CheckpointFiles {
 public:
  // Opens the safetensors files of `dir` as convert_hf_to_gguf.py finds them: the shards named in
  // model.safetensors.index.json (checked against it), else every model*.safetensors file; in file-name order,
  // each file's tensors sorted by name.
  static Result<std::unique_ptr<CheckpointFiles>> open(const std::string& dir);
  ~CheckpointFiles();
  CheckpointFiles(const CheckpointFiles&) = delete;
  CheckpointFiles& operator=(const CheckpointFiles&) = delete;

  const std::vector<CheckpointTensor>& tensors() const { return tensors_; }
  const Shard& shard(size_t i) const { return shards_[i]; }
  size_t shard_count() const { return shards_.size(); }
  uint64_t total_bytes() const;  // every shard file's size
  // Reads out.size() bytes of `tensor` from offset_in_tensor (the caller keeps inside the tensor).
  Status read(const CheckpointTensor& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const;

 private:
  CheckpointFiles() = default;
  std::vector<Shard> shards_;
  std::vector<CheckpointTensor> tensors_;
};

}  // namespace quant::hf
