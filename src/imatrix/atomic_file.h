// Writing a small file atomically: the bytes go to a temporary file beside the target (named as GgufWriter
// names its own, so stale ones are found by remove_stale_temp_files), which is then renamed into place.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "quant/error.h"

namespace quant::imatrix {

// Until it returns success no file exists at `path`; on failure the temporary file is removed.
Status write_file_atomically(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace quant::imatrix
