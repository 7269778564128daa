// Bounded reads from dataset files: a read-only file opened with positioned reads, and sequential streams over
// one array's bytes (a plain byte range, or a zip member that is stored or deflated, with its CRC-32 checked
// when the member has been read to its end).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "quant/error.h"

namespace quant::dataset {

// A file opened read-only. Every read names the file and offset in its errors and never reads past the size
// the file had when opened.
class InputFile {
 public:
  static Result<InputFile> open(const std::string& path);
  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&& other) noexcept;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Reads exactly out.size() bytes at `offset`; `what` says what was being read, for the error.
  Status read_at(uint64_t offset, std::span<uint8_t> out, const char* what) const;

 private:
  InputFile() = default;
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Sequential bytes of one array (or one zip member). Errors carry the file; the caller adds the tensor.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Reads exactly out.size() bytes; running out of bytes is invalid_input.
  virtual Status read(std::span<uint8_t> out) = 0;
  // Where the next byte comes from in the file, for errors (for a deflated member: the compressed position).
  virtual uint64_t file_offset() const = 0;
};

// `length` bytes of `file` starting at `offset` (the caller has checked the range lies inside the file).
std::unique_ptr<ByteStream> open_range(const InputFile& file, uint64_t offset, uint64_t length);

// How a zip member's bytes are stored.
enum class ZipMethod { stored, deflated };

// A zip member: `compressed_size` bytes at `data_offset` decoding to `uncompressed_size` bytes whose CRC-32
// must be `crc32`. Reading past uncompressed_size is an error; the CRC is checked when the last byte is read.
std::unique_ptr<ByteStream> open_zip_member(const InputFile& file, ZipMethod method, uint64_t data_offset,
                                            uint64_t compressed_size, uint64_t uncompressed_size, uint32_t crc32);

// Little-endian loads from a byte buffer the caller has bounds-checked.
inline uint16_t load_u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t load_u32(const uint8_t* p) { return uint32_t(load_u16(p)) | (uint32_t(load_u16(p + 2)) << 16); }
inline uint64_t load_u64(const uint8_t* p) { return uint64_t(load_u32(p)) | (uint64_t(load_u32(p + 4)) << 32); }

}  // namespace quant::dataset
