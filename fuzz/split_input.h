// How one fuzz input of split_fuzzer holds a set of shards: byte 0 gives the shard count K = 1 + byte % 4, byte 1
// which shard is named (byte % K), then K - 1 little-endian u16 sizes of the first K - 1 shards (cut to what is
// left), and the last shard is the rest. make_gguf_seeds --split packs real shard sets this way.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace quant::fuzz {

inline constexpr uint32_t kMaxFuzzShards = 4;

struct ShardSetInput {
  uint32_t named = 0;
  std::vector<std::span<const uint8_t>> shards;
};

inline ShardSetInput unpack_shard_set(const uint8_t* data, size_t size) {
  ShardSetInput out;
  if (size < 2) return out;
  const uint32_t count = 1 + data[0] % kMaxFuzzShards;
  out.named = data[1] % count;
  size_t at = 2;
  std::vector<size_t> sizes;
  for (uint32_t i = 0; i + 1 < count; ++i) {
    const size_t size_at = at < size ? std::min<size_t>(2, size - at) : 0;
    size_t shard = 0;
    for (size_t b = 0; b < size_at; ++b) shard |= size_t(data[at + b]) << (8 * b);
    at += size_at;
    sizes.push_back(shard);
  }
  for (size_t shard : sizes) {
    const size_t take = std::min(shard, size - at);
    out.shards.emplace_back(data + at, take);
    at += take;
  }
  out.shards.emplace_back(data + at, size - at);
  return out;
}

inline std::vector<uint8_t> pack_shard_set(uint32_t named, const std::vector<std::vector<uint8_t>>& shards) {
  std::vector<uint8_t> out = {uint8_t(shards.size() - 1), uint8_t(named)};
  for (size_t i = 0; i + 1 < shards.size(); ++i) {
    out.push_back(uint8_t(shards[i].size() & 0xff));
    out.push_back(uint8_t(shards[i].size() >> 8));
  }
  for (const std::vector<uint8_t>& shard : shards) out.insert(out.end(), shard.begin(), shard.end());
  return out;
}

}  // namespace quant::fuzz
