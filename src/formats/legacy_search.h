// Scale searches used by the legacy block types when importance weights are given (q4_0, q4_1, q5_0, q5_1).
//
// Both follow the procedures of ggml's make_qx_quants (symmetric grid, rmse_type 1 with caller weights) and
// make_qkx3_quants (grid with an offset, squared error, no MAD), in float32 and in ggml's operation order, so
// the chosen levels and scales are bit-identical to ggml's.
#pragma once

#include <cstdint>

namespace quant::formats {

// Chooses levels L[i] in [0, 2*nmax) for x[0..n) on the grid scale * (L - nmax), trying the scale that maps the
// largest-magnitude value onto -nmax and 18 nearby ones, and keeping the one with the least weighted squared
// error. Returns the scale; an all-(near)-zero group gets scale 0 and every level 0.
float search_symmetric_scale(int n, int nmax, const float* x, const float* weights, int8_t* levels);

// Chooses levels L[i] in [0, nmax] for x[0..n) on the grid scale * L + offset (offset <= 0), trying
// nstep + 1 scales from (nmax + rmin) to (nmax + rmin + nstep * rdelta) steps over the range and solving the
// weighted least-squares scale and offset for each (n <= 256). Returns the scale and sets *offset.
float search_offset_scale(int n, int nmax, const float* x, const float* weights, uint8_t* levels, float* offset,
                          float rmin, float rdelta, int nstep);

}  // namespace quant::formats
