// The steps of the iq1_s and iq1_m quantizers around their exhaustive split search, shared by the scalar
// quantizer (iq1.cpp) and the SIMD one (simd_iq1.h): a sub-block's weights and value order before the search,
// and after it the levels of the chosen split, their snapping to the grid, the refitted scale and the
// super-block stage (the f16 scale, the 3-bit sub-block scales, the shift bits and the packing). Scalar float32
// in ggml's operation order (quantize_row_iq1_s_impl, quantize_row_iq1_m_impl): the bytes must be bit-exact
// (docs/formats/iq1-iq2.md).
//
// Include before any instruction-set pragma (as kernels.h): these inline functions must be compiled for the
// baseline target in every translation unit.
#pragma once

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>

#include "formats/iq1.h"
#include "formats/iq_grid_search.h"
#include "formats/kernels.h"

namespace quant::formats::iq1 {

inline constexpr int kBlock = 256;
inline constexpr float kDelta = 0.125f;  // ggml's IQ1S_DELTA and IQ1M_DELTA: the shift applied to a whole group
// What levels 0, 1, 2 decode to, shifted up (+delta) or down (-delta).
inline constexpr float kShiftedUp[3] = {-1 + kDelta, kDelta, 1 + kDelta};
inline constexpr float kShiftedDown[3] = {-1 - kDelta, -kDelta, 1 - kDelta};

inline float max_of(float a, float b) { return a > b ? a : b; }  // ggml's MAX macro
inline int clamp_level(int l, int top) { return l < 0 ? 0 : (l > top ? top : l); }
inline uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline void store_u16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v); p[1] = static_cast<uint8_t>(v >> 8); }

// ggml's sigma2 for both types: twice the mean square of the super-block, summed in order.
inline float super_block_sigma2(const float* x) {
  float sum = 0;
  for (int i = 0; i < kBlock; ++i) sum += x[i] * x[i];
  return 2 * sum / kBlock;
}

// Positions 0..n-1 ordered by ascending x. ggml sorts with glibc qsort, which merge-sorts arrays this small,
// so equal values keep their original order: a stable sort gives the same order.
template <int n>
void order_by_value(const float* x, int* order) {
  std::iota(order, order + n, 0);
  std::stable_sort(order, order + n, [x](int a, int b) { return x[a] < x[b]; });
}

// Assigns levels by sorted position: the first `split1` values get 0, up to `split2` get 1, the rest 2.
template <int n>
void levels_from_split(const int* order, int split1, int split2, int8_t* levels) {
  for (int j = 0; j < n; ++j) levels[order[j]] = static_cast<int8_t>(j < split1 ? 0 : (j < split2 ? 1 : 2));
}

// The best grid point for an off-grid group: iq_grid_search.h's iq1_best_candidate, or a faster search that
// returns the same index and levels.
using NearestPointFn = int (*)(const IqGridSearch& grid, uint16_t code, const float* xval, const float* weight,
                               float scale, const float* level_value, int8_t* levels);

inline int nearest_point_scalar(const IqGridSearch& grid, uint16_t code, const float* xval, const float* weight,
                                float scale, const float* level_value, int8_t* levels) {
  return iq1_best_candidate(grid, grid.neighbours(code), xval, weight, scale, level_value, levels);
}

// Snaps each group of 8 levels to the grid (the best nearest point at `scale` when off the grid). Returns
// whether all groups were already on the grid; `shift_of_group(k)` gives group k's level values.
template <typename ShiftOf>
bool snap_groups(const IqGridSearch& grid, NearestPointFn nearest, int groups, const float* xb, const float* weight,
                 float scale, ShiftOf shift_of_group, int8_t* levels, uint16_t* index) {
  bool all_on_grid = true;
  for (int k = 0; k < groups; ++k) {
    const uint16_t code = iq_pack_levels(levels + 8 * k);
    int found = grid.index_of(code);
    if (found < 0) {
      all_on_grid = false;
      found = nearest(grid, code, xb + 8 * k, weight + 8 * k, scale, shift_of_group(k), levels + 8 * k);
    }
    index[k] = static_cast<uint16_t>(found);
  }
  return all_on_grid;
}

// The least-squares scale of the snapped groups, or `scale` unchanged when the fit is not positive.
template <typename ShiftOf>
float refit_scale(const IqGridSearch& grid, int groups, const float* xb, const float* weight, const uint16_t* index,
                  ShiftOf shift_of_group, float scale) {
  float sumqx = 0, sumq2 = 0;
  for (int k = 0; k < groups; ++k) {
    const float* value = shift_of_group(k);
    const std::array<int8_t, 8>& point = grid.levels(index[k]);
    for (int j = 0; j < 8; ++j) {
      const float w = weight[8 * k + j];
      const float q = value[point[j]];
      sumqx += w * q * xb[8 * k + j];
      sumq2 += w * q * q;
    }
  }
  return sumqx > 0 && sumq2 > 0 ? sumqx / sumq2 : scale;
}

// The outcome of a sub-block's split search: values order[0..split1) get level 0, [split1, split2) level 1,
// the rest 2; `shift` is iq1_s's direction (+1 or -1) or iq1_m's choice (0..3). split1 < 0: nothing beat the
// start, the sub-block stores scale 0.
struct Split {
  int split1 = -1;
  int split2 = -1;
  int shift = 0;
  float scale = 0;
};

// The scalar scan's running best: a split replaces it when sumq2 > 0 and sumqx^2 > best_score * sumq2, its
// scale sumqx / sumq2 and its score scale * sumqx (the least-squares error falls as sumqx^2 / sumq2 rises).
struct BestSplit {
  float score = -FLT_MAX;
  Split split;
  void offer(float sumqx, float sumq2, int split1, int split2, int shift) {
    if (sumq2 > 0 && sumqx * sumqx > score * sumq2) {
      split.scale = sumqx / sumq2;
      score = split.scale * sumqx;
      split.split1 = split1;
      split.split2 = split2;
      split.shift = shift;
    }
  }
};

// What a shift value means: the level values of group k, and the shift that stands for the opposite sign.
struct ShiftRule {
  const float* (*group_values)(int shift, int group);
  int (*flipped)(int shift);
};

// The levels of a split of n sorted values, turned upside down when the split's scale is negative (levels
// 2 - l, scale -scale, the shift flipped), snapped to the grid, and the scale refitted when a group was off
// the grid. Writes the groups' grid indices and the final shift; returns the final scale.
template <int n>
float snap_split(const IqGridSearch& grid, NearestPointFn nearest, const float* xb, const float* weight,
                 const int* order, const Split& split, ShiftRule rule, int* shift, uint16_t* index) {
  int8_t levels[n];
  levels_from_split<n>(order, split.split1, split.split2, levels);
  float scale = split.scale;
  int chosen = split.shift;
  if (scale < 0) {
    for (int j = 0; j < n; ++j) levels[j] = static_cast<int8_t>(2 - levels[j]);
    scale = -scale;
    chosen = rule.flipped(chosen);
  }
  auto shift_of_group = [rule, chosen](int k) { return rule.group_values(chosen, k); };
  if (!snap_groups(grid, nearest, n / 8, xb, weight, scale, shift_of_group, levels, index)) {
    scale = refit_scale(grid, n / 8, xb, weight, index, shift_of_group, scale);
  }
  *shift = chosen;
  return scale;
}

// ---- iq1_s: 8 sub-blocks of 32 sharing one shift direction each

// Shift +1: every group's levels shifted up; -1: down.
inline const float* s_group_values(int shift, int) { return shift == 1 ? kShiftedUp : kShiftedDown; }
inline int s_flipped(int shift) { return -shift; }

// A sub-block of 32 before the split search: weights, the value order, and the prefix sums of w*x and w in
// that order. `skip`: its largest magnitude is below 1e-12, it stores scale 0.
struct SSubBlock {
  float weight[32];
  int order[32];
  float sumx[33];
  float sumw[33];
  float max = 0;
  bool skip = false;
};

// `order`: the values' stable ascending order when the caller has it already (order_by_value's result), else
// null.
inline void prepare_s(const float* x, const float* importance, float sigma2, int ib, SSubBlock* sub,
                      const int* order = nullptr) {
  const float* xb = x + 32 * ib;
  const float* qw = importance + 32 * ib;
  for (int i = 0; i < 32; ++i) sub->weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
  float max = std::fabs(xb[0]);
  for (int i = 1; i < 32; ++i) max = max_of(max, std::fabs(xb[i]));
  sub->max = max;
  sub->skip = max < 1e-12f;
  if (sub->skip) return;
  // With three levels the best weighted fit is found exhaustively: sort the values, and for every pair of
  // split points compute the least-squares score from prefix sums.
  if (order != nullptr) {
    std::memcpy(sub->order, order, sizeof(sub->order));
  } else {
    order_by_value<32>(xb, sub->order);
  }
  sub->sumx[0] = sub->sumw[0] = 0;
  for (int j = 0; j < 32; ++j) {
    const int i = sub->order[j];
    sub->sumx[j + 1] = sub->sumx[j] + sub->weight[i] * xb[i];
    sub->sumw[j + 1] = sub->sumw[j] + sub->weight[i];
  }
}

// Per super-block: what the sub-blocks chose, then packed.
template <int kSubBlocks>
struct SuperBlockChoices {
  float scales[kSubBlocks];
  int shifts[kSubBlocks];
  float max_scale = 0;
};
using SSuperBlock = SuperBlockChoices<8>;
using MSuperBlock = SuperBlockChoices<16>;

// After the split search: the levels, the sign flip of a negative scale, snapping, refit, and the sub-block's
// indices written into the block (qs, qh).
inline void finish_s(const IqGridSearch& grid, NearestPointFn nearest, const float* x, const SSubBlock& sub, int ib,
                     Split split, SSuperBlock* super, uint8_t* block) {
  super->scales[ib] = 0;
  super->shifts[ib] = 1;
  if (sub.skip || split.split1 < 0) return;
  uint16_t index[4];
  int shift = 0;
  const float scale = snap_split<32>(grid, nearest, x + 32 * ib, sub.weight, sub.order, split,
                                     {s_group_values, s_flipped}, &shift, index);
  uint8_t* qs = block + 2;
  uint8_t* qh = block + 34;
  uint16_t high = 0;
  for (int k = 0; k < 4; ++k) {
    qs[4 * ib + k] = static_cast<uint8_t>(index[k] & 255);
    high = static_cast<uint16_t>(high | ((index[k] >> 8) << (3 * k)));
  }
  store_u16(qh + 2 * ib, high);
  super->scales[ib] = scale;
  super->shifts[ib] = shift;
  super->max_scale = max_of(super->max_scale, scale);
}

// The super-block stage: d = largest scale / 15 (stored enlarged by 1.125, as ggml does) and per sub-block a
// 3-bit scale code and the shift bit. `block` was cleared before the sub-blocks were written.
inline void pack_s(const SSuperBlock& super, uint8_t* block) {
  if (super.max_scale == 0) return;
  uint8_t* qh = block + 34;
  const float d = super.max_scale / 15;
  store_f16(block, d * 1.125f);
  const float inverse_d = 1 / d;
  for (int ib = 0; ib < 8; ++ib) {
    int code = clamp_level(nearest_int(0.5f * (inverse_d * super.scales[ib] - 1)), 7);
    if (super.shifts[ib] == -1) code |= 8;
    store_u16(qh + 2 * ib, static_cast<uint16_t>(load_u16(qh + 2 * ib) | (code << 12)));
  }
}

// ---- iq1_m: 16 sub-blocks of 16, each of whose two groups has its own shift direction

// Shift choice k: bit 1 set means the first group shifts down, bit 0 set means the second does (ggml's order
// +,+ / +,- / -,+ / -,-).
inline const float* m_group_values(int shift_choice, int group) {
  const bool down = group == 0 ? shift_choice >= 2 : shift_choice % 2 == 1;
  return down ? kShiftedDown : kShiftedUp;
}
inline int m_flipped(int shift_choice) { return 3 - shift_choice; }  // both groups' directions flip

inline void m_weights(const float* xb, const float* qw, float sigma2, float* weight) {
  if (qw != nullptr) {
    for (int i = 0; i < 16; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
  } else {
    for (int i = 0; i < 16; ++i) weight[i] = xb[i] * xb[i];
  }
}

// A sub-block of 16 before the split search: weights and the value order. `skip`: its largest magnitude is
// below 1e-7, it stores scale 0.
struct MSubBlock {
  float weight[16];
  int order[16];
  float max = 0;
  bool skip = false;
};

inline void prepare_m(const float* x, const float* importance, float sigma2, int ib, MSubBlock* sub,
                      const int* order = nullptr) {
  const float* xb = x + 16 * ib;
  m_weights(xb, importance == nullptr ? nullptr : importance + 16 * ib, sigma2, sub->weight);
  float max = std::fabs(xb[0]);
  for (int i = 1; i < 16; ++i) max = max_of(max, std::fabs(xb[i]));
  sub->max = max;
  sub->skip = max < 1e-7f;
  if (sub->skip) return;
  if (order != nullptr) {
    std::memcpy(sub->order, order, sizeof(sub->order));
  } else {
    order_by_value<16>(xb, sub->order);
  }
}

// After the split search: levels, flip, snapping, refit, and the sub-block's indices written (qs, qh).
inline void finish_m(const IqGridSearch& grid, NearestPointFn nearest, const float* x, const MSubBlock& sub, int ib,
                     Split split, MSuperBlock* super, uint8_t* block) {
  super->scales[ib] = 0;
  super->shifts[ib] = 0;
  if (sub.skip || split.split1 < 0) return;
  uint16_t index[2];
  int choice = 0;
  const float scale = snap_split<16>(grid, nearest, x + 16 * ib, sub.weight, sub.order, split,
                                     {m_group_values, m_flipped}, &choice, index);
  uint8_t* qs = block;
  uint8_t* qh = block + 32;
  qs[2 * ib] = static_cast<uint8_t>(index[0] & 255);
  qs[2 * ib + 1] = static_cast<uint8_t>(index[1] & 255);
  qh[ib] = static_cast<uint8_t>((index[0] >> 8) | ((index[1] >> 8) << 4));
  super->scales[ib] = scale;
  super->shifts[ib] = choice;
  super->max_scale = max_of(super->max_scale, scale);
}

// The super-block stage: the 3-bit sub-block scales are relative to max_scale / 15, but the stored super-block
// scale is refitted by least squares over the whole block with those codes fixed (weights recomputed as the
// sub-blocks computed them).
inline void pack_m(const IqGridSearch& grid, const float* x, const float* importance, float sigma2,
                   const MSuperBlock& super, uint8_t* block) {
  if (super.max_scale == 0) return;
  uint8_t* qs = block;
  uint8_t* qh = block + 32;
  uint16_t scale_words[4] = {};
  constexpr uint8_t kShiftBits[4] = {0x00, 0x80, 0x08, 0x88};
  float d = super.max_scale / 15;
  const float inverse_d = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int ib = 0; ib < 16; ++ib) {
    const int code = clamp_level(nearest_int(0.5f * (inverse_d * super.scales[ib] - 1)), 7);
    scale_words[ib / 4] = static_cast<uint16_t>(scale_words[ib / 4] | (code << (3 * (ib % 4))));
    qh[ib] = static_cast<uint8_t>(qh[ib] | kShiftBits[super.shifts[ib]]);
    const float* xb = x + 16 * ib;
    float weight[16];
    m_weights(xb, importance == nullptr ? nullptr : importance + 16 * ib, sigma2, weight);
    for (int k = 0; k < 2; ++k) {
      const float* values = m_group_values(super.shifts[ib], k);
      const int index = qs[2 * ib + k] | (((qh[ib] >> (4 * k)) & 7) << 8);
      const std::array<int8_t, 8>& point = grid.levels(index);
      for (int j = 0; j < 8; ++j) {
        const float w = weight[8 * k + j];
        const float q = values[point[j]] * (2 * code + 1);
        sumqx += w * q * xb[8 * k + j];
        sumq2 += w * q * q;
      }
    }
  }
  if (sumq2 > 0) d = sumqx / sumq2;
  const uint16_t d_bits = fp32_to_fp16(d * 1.1125f);  // ggml enlarges the stored d by 1.1125
  scale_words[0] = static_cast<uint16_t>(scale_words[0] | ((d_bits & 0x000f) << 12));
  scale_words[1] = static_cast<uint16_t>(scale_words[1] | ((d_bits & 0x00f0) << 8));
  scale_words[2] = static_cast<uint16_t>(scale_words[2] | ((d_bits & 0x0f00) << 4));
  scale_words[3] = static_cast<uint16_t>(scale_words[3] | (d_bits & 0xf000));
  for (int w = 0; w < 4; ++w) store_u16(block + 48 + 2 * w, scale_words[w]);
}

}  // namespace quant::formats::iq1
