// The AVX-512F build of the SIMD kernels. Everything between the target pragmas (g++'s `GCC target`,
// clang's `clang attribute` giving each function in the region the same target attribute) is compiled for AVX-512F
// and has internal linkage, so no AVX-512 code can be merged into functions the scalar path calls; the exported
// functions below the pragmas are plain x86-64 and only hand out pointers (or are called after the dispatcher
// checked the CPU).
#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "formats/iq1_layout.h"
#include "formats/iq2_layout.h"
#include "formats/iq3_grids.h"
#include "formats/iq3_layout.h"
#include "formats/iq_grid_search.h"
#include "formats/kernels.h"
#include "formats/kquant_layout.h"
#include "formats/kquant_lowbit_layout.h"
#include "formats/kquant_search.h"
#include "formats/nonlinear_layout.h"
#include "formats/simd_kernels.h"

// Every standard and scalar header is included above the region: an inline function first seen inside it would
// be compiled for the region's target, and the linker could keep that copy for the scalar path.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,f16c"))), apply_to = function)
#else
#pragma GCC push_options
// GCC 12 warns inside its own avx512fintrin.h about _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx2,f16c")
#endif

#include "formats/simd_ops_avx512.h"
#include "formats/simd_error_sums.h"
#include "formats/simd_float_legacy.h"
#include "formats/simd_ops_pair.h"
#include "formats/simd_kquants.h"
#include "formats/simd_kquants_dequantize.h"
#include "formats/simd_kquants_lowbit.h"
#include "formats/simd_legacy_weighted.h"
#include "formats/simd_iq_grid.h"
#include "formats/simd_iq1.h"
#include "formats/simd_iq2.h"
#include "formats/simd_iq3.h"
#include "formats/simd_nonlinear.h"
#include "formats/simd_kernel_list.h"

namespace quant::formats {
namespace {

void error_sums_avx512_impl(const float* reference, const float* reconstructed, int64_t n, ErrorSums* sums) {
  error_sums_four_lanes(reference, reconstructed, n, sums);
}

}  // namespace
}  // namespace quant::formats

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace quant::formats {

std::span<const SimdKernels> avx512_kernels() { return kSimdKernelList<Avx512Ops>; }

void error_sums_avx512(const float* reference, const float* reconstructed, int64_t n, ErrorSums* sums) {
  error_sums_avx512_impl(reference, reconstructed, n, sums);
}

}  // namespace quant::formats
