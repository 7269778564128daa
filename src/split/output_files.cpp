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
  // Each file is renamed into place in turn. A file it replaces (--force) is first kept under a backup name (a
  // hard link, or the file itself moved aside where links are not possible); if any step fails, the files placed
  // so far are removed and the backups put back, so every final path holds what it held before. The backups go
  // once all files are in place. (The multi-file commit of quant/atomic_file.h, on the review branch, does this
  // with renameat2 and keeps the final paths occupied throughout; it replaces this function.)
  struct Placed {
    std::string path;
    std::string backup;  // empty: nothing was there
  };
  std::vector<Placed> placed;
  const auto undo = [&]() {
    for (auto it = placed.rbegin(); it != placed.rend(); ++it) {
      if (it->backup.empty()) {
        ::unlink(it->path.c_str());
      } else {
        ::rename(it->backup.c_str(), it->path.c_str());
      }
    }
  };
  for (GgufWriter* writer : writers) {
    const std::string& path = writer->final_path();
    std::string backup;
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      // Only a regular file is ever replaced (the paths were checked before the work began; this is the check
      // at the moment of placing).
      if (!std::filesystem::is_regular_file(path, ec)) {
        undo();
        return io_error("is not a regular file: not replaced").in_file(path);
      }
      backup = writer_temp_path(path, long(::getpid())) + ".old";
      ::unlink(backup.c_str());
      if (::link(path.c_str(), backup.c_str()) != 0 && ::rename(path.c_str(), backup.c_str()) != 0) {
        const int saved = errno;
        undo();
        return io_error(fmt::format("cannot keep the existing file while it is replaced: {}", std::strerror(saved)))
            .in_file(path);
      }
    }
    Status committed = writer->commit();
    if (!committed) {
      if (!backup.empty() && !std::filesystem::exists(path, ec)) {
        ::rename(backup.c_str(), path.c_str());
      } else if (!backup.empty()) {
        ::unlink(backup.c_str());
      }
      undo();
      return committed;
    }
    placed.push_back({path, std::move(backup)});
  }
  for (const Placed& p : placed) {
    if (!p.backup.empty()) ::unlink(p.backup.c_str());
  }
  return Status::success();
}

}  // namespace quant::split_internal
