// libFuzzer target: the split-set reader on arbitrary sets of shards. Each input holds up to four files
// (fuzz/split_input.h), written as m-0000i-of-0000K.gguf into a folder of this process in /dev/shm (the reader
// finds shards by name, so they need names); one of them is opened with open_model. A set that opens is walked the
// way the converter walks it (every tensor found by name, its shard in range, both ends of its bytes read), and
// `quantize merge` plans it (dry run). A violated invariant traps so libFuzzer keeps the input.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "quant/split.h"
#include "split_input.h"

namespace {

void check(bool invariant) {
  if (!invariant) __builtin_trap();
}

// This process's folder for the shard files, removed at exit. (Held by a pointer never freed, so the exit handler
// still finds it after static destructors ran.)
const std::string& shard_folder() {
  static const std::string* folder = [] {
    const char* base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string pattern = std::string(base) + "/quant-split-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();  // the harness cannot run: not a finding
    auto* made = new std::string(pattern);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(shard_folder(), ignored);
    });
    return made;
  }();
  return *folder;
}

void write_file(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const quant::fuzz::ShardSetInput input = quant::fuzz::unpack_shard_set(data, size);
  if (input.shards.empty()) return 0;
  const std::string& folder = shard_folder();
  // Remove the previous input's shards (another count leaves other names).
  for (const auto& entry : std::filesystem::directory_iterator(folder)) std::filesystem::remove(entry.path());
  const uint32_t count = uint32_t(input.shards.size());
  const std::string prefix = folder + "/m";
  for (uint32_t i = 0; i < count; ++i) write_file(quant::split_path(prefix, i, count), input.shards[i]);

  const std::string named = quant::split_path(prefix, input.named, count);
  auto model = quant::open_model(named);
  if (!model) {
    (void)model.error().message();
    return 0;
  }
  const quant::ModelSource& source = **model;
  check(source.split_count() >= 1);
  uint64_t bytes = 0;
  for (const quant::TensorInfo& tensor : source.tensors()) {
    check(source.find_tensor(tensor.name) == &tensor);
    check(source.split_index_of(tensor) < source.split_count());
    check(!source.file_of(tensor).empty());
    std::vector<uint8_t> buffer(size_t(std::min<uint64_t>(tensor.size_bytes, 64)));
    check(bool(source.read_tensor(tensor, 0, buffer)));
    check(bool(source.read_tensor(tensor, tensor.size_bytes - buffer.size(), buffer)));
    bytes += tensor.size_bytes;
  }
  check(bytes == source.total_tensor_bytes());
  if (quant::is_split_shard(source)) {
    quant::SplitJobOptions plan_only;
    plan_only.dry_run = true;
    auto merged = quant::merge_model(named, folder + "/merged.gguf", plan_only);
    check(bool(merged));
    check(merged->files.size() == 1 && merged->files[0].tensors == source.tensors().size());
  }
  return 0;
}
