#include "split/output_files.h"

namespace quant::split_internal {

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
