// POSIX file operations for the GGUF reader and writer.
#include "gguf/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/input_files.h"

namespace quant {

Result<int> open_read_only(const std::string& path) { return open_input_file(path); }

Result<uint64_t> file_size_of(int fd, const std::string& path) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) return io_error(fmt::format("cannot stat: {}", std::strerror(errno))).in_file(path);
  if (S_ISDIR(info.st_mode)) return io_error("is a directory").in_file(path);
  return uint64_t(info.st_size);
}

Status read_exact_at(int fd, const std::string& path, uint64_t offset, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, off_t(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(fmt::format("read failed: {}", std::strerror(errno))).in_file(path).at_offset(offset + done);
    }
    if (n == 0) {
      return io_error(fmt::format("file ended while reading {} bytes (it was truncated, perhaps by another "
                                  "process)", out.size()))
          .in_file(path)
          .at_offset(offset + done);
    }
    done += size_t(n);
  }
  return {};
}

Status write_all_fd(int fd, const std::string& path, const uint8_t* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(fmt::format("write failed: {}", std::strerror(errno))).in_file(path);
    }
    done += size_t(n);
  }
  return {};
}

}  // namespace quant
