// The pure parts of split models: the naming rule, option values, where an output is cut, and each shard's
// split keys. The cuts are checked against llama-gguf-split's rule as read in tools/gguf-split/gguf-split.cpp
// (34af94c) and, for --shard, against every possible contiguous cut.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "quant/split.h"

namespace quant {
namespace {

TEST(SplitNaming, PathsFollowLlamaCppsRule) {
  EXPECT_EQ(split_path("out/model", 0, 4), "out/model-00001-of-00004.gguf");
  EXPECT_EQ(split_path("m", 11, 12), "m-00012-of-00012.gguf");
  const std::optional<SplitName> name = parse_split_path("dir/tl-f16-t12-00003-of-00004.gguf");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->prefix, "dir/tl-f16-t12");
  EXPECT_EQ(name->index, 2u);
  EXPECT_EQ(name->count, 4u);
  for (const char* bad : {"model.gguf", "-00001-of-00002.gguf", "m-00000-of-00002.gguf", "m-00003-of-00002.gguf",
                          "m-0001-of-00002.gguf", "m-00001-of-00002.GGUF", "m-00001_of-00002.gguf",
                          "m-0000a-of-00002.gguf", "m-00001-of-00002.gguf.tmp"}) {
    EXPECT_FALSE(parse_split_path(bad)) << bad;
  }
  // llama-quantize --keep-split takes ".gguf" off the output path to make the prefix.
  EXPECT_EQ(output_split_prefix("out/q.gguf"), "out/q");
  EXPECT_EQ(output_split_prefix("q"), "q");
  EXPECT_EQ(output_split_prefix(".gguf"), ".gguf");
}

TEST(SplitOptions, SizesAreDecimalAsInLlamaGgufSplit) {
  EXPECT_EQ(*parse_split_size("2M"), 2000000u);
  EXPECT_EQ(*parse_split_size("4G"), 4000000000u);
  EXPECT_EQ(*parse_split_size("123"), 123u);
  for (const char* bad : {"", "M", "0M", "0", "-1M", "2.5G", "10K", "2m", " 2M", "2M ", "99999999999999999999G"}) {
    const Result<uint64_t> size = parse_split_size(bad);
    ASSERT_FALSE(size) << bad;
    EXPECT_EQ(size.error().kind(), ErrorKind::usage) << bad;
  }
}

TEST(SplitOptions, ShardSelectionIsOneBasedOnTheCommandLine) {
  const Result<ShardSelection> first = parse_shard_selection("1/3");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->index, 0u);
  EXPECT_EQ(first->count, 3u);
  EXPECT_EQ(parse_shard_selection("3/3")->index, 2u);
  const Result<ShardSelection> beyond = parse_shard_selection("4/3");
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().kind(), ErrorKind::usage);
  EXPECT_NE(beyond.error().message().find("no shard 4 of 3"), std::string::npos) << beyond.error().message();
  for (const char* bad : {"0/3", "1/0", "3", "a/b", "1/", "/3", "1/3/4", "-1/3", "1/65536", ""}) {
    EXPECT_FALSE(parse_shard_selection(bad)) << bad;
  }
}

TEST(SplitKeys, EachToolsOrder) {
  const std::vector<KeyValue> model = {{"general.architecture", Value::string("llama")},
                                       {"split.count", Value::u16(9)},  // an input's split keys are replaced
                                       {"llama.block_count", Value::u32(4)}};
  const auto keys = [](const std::vector<KeyValue>& kvs) {
    std::vector<std::string> out;
    for (const KeyValue& kv : kvs) out.push_back(kv.key);
    return out;
  };
  const std::vector<KeyValue> first = shard_metadata(model, 0, 3, 39, SplitKeyOrder::gguf_split);
  EXPECT_EQ(keys(first), (std::vector<std::string>{"general.architecture", "llama.block_count", "split.no",
                                                   "split.tensors.count", "split.count"}));
  EXPECT_EQ(first[2].value.type(), ValueType::u16);
  EXPECT_EQ(first[3].value.as<int32_t>(), 39);
  EXPECT_EQ(first[4].value.as<uint16_t>(), 3);
  const std::vector<KeyValue> other = shard_metadata(model, 2, 3, 39, SplitKeyOrder::llama_quantize);
  EXPECT_EQ(keys(other), (std::vector<std::string>{"split.no", "split.count", "split.tensors.count"}));
  EXPECT_EQ(other[0].value.as<uint16_t>(), 2);
}

// llama-gguf-split's should_split(), written out the way its source reads, for tensors of the given sizes.
std::vector<uint64_t> llama_gguf_split_cut(const std::vector<uint64_t>& sizes, const ShardLimits& limits) {
  std::vector<uint64_t> counts = {0};
  uint64_t current = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const uint64_t n_bytes = (sizes[i] + 31) / 32 * 32;
    const bool split = limits.max_bytes != 0 ? current + n_bytes > limits.max_bytes
                                             : i > 0 && i % limits.max_tensors == 0;
    if (split) {
      counts.push_back(0);
      current = n_bytes;
    } else {
      current += n_bytes;
    }
    ++counts.back();
  }
  return counts;
}

TEST(SplitCuts, ByLimitsIsLlamaGgufSplitsRule) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::vector<uint64_t> sizes(1 + rng() % 60);
    for (uint64_t& s : sizes) s = 1 + rng() % 5000;
    ShardLimits limits;
    if (round % 2 == 0) {
      limits.max_tensors = 1 + rng() % 20;
    } else {
      // At least the first tensor's padded size: below it llama-gguf-split gives up ("one of splits have 0
      // tensors"), a case checked on its own below.
      limits.max_bytes = (sizes[0] + 31) / 32 * 32 + rng() % 20000;
    }
    const Result<std::vector<uint64_t>> cut = cut_by_limits(sizes, limits);
    ASSERT_TRUE(cut);
    EXPECT_EQ(*cut, llama_gguf_split_cut(sizes, limits)) << "round " << round;
  }
  // tiny-llama f16 by 12 tensors: the reference set's four shards of 12, 12, 12 and 3.
  const std::vector<uint64_t> thirty_nine(39, 100);
  EXPECT_EQ(*cut_by_limits(thirty_nine, {0, 12}), (std::vector<uint64_t>{12, 12, 12, 3}));
  // A first tensor above the limit gets the first shard, where llama-gguf-split would stop.
  EXPECT_EQ(*cut_by_limits(std::vector<uint64_t>{5000, 10, 5000}, {1000, 0}), (std::vector<uint64_t>{1, 1, 1}));
  EXPECT_EQ(*cut_by_limits(std::vector<uint64_t>{}, {0, 5}), (std::vector<uint64_t>{0}));
  EXPECT_EQ(cut_by_limits(thirty_nine, {}).error().kind(), ErrorKind::usage);
  EXPECT_EQ(cut_by_limits(thirty_nine, {10, 10}).error().kind(), ErrorKind::usage);
  EXPECT_EQ(cut_by_limits(std::vector<uint64_t>(70000, 1), {0, 1}).error().kind(), ErrorKind::impossible);
}

// The largest shard (shard 0 counting `extra`) of the best contiguous cut into `count` non-empty shards, by
// trying every cut.
uint64_t best_largest_shard(const std::vector<uint64_t>& padded, uint64_t extra, uint32_t count) {
  uint64_t best = UINT64_MAX;
  std::vector<size_t> ends(count);  // ends[s]: one past the last tensor of shard s
  std::function<void(uint32_t, size_t, uint64_t)> walk = [&](uint32_t shard, size_t start, uint64_t largest) {
    if (shard == count - 1) {
      const uint64_t last = std::accumulate(padded.begin() + long(start), padded.end(), shard == 0 ? extra : 0);
      best = std::min(best, std::max(largest, last));
      return;
    }
    uint64_t sum = shard == 0 ? extra : 0;
    for (size_t end = start + 1; end + (count - 1 - shard) <= padded.size(); ++end) {
      sum += padded[end - 1];
      walk(shard + 1, end, std::max(largest, sum));
    }
  };
  walk(0, 0, 0);
  return best;
}

TEST(SplitCuts, BalancedCutHasTheSmallestLargestShard) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 400; ++round) {
    std::vector<uint64_t> sizes(1 + rng() % 12);
    for (uint64_t& s : sizes) s = rng() % 3 == 0 ? 1 + rng() % 100 : 1 + rng() % 10000;
    const uint32_t count = 1 + uint32_t(rng() % std::min<size_t>(sizes.size(), 5));
    const uint64_t extra = rng() % 2 == 0 ? 0 : rng() % 4000;
    const Result<std::vector<uint64_t>> cut = cut_balanced(sizes, extra, count);
    ASSERT_TRUE(cut);
    ASSERT_EQ(cut->size(), count);
    std::vector<uint64_t> padded;
    for (uint64_t s : sizes) padded.push_back((s + 31) / 32 * 32);
    uint64_t largest = 0;
    size_t next = 0;
    for (uint32_t shard = 0; shard < count; ++shard) {
      ASSERT_GT((*cut)[shard], 0u) << "round " << round << ": empty shard " << shard;
      uint64_t bytes = shard == 0 ? extra : 0;
      for (uint64_t k = 0; k < (*cut)[shard]; ++k) bytes += padded[next++];
      largest = std::max(largest, bytes);
    }
    EXPECT_EQ(next, sizes.size());
    EXPECT_EQ(largest, best_largest_shard(padded, extra, count)) << "round " << round;
    // A function of its arguments: every job of a sharded run computes the same cut.
    EXPECT_EQ(*cut_balanced(sizes, extra, count), *cut);
  }
}

TEST(SplitCuts, BalancedCutRefusals) {
  const std::vector<uint64_t> three = {10, 20, 30};
  EXPECT_EQ(cut_balanced(three, 0, 4).error().kind(), ErrorKind::impossible);
  EXPECT_EQ(cut_balanced(three, 0, 0).error().kind(), ErrorKind::usage);
  EXPECT_EQ(*cut_balanced(three, 0, 3), (std::vector<uint64_t>{1, 1, 1}));
  EXPECT_EQ(*cut_balanced(three, 0, 1), (std::vector<uint64_t>{3}));
}

}  // namespace
}  // namespace quant
