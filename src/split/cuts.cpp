// Where an output is cut into shards: llama-gguf-split's limits, or N shards balanced by bytes.
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "core/checked_math.h"
#include "quant/split.h"

namespace quant {
namespace {

// llama-gguf-split counts each tensor at GGML_PAD(ggml_nbytes, GGUF_DEFAULT_ALIGNMENT) whatever the file's
// alignment; the balanced cut counts the same way.
constexpr uint64_t kCountedAlignment = 32;

Result<std::vector<uint64_t>> padded_sizes(std::span<const uint64_t> tensor_bytes, uint64_t* total) {
  if (tensor_bytes.size() > uint64_t(std::numeric_limits<int32_t>::max())) {
    return impossible(fmt::format("{} tensors do not fit split.tensors.count (i32)", tensor_bytes.size()));
  }
  std::vector<uint64_t> padded;
  padded.reserve(tensor_bytes.size());
  *total = 0;
  for (uint64_t bytes : tensor_bytes) {
    const auto size = checked_align_up(bytes, kCountedAlignment);
    const auto sum = size ? checked_add(*total, *size) : std::nullopt;
    if (!sum) return impossible("the tensors' sizes overflow 64 bits");
    padded.push_back(*size);
    *total = *sum;
  }
  return padded;
}

// Shards a greedy cut needs when no shard may exceed `capacity` (shard 0 starting at `first_extra`), or
// nullopt when one tensor cannot fit a shard of its own.
std::optional<uint64_t> shards_needed(std::span<const uint64_t> padded, uint64_t first_extra, uint64_t capacity) {
  uint64_t shards = 1;
  uint64_t used = first_extra;
  bool empty = true;
  for (uint64_t size : padded) {
    if (!empty && size > capacity - used) {
      ++shards;
      used = 0;
      empty = true;
    }
    if (used > capacity || size > capacity - used) return std::nullopt;
    used += size;
    empty = false;
  }
  return shards;
}

}  // namespace

Result<std::vector<uint64_t>> cut_by_limits(std::span<const uint64_t> tensor_bytes, const ShardLimits& limits) {
  if ((limits.max_bytes == 0) == (limits.max_tensors == 0)) {
    return usage_error("give one limit per shard: a maximum size or a maximum tensor count");
  }
  uint64_t total = 0;
  QUANT_ASSIGN_OR_RETURN(const std::vector<uint64_t> padded, padded_sizes(tensor_bytes, &total));
  std::vector<uint64_t> counts = {0};
  uint64_t used = 0;
  for (size_t i = 0; i < padded.size(); ++i) {
    // llama-gguf-split's should_split(): a tensor that would take the shard past the size starts a new one;
    // by count, every max_tensors-th tensor does.
    const bool full = limits.max_bytes != 0 ? used + padded[i] > limits.max_bytes  // used + padded[i] <= total
                                            : i > 0 && i % limits.max_tensors == 0;
    if (full && counts.back() > 0) {
      counts.push_back(0);
      used = 0;
    }
    used += padded[i];
    ++counts.back();
  }
  if (counts.size() > kMaxShards) {
    return impossible(fmt::format("the limit makes {} shards; split.count holds at most {}", counts.size(),
                                  kMaxShards));
  }
  return counts;
}

Result<std::vector<uint64_t>> cut_balanced(std::span<const uint64_t> tensor_bytes, uint64_t first_shard_extra,
                                           uint32_t count) {
  if (count == 0 || count > kMaxShards) {
    return usage_error(fmt::format("{} shards: the count must be 1 to {}", count, kMaxShards));
  }
  if (tensor_bytes.size() < count) {
    return impossible(fmt::format("the output has {} tensors, too few for {} shards of at least one tensor each",
                                  tensor_bytes.size(), count));
  }
  uint64_t total = 0;
  QUANT_ASSIGN_OR_RETURN(const std::vector<uint64_t> padded, padded_sizes(tensor_bytes, &total));
  const auto everything = checked_add(total, first_shard_extra);
  if (!everything) return impossible("the tensors' sizes overflow 64 bits");

  // The smallest capacity a greedy cut fits into `count` shards: greedy packing is optimal for "fewest shards
  // under a capacity", so this is the smallest largest shard of any contiguous cut.
  uint64_t low = 1;
  uint64_t high = *everything;  // one shard holding everything always fits
  while (low < high) {
    const uint64_t middle = low + (high - low) / 2;
    const std::optional<uint64_t> needed = shards_needed(padded, first_shard_extra, middle);
    if (needed && *needed <= count) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }
  const uint64_t capacity = low;

  // The cut itself: fill each shard in order up to the capacity, but close it early once the tensors left are
  // only enough for one per shard left.
  std::vector<uint64_t> counts(count, 0);
  uint64_t used = first_shard_extra;
  size_t shard = 0;
  for (size_t i = 0; i < padded.size(); ++i) {
    const uint64_t left_after_this_shard = count - 1 - shard;
    const bool must_close = counts[shard] > 0 && padded.size() - i == left_after_this_shard;
    if (counts[shard] > 0 && (must_close || padded[i] > capacity - used)) {
      ++shard;
      used = 0;
    }
    used += padded[i];
    ++counts[shard];
  }
  return counts;
}

}  // namespace quant
