// The element-wise steps of a transformer block, with ggml-cpu's float arithmetic (ops.cpp, vec.h).
#pragma once

#include <cstdint>
#include <vector>

#include "quant/model.h"

namespace quant::model {

// ggml_rms_norm then ggml_mul by the weight: sum of squares in double, scale = 1/sqrtf(mean + eps), y = (x·scale)·w.
// Rows of n values; in and out may alias.
void rms_norm_row(const float* in, float* out, int64_t n, float eps, const float* weight);

// cos/sin of every rotated pair at positions 0..n_positions-1 (ggml_rope_cache_init with rope_yarn): n_rot floats
// per position, cos at even and sin at odd indices.
std::vector<float> rope_table(const ModelHyperparameters& hp, const float* freq_factors, int64_t n_positions);

// Rotates the first n_rot values of one head's row at a position (its rope_table entry), in place:
// normal = adjacent pairs, neox = the two halves of the rotated part.
void rope_row(float* head, const float* table_entry, int64_t n_rot, RopeKind kind);

// ggml_swiglu_split: out = silu(gate)·up with silu(x) = x / (1 + expf(-x)).
void swiglu_row(const float* gate, const float* up, float* out, int64_t n);

}  // namespace quant::model
