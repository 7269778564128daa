// Internal: what every command writing several GGUF files at once shares (the shards of `quantize split`, the
// file of `quantize merge`, the outputs and shards of a conversion): the checks on each output path, the size of
// a file before it is written, and the one step that places the finished files.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quant/error.h"
#include "quant/gguf.h"

namespace quant::split_internal {

// The files a model is read from: every shard of a split model, else the path it was opened from.
std::vector<std::string> files_of(const ModelSource& model);

// Whether `path` may be written: a usage error when it is one of `inputs` (or a link to one), an I/O error when
// it is a directory, or exists and `overwrite` is off.
Status check_output_path(const std::string& path, bool overwrite, std::span<const std::string> inputs);

// A tensor as declared to a writer.
struct DeclaredTensor {
  std::string_view name;
  TypeId type;
  std::span<const int64_t> shape;
  uint64_t size_bytes;
};

// The bytes of a GGUF v3 file with this metadata and these tensors, as GgufWriter lays it out (header padded to
// the alignment unless there are no tensors, each tensor's data padded to it); the alignment is general.alignment
// when the metadata has it, else `alignment`.
uint64_t gguf_file_bytes(std::span<const KeyValue> metadata, std::span<const DeclaredTensor> tensors,
                         uint64_t alignment = 32);

// Places every writer's finished file, all or nothing: after an error every final path holds what it held before
// (a replaced file is kept aside until all are placed), and the temporary files not placed go with their writers. This is the one place the
// files of a command are committed, so the multi-file commit of quant/atomic_file.h replaces it in one edit.
Status commit_together(std::span<GgufWriter* const> writers);

}  // namespace quant::split_internal
