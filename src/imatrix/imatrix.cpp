// Reading either imatrix format as llama-quantize does, its weight filters and the keys it records.
#include "quant/imatrix.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "core/checked_math.h"
#include "core/input_files.h"
#include "imatrix/imatrix_gguf.h"

namespace quant {

const ImportanceEntry* ImportanceMatrix::find(std::string_view weight) const {
  const auto it = entries.find(std::string(weight));
  return it == entries.end() ? nullptr : &it->second;
}

namespace {

// True when the file's first four bytes are the GGUF magic (either byte order).
bool starts_like_gguf(const std::string& path) {
  Result<int> fd = open_input_file(path);
  if (!fd) return false;
  char magic[4] = {};
  const ssize_t n = ::pread(*fd, magic, 4, 0);
  ::close(*fd);
  return n == 4 && (std::string_view(magic, 4) == "GGUF" || std::string_view(magic, 4) == "FUGG");
}

}  // namespace

Result<ImportanceMatrix> read_imatrix(const std::string& path, const ImatrixLimits& limits) {
  // As llama-quantize: GGUF first, and the legacy reader only when the file does not parse as GGUF at all. A
  // GGUF file that is not a valid imatrix (missing metadata, unpaired tensors) is an error in its own right.
  auto gguf = GgufFile::open(path);
  if (gguf) return imatrix::imatrix_from_gguf(*gguf, limits);
  if (gguf.error().kind() == ErrorKind::io) return std::move(gguf).error();
  auto dat = read_imatrix_dat(path, limits);
  if (dat) return dat;
  // Neither reads: report the damage in the format the file claims to be.
  return starts_like_gguf(path) ? std::move(gguf).error() : std::move(dat).error();
}

Status filter_imatrix(ImportanceMatrix& imatrix, const std::vector<std::string>& include,
                      const std::vector<std::string>& exclude) {
  if (!include.empty() && !exclude.empty()) {
    return usage_error("--include-weights and --exclude-weights cannot be used together");
  }
  auto contains_any = [](const std::string& name, const std::vector<std::string>& parts) {
    for (const std::string& part : parts) {
      if (name.find(part) != std::string::npos) return true;
    }
    return false;
  };
  for (auto it = imatrix.entries.begin(); it != imatrix.entries.end();) {
    const bool keep = include.empty() ? !contains_any(it->first, exclude) : contains_any(it->first, include);
    it = keep ? std::next(it) : imatrix.entries.erase(it);
  }
  return Status::success();
}

std::optional<ImatrixRecord> imatrix_record(const ImportanceMatrix& imatrix,
                                            const std::optional<std::string>& path_as_given) {
  // llama-quantize copies strings into a 128-byte override buffer: at most 127 bytes survive.
  constexpr size_t kMaxStringBytes = 127;
  if (imatrix.entries.empty()) return std::nullopt;
  ImatrixRecord record;
  if (path_as_given) record.file = path_as_given->substr(0, kMaxStringBytes);
  if (!imatrix.datasets.empty()) record.dataset = imatrix.datasets.front().substr(0, kMaxStringBytes);
  record.entries_count = static_cast<uint32_t>(imatrix.entries.size());
  if (imatrix.chunk_count > 0) record.chunks_count = static_cast<uint32_t>(imatrix.chunk_count);
  return record;
}

}  // namespace quant
