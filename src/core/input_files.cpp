#include "core/input_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace quant {

std::string_view file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISREG(mode)) return "a regular file";
  return "not a regular file";
}

Result<int> open_input_file(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return io_error(fmt::format("cannot open for reading: {}", std::strerror(errno))).in_file(path);
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int saved = errno;
    ::close(fd);
    return io_error(fmt::format("cannot stat: {}", std::strerror(saved))).in_file(path);
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    const std::string_view kind = file_kind(info.st_mode);
    return io_error(fmt::format("is {}, not a regular file: quantize reads only regular files", kind)).in_file(path);
  }
  // Reads of a regular file do not block either way; clear the flag so nothing below has to think about it.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

Result<std::string> read_input_file(const std::string& path, uint64_t max_bytes, std::string_view what) {
  QUANT_ASSIGN_OR_RETURN(const int fd, open_input_file(path));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int saved = errno;
    ::close(fd);
    return io_error(fmt::format("cannot stat {}: {}", what, std::strerror(saved))).in_file(path);
  }
  if (uint64_t(info.st_size) > max_bytes) {
    ::close(fd);
    return invalid_input(fmt::format("{} is {} bytes, over the {} byte cap", what, info.st_size, max_bytes))
        .in_file(path);
  }
  std::string text(size_t(info.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved = errno;
      ::close(fd);
      return io_error(n == 0 ? fmt::format("{} shrank while being read", what)
                             : fmt::format("cannot read {}: {}", what, std::strerror(saved)))
          .in_file(path);
    }
    done += size_t(n);
  }
  ::close(fd);
  return text;
}

}  // namespace quant
