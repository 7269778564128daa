// Internal: what every command writing several GGUF files at once shares (the shards of `quantize split`, the
// file of `quantize merge`, the outputs and shards of a conversion): the one step that places the finished files.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quant/atomic_file.h"
#include "quant/error.h"
#include "quant/gguf.h"

namespace quant::split_internal {

// Finishes every writer's file, then (unless `cancel` is set by now: a signal that came while the last bytes were
// written still means no output) places them all under `policy`, all or nothing (commit_files, quant/atomic_file.h).
// Returns, per writer, whether it replaced an existing file. After an error every final path holds what it held
// before and the temporary files go with their writers.
Result<std::vector<bool>> commit_together(std::span<GgufWriter* const> writers, const OutputPolicy& policy,
                                          const std::atomic<bool>* cancel);

}  // namespace quant::split_internal
