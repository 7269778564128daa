// Scale searches shared by the k-quant types (q2_K .. q6_K).
//
// Each k-quant block stores integer levels per group of 16 or 32 values plus a per-group scale (and, for the
// "affine" types, a per-group minimum), which are themselves quantized against one f16 super-block scale. The
// functions here pick the scale for one group (or, at the super-block level, the scale of the group scales):
//   - symmetric:  x ~ scale * l, l in [-nmax, nmax-1]                     (q3_K with weights, q6_K, q3_K/q6_K scales)
//   - q3 refine:  as symmetric, then coordinate-descent on the levels      (q3_K without weights)
//   - affine:     x ~ scale * l - min, l in [0, nmax], min >= 0             (q2_K, q4_K, q5_K)
//   - positive:   x ~ scale * l, l in [0, nmax], for non-negative x        (the q2_K/q4_K/q5_K group scales and mins)
// They follow ggml's make_qx_quants, make_q3_quants, make_qkx2_quants / make_qkx3_quants and make_qp_quants
// step by step in float32 and in ggml's operation order, because the stored bytes must be bit-exact.
#pragma once

#include <cstdint>

namespace quant::formats::kquant {

// ggml treats a group whose largest magnitude is below this as all zero.
inline constexpr float kGroupMaxEps = 1e-15f;

// Chooses a symmetric scale for n values with the importance `weights` (x[i]^2 when null), trying the plain
// max-magnitude scale and 18 nudged ones and keeping the best weighted least-squares fit. Writes levels
// l + nmax (0 .. 2*nmax-1) and returns the scale (0 and all-zero levels for an all-zero group).
float search_symmetric_scale(int n, int nmax, const float* x, int8_t* levels, const float* weights);

// Like search_symmetric_scale with weights x[i]^2, but refines the levels one at a time (up to 5 sweeps),
// accepting a change when it improves the least-squares fit. Levels are written as l + nmax, except that an
// all-zero group gets levels 0 (as ggml leaves them).
float search_q3_scale(int n, int nmax, const float* x, int8_t* levels);

// How the affine search measures the error of a candidate: sum of w*|diff| or of w*diff^2.
enum class ErrorNorm { absolute, squared };

// How the affine search turns a scaled value into a level. ggml's two variants agree on every finite value
// in range, but differ on out-of-range ones: make_qkx2_quants rounds then clamps, make_qkx3_quants clamps
// the float first (so an infinite or NaN product maps to a valid level).
enum class LevelClamp { round_then_clamp, clamp_then_round };

// The grid of inverse scales tried: (first_offset + step*k + nmax) / (max - min) for k = 0 .. steps.
struct ScaleGrid {
  float first_offset;
  float step;
  int steps;
};

// Chooses scale and minimum for x ~ scale*l - min with l in [0, nmax], minimising the weighted error over the
// grid of candidate scales; each candidate's scale and minimum come from a weighted least-squares fit of its
// levels. Writes the levels, *negated_min (the min to subtract, >= 0) and returns the scale.
float search_affine_scale(int n, int nmax, const float* x, const float* weights, uint8_t* levels,
                          float* negated_min, ScaleGrid grid, ErrorNorm norm, LevelClamp clamp);

// Chooses a scale for non-negative x ~ scale*l with l <= nmax (x are group scales or mins) under the
// importance `weights`: tries 9 inverse scales, then refines the levels (up to 5 sweeps). Returns the
// least-squares scale of the final levels (0 for an all-zero input).
float search_positive_scale(int n, int nmax, const float* x, uint8_t* levels, const float* weights);

}  // namespace quant::formats::kquant
