// SIMD quantizers for iq1_s and iq1_m, written over a vector-operations struct V (simd_ops_avx2.h,
// simd_ops_avx512.h).
//
// The scalar quantizer (iq1.cpp) sorts each sub-block's values and tries every way of splitting the sorted
// values into three levels (and every shift direction), keeping the best weighted least-squares fit; the split's
// levels are then snapped to the grid. Here one lane carries one sub-block through exactly the scalar sequence
// of splits, on 16-lane vectors (AVX-512, or two AVX2 vectors): two iq1_s super-blocks or one iq1_m
// super-block at a time, their sorted data transposed so that step j of every lane is sorted position j of its
// sub-block. Every comparison of the scalar scan becomes a per-lane select, taken in the scalar order.
//   - iq1_s scores each split from prefix sums; the terms that depend only on the first or only on the second
//     split point are computed once, each as the scalar expression computes it.
//   - iq1_m sums over the 16 sorted values for every split, from zero, in sorted order. For a fixed first split
//     point, the sums over the values before the second split point are the same partial sums for every
//     second split point, so each is computed once and carried on; only the tail (level 2) is summed per
//     split. The partial sums are the scalar ones bit for bit, because they are the same additions in the same
//     order from the same start.
// The off-grid groups' nearest-point search runs across candidates (simd_iq_grid.h). Preparation, the
// snapping, the refit and the packing are iq1_layout.h's, shared with the scalar code.
//
// A super-block holding a NaN or an infinity (in its values or its importance) takes the scalar kernel, as in
// the other SIMD quantizers. Include after simd_iq_grid.h and simd_kquants_lowbit.h; internal linkage.
#pragma once

#include <cfloat>
#include <cstdint>
#include <cstring>

#include "formats/iq1_layout.h"
#include "formats/iq_grid_search.h"
#include "formats/kernels.h"
#include "formats/simd_kernels.h"

namespace quant::formats {
namespace {

// iq1_layout.h's NearestPointFn across candidates: the same point as iq1_best_candidate (which also covers
// the case where no distance is finite, by scanning the whole grid).
template <class V>
int iq1_nearest_point_simd(const IqGridSearch& grid, uint16_t code, const float* xval, const float* weight,
                           float scale, const float* level_value, int8_t* levels) {
  using Candidates = GridCandidates<V, 8, 2>;
  alignas(64) float values[V::kWidth];
  for (int l = 0; l < V::kWidth; ++l) values[l] = (l % 4) < 3 ? level_value[l % 4] : 0.0f;
  typename V::F tables[8];
  Candidates::terms(V::load(values), xval, weight, scale, tables);
  const IqGridSearch::CodeList candidates = grid.neighbour_code_list(code);
  const int position = Candidates::nearest(candidates.codes, candidates.count, tables);
  if (position < 0) return iq1::nearest_point_scalar(grid, code, xval, weight, scale, level_value, levels);
  const uint16_t chosen = candidates.codes[position];
  for (int i = 0; i < 8; ++i) levels[i] = static_cast<int8_t>(iq_code_level(chosen, i));
  return grid.index_of(chosen);
}

// iq1_layout.h's order_by_value (a stable sort) for NaN-free values, by ranks: value i goes to position
// #{j : x[j] < x[i]} + #{j < i : x[j] == x[i]}, which is where a stable sort puts it (equal values, -0 and +0
// among them, keep their order). n is a multiple of V::kWidth.
template <class V, int n>
void order_by_value_lanes(const float* x, int* order) {
  constexpr int W = V::kWidth;
  typename V::F values[n / W];
  for (int k = 0; k < n / W; ++k) values[k] = V::load(x + k * W);
  for (int i = 0; i < n; ++i) {
    const typename V::F xi = V::set1(x[i]);
    int rank = 0;
    for (int k = 0; k < n / W; ++k) {
      const unsigned below = V::bits(V::lt(values[k], xi));
      const unsigned equal = V::bits(V::eq(values[k], xi));
      // Lanes of this vector before i: positions k * W + lane < i.
      const int before = i - k * W;
      const unsigned earlier = before <= 0 ? 0u : (before >= W ? (1u << W) - 1 : (1u << before) - 1);
      rank += __builtin_popcount(below) + __builtin_popcount(equal & earlier);
    }
    order[rank] = i;
  }
}

// A lane's best split, kept as one int: (split1 * 64 + split2) * 4 + shift code, or -1 for none.
inline iq1::Split split_of(int32_t packed, float scale, bool signed_shift) {
  iq1::Split split;
  if (packed < 0) return split;
  split.split1 = packed / 256;
  split.split2 = (packed / 4) % 64;
  const int shift = packed % 4;
  split.shift = signed_shift ? (shift == 0 ? 1 : -1) : shift;
  split.scale = scale;
  return split;
}

// One comparison of the scalar scan in every lane: if sumq2 > 0 and sumqx^2 > best * sumq2, the lane takes
// sumqx / sumq2 as its scale and `code` as its split.
template <class S>
inline void keep_if_better(typename S::F sumqx, typename S::F sumq2, int32_t code, typename S::F* best,
                           typename S::F* scale, typename S::I* split) {
  const auto better = S::mand(S::gt(sumq2, S::set1(0.0f)), S::gt(S::mul(sumqx, sumqx), S::mul(*best, sumq2)));
  if (!S::any(better)) return;
  *scale = S::select(better, S::div(sumqx, sumq2), *scale);
  *best = S::select(better, S::mul(*scale, sumqx), *best);
  *split = S::iselect(better, S::iset1(code), *split);
}

// ---- iq1_s

template <class V>
void quantize_iq1_s_batch_simd(const IqGridSearch& grid, const LowbitBlock* blocks, int count) {
  using S = Lanes16<V>;
  using F = typename S::F;
  using I = typename S::I;
  constexpr int kLanes = 16;
  iq1::SSubBlock subs[kLanes];
  alignas(64) float sx[33 * kLanes], sw[33 * kLanes], start[kLanes];
  unsigned active = 0;
  for (int k = 0; k < 2; ++k) {
    const float sigma2 = k < count ? iq1::super_block_sigma2(blocks[k].x) : 0.0f;
    for (int ib = 0; ib < 8; ++ib) {
      const int g = 8 * k + ib;
      iq1::SSubBlock& sub = subs[g];
      if (k < count) {
        int order[32];
        order_by_value_lanes<V, 32>(blocks[k].x + 32 * ib, order);
        iq1::prepare_s(blocks[k].x, blocks[k].qw, sigma2, ib, &sub, order);
      }
      const bool used = k < count && !sub.skip;
      if (used) active |= 1u << g;
      start[g] = used ? sub.max : 0.0f;
      for (int j = 0; j <= 32; ++j) {
        sx[j * kLanes + g] = used ? sub.sumx[j] : 0.0f;
        sw[j * kLanes + g] = used ? sub.sumw[j] : 0.0f;
      }
    }
  }

  // v[shift][level], shift 0 = up (+1), 1 = down (-1).
  const float* const v[2] = {iq1::kShiftedUp, iq1::kShiftedDown};
  // The terms of the last third, per second split point and shift: (sumx[32] - sumx[i2]) * v2 and
  // ((sumw[32] - sumw[i2]) * v2) * v2.
  alignas(64) float tail_x[2][33 * kLanes], tail_w[2][33 * kLanes];
  const F total_x = S::load(sx + 32 * kLanes);
  const F total_w = S::load(sw + 32 * kLanes);
  for (int i2 = 0; i2 <= 32; ++i2) {
    const F cx = S::sub(total_x, S::load(sx + i2 * kLanes));
    const F cw = S::sub(total_w, S::load(sw + i2 * kLanes));
    for (int s = 0; s < 2; ++s) {
      const F v2 = S::set1(v[s][2]);
      S::store(tail_x[s] + i2 * kLanes, S::mul(cx, v2));
      S::store(tail_w[s] + i2 * kLanes, S::mul(S::mul(cw, v2), v2));
    }
  }
  F best = S::set1(-FLT_MAX);
  F scale = S::load(start);
  I split = S::iset1(-1);
  for (int i1 = 0; i1 <= 32; ++i1) {
    // (sumx[i1] - sumx[0]) is sumx[i1]: sumx[0] is +0.
    const F ax = S::load(sx + i1 * kLanes);
    const F aw = S::load(sw + i1 * kLanes);
    F head_x[2], head_w[2];
    for (int s = 0; s < 2; ++s) {
      const F v0 = S::set1(v[s][0]);
      head_x[s] = S::mul(ax, v0);
      head_w[s] = S::mul(S::mul(aw, v0), v0);
    }
    for (int i2 = i1; i2 <= 32; ++i2) {
      const F bx = S::sub(S::load(sx + i2 * kLanes), ax);
      const F bw = S::sub(S::load(sw + i2 * kLanes), aw);
      for (int s = 0; s < 2; ++s) {
        const F v1 = S::set1(v[s][1]);
        const F sumqx = S::add(S::add(head_x[s], S::mul(bx, v1)), S::load(tail_x[s] + i2 * kLanes));
        const F sumq2 = S::add(S::add(head_w[s], S::mul(S::mul(bw, v1), v1)), S::load(tail_w[s] + i2 * kLanes));
        keep_if_better<S>(sumqx, sumq2, (i1 * 64 + i2) * 4 + s, &best, &scale, &split);
      }
    }
  }
  alignas(64) float scales[kLanes];
  alignas(64) int32_t splits[kLanes];
  S::store(scales, scale);
  S::istore(splits, split);

  for (int k = 0; k < count; ++k) {
    uint8_t* block = blocks[k].out;
    std::memset(block, 0, kIq1SBlockBytes);
    iq1::SSuperBlock super;
    for (int ib = 0; ib < 8; ++ib) {
      const int g = 8 * k + ib;
      const iq1::Split chosen = (active >> g) & 1u ? split_of(splits[g], scales[g], true) : iq1::Split{};
      iq1::finish_s(grid, iq1_nearest_point_simd<V>, blocks[k].x, subs[g], ib, chosen, &super, block);
    }
    iq1::pack_s(super, block);
  }
}

// ---- iq1_m

template <class V>
void quantize_iq1_m_batch_simd(const IqGridSearch& grid, const LowbitBlock* blocks, int count) {
  using S = Lanes16<V>;
  using F = typename S::F;
  using I = typename S::I;
  constexpr int kLanes = 16;
  (void)count;  // one super-block per batch
  const float* x = blocks[0].x;
  const float* importance = blocks[0].qw;
  const float sigma2 = iq1::super_block_sigma2(x);
  iq1::MSubBlock subs[kLanes];
  alignas(64) float start[kLanes];
  // Per sorted position j: the weight and value of that position, and whether it is in the second group.
  alignas(64) float ws[16 * kLanes], xs[16 * kLanes];
  alignas(64) int32_t second[16 * kLanes];
  unsigned active = 0;
  for (int g = 0; g < kLanes; ++g) {
    iq1::MSubBlock& sub = subs[g];
    int order[16];
    order_by_value_lanes<V, 16>(x + 16 * g, order);
    iq1::prepare_m(x, importance, sigma2, g, &sub, order);
    if (!sub.skip) active |= 1u << g;
    start[g] = sub.skip ? 0.0f : sub.max;
    for (int j = 0; j < 16; ++j) {
      const int i = sub.skip ? j : sub.order[j];
      ws[j * kLanes + g] = sub.skip ? 0.0f : sub.weight[i];
      xs[j * kLanes + g] = sub.skip ? 0.0f : x[16 * g + i];
      second[j * kLanes + g] = i >= 8 ? -1 : 0;
    }
  }

  // The added terms of sorted position j at a level, for the four shift choices: w * v * x and w * v * v with
  // v the group's shifted level value (iq1.cpp search_m: (weight * v) * x and (weight * v) * v).
  struct Terms {
    F qx[4], q2[4];
  };
  auto terms_at = [&](int j, int level) {
    const F w = S::load(ws + j * kLanes);
    const F xv = S::load(xs + j * kLanes);
    const auto in_second = S::ieq(S::iload(second + j * kLanes), S::iset1(-1));
    const F up = S::set1(iq1::kShiftedUp[level]);
    const F down = S::set1(iq1::kShiftedDown[level]);
    const F wu = S::mul(w, up), wd = S::mul(w, down);
    const F wux = S::mul(wu, xv), wdx = S::mul(wd, xv);
    const F wuv = S::mul(wu, up), wdv = S::mul(wd, down);
    Terms t;
    // choice 0: +,+  1: +,-  2: -,+  3: -,-  (first group, second group)
    t.qx[0] = wux;
    t.q2[0] = wuv;
    t.qx[1] = S::select(in_second, wdx, wux);
    t.q2[1] = S::select(in_second, wdv, wuv);
    t.qx[2] = S::select(in_second, wux, wdx);
    t.q2[2] = S::select(in_second, wuv, wdv);
    t.qx[3] = wdx;
    t.q2[3] = wdv;
    return t;
  };
  Terms table[16][3];
  for (int j = 0; j < 16; ++j) {
    for (int level = 0; level < 3; ++level) table[j][level] = terms_at(j, level);
  }
  auto add = [](Terms& sums, const Terms& t) {
    for (int c = 0; c < 4; ++c) {
      sums.qx[c] = S::add(sums.qx[c], t.qx[c]);
      sums.q2[c] = S::add(sums.q2[c], t.q2[c]);
    }
  };

  F best = S::set1(-FLT_MAX);
  F scale = S::load(start);
  I split = S::iset1(-1);
  Terms below_first;  // sums over j < i1, all at level 0
  for (int c = 0; c < 4; ++c) below_first.qx[c] = below_first.q2[c] = S::set1(0.0f);
  for (int i1 = 0; i1 <= 16; ++i1) {
    Terms below_second = below_first;  // sums over j < i2: level 0 below i1, level 1 from i1
    for (int i2 = i1; i2 <= 16; ++i2) {
      Terms sums = below_second;
      for (int j = i2; j < 16; ++j) add(sums, table[j][2]);
      for (int c = 0; c < 4; ++c) keep_if_better<S>(sums.qx[c], sums.q2[c], (i1 * 64 + i2) * 4 + c, &best, &scale, &split);
      if (i2 < 16) add(below_second, table[i2][1]);
    }
    if (i1 < 16) add(below_first, table[i1][0]);
  }
  alignas(64) float scales[kLanes];
  alignas(64) int32_t splits[kLanes];
  S::store(scales, scale);
  S::istore(splits, split);

  uint8_t* block = blocks[0].out;
  std::memset(block, 0, kIq1MBlockBytes);
  iq1::MSuperBlock super;
  for (int g = 0; g < kLanes; ++g) {
    const iq1::Split chosen = (active >> g) & 1u ? split_of(splits[g], scales[g], false) : iq1::Split{};
    iq1::finish_m(grid, iq1_nearest_point_simd<V>, x, subs[g], g, chosen, &super, block);
  }
  iq1::pack_m(grid, x, importance, sigma2, super, block);
}

template <class V>
void quantize_iq1_s_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq1);
  quantize_finite_super_blocks<V, 2>(scalar_quantize(TypeId::iq1_s), kIq1SBlockBytes, src, dst, nrows, n_per_row,
                                     importance, [&grid](const LowbitBlock* blocks, int count) {
                                       quantize_iq1_s_batch_simd<V>(grid, blocks, count);
                                     });
}

template <class V>
void quantize_iq1_m_simd(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq1);
  quantize_finite_super_blocks<V, 1>(scalar_quantize(TypeId::iq1_m), kIq1MBlockBytes, src, dst, nrows, n_per_row,
                                     importance, [&grid](const LowbitBlock* blocks, int count) {
                                       quantize_iq1_m_batch_simd<V>(grid, blocks, count);
                                     });
}

}  // namespace
}  // namespace quant::formats
