// AtomicFile (a temporary file beside its final path), the output check every command makes before it starts,
// and the one-call write of a small file. The placement itself is output_commit.cpp.
#include "quant/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "gguf/file_io.h"
#include "gguf/output_commit.h"
#include "quant/gguf.h"

namespace quant {

Status check_output_path(const std::string& path, const OutputPolicy& policy) {
  if (path.empty()) return usage_error("the output path is empty");
  // Inputs first, through links: a link to the input is refused as the input, with or without --force.
  struct stat target {};
  if (::stat(path.c_str(), &target) == 0) {
    for (const std::string& input : policy.inputs) {
      struct stat in {};
      if (::stat(input.c_str(), &in) == 0 && in.st_dev == target.st_dev && in.st_ino == target.st_ino) {
        return usage_error(input == path ? fmt::format("output '{}' is the input file: refusing to overwrite it", path)
                                         : fmt::format("output '{}' is the input file '{}': refusing to overwrite it",
                                                       path, input));
      }
    }
  }
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return Status::success();
    return io_error(fmt::format("cannot inspect output: {}", std::strerror(errno))).in_file(path);
  }
  return output_commit::check_existing(path, info, policy.overwrite);
}

Result<AtomicFile> AtomicFile::create(const std::string& final_path) {
  if (final_path.empty()) return usage_error("the output path is empty");
  QUANT_TRY(remove_stale_temp_files(final_path));
  AtomicFile file;
  file.final_path_ = final_path;
  file.temp_path_ = writer_temp_path(final_path, long(::getpid()));
  // O_EXCL: never write through someone else's file or a symlink planted under our temporary name.
  const int fd = ::open(file.temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return io_error(fmt::format("cannot create temporary file {}: {}", file.temp_path_, std::strerror(errno)))
        .in_file(final_path);
  }
  file.fd_ = fd;
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int saved = errno;
    file.discard();
    return io_error(fmt::format("cannot stat temporary file: {}", std::strerror(saved))).in_file(final_path);
  }
  file.device_ = info.st_dev;
  file.inode_ = info.st_ino;
  return file;
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept { *this = std::move(other); }

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this == &other) return *this;
  discard();
  final_path_ = std::move(other.final_path_);
  temp_path_ = std::move(other.temp_path_);
  fd_ = std::exchange(other.fd_, -1);
  device_ = other.device_;
  inode_ = other.inode_;
  finished_ = other.finished_;
  synced_ = other.synced_;
  placed_ = std::exchange(other.placed_, true);  // the moved-from object owns no file
  other.temp_path_.clear();
  return *this;
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!placed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
  temp_path_.clear();
}

Status AtomicFile::write(std::span<const uint8_t> bytes) {
  if (fd_ < 0) return usage_error("write after the file was finished or discarded").in_file(final_path_);
  Status written = write_all_fd(fd_, temp_path_, bytes.data(), bytes.size());
  if (!written) return std::move(written).error().in_file(final_path_);
  return Status::success();
}

Status AtomicFile::finish(bool fsync) {
  if (finished_) return Status::success();
  if (fd_ < 0) return usage_error("finish after the file was discarded").in_file(final_path_);
  if (fsync && ::fsync(fd_) != 0) {
    return io_error(fmt::format("fsync failed: {}", std::strerror(errno))).in_file(temp_path_);
  }
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) return io_error(fmt::format("close failed: {}", std::strerror(errno))).in_file(temp_path_);
  finished_ = true;
  synced_ = fsync;
  return Status::success();
}

Status write_file_atomically(const std::string& path, std::span<const uint8_t> bytes, const OutputPolicy& policy) {
  QUANT_TRY(check_output_path(path, policy));
  QUANT_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(path));
  QUANT_TRY(file.write(bytes));
  AtomicFile* files[] = {&file};
  QUANT_TRY(commit_files(files, policy));
  return Status::success();
}

}  // namespace quant
