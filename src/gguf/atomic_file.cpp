#include "quant/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "quant/gguf.h"

namespace quant {

Status write_file_atomically(const std::string& path, std::span<const uint8_t> bytes) {
  const std::string temp = writer_temp_path(path, static_cast<long>(::getpid()));
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error(fmt::format("cannot create {}: {}", temp, std::strerror(errno))).in_file(path);
  auto fail = [&](const char* what) {
    const int saved = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return io_error(fmt::format("{} failed: {}", what, std::strerror(saved))).in_file(path);
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write");
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    const int saved = errno;
    ::unlink(temp.c_str());
    return io_error(fmt::format("close failed: {}", std::strerror(saved))).in_file(path);
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(temp.c_str());
    return io_error(fmt::format("cannot rename {} into place: {}", temp, std::strerror(saved))).in_file(path);
  }
  return Status::success();
}

}  // namespace quant
