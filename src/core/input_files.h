// Internal: opening the files the library reads (models, imatrices, datasets, calibration tables, tensor-type
// lists). Only regular files are read. A FIFO, device node or socket is refused before a byte is read, and
// opening never blocks: a FIFO's plain open() waits for a writer forever, and an interrupt could not end it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "quant/error.h"

namespace quant {

// "a directory", "a FIFO", "a character device", ... for an lstat/fstat mode that is not a regular file.
std::string_view file_kind(mode_t mode);

// Opens `path` read-only (O_NONBLOCK while opening, cleared after) and returns the descriptor of a regular file;
// an io error naming the path otherwise ("cannot open for reading: ..." or "is a FIFO, not a regular file").
Result<int> open_input_file(const std::string& path);

// The whole of a small input file (a table, a list), refused when larger than max_bytes; `what` names it in
// messages ("calibration table").
Result<std::string> read_input_file(const std::string& path, uint64_t max_bytes, std::string_view what);

}  // namespace quant
