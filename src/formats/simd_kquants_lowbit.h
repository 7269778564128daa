// SIMD quantizers for q2_K and q3_K, written over a vector-operations struct V (simd_ops_avx2.h,
// simd_ops_avx512.h).
//
// As in simd_kquants.h, the costly part is the per-group scale search (kquant_search.cpp) over the sixteen
// groups of 16 values of a super-block, and one SIMD lane carries one group through exactly the scalar
// sequence of float operations: the groups are transposed (lane g = group g, step i = value i of every group)
// and every branch of the scalar search becomes a per-lane select (two vectors per step, see below).
//   - q2_K: the affine search (make_qkx2_quants: |x| weights, absolute error; with importance make_qkx3_quants:
//     weights importance * sqrt(sigma2 + x^2), squared error), search_affine_scale_lanes.
//   - q3_K: without importance the refining symmetric search (make_q3_quants), search_q3_scale_lanes below;
//     with it the weighted symmetric search (make_qx_quants), search_symmetric_scale_lanes.
// The super-block stage (quantizing the sixteen group scales) and the packing are kquant_lowbit_layout.h's,
// shared with kquants.cpp; the requantization against the stored scales is element-wise.
//
// A super-block holding a NaN or an infinity (in its values or its importance) takes the scalar kernel: what
// the searches then produce hangs on non-finite arithmetic the lanes do not promise to mirror (see
// simd_legacy_weighted.h). Include after simd_kquants.h; everything here has internal linkage.
#pragma once

#include <cstdint>
#include <cstring>

#include "formats/kernels.h"
#include "formats/kquant_layout.h"
#include "formats/kquant_lowbit_layout.h"
#include "formats/kquant_search.h"
#include "formats/simd_kernels.h"
#include "formats/simd_ops_pair.h"

namespace quant::formats {
namespace {

// True when none of the n values (n a multiple of W) is a NaN or an infinity (all-ones exponent).
template <class V>
bool all_finite(const float* x, int n) {
  const typename V::I exponent = V::iset1(0x7f800000);
  for (int i = 0; i < n; i += V::kWidth) {
    if (V::any(V::ieq(V::iand(V::float_bits(V::load(x + i)), exponent), exponent))) return false;
  }
  return true;
}

// kquant::search_q3_scale for W groups at once, transposed as in simd_kquants.h (value i of group g at
// xt[i * W + g]). Writes each group's scale and its levels l + nmax (0 for an all-zero group) to levels_t.
template <class V>
void search_q3_scale_lanes(int n, int nmax, const float* xt, float* scales, int32_t* levels_t) {
  using L = Lanes<V>;
  using G = GroupLanes<V>;
  constexpr int W = V::kWidth;
  using F = typename V::F;
  using I = typename V::I;
  using M = typename V::M;
  const F zero = V::set1(0.0f);
  F magnitude = zero;
  F value = zero;
  for (int i = 0; i < n; ++i) {
    const F x = V::load(xt + i * W);
    const M larger = V::gt(V::abs(x), magnitude);
    magnitude = V::select(larger, V::abs(x), magnitude);
    value = V::select(larger, x, value);
  }
  const M all_zero = V::lt(magnitude, V::set1(kquant::kGroupMaxEps));

  const F iscale = V::div(V::set1(static_cast<float>(-nmax)), value);
  F sum_xl = zero;
  F sum_ll = zero;
  for (int i = 0; i < n; ++i) {
    const F x = V::load(xt + i * W);
    const I level = G::clamp(L::nearest_int(V::mul(iscale, x)), -nmax, nmax - 1);
    V::istore(levels_t + i * W, level);
    const F l = V::to_float(level);
    const F w = V::mul(x, x);
    sum_xl = V::add(sum_xl, V::mul(V::mul(w, x), l));
    sum_ll = V::add(sum_ll, V::mul(V::mul(w, l), l));
  }
  // Coordinate descent, one level at a time in index order. A lane whose sweep changed nothing would stop in
  // the scalar search; here it sweeps on with the same state, which changes nothing again.
  for (int sweep = 0; sweep < 5; ++sweep) {
    M changed = V::lt(zero, zero);
    for (int i = 0; i < n; ++i) {
      const F x = V::load(xt + i * W);
      const F w = V::mul(x, x);
      const I level = V::iload(levels_t + i * W);
      const F l = V::to_float(level);
      F xl_without = V::sub(sum_xl, V::mul(V::mul(w, x), l));
      F ll_without = V::sub(sum_ll, V::mul(V::mul(w, l), l));
      const I candidate = G::clamp(L::nearest_int(V::div(V::mul(x, ll_without), xl_without)), -nmax, nmax - 1);
      const M moves = V::mand(V::gt(xl_without, zero), V::mnot(V::ieq(candidate, level)));
      if (!V::any(moves)) continue;
      const F c = V::to_float(candidate);
      xl_without = V::add(xl_without, V::mul(V::mul(w, x), c));
      ll_without = V::add(ll_without, V::mul(V::mul(w, c), c));
      const M better = V::mand(V::mand(moves, V::gt(ll_without, zero)),
                               V::gt(V::mul(V::mul(xl_without, xl_without), sum_ll),
                                     V::mul(V::mul(sum_xl, sum_xl), ll_without)));
      V::istore(levels_t + i * W, V::iselect(better, candidate, level));
      sum_xl = V::select(better, xl_without, sum_xl);
      sum_ll = V::select(better, ll_without, sum_ll);
      changed = V::mor(changed, better);
    }
    if (!V::any(V::mand(changed, V::mnot(all_zero)))) break;
  }
  const F scale = V::select(V::gt(sum_ll, zero), V::div(sum_xl, sum_ll), zero);
  V::store(scales, V::select(all_zero, zero, scale));
  for (int i = 0; i < n; ++i) {
    const I biased = V::iadd(V::iload(levels_t + i * W), V::iset1(nmax));
    V::istore(levels_t + i * W, V::iselect(all_zero, V::iset1(0), biased));
  }
}

// The searches run on PairOps<V> (simd_ops_pair.h): 16 lanes at AVX2 (one super-block, its two halves
// interleaved), 32 at AVX-512 (two super-blocks), so that two independent chains of dependent operations are
// in flight. Lane 16 * k + g carries group g of block k of the batch.
template <class V>
using LowbitSearchOps = PairOps<V>;

// One block of a batch: its values, its importance (null without) and where its bytes go.
struct LowbitBlock {
  const float* x;
  const float* qw;
  uint8_t* out;
};

// Transposes the groups of up to W / 16 blocks into lanes: out[i * W + 16 * k + g] = block k's x[16 * g + i]
// (or its qw when `importance`); lanes of missing blocks get zeros (all-zero groups, which every search
// accepts).
template <int W>
void transpose_blocks(const LowbitBlock* blocks, int count, bool importance, float* out) {
  for (int k = 0; k < W / 16; ++k) {
    const float* v = k < count ? (importance ? blocks[k].qw : blocks[k].x) : nullptr;
    for (int g = 0; g < 16; ++g) {
      for (int i = 0; i < 16; ++i) out[i * W + 16 * k + g] = v != nullptr ? v[16 * g + i] : 0.0f;
    }
  }
}

// The weights importance * sqrt(sigma2 + x^2) of the transposed groups (sigma2 per lane, i.e. per block), and
// each group's total weight summed in index order.
template <class S>
void weighted_group_weights(const LowbitBlock* blocks, int count, const float* xt, const float* sigma2_lanes,
                            float* wt, float* group_weight) {
  constexpr int W = S::kWidth;
  using F = typename S::F;
  alignas(64) float importance_t[16 * W];
  transpose_blocks<W>(blocks, count, true, importance_t);
  const F sigma2 = S::load(sigma2_lanes);
  F sum = S::set1(0.0f);
  for (int i = 0; i < 16; ++i) {
    const F x = S::load(xt + i * W);
    const F w = S::mul(S::load(importance_t + i * W), S::sqrt(S::add(sigma2, S::mul(x, x))));
    S::store(wt + i * W, w);
    sum = S::add(sum, w);
  }
  S::store(group_weight, sum);
}

// Each lane's sigma2 = super_block_sigma2 of its block (0 for missing blocks).
template <int W>
void sigma2_lanes(const LowbitBlock* blocks, int count, float sigma_factor, float* out) {
  for (int k = 0; k < W / 16; ++k) {
    const float sigma2 = k < count ? kquant::super_block_sigma2(blocks[k].x, sigma_factor) : 0.0f;
    for (int g = 0; g < 16; ++g) out[16 * k + g] = sigma2;
  }
}

// Copies block k's lanes back to per-group levels: levels[16 * g + i] = levels_t[i * W + 16 * k + g].
template <int W, typename Level>
void untranspose_levels(const int32_t* levels_t, int k, Level* levels) {
  for (int g = 0; g < 16; ++g) {
    for (int i = 0; i < 16; ++i) levels[16 * g + i] = static_cast<Level>(levels_t[i * W + 16 * k + g]);
  }
}

// The super-blocks of one batch of the q2_K/q3_K drivers: what their group searches found, before the scale
// stage. With importance, that stage (ggml's make_qp_quants for q2_K's scales and mins, its weighted symmetric
// search for q3_K's scales) runs across the batch's super-blocks, one lane each, on 16-lane vectors.
constexpr int kLowbitBatch = 16;
struct LowbitGroups {
  alignas(64) float scales[kLowbitBatch * 16];  // [block * 16 + group]
  alignas(64) float mins[kLowbitBatch * 16];    // q2_K: the negated group minimum
  alignas(64) float group_weight[kLowbitBatch * 16];
  alignas(64) int8_t levels[kLowbitBatch][kKSuperBlock];
};

// Transposes one per-group array of the batch so that lane b holds block b's 16 values (zeros past count).
inline void transpose_scales(const float* per_block, int count, float* out) {
  for (int j = 0; j < 16; ++j) {
    for (int b = 0; b < kLowbitBatch; ++b) out[j * kLowbitBatch + b] = b < count ? per_block[16 * b + j] : 0.0f;
  }
}

// The group searches of up to kLowbitBatch q2_K super-blocks, W / 16 at a time.
template <class V>
void search_q2_k_groups(const LowbitBlock* blocks, int count, bool weighted, LowbitGroups* groups) {
  using S = LowbitSearchOps<V>;
  constexpr int W = S::kWidth;
  alignas(64) float xt[16 * W];
  alignas(64) float wt[16 * W];
  alignas(64) int32_t levels_t[16 * W];
  alignas(64) float scales[W];
  alignas(64) float mins[W];
  alignas(64) float group_weight[W];
  for (int first = 0; first < count; first += W / 16) {
    const int n = count - first < W / 16 ? count - first : W / 16;
    transpose_blocks<W>(blocks + first, n, false, xt);
    if (!weighted) {
      for (int i = 0; i < 16 * W; i += W) S::store(wt + i, S::abs(S::load(xt + i)));
      search_affine_scale_lanes<S>(16, 3, xt, wt, kquant::ScaleGrid{-0.5f, 0.1f, 15}, kquant::ErrorNorm::absolute,
                                   kquant::LevelClamp::round_then_clamp, scales, mins, levels_t);
    } else {
      alignas(64) float sigma2[W];
      sigma2_lanes<W>(blocks + first, n, 1.0f, sigma2);
      weighted_group_weights<S>(blocks + first, n, xt, sigma2, wt, group_weight);
      search_affine_scale_lanes<S>(16, 3, xt, wt, kquant::ScaleGrid{-0.9f, 0.05f, 36}, kquant::ErrorNorm::squared,
                                   kquant::LevelClamp::clamp_then_round, scales, mins, levels_t);
    }
    for (int k = 0; k < n; ++k) {
      std::memcpy(groups->scales + 16 * (first + k), scales + 16 * k, 16 * sizeof(float));
      std::memcpy(groups->mins + 16 * (first + k), mins + 16 * k, 16 * sizeof(float));
      std::memcpy(groups->group_weight + 16 * (first + k), group_weight + 16 * k, 16 * sizeof(float));
      untranspose_levels<W>(levels_t, k, reinterpret_cast<uint8_t*>(groups->levels[first + k]));
    }
  }
}

// A batch of up to kLowbitBatch q2_K super-blocks (all values and importance finite).
template <class V>
void quantize_q2_k_batch_simd(const LowbitBlock* blocks, int count, bool weighted) {
  using L = Lanes<V>;
  using G = GroupLanes<V>;
  using S16 = Lanes16<V>;
  constexpr int VW = V::kWidth;
  LowbitGroups groups;
  search_q2_k_groups<V>(blocks, count, weighted, &groups);
  alignas(64) float d[kLowbitBatch], dmin[kLowbitBatch];
  alignas(64) int32_t scale_levels_t[16 * kLowbitBatch], min_levels_t[16 * kLowbitBatch];
  if (weighted) {
    alignas(64) float xt[16 * kLowbitBatch], wt[16 * kLowbitBatch];
    transpose_scales(groups.group_weight, count, wt);
    transpose_scales(groups.scales, count, xt);
    S16::store(d, search_positive_scale_lanes<S16>(16, 15, xt, wt, scale_levels_t));
    transpose_scales(groups.mins, count, xt);
    S16::store(dmin, search_positive_scale_lanes<S16>(16, 15, xt, wt, min_levels_t));
  }
  for (int k = 0; k < count; ++k) {
    const float* x = blocks[k].x;
    uint8_t* block = blocks[k].out;
    uint8_t* levels = reinterpret_cast<uint8_t*>(groups.levels[k]);
    uint8_t* packed_scales = block + kquant::kQ2KScalesOffset;
    uint8_t* d_field = block + kquant::kQ2KDOffset;
    uint8_t* dmin_field = block + kquant::kQ2KDminOffset;
    if (weighted) {
      uint8_t scale_levels[16], min_levels[16];
      for (int j = 0; j < 16; ++j) {
        scale_levels[j] = static_cast<uint8_t>(scale_levels_t[j * kLowbitBatch + k]);
        min_levels[j] = static_cast<uint8_t>(min_levels_t[j * kLowbitBatch + k]);
      }
      kquant::store_q2_k_searched_scales(d[k], dmin[k], scale_levels, min_levels, packed_scales, d_field, dmin_field);
    } else {
      kquant::quantize_q2_k_scales(groups.scales + 16 * k, groups.mins + 16 * k, nullptr, packed_scales, d_field,
                                   dmin_field);
    }

    // Requantize against the scales as stored; a group whose scale is zero keeps the search's levels.
    const float stored_d = load_f16(d_field);
    const float stored_dmin = load_f16(dmin_field);
    for (int j = 0; j < 16; ++j) {
      const float group_scale = stored_d * (packed_scales[j] & 0xF);
      if (group_scale == 0) continue;
      const float group_min = stored_dmin * (packed_scales[j] >> 4);
      for (int l = 0; l < 16; l += VW) {
        const auto level = L::nearest_int(V::div(V::add(V::load(x + 16 * j + l), V::set1(group_min)),
                                                 V::set1(group_scale)));
        V::store_low_bytes(levels + 16 * j + l, G::clamp(level, 0, 3));
      }
    }
    kquant::pack_2bit_levels(levels, block + kquant::kQ2KQsOffset);
  }
}

// The group searches of up to kLowbitBatch q3_K super-blocks, W / 16 at a time.
template <class V>
void search_q3_k_groups(const LowbitBlock* blocks, int count, bool weighted, LowbitGroups* groups) {
  using S = LowbitSearchOps<V>;
  constexpr int W = S::kWidth;
  alignas(64) float xt[16 * W];
  alignas(64) float wt[16 * W];
  alignas(64) int32_t levels_t[16 * W];
  alignas(64) float scales[W];
  alignas(64) float group_weight[W];
  for (int first = 0; first < count; first += W / 16) {
    const int n = count - first < W / 16 ? count - first : W / 16;
    transpose_blocks<W>(blocks + first, n, false, xt);
    if (!weighted) {
      search_q3_scale_lanes<S>(16, 4, xt, scales, levels_t);
    } else {
      alignas(64) float sigma2[W];
      sigma2_lanes<W>(blocks + first, n, 2.0f, sigma2);
      weighted_group_weights<S>(blocks + first, n, xt, sigma2, wt, group_weight);
      search_symmetric_scale_lanes<S>(16, 4, xt, wt, scales, levels_t);
    }
    for (int k = 0; k < n; ++k) {
      std::memcpy(groups->scales + 16 * (first + k), scales + 16 * k, 16 * sizeof(float));
      std::memcpy(groups->group_weight + 16 * (first + k), group_weight + 16 * k, 16 * sizeof(float));
      untranspose_levels<W>(levels_t, k, groups->levels[first + k]);
    }
  }
}

// A batch of up to kLowbitBatch q3_K super-blocks (all values and importance finite).
template <class V>
void quantize_q3_k_batch_simd(const LowbitBlock* blocks, int count, bool weighted) {
  using L = Lanes<V>;
  using G = GroupLanes<V>;
  using S16 = Lanes16<V>;
  constexpr int VW = V::kWidth;
  LowbitGroups groups;
  search_q3_k_groups<V>(blocks, count, weighted, &groups);
  alignas(64) float d[kLowbitBatch];
  alignas(64) int32_t scale_levels_t[16 * kLowbitBatch];
  if (weighted) {
    alignas(64) float xt[16 * kLowbitBatch], wt[16 * kLowbitBatch];
    transpose_scales(groups.scales, count, xt);
    transpose_scales(groups.group_weight, count, wt);
    search_symmetric_scale_lanes<S16>(16, 32, xt, wt, d, scale_levels_t);
  }
  for (int k = 0; k < count; ++k) {
    const float* x = blocks[k].x;
    uint8_t* block = blocks[k].out;
    int8_t* levels = groups.levels[k];
    uint8_t* packed_scales = block + kquant::kQ3KScalesOffset;
    uint8_t* d_field = block + kquant::kQ3KDOffset;
    if (weighted) {
      int8_t scale_levels[16];
      for (int j = 0; j < 16; ++j) scale_levels[j] = static_cast<int8_t>(scale_levels_t[j * kLowbitBatch + k]);
      std::memset(packed_scales, 0, 12);
      kquant::store_q3_k_searched_scales(d[k], scale_levels, packed_scales, d_field);
    } else {
      kquant::quantize_q3_k_scales(groups.scales + 16 * k, nullptr, packed_scales, d_field);
    }

    const float stored_d = load_f16(d_field);
    for (int j = 0; j < 16; ++j) {
      const float group_scale = stored_d * static_cast<int8_t>(kquant::q3_k_packed_scale(packed_scales, j) - 32);
      if (group_scale == 0) continue;
      for (int l = 0; l < 16; l += VW) {
        const auto level = L::nearest_int(V::div(V::load(x + 16 * j + l), V::set1(group_scale)));
        V::store_low_bytes(reinterpret_cast<uint8_t*>(levels + 16 * j + l),
                           V::iadd(G::clamp(level, -4, 3), V::iset1(4)));
      }
    }
    kquant::pack_q3_k_levels(levels, block + kquant::kQ3KHmaskOffset, block + kquant::kQ3KQsOffset);
  }
}

// Row-by-row, super-block by super-block driver: finite super-blocks (values and importance) are gathered into
// batches of kPerBatch for `batch(blocks, count)`, the others take the scalar kernel at once. The importance
// vector is per column, so super-block b of every row reads importance[256 * b ..].
template <class V, int kPerBatch, typename Batch>
void quantize_finite_super_blocks(QuantizeRowsFn scalar, int64_t block_bytes, const float* src, void* dst,
                                  int64_t nrows, int64_t n_per_row, const float* importance, Batch batch) {
  const int64_t blocks_per_row = n_per_row / kKSuperBlock;
  LowbitBlock pending[kPerBatch];
  int count = 0;
  uint8_t* out = static_cast<uint8_t*>(dst);
  for (int64_t row = 0; row < nrows; ++row) {
    for (int64_t b = 0; b < blocks_per_row; ++b, out += block_bytes) {
      const float* x = src + (row * blocks_per_row + b) * kKSuperBlock;
      const float* qw = importance != nullptr ? importance + kKSuperBlock * b : nullptr;
      if (!all_finite<V>(x, kKSuperBlock) || (qw != nullptr && !all_finite<V>(qw, kKSuperBlock))) {
        scalar(x, out, 1, kKSuperBlock, qw);
        continue;
      }
      pending[count++] = LowbitBlock{x, qw, out};
      if (count == kPerBatch) {
        batch(pending, count);
        count = 0;
      }
    }
  }
  if (count > 0) batch(pending, count);
}

// The q2_K and q3_K drivers: batches of kLowbitBatch super-blocks.
template <class V, TypeId kId, int kBlockBytes, void (*kBatch)(const LowbitBlock*, int, bool)>
void quantize_lowbit_k_rows(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const bool weighted = importance != nullptr;
  quantize_finite_super_blocks<V, kLowbitBatch>(
      scalar_quantize(kId), kBlockBytes, src, dst, nrows, n_per_row, importance,
      [weighted](const LowbitBlock* blocks, int count) { kBatch(blocks, count, weighted); });
}

template <class V>
void quantize_q2_k_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_lowbit_k_rows<V, TypeId::q2_K, kquant::kQ2KBytes, quantize_q2_k_batch_simd<V>>(src, dst, nrows, n_per_row,
                                                                                        importance);
}

template <class V>
void quantize_q3_k_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  quantize_lowbit_k_rows<V, TypeId::q3_K, kquant::kQ3KBytes, quantize_q3_k_batch_simd<V>>(src, dst, nrows, n_per_row,
                                                                                        importance);
}

}  // namespace
}  // namespace quant::formats
