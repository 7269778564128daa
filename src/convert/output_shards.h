// How one target's output is laid out in files: one file, or shards (ConvertRequest::split).
//
//   --keep-split           one shard per input shard, the tensors in input order, as llama-quantize writes them
//   --split-max-size/-tensors   the whole output cut as llama-gguf-split would cut llama-quantize's file
//   --shard I/N            the output cut into N shards balanced by bytes, of which this job writes shard I
// A sharded run needs no coordination: every job plans the whole output from the input's header and the options,
// so every job computes the same cut, the same tensor count (split.tensors.count) and the same first-shard
// metadata, and writes its own shard with offsets local to that file. Every shard of a --shard run carries
// quantize.shard.plan, a digest of that plan (metadata, every tensor's name, type, shape and shard, the
// importance data), so shards of runs with different inputs or options are refused when read together.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/convert.h"
#include "quant/imatrix.h"
#include "quant/split.h"

namespace quant::convert_internal {

inline constexpr std::string_view kShardPlanKey = "quantize.shard.plan";

struct OutputShards {
  uint32_t count = 1;                // files in the whole output
  bool shard_names = false;          // named PREFIX-0000i-of-0000n.gguf (else the one output path)
  bool split_keys = false;           // each file carries split.no / split.count / split.tensors.count
  SplitKeyOrder key_order = SplitKeyOrder::llama_quantize;
  std::vector<uint32_t> shard_of;    // per planned tensor, in plan order
  std::vector<std::string> paths;    // per file
  std::vector<bool> selected;        // per file: written by this process (all but one under --shard)
  std::string plan_digest;           // --shard: the value of quantize.shard.plan, else empty
};

// The data bytes of a planned tensor in its target type.
uint64_t planned_bytes(const TensorPlan& tensor);

// The tensors in the order llama-quantize --keep-split walks them: by input shard, then by data offset.
std::vector<PlanTensor> keep_split_order(const ModelSource& input, std::vector<PlanTensor> tensors);

// Lays out the output at `output_path` (the target's -o, or its default name) for `plan`, whose metadata (shard
// 0's, without split keys) is `metadata`. `importance` is the importance data the conversion uses, or null.
Result<OutputShards> lay_out_output(const OutputSplit& split, const ModelSource& input, const Plan& plan,
                                    const std::string& output_path, std::span<const KeyValue> metadata,
                                    const ImportanceMatrix* importance);

// The metadata of file `index`: shard 0 gets `metadata`; then, for split files, the split keys and the plan digest.
std::vector<KeyValue> file_metadata(const OutputShards& shards, std::span<const KeyValue> metadata, uint32_t index);

}  // namespace quant::convert_internal
