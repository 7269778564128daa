// The naming rule of split models and the split keys each shard carries.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "quant/split.h"

namespace quant {
namespace {

constexpr std::string_view kGgufSuffix = ".gguf";
// "-NNNNN-of-MMMMM.gguf": llama.cpp's "%s-%05d-of-%05d.gguf" for counts up to 99999.
constexpr size_t kSplitSuffixBytes = 20;

bool is_split_key(std::string_view key) {
  return key == kSplitNoKey || key == kSplitCountKey || key == kSplitTensorsCountKey;
}

std::optional<uint32_t> five_digits(std::string_view text) {
  if (text.size() != 5 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  uint32_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

// A decimal number with nothing else; nullopt when empty, not all digits, or beyond uint64.
std::optional<uint64_t> whole_number(std::string_view text) {
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

Result<uint64_t> parse_split_size(std::string_view text) {
  uint64_t unit = 1;
  std::string_view digits = text;
  if (!text.empty() && (text.back() == 'M' || text.back() == 'G')) {
    unit = text.back() == 'M' ? 1000 * 1000 : 1000 * 1000 * 1000;  // llama-gguf-split: decimal megabytes
    digits.remove_suffix(1);
  }
  const std::optional<uint64_t> number = whole_number(digits);
  if (!number || *number == 0) {
    return usage_error(fmt::format("split size '{}' is not a positive whole number of bytes, or of M (10^6 bytes) "
                                   "or G (10^9 bytes): 500M, 4G",
                                   text));
  }
  if (*number > UINT64_MAX / unit) return usage_error(fmt::format("split size '{}' is too large", text));
  return *number * unit;
}

Result<ShardSelection> parse_shard_selection(std::string_view text) {
  const size_t slash = text.find('/');
  const std::optional<uint64_t> index = whole_number(text.substr(0, slash));
  const std::optional<uint64_t> count =
      slash == std::string_view::npos ? std::nullopt : whole_number(text.substr(slash + 1));
  if (!index || !count) return usage_error(fmt::format("--shard '{}' is not I/N, e.g. 1/4", text));
  if (*count == 0 || *count > kMaxShards || *index == 0 || *index > *count) {
    return usage_error(fmt::format("--shard {}: there is no shard {} of {} (I/N needs 1 <= I <= N <= {})", text,
                                   *index, *count, kMaxShards));
  }
  return ShardSelection{uint32_t(*index - 1), uint32_t(*count)};
}

std::string split_path(std::string_view prefix, uint32_t index, uint32_t count) {
  return fmt::format("{}-{:05}-of-{:05}.gguf", prefix, index + 1, count);
}

std::optional<SplitName> parse_split_path(std::string_view path) {
  // llama_split_prefix needs at least one character before the suffix.
  if (path.size() <= kSplitSuffixBytes) return std::nullopt;
  const std::string_view suffix = path.substr(path.size() - kSplitSuffixBytes);
  if (suffix[0] != '-' || suffix.substr(6, 4) != "-of-" || suffix.substr(15) != kGgufSuffix) return std::nullopt;
  const std::optional<uint32_t> number = five_digits(suffix.substr(1, 5));
  const std::optional<uint32_t> count = five_digits(suffix.substr(10, 5));
  if (!number || !count || *number == 0 || *number > *count) return std::nullopt;
  return SplitName{std::string(path.substr(0, path.size() - kSplitSuffixBytes)), *number - 1, *count};
}

std::string output_split_prefix(std::string_view output_path) {
  if (output_path.size() > kGgufSuffix.size() && output_path.ends_with(kGgufSuffix)) {
    output_path.remove_suffix(kGgufSuffix.size());
  }
  return std::string(output_path);
}

bool is_split_shard(const ModelSource& model) {
  const Value* count = model.find(kSplitCountKey);
  uint64_t value = 0;
  return count != nullptr && count->to_uint64(&value) && value > 1;
}

std::vector<KeyValue> shard_metadata(std::span<const KeyValue> model_metadata, uint32_t index, uint32_t count,
                                     uint64_t total_tensors, SplitKeyOrder order) {
  std::vector<KeyValue> metadata;
  if (index == 0) {
    metadata.reserve(model_metadata.size() + 3);
    for (const KeyValue& kv : model_metadata) {
      if (!is_split_key(kv.key)) metadata.push_back(kv);
    }
  }
  // Both tools set the keys with gguf_set_val_*, which removes a key and appends it. llama-gguf-split sets a
  // placeholder split.count before split.tensors.count and the real one once it knows the count, so its
  // split.count comes last.
  KeyValue no{std::string(kSplitNoKey), Value::u16(uint16_t(index))};
  KeyValue shards{std::string(kSplitCountKey), Value::u16(uint16_t(count))};
  KeyValue tensors{std::string(kSplitTensorsCountKey), Value::i32(int32_t(total_tensors))};
  metadata.push_back(std::move(no));
  if (order == SplitKeyOrder::llama_quantize) {
    metadata.push_back(std::move(shards));
    metadata.push_back(std::move(tensors));
  } else {
    metadata.push_back(std::move(tensors));
    metadata.push_back(std::move(shards));
  }
  return metadata;
}

}  // namespace quant
