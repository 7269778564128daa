#include "convert/output_shards.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "quant/gguf.h"
#include "quant/sha256.h"

namespace quant::convert_internal {
namespace {

// Tensors per shard -> the shard of each tensor.
std::vector<uint32_t> shard_of_each(const std::vector<uint64_t>& counts) {
  std::vector<uint32_t> shard_of;
  for (uint32_t s = 0; s < counts.size(); ++s) shard_of.insert(shard_of.end(), counts[s], s);
  return shard_of;
}

// quantize.shard.plan: what every job of a sharded run must agree on, so their shards make one model.
std::string plan_digest(const OutputShards& shards, const Plan& plan, std::span<const KeyValue> metadata,
                        const ImportanceMatrix* importance) {
  Sha256 hash;
  std::vector<uint8_t> bytes;
  const auto add_text = [&](std::string_view text) {
    const uint64_t size = text.size();
    hash.update(&size, sizeof(size));
    hash.update(text.data(), text.size());
  };
  for (const KeyValue& kv : metadata) {
    add_text(kv.key);
    bytes.clear();
    kv.value.encode_v3(bytes);
    const uint32_t type = uint32_t(kv.value.type());
    hash.update(&type, sizeof(type));
    hash.update(bytes.data(), bytes.size());
  }
  hash.update(&shards.count, sizeof(shards.count));
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const TensorPlan& t = plan.tensors[i];
    add_text(t.name);
    const uint32_t facts[2] = {uint32_t(t.target_type), shards.shard_of[i]};
    hash.update(facts, sizeof(facts));
    hash.update(t.shape.data(), t.shape.size() * sizeof(int64_t));
  }
  if (importance != nullptr) {
    for (const auto& [name, entry] : importance->entries) {
      add_text(name);
      hash.update(entry.values.data(), entry.values.size() * sizeof(float));
    }
  }
  return hash.finish_hex();
}

}  // namespace

uint64_t planned_bytes(const TensorPlan& t) {
  int64_t rows = 1;
  for (size_t d = 1; d < t.shape.size(); ++d) rows *= t.shape[d];
  return *row_bytes(format_of(t.target_type), t.shape.empty() ? 1 : t.shape[0]) * uint64_t(rows);
}

std::vector<PlanTensor> keep_split_order(const ModelSource& input, std::vector<PlanTensor> tensors) {
  // llama-quantize sorts its weights by (input shard, data offset) before it plans them under --keep-split.
  const auto key = [&](const PlanTensor& t) {
    const TensorInfo& info = *input.find_tensor(t.name);
    return std::pair(input.split_index_of(info), info.offset);
  };
  std::stable_sort(tensors.begin(), tensors.end(),
                   [&](const PlanTensor& a, const PlanTensor& b) { return key(a) < key(b); });
  return tensors;
}

Result<OutputShards> lay_out_output(const OutputSplit& split, const ModelSource& input, const Plan& plan,
                                    const std::string& output_path, std::span<const KeyValue> metadata,
                                    const ImportanceMatrix* importance) {
  OutputShards out;
  const size_t n = plan.tensors.size();
  if (!split.keep_split && split.limits.max_bytes == 0 && split.limits.max_tensors == 0 && !split.shard) {
    out.shard_of.assign(n, 0);
    out.paths = {output_path};
    out.selected = {true};
    return out;
  }
  std::vector<uint64_t> sizes;
  sizes.reserve(n);
  for (const TensorPlan& t : plan.tensors) sizes.push_back(planned_bytes(t));

  out.shard_names = true;
  if (split.keep_split) {
    // llama-quantize: n_split is the highest input shard index used plus one ("assume split index is
    // continuous"), and the split keys are written only when that is more than one.
    for (const TensorPlan& t : plan.tensors) out.shard_of.push_back(input.split_index_of(*input.find_tensor(t.name)));
    out.count = 1 + (out.shard_of.empty() ? 0 : *std::max_element(out.shard_of.begin(), out.shard_of.end()));
    out.split_keys = out.count > 1;
  } else if (split.shard) {
    QUANT_ASSIGN_OR_RETURN(const uint64_t header, gguf_file_size(metadata, {}));
    QUANT_ASSIGN_OR_RETURN(const std::vector<uint64_t> counts, cut_balanced(sizes, header, split.shard->count));
    out.shard_of = shard_of_each(counts);
    out.count = split.shard->count;
    out.split_keys = out.count > 1;
  } else {
    // The bytes llama-gguf-split writes from llama-quantize's whole file: its split keys on every shard, even one.
    QUANT_ASSIGN_OR_RETURN(const std::vector<uint64_t> counts, cut_by_limits(sizes, split.limits));
    out.shard_of = shard_of_each(counts);
    out.count = uint32_t(counts.size());
    out.split_keys = true;
    out.key_order = SplitKeyOrder::gguf_split;
  }
  const std::string prefix = output_split_prefix(output_path);
  for (uint32_t s = 0; s < out.count; ++s) {
    out.paths.push_back(split_path(prefix, s, out.count));
    out.selected.push_back(!split.shard || split.shard->index == s);
  }
  if (split.shard && out.split_keys) out.plan_digest = plan_digest(out, plan, metadata, importance);
  return out;
}

std::vector<KeyValue> file_metadata(const OutputShards& shards, std::span<const KeyValue> metadata, uint32_t index) {
  if (!shards.split_keys) return std::vector<KeyValue>(metadata.begin(), metadata.end());
  std::vector<KeyValue> out =
      shard_metadata(metadata, index, shards.count, shards.shard_of.size(), shards.key_order);
  if (!shards.plan_digest.empty()) out.push_back(KeyValue{std::string(kShardPlanKey), Value::string(shards.plan_digest)});
  return out;
}

}  // namespace quant::convert_internal
