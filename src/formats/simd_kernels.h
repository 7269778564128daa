// The fast (SIMD) kernels and how the format table reaches them.
//
// simd_avx2.cpp and simd_avx512.cpp compile the same kernel templates (simd_float_legacy.h, simd_kquants.h)
// for their instruction sets and list them by type id; dispatch.cpp gives the table, for every type with a
// fast kernel, a trampoline that calls the kernel of the active level (quant/kernel_level.h). A level's list may
// only be called into when the CPU supports that level.
#pragma once

#include <cstdint>
#include <span>

#include "quant/formats.h"
#include "quant/kernel_level.h"

namespace quant::formats {

struct SimdKernels {
  TypeId id;
  QuantizeRowsFn quantize;   // null: the scalar quantizer serves this level
  DequantizeFn dequantize;   // null: the scalar dequantizer serves this level
};

std::span<const SimdKernels> avx2_kernels();
std::span<const SimdKernels> avx512_kernels();

// What the table stores for a type: `scalar` itself when no level has a fast kernel for it (or scalar is
// null), else a trampoline that dispatches on the active level.
QuantizeRowsFn dispatched_quantize(TypeId id, QuantizeRowsFn scalar);
DequantizeFn dispatched_dequantize(TypeId id, DequantizeFn scalar);

// The scalar kernels of a type, for fast kernels that hand a block they cannot carry (e.g. one holding a
// NaN) to the scalar path. Never null for types that have fast kernels.
QuantizeRowsFn scalar_quantize(TypeId id);
DequantizeFn scalar_dequantize(TypeId id);

// Sums ErrorStats keeps, over pairs (reference x, reconstruction y): Σ(x-y)², Σx², Σy², Σxy in double, and
// the largest |x-y| (NaN differences ignored). Lane k of four double accumulators takes the pairs i with
// i % 4 == k, and the lanes are combined as (lane0 + lane1) + (lane2 + lane3): every level follows that
// order, so the sums do not depend on the kernel level.
struct ErrorSums {
  double sum_sq_error = 0, sum_sq_reference = 0, sum_sq_reconstructed = 0, dot = 0, max_abs = 0;
};
void accumulate_error_sums(const float* reference, const float* reconstructed, int64_t n, ErrorSums* sums);

// The per-level implementations of accumulate_error_sums (the scalar one is the definition of the order).
void error_sums_scalar(const float* reference, const float* reconstructed, int64_t n, ErrorSums* sums);
void error_sums_avx2(const float* reference, const float* reconstructed, int64_t n, ErrorSums* sums);
void error_sums_avx512(const float* reference, const float* reconstructed, int64_t n, ErrorSums* sums);

}  // namespace quant::formats
