// Format family: see kernels.h for the types it covers. Not implemented yet: lists no kernels, so these
// types are known to the table but cannot be quantized or dequantized.
#include "formats/kernels.h"

namespace quant::formats {

std::span<const FormatKernels> iq3_kernels() { return {}; }

}  // namespace quant::formats
