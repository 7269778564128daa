// Split GGUF models: one model stored as several GGUF files, "shards", named PREFIX-0000i-of-0000n.gguf (i counted
// from 1, five digits, as llama.cpp's llama_split_path names them). Each shard is a complete GGUF file holding a
// contiguous part of the model's tensors and these keys:
//   split.no             u16  the shard's index, from 0
//   split.count          u16  how many shards make the model
//   split.tensors.count  i32  tensors in the whole model
// The first shard also holds the model's metadata; the others hold only the split keys. llama.cpp loads a split
// model from its first shard, finds the others by the naming rule, and reads metadata from the first only.
//
// This header has:
//   - the naming rule (split_path, parse_split_path, output_split_prefix);
//   - SplitModel, the split-set reader: naming any shard opens the whole model, each shard found by the naming
//     rule and checked against the others;
//   - how an output is cut into shards: llama-gguf-split's rules (at most N bytes or N tensors per shard), or N
//     shards balanced by bytes (`--shard I/N`), and each shard's metadata as llama's tools write it;
//   - split_model() and merge_model(): the files `llama-gguf-split --split` and `--merge` write, streamed a chunk
//     at a time, every shard written to a temporary file and all of them placed together or none.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "quant/error.h"
#include "quant/gguf.h"
#include "quant/model_source.h"
#include "quant/report.h"

namespace quant {

inline constexpr std::string_view kSplitNoKey = "split.no";
inline constexpr std::string_view kSplitCountKey = "split.count";
inline constexpr std::string_view kSplitTensorsCountKey = "split.tensors.count";
// The split keys hold u16 counts, so a model has at most this many shards.
inline constexpr uint32_t kMaxShards = 65535;

// "PREFIX-0000i-of-0000n.gguf" for the shard of 0-based `index` among `count`.
std::string split_path(std::string_view prefix, uint32_t index, uint32_t count);

// A path that follows the naming rule, taken apart: index is 0-based.
struct SplitName {
  std::string prefix;
  uint32_t index = 0;
  uint32_t count = 0;
};
// The parts of `path` when it ends in "-NNNNN-of-MMMMM.gguf" with 1 <= NNNNN <= MMMMM; nullopt otherwise.
std::optional<SplitName> parse_split_path(std::string_view path);

// The prefix of an output's shards: the output path without a trailing ".gguf" (`-o out.gguf --keep-split` writes
// out-00001-of-0000n.gguf, as llama-quantize does).
std::string output_split_prefix(std::string_view output_path);

// True when `model`'s metadata says it is one shard of several (split.count > 1).
bool is_split_shard(const ModelSource& model);

// The split-set reader: the shards of a split model read as the one model they make. metadata() is the first
// shard's (split keys included, as llama.cpp sees it); tensors() are every shard's, shard by shard, each in its
// file's order, with offsets relative to its own shard's data section.
class SplitModel : public ModelSource {
 public:
  // Opens the model that the shard at `path` belongs to. Errors, each naming the shard at fault:
  //   io            a shard that cannot be opened (a missing one is named by the path looked for);
  //   invalid_input a damaged shard, or one that does not belong: no or a bad split.count, a file name that does
  //                 not follow the naming rule for the split.no and split.count inside, a split.no other than
  //                 its place in the set, a split.count or split.tensors.count unlike the first shard's, metadata
  //                 unlike the first shard's, a tensor held by two shards, a total other than split.tensors.count.
  static Result<std::unique_ptr<SplitModel>> open(const std::string& path, const GgufLimits& limits = {});
  // The same, given the named shard already open.
  static Result<std::unique_ptr<SplitModel>> open(GgufFile named_shard, const GgufLimits& limits = {});

  const std::string& path() const override { return path_; }
  uint64_t input_bytes() const override { return input_bytes_; }
  const std::vector<KeyValue>& metadata() const override { return shards_[0].metadata(); }
  const Value* find(std::string_view key) const override { return shards_[0].find(key); }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const override;
  Status read_tensor(const TensorInfo& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const override;
  const std::string& file_of(const TensorInfo& tensor) const override;
  std::vector<std::string> files() const override;
  uint32_t split_count() const override { return uint32_t(shards_.size()); }
  uint32_t split_index_of(const TensorInfo& tensor) const override;

  // The shards, in order; prefix() is what their names share.
  const std::vector<GgufFile>& shards() const { return shards_; }
  const std::string& prefix() const { return prefix_; }

 private:
  SplitModel() = default;
  // Where a tensor of tensors() lives: its shard and its index there.
  struct Location {
    uint32_t shard;
    uint32_t index;
  };
  const Location& location_of(const TensorInfo& tensor) const;

  std::string path_;
  std::string prefix_;
  uint64_t input_bytes_ = 0;
  std::vector<GgufFile> shards_;
  std::vector<TensorInfo> tensors_;
  std::vector<Location> locations_;                            // parallel to tensors_
  std::unordered_map<std::string_view, size_t> tensor_index_;  // views into tensors_[i].name
};

// ---------------------------------------------------------------------------------------------------------
// Cutting an output into shards. Every cut keeps the tensors in order and gives each shard a contiguous run of
// them; a cut is the number of tensors in each shard.

// llama-gguf-split's limits: exactly one is set.
struct ShardLimits {
  uint64_t max_bytes = 0;    // --split-max-size: tensor data per shard (each tensor counted padded to 32 bytes)
  uint64_t max_tensors = 0;  // --split-max-tensors
};

// A --split-max-size value: a positive integer followed by M (10^6 bytes) or G (10^9 bytes), decimal as
// llama-gguf-split reads them (2M is 2,000,000 bytes), or a bare integer of bytes. Usage error otherwise.
Result<uint64_t> parse_split_size(std::string_view text);

// `--shard I/N`: this job writes shard I (1-based on the command line, 0-based here) of N.
struct ShardSelection {
  uint32_t index = 0;
  uint32_t count = 0;
};
// "I/N" with 1 <= I <= N <= kMaxShards; usage error otherwise ("4/3" names both numbers).
Result<ShardSelection> parse_shard_selection(std::string_view text);

// llama-gguf-split's cut of tensors of these data sizes: a new shard starts when the next tensor would take the
// shard's padded tensor bytes over max_bytes, or every max_tensors tensors. (Where the first tensor alone
// exceeds max_bytes llama-gguf-split stops with "one of splits have 0 tensors"; here it gets the first shard.)
// Usage error when neither or both limits are set; impossible when the cut needs more than kMaxShards shards.
Result<std::vector<uint64_t>> cut_by_limits(std::span<const uint64_t> tensor_bytes, const ShardLimits& limits);

// `count` shards balanced by bytes, for `--shard I/N`: the largest shard (shard 0 also counting
// `first_shard_extra` bytes: its metadata) is as small as any cut into `count` contiguous, non-empty shards allows;
// among those cuts, each shard takes as many tensors as fit in order, leaving one for each shard after it. A
// function of its arguments only, so
// every job of a sharded run computes the same cut. Each tensor counts as its data padded to 32 bytes.
// impossible when there are fewer tensors than shards; usage error when count is 0 or above kMaxShards.
Result<std::vector<uint64_t>> cut_balanced(std::span<const uint64_t> tensor_bytes, uint64_t first_shard_extra,
                                           uint32_t count);

// The order in which a tool writes the three split keys.
enum class SplitKeyOrder {
  gguf_split,      // split.no, split.tensors.count, split.count (llama-gguf-split --split)
  llama_quantize,  // split.no, split.count, split.tensors.count (llama-quantize --keep-split)
};

// The metadata of shard `index` of `count`: for shard 0, `model_metadata` without any split keys, then the split
// keys; for the others, the split keys alone.
std::vector<KeyValue> shard_metadata(std::span<const KeyValue> model_metadata, uint32_t index, uint32_t count,
                                     uint64_t total_tensors, SplitKeyOrder order);

// ---------------------------------------------------------------------------------------------------------
// quantize split / quantize merge.

struct SplitJobOptions {
  bool dry_run = false;  // plan only
  // How the files are placed (quant/atomic_file.h): overwrite (--force), fsync; the input's files are added to
  // its inputs.
  OutputPolicy output;
  uint64_t chunk_bytes = uint64_t(8) << 20;  // bytes copied at a time (two chunks in memory: one read ahead)
  const std::atomic<bool>* cancel = nullptr; // when set and true, stop with an `interrupted` error
};

struct SplitJobReport {
  std::string input;
  std::vector<ShardReport> files;
  uint64_t total_tensors = 0;
  uint64_t input_bytes = 0;
  double wall_seconds = 0;
};

// `llama-gguf-split --split [--split-max-size N | --split-max-tensors N] INPUT PREFIX`: the model at `input` (any
// source open_model reads, so a split model can be cut again) written as PREFIX-0000i-of-0000n.gguf.
Result<SplitJobReport> split_model(const std::string& input, const std::string& prefix, const ShardLimits& limits,
                                   const SplitJobOptions& options);

// `llama-gguf-split --merge FIRST_SHARD OUTPUT`: the split model that `shard` belongs to written as one file (the
// first shard's metadata with split.count set to 0 and moved last, as llama-gguf-split leaves it).
Result<SplitJobReport> merge_model(const std::string& shard, const std::string& output, const SplitJobOptions& options);

}  // namespace quant
