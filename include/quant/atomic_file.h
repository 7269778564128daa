// Writing a small file (an imatrix, a calibration table) atomically: the bytes go to a temporary file beside the
// target, named as GgufWriter names its own (".<name>.tmp-<pid>", so remove_stale_temp_files finds a killed
// run's leftovers), which is then renamed into place. Readers of `path` see the old file or the whole new one.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "quant/error.h"

namespace quant {

// On failure `path` is left as it was and the temporary file is removed.
Status write_file_atomically(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace quant
