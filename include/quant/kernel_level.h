// Kernel levels: which instruction set the format kernels (quantize, dequantize, error sums) run on.
//
// Every format has a portable scalar kernel; some also have AVX2 (with F16C) and AVX-512 kernels. A fast
// kernel carries each block through exactly the scalar sequence of float operations (SIMD lanes run across
// blocks or groups, never across one block's sum), so every level writes the same bytes and reads back the
// same floats. The level is chosen once per process: the best one the CPU supports, unless the environment
// variable QUANT_KERNELS names another (scalar, avx2 or avx512; a level the CPU lacks falls back to the best
// one below it). set_kernel_level changes it at run time, e.g. for tests comparing every level.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "quant/error.h"

namespace quant {

enum class KernelLevel { scalar = 0, avx2 = 1, avx512 = 2 };

// "scalar", "avx2", "avx512".
std::string_view kernel_level_name(KernelLevel level);
// The level with that name (case-insensitive), or nullopt.
std::optional<KernelLevel> parse_kernel_level(std::string_view name);

// True when this CPU (and OS) can run kernels of that level; scalar always can.
bool kernel_level_supported(KernelLevel level);
// The fastest level this CPU supports.
KernelLevel best_supported_level();
// Every supported level, scalar first.
std::vector<KernelLevel> supported_kernel_levels();

// The level kernels run at now (on first use: QUANT_KERNELS if set, else best_supported_level()).
KernelLevel active_kernel_level();
// Makes `level` the active one for the whole process; an error (and no change) when the CPU lacks it.
// Not meant to race with running conversions: a call in flight may use either level (both give the same
// results).
Status set_kernel_level(KernelLevel level);

}  // namespace quant
