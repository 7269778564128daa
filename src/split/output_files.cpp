#include "split/output_files.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

Result<std::vector<bool>> commit_together(std::span<GgufWriter* const> writers, const OutputPolicy& policy,
                                          const std::atomic<bool>* cancel) {
  std::vector<AtomicFile*> files;
  for (GgufWriter* writer : writers) {
    QUANT_TRY(writer->finish());
    files.push_back(&writer->file());
  }
  if (cancel != nullptr && cancel->load()) return Error(ErrorKind::interrupted, "interrupted");
  return commit_files(files, policy);
}

}  // namespace quant::split_internal
