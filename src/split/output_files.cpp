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
