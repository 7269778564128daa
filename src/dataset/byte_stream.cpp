#include "dataset/byte_stream.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "core/input_files.h"

namespace quant::dataset {

Result<InputFile> InputFile::open(const std::string& path) {
  QUANT_ASSIGN_OR_RETURN(const int fd, open_input_file(path));  // a regular file, opened without blocking
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int saved = errno;
    ::close(fd);
    return io_error(fmt::format("cannot stat: {}", std::strerror(saved))).in_file(path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return io_error("not a regular file").in_file(path);
  }
  InputFile file;
  file.path_ = path;
  file.fd_ = fd;
  file.size_ = static_cast<uint64_t>(st.st_size);
  return file;
}

InputFile::InputFile(InputFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), size_(other.size_) {}

InputFile& InputFile::operator=(InputFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
  }
  return *this;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status InputFile::read_at(uint64_t offset, std::span<uint8_t> out, const char* what) const {
  if (offset > size_ || out.size() > size_ - offset) {
    const uint64_t left = offset > size_ ? 0 : size_ - offset;
    return invalid_input(fmt::format("{} runs past end of file (needs {} bytes, {} left)", what, out.size(), left))
        .in_file(path_)
        .at_offset(offset);
  }
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(fmt::format("read failed: {}", std::strerror(errno))).in_file(path_).at_offset(offset + done);
    }
    if (n == 0) {
      return invalid_input(fmt::format("{}: file shrank while reading", what)).in_file(path_).at_offset(offset + done);
    }
    done += static_cast<size_t>(n);
  }
  return Status::success();
}

namespace {

class RangeStream final : public ByteStream {
 public:
  RangeStream(const InputFile& file, uint64_t offset, uint64_t length)
      : file_(file), position_(offset), end_(offset + length) {}

  Status read(std::span<uint8_t> out) override {
    if (out.size() > end_ - position_) {
      return invalid_input(fmt::format("data ends early (needs {} bytes, {} left)", out.size(), end_ - position_))
          .in_file(file_.path())
          .at_offset(position_);
    }
    QUANT_TRY(file_.read_at(position_, out, "data"));
    position_ += out.size();
    return Status::success();
  }
  uint64_t file_offset() const override { return position_; }

 private:
  const InputFile& file_;
  uint64_t position_;
  uint64_t end_;
};

// Decodes a zip member and checks its length and CRC-32 against the central directory.
class ZipMemberStream final : public ByteStream {
 public:
  ZipMemberStream(const InputFile& file, ZipMethod method, uint64_t offset, uint64_t compressed_size,
                  uint64_t uncompressed_size, uint32_t crc)
      : file_(file), method_(method), position_(offset), end_(offset + compressed_size),
        uncompressed_size_(uncompressed_size), expected_crc_(crc), crc_(::crc32(0L, Z_NULL, 0)) {
    std::memset(&zstream_, 0, sizeof(zstream_));
  }
  ~ZipMemberStream() override {
    if (inflating_) inflateEnd(&zstream_);
  }

  Status read(std::span<uint8_t> out) override {
    if (out.size() > uncompressed_size_ - produced_) {
      return error(fmt::format("member data ends early (needs {} bytes, {} left)", out.size(),
                               uncompressed_size_ - produced_));
    }
    if (method_ == ZipMethod::stored) {
      QUANT_TRY(file_.read_at(position_, out, "zip member data"));
      position_ += out.size();
    } else {
      QUANT_TRY(inflate_into(out));
    }
    update_crc(out);
    produced_ += out.size();
    if (produced_ == uncompressed_size_ && crc_ != expected_crc_) {
      return error(fmt::format("zip member CRC-32 mismatch (stored {:#010x}, data gives {:#010x})", expected_crc_, crc_));
    }
    return Status::success();
  }
  uint64_t file_offset() const override { return position_; }

 private:
  static constexpr size_t kInputChunk = 64 * 1024;

  Error error(std::string reason) const { return invalid_input(std::move(reason)).in_file(file_.path()).at_offset(position_); }

  void update_crc(std::span<const uint8_t> bytes) {
    size_t done = 0;
    while (done < bytes.size()) {  // crc32 takes a 32-bit length
      const size_t n = std::min<size_t>(bytes.size() - done, std::numeric_limits<uInt>::max());
      crc_ = ::crc32(crc_, bytes.data() + done, static_cast<uInt>(n));
      done += n;
    }
  }

  Status inflate_into(std::span<uint8_t> out) {
    if (!inflating_) {
      if (inflateInit2(&zstream_, -MAX_WBITS) != Z_OK) return io_error("zlib inflateInit2 failed").in_file(file_.path());
      inflating_ = true;
    }
    size_t done = 0;
    while (done < out.size()) {
      if (zstream_.avail_in == 0) {
        const uint64_t left = end_ - position_;
        if (left == 0) return error("deflated member data ends early (compressed bytes exhausted)");
        input_.resize(static_cast<size_t>(std::min<uint64_t>(left, kInputChunk)));
        QUANT_TRY(file_.read_at(position_, input_, "zip member data"));
        position_ += input_.size();
        zstream_.next_in = input_.data();
        zstream_.avail_in = static_cast<uInt>(input_.size());
      }
      const size_t want = std::min<size_t>(out.size() - done, std::numeric_limits<uInt>::max());
      zstream_.next_out = out.data() + done;
      zstream_.avail_out = static_cast<uInt>(want);
      const int rc = ::inflate(&zstream_, Z_NO_FLUSH);
      done += want - zstream_.avail_out;
      if (rc == Z_STREAM_END && done < out.size()) return error("deflate stream ends before the member's stated size");
      if (rc != Z_OK && rc != Z_STREAM_END && !(rc == Z_BUF_ERROR && zstream_.avail_in == 0)) {
        return error(fmt::format("corrupt deflate data ({})", zstream_.msg != nullptr ? zstream_.msg : "zlib error"));
      }
    }
    return Status::success();
  }

  const InputFile& file_;
  ZipMethod method_;
  uint64_t position_;  // next compressed byte to read from the file
  uint64_t end_;
  uint64_t uncompressed_size_;
  uint64_t produced_ = 0;
  uint32_t expected_crc_;
  uLong crc_;
  z_stream zstream_;
  bool inflating_ = false;
  std::vector<uint8_t> input_;
};

}  // namespace

std::unique_ptr<ByteStream> open_range(const InputFile& file, uint64_t offset, uint64_t length) {
  return std::make_unique<RangeStream>(file, offset, length);
}

std::unique_ptr<ByteStream> open_zip_member(const InputFile& file, ZipMethod method, uint64_t data_offset,
                                            uint64_t compressed_size, uint64_t uncompressed_size, uint32_t crc32) {
  return std::make_unique<ZipMemberStream>(file, method, data_offset, compressed_size, uncompressed_size, crc32);
}

}  // namespace quant::dataset
