// Scratch files for tests: a fresh directory under $TMPDIR (or /tmp) that is removed with everything in it when
// the object goes, and files written into it. Every test that needs a file on disk uses these (test_data.h reads
// the committed data; this writes the throwaway kind).
#pragma once

#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace quant::testing {

class TempDir {
 public:
  // `prefix` names the directory ("<prefix>-XXXXXX"), so a leftover says which test made it.
  explicit TempDir(std::string_view prefix = "quant-test") {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + std::string(prefix) +
                          "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` inside the directory (nothing is created).
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string file(const std::string& name) const { return *this / name; }
  // The names of everything in the directory, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  // Writes `bytes` as the whole of file `name` (replacing it) and returns its path; throws when it cannot.
  std::string write(const std::string& name, std::span<const uint8_t> bytes) const {
    const std::string path = *this / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
    return path;
  }
  std::string write(const std::string& name, std::string_view text) const {
    return write(name, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }

 private:
  std::filesystem::path path_;
};

// One file, alone in its own TempDir (so removing it leaves nothing behind either).
class TempFile {
 public:
  explicit TempFile(const std::string& name = "file", std::span<const uint8_t> bytes = {})
      : dir_("quant-test-file"), path_(dir_.write(name, bytes)) {}
  TempFile(const std::string& name, const std::vector<uint8_t>& bytes)
      : TempFile(name, std::span<const uint8_t>(bytes)) {}

  const std::string& path() const { return path_; }
  // Replaces the file's contents.
  void write(std::span<const uint8_t> bytes) const {
    dir_.write(std::filesystem::path(path_).filename().string(), bytes);
  }
  void write(const std::vector<uint8_t>& bytes) const { write(std::span<const uint8_t>(bytes)); }

 private:
  TempDir dir_;
  std::string path_;
};

// The immutable flag (`chattr +i`, FS_IMMUTABLE_FL) on a file for the scope: nothing can replace, rename or remove
// it, which makes an output that cannot be committed. Needs root (CAP_LINUX_IMMUTABLE) and a filesystem with the
// flag (ext4, xfs, btrfs, tmpfs); ok() says whether it was set.
class Immutable {
 public:
  explicit Immutable(const std::string& path) : path_(path) { ok_ = set(true); }
  ~Immutable() {
    if (ok_) set(false);
  }
  Immutable(const Immutable&) = delete;
  Immutable& operator=(const Immutable&) = delete;
  bool ok() const { return ok_; }

 private:
  bool set(bool on) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    int flags = 0;
    bool done = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    done = done && ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    ::close(fd);
    return done;
  }
  std::string path_;
  bool ok_ = false;
};

}  // namespace quant::testing
