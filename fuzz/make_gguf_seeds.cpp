// Writes small, valid GGUF seeds for the GGUF fuzzer from real files: every metadata key with arrays cut to their
// first few elements, and every tensor cut to its first block (with that block's real bytes). The real files are
// megabytes, mostly tensor data and long vocabularies; libFuzzer explores far better from kilobyte seeds that
// still reach the end of a well-formed file.
//   make_gguf_seeds OUT_DIR FILE.gguf...
// With --split, each small copy is then cut into three shards by `quantize split`'s code and the set packed as
// one split_fuzzer input (fuzz/split_input.h), once naming the first shard and once the last:
//   make_gguf_seeds --split OUT_DIR FILE.gguf...
#include <cstdio>
#include <fstream>
#include <iterator>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "quant/gguf.h"
#include "quant/split.h"
#include "split_input.h"

namespace {

constexpr uint64_t kKeptElements = 16;

template <typename T>
quant::Value first_scalars(const quant::Value& array, uint64_t count) {
  // Not std::vector: vector<bool> has no span of its elements.
  std::unique_ptr<T[]> items(new T[count]);
  for (uint64_t i = 0; i < count; ++i) items[i] = array.scalar_at<T>(i);
  return quant::Value::array_of<T>(std::span<const T>(items.get(), count));
}

// The value with every array (at any depth) cut to its first kKeptElements elements.
quant::Value shortened(const quant::Value& value) {
  using quant::ValueType;
  if (!value.is_array()) return value;
  const uint64_t count = std::min(value.size(), kKeptElements);
  switch (value.element_type()) {
    case ValueType::u8: return first_scalars<uint8_t>(value, count);
    case ValueType::i8: return first_scalars<int8_t>(value, count);
    case ValueType::u16: return first_scalars<uint16_t>(value, count);
    case ValueType::i16: return first_scalars<int16_t>(value, count);
    case ValueType::u32: return first_scalars<uint32_t>(value, count);
    case ValueType::i32: return first_scalars<int32_t>(value, count);
    case ValueType::f32: return first_scalars<float>(value, count);
    case ValueType::boolean: return first_scalars<bool>(value, count);
    case ValueType::u64: return first_scalars<uint64_t>(value, count);
    case ValueType::i64: return first_scalars<int64_t>(value, count);
    case ValueType::f64: return first_scalars<double>(value, count);
    case ValueType::string: {
      std::vector<std::string_view> items;
      for (uint64_t i = 0; i < count; ++i) items.push_back(value.string_at(i));
      return quant::Value::array_of_strings(items);
    }
    case ValueType::array: {
      std::vector<quant::Value> items;
      for (uint64_t i = 0; i < count; ++i) items.push_back(shortened(value.array_at(i)));
      return quant::Value::array_of_arrays(std::move(items));
    }
  }
  return value;
}

quant::Status write_seed(const quant::GgufFile& input, const std::string& out_path) {
  QUANT_ASSIGN_OR_RETURN(quant::GgufWriter writer, quant::GgufWriter::create(out_path));
  for (const quant::KeyValue& kv : input.metadata()) QUANT_TRY(writer.add_metadata(kv.key, shortened(kv.value)));
  std::vector<const quant::TensorInfo*> kept;
  for (const quant::TensorInfo& tensor : input.tensors()) {
    // One block: the smallest tensor of its type with the same number of dimensions.
    std::vector<int64_t> one_block(tensor.shape.size(), 1);
    if (!one_block.empty()) one_block[0] = quant::format_of(tensor.type).block_size;
    QUANT_TRY(writer.add_tensor(tensor.name, tensor.type, one_block));
    kept.push_back(&tensor);
  }
  QUANT_TRY(writer.begin());
  for (size_t i = 0; i < kept.size(); ++i) {
    std::vector<uint8_t> row(size_t(writer.tensors()[i].size_bytes));
    QUANT_TRY(input.read_tensor(*kept[i], 0, row));
    QUANT_TRY(writer.write_tensor(kept[i]->name, row));
  }
  quant::OutputPolicy replace;
  replace.overwrite = true;  // seeds are made again on every run
  return writer.commit(replace);
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The small copy at `small` cut into (at most) three shards, packed twice: naming the first and the last shard.
quant::Status write_split_seeds(const std::string& small, const std::string& out_dir, const std::string& name) {
  const std::string prefix = small + "-shard";
  QUANT_ASSIGN_OR_RETURN(quant::GgufFile file, quant::GgufFile::open(small));
  quant::ShardLimits limits;
  limits.max_tensors = std::max<uint64_t>(1, (file.tensors().size() + 2) / 3);
  QUANT_ASSIGN_OR_RETURN(quant::SplitJobReport report, quant::split_model(small, prefix, limits, {}));
  std::vector<std::vector<uint8_t>> shards;
  for (const quant::ShardReport& shard : report.files) {
    shards.push_back(file_bytes(shard.path));
    std::filesystem::remove(shard.path);
  }
  if (shards.size() > quant::fuzz::kMaxFuzzShards) return quant::Status::success();
  for (uint32_t named : {0u, uint32_t(shards.size() - 1)}) {
    const std::vector<uint8_t> packed = quant::fuzz::pack_shard_set(named, shards);
    std::ofstream out(out_dir + "/split-" + std::to_string(named) + "-" + name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(packed.data()), std::streamsize(packed.size()));
  }
  return quant::Status::success();
}

}  // namespace

int main(int argc, char** argv) {
  const bool split = argc > 1 && std::string(argv[1]) == "--split";
  if (argc < 3 + int(split)) {
    std::fprintf(stderr, "usage: make_gguf_seeds [--split] OUT_DIR FILE.gguf...\n");
    return 2;
  }
  const std::string out_dir = argv[1 + int(split)];
  int failures = 0;
  for (int i = 2 + int(split); i < argc; ++i) {
    auto input = quant::GgufFile::open(argv[i]);
    const std::string name = std::filesystem::path(argv[i]).filename().string();
    const std::string out = (std::filesystem::path(out_dir) / ("small-" + name)).string();
    quant::Status status = input ? write_seed(*input, out) : quant::Status(input.error());
    if (status && split) {
      status = write_split_seeds(out, out_dir, name);
      std::filesystem::remove(out);
    }
    if (!status) {
      std::fprintf(stderr, "make_gguf_seeds: %s\n", status.error().message().c_str());
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}
