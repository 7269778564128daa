#include "split/output_files.h"

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "core/checked_math.h"
#include "quant/split.h"

namespace quant::split_internal {

std::vector<std::string> files_of(const ModelSource& model) {
  std::vector<std::string> files;
  if (const auto* split = dynamic_cast<const SplitModel*>(&model); split != nullptr) {
    for (const GgufFile& shard : split->shards()) files.push_back(shard.path());
  } else {
    files.push_back(model.path());
  }
  return files;
}

Status check_output_path(const std::string& path, bool overwrite, std::span<const std::string> inputs) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::success();
  for (const std::string& input : inputs) {
    // equivalent() compares device and inode, so links to an input are caught too.
    if (fs::equivalent(input, path, ec)) {
      return usage_error(fmt::format("output '{}' is the input file '{}': refusing to overwrite it", path, input));
    }
  }
  if (fs::is_directory(path, ec)) return io_error(fmt::format("output '{}' is a directory", path));
  if (!overwrite) return io_error(fmt::format("output '{}' exists (use --force to replace it)", path));
  return Status::success();
}

uint64_t gguf_file_bytes(std::span<const KeyValue> metadata, std::span<const DeclaredTensor> tensors,
                         uint64_t alignment) {
  // Sizes here come from validated inputs and plans (each file's own sizes were checked when it was read), so
  // the sums cannot wrap for any file that could exist.
  uint64_t header = 4 + 4 + 8 + 8;  // magic, version, tensor count, key count
  for (const KeyValue& kv : metadata) {
    header += 8 + kv.key.size() + 4 + kv.value.encoded_size_v3();
    if (kv.key == "general.alignment" && kv.value.holds<uint32_t>()) alignment = kv.value.as<uint32_t>();
  }
  for (const DeclaredTensor& t : tensors) header += 8 + t.name.size() + 4 + 8 * t.shape.size() + 4 + 8;
  if (tensors.empty()) return header;
  uint64_t bytes = *checked_align_up(header, alignment);
  for (const DeclaredTensor& t : tensors) bytes += *checked_align_up(t.size_bytes, alignment);
  return bytes;
}

Status commit_together(std::span<GgufWriter* const> writers) {
  // Every file is complete before the first is placed; then each is renamed into place in turn. If a rename
  // fails, the files placed before it are removed again, so no output of the command appears. (A file that
  // replaced an older one under --force cannot be given back here: the multi-file commit of the review branch
  // keeps replaced files until every new one is in place.)
  std::vector<std::string> placed;
  for (GgufWriter* writer : writers) {
    Status committed = writer->commit();
    if (!committed) {
      for (const std::string& path : placed) ::unlink(path.c_str());
      return committed;
    }
    placed.push_back(writer->final_path());
  }
  return Status::success();
}

}  // namespace quant::split_internal
