// Internal: the few POSIX file operations the GGUF reader and writer need, returning our Error on failure.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "quant/error.h"

namespace quant {

// Opens path read-only (never creating or modifying it); only a regular file, and never blocking
// (core/input_files.h).
Result<int> open_read_only(const std::string& path);
// The size of an open file.
Result<uint64_t> file_size_of(int fd, const std::string& path);
// Fills `out` from `offset` with positioned reads, retrying short reads. A file that ends early (for example
// truncated by another process) is an I/O error naming the offset, never a signal.
Status read_exact_at(int fd, const std::string& path, uint64_t offset, std::span<uint8_t> out);
// Writes all of `data` at the current position, retrying short writes.
Status write_all_fd(int fd, const std::string& path, const uint8_t* data, size_t size);

}  // namespace quant
