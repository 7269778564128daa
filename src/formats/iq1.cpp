// The 1-bit grid i-quants iq1_s and iq1_m: ggml's exhaustive split of each sub-block into three levels,
// snapped to the ternary grid, reproduced step for step in float32 (see iq1.h and docs/formats/iq1-iq2.md).
#include "formats/iq1.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <numeric>

#include "formats/block_io.h"
#include "formats/iq_grid_search.h"
#include "formats/kernels.h"

namespace quant::formats {
namespace {

constexpr int kBlock = 256;
constexpr float kDelta = 0.125f;  // ggml's IQ1S_DELTA and IQ1M_DELTA: the shift applied to a whole group
// What levels 0, 1, 2 decode to, shifted up (+delta) or down (-delta).
constexpr float kShiftedUp[3] = {-1 + kDelta, kDelta, 1 + kDelta};
constexpr float kShiftedDown[3] = {-1 - kDelta, -kDelta, 1 - kDelta};

inline float max_of(float a, float b) { return a > b ? a : b; }  // ggml's MAX macro
inline int clamp_level(int l, int top) { return l < 0 ? 0 : (l > top ? top : l); }
inline uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline void store_u16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v); p[1] = static_cast<uint8_t>(v >> 8); }

float sum_of_squares(const float* x) {
  float sum = 0;
  for (int i = 0; i < kBlock; ++i) sum += x[i] * x[i];
  return sum;
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

// Snaps each group of 8 levels to the grid (the best nearest point at `scale` when off the grid). Returns
// whether all groups were already on the grid; `shift_of_group(k)` gives group k's level values.
template <typename ShiftOf>
bool snap_groups(const IqGridSearch& grid, int groups, const float* xb, const float* weight, float scale,
                 ShiftOf shift_of_group, int8_t* levels, uint16_t* index) {
  bool all_on_grid = true;
  for (int k = 0; k < groups; ++k) {
    const uint16_t code = iq_pack_levels(levels + 8 * k);
    int found = grid.index_of(code);
    if (found < 0) {
      all_on_grid = false;
      found = iq1_best_candidate(grid, grid.neighbours(code), xb + 8 * k, weight + 8 * k, scale, shift_of_group(k),
                                 levels + 8 * k);
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

// iq1_s: 8 sub-blocks of 32 sharing one shift direction each.
void quantize_block_iq1_s(const IqGridSearch& grid, const float* x, const float* importance, uint8_t* block) {
  std::memset(block, 0, kIq1SBlockBytes);
  uint8_t* qs = block + 2;
  uint8_t* qh = block + 34;
  float scales[8];
  int shifts[8];
  float max_scale = 0;
  const float sigma2 = 2 * sum_of_squares(x) / kBlock;
  for (int ib = 0; ib < 8; ++ib) {
    const float* xb = x + 32 * ib;
    const float* qw = importance + 32 * ib;
    float weight[32];
    for (int i = 0; i < 32; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
    float max = std::fabs(xb[0]);
    for (int i = 1; i < 32; ++i) max = max_of(max, std::fabs(xb[i]));
    scales[ib] = 0;
    shifts[ib] = 1;
    if (max < 1e-12f) continue;

    // With three levels the best weighted fit is found exhaustively: sort the values, and for every pair of
    // split points compute the least-squares score from prefix sums.
    int order[32];
    order_by_value<32>(xb, order);
    float sumx[33], sumw[33];
    sumx[0] = sumw[0] = 0;
    for (int j = 0; j < 32; ++j) {
      const int i = order[j];
      sumx[j + 1] = sumx[j] + weight[i] * xb[i];
      sumw[j + 1] = sumw[j] + weight[i];
    }
    float best_score = -FLT_MAX, scale = max;
    int best_split1 = -1, best_split2 = -1, best_shift = 0;
    for (int i1 = 0; i1 <= 32; ++i1) {
      for (int i2 = i1; i2 <= 32; ++i2) {
        for (const int shift : {1, -1}) {
          const float* v = shift == 1 ? kShiftedUp : kShiftedDown;
          const float sumqx = (sumx[i1] - sumx[0]) * v[0] + (sumx[i2] - sumx[i1]) * v[1] + (sumx[32] - sumx[i2]) * v[2];
          const float sumq2 = (sumw[i1] - sumw[0]) * v[0] * v[0] + (sumw[i2] - sumw[i1]) * v[1] * v[1] +
                              (sumw[32] - sumw[i2]) * v[2] * v[2];
          if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
            scale = sumqx / sumq2;
            best_score = scale * sumqx;
            best_split1 = i1;
            best_split2 = i2;
            best_shift = shift;
          }
        }
      }
    }
    if (best_split1 < 0) continue;
    int8_t levels[32];
    levels_from_split<32>(order, best_split1, best_split2, levels);
    if (scale < 0) {
      for (int j = 0; j < 32; ++j) levels[j] = static_cast<int8_t>(2 - levels[j]);
      scale = -scale;
      best_shift = -best_shift;
    }
    const float* values = best_shift == 1 ? kShiftedUp : kShiftedDown;
    auto shift_of_group = [values](int) { return values; };
    uint16_t index[4];
    if (!snap_groups(grid, 4, xb, weight, scale, shift_of_group, levels, index)) {
      scale = refit_scale(grid, 4, xb, weight, index, shift_of_group, scale);
    }
    uint16_t high = 0;
    for (int k = 0; k < 4; ++k) {
      qs[4 * ib + k] = static_cast<uint8_t>(index[k] & 255);
      high = static_cast<uint16_t>(high | ((index[k] >> 8) << (3 * k)));
    }
    store_u16(qh + 2 * ib, high);
    scales[ib] = scale;
    shifts[ib] = best_shift;
    max_scale = max_of(max_scale, scale);
  }
  if (max_scale == 0) return;
  const float d = max_scale / 15;
  store_f16(block, d * 1.125f);  // ggml stores d enlarged by 1.125
  const float inverse_d = 1 / d;
  for (int ib = 0; ib < 8; ++ib) {
    int code = clamp_level(nearest_int(0.5f * (inverse_d * scales[ib] - 1)), 7);
    if (shifts[ib] == -1) code |= 8;
    store_u16(qh + 2 * ib, static_cast<uint16_t>(load_u16(qh + 2 * ib) | (code << 12)));
  }
}

// iq1_m: 16 sub-blocks of 16, each of whose two groups has its own shift direction. Shift choice k: bit 1 set
// means the first group shifts down, bit 0 set means the second does (ggml's order +,+ / +,- / -,+ / -,-).
inline const float* iq1_m_group_values(int shift_choice, int group) {
  const bool down = group == 0 ? shift_choice >= 2 : shift_choice % 2 == 1;
  return down ? kShiftedDown : kShiftedUp;
}

void iq1_m_weights(const float* xb, const float* qw, float sigma2, float* weight) {
  if (qw != nullptr) {
    for (int i = 0; i < 16; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
  } else {
    for (int i = 0; i < 16; ++i) weight[i] = xb[i] * xb[i];
  }
}

void quantize_block_iq1_m(const IqGridSearch& grid, const float* x, const float* importance, uint8_t* block) {
  std::memset(block, 0, kIq1MBlockBytes);
  uint8_t* qs = block;
  uint8_t* qh = block + 32;
  uint16_t scale_words[4] = {};
  float scales[16];
  int shifts[16];
  float max_scale = 0;
  const float sigma2 = 2 * sum_of_squares(x) / kBlock;
  for (int ib = 0; ib < 16; ++ib) {
    const float* xb = x + 16 * ib;
    float weight[16];
    iq1_m_weights(xb, importance == nullptr ? nullptr : importance + 16 * ib, sigma2, weight);
    float max = std::fabs(xb[0]);
    for (int i = 1; i < 16; ++i) max = max_of(max, std::fabs(xb[i]));
    scales[ib] = 0;
    shifts[ib] = 0;
    if (max < 1e-7f) continue;

    int order[16];
    order_by_value<16>(xb, order);
    float best_score = -FLT_MAX, scale = max;
    int best_split1 = -1, best_split2 = -1, best_choice = -1;
    for (int i1 = 0; i1 <= 16; ++i1) {
      for (int i2 = i1; i2 <= 16; ++i2) {
        // ggml accumulates these directly (no prefix sums), in sorted order, for all four shift choices.
        float sumqx[4] = {}, sumq2[4] = {};
        for (int j = 0; j < 16; ++j) {
          const int i = order[j];
          const int level = j < i1 ? 0 : (j < i2 ? 1 : 2);
          for (int choice = 0; choice < 4; ++choice) {
            const float v = iq1_m_group_values(choice, i < 8 ? 0 : 1)[level];
            sumqx[choice] += weight[i] * v * xb[i];
            sumq2[choice] += weight[i] * v * v;
          }
        }
        for (int choice = 0; choice < 4; ++choice) {
          if (sumq2[choice] > 0 && sumqx[choice] * sumqx[choice] > best_score * sumq2[choice]) {
            scale = sumqx[choice] / sumq2[choice];
            best_score = scale * sumqx[choice];
            best_split1 = i1;
            best_split2 = i2;
            best_choice = choice;
          }
        }
      }
    }
    if (best_split1 < 0) continue;
    int8_t levels[16];
    levels_from_split<16>(order, best_split1, best_split2, levels);
    if (scale < 0) {
      for (int j = 0; j < 16; ++j) levels[j] = static_cast<int8_t>(2 - levels[j]);
      scale = -scale;
      best_choice = 3 - best_choice;  // both groups' directions flip
    }
    auto shift_of_group = [best_choice](int k) { return iq1_m_group_values(best_choice, k); };
    uint16_t index[2];
    if (!snap_groups(grid, 2, xb, weight, scale, shift_of_group, levels, index)) {
      scale = refit_scale(grid, 2, xb, weight, index, shift_of_group, scale);
    }
    qs[2 * ib] = static_cast<uint8_t>(index[0] & 255);
    qs[2 * ib + 1] = static_cast<uint8_t>(index[1] & 255);
    qh[ib] = static_cast<uint8_t>((index[0] >> 8) | ((index[1] >> 8) << 4));
    scales[ib] = scale;
    shifts[ib] = best_choice;
    max_scale = max_of(max_scale, scale);
  }
  if (max_scale == 0) return;

  // The 3-bit sub-block scales are relative to max_scale / 15, but the stored super-block scale is refitted
  // by least squares over the whole block with those codes fixed.
  constexpr uint8_t kShiftBits[4] = {0x00, 0x80, 0x08, 0x88};
  float d = max_scale / 15;
  const float inverse_d = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int ib = 0; ib < 16; ++ib) {
    const int code = clamp_level(nearest_int(0.5f * (inverse_d * scales[ib] - 1)), 7);
    scale_words[ib / 4] = static_cast<uint16_t>(scale_words[ib / 4] | (code << (3 * (ib % 4))));
    qh[ib] = static_cast<uint8_t>(qh[ib] | kShiftBits[shifts[ib]]);
    const float* xb = x + 16 * ib;
    float weight[16];
    iq1_m_weights(xb, importance == nullptr ? nullptr : importance + 16 * ib, sigma2, weight);
    for (int k = 0; k < 2; ++k) {
      const float* values = iq1_m_group_values(shifts[ib], k);
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

// Writes 8 dequantized values of one group: scale * (grid value + shift).
inline void decode_iq1_group(const IqGridSearch& grid, int index, float scale, float shift, float* y) {
  const std::array<int8_t, 8>& levels = grid.levels(index);
  for (int j = 0; j < 8; ++j) y[j] = scale * (static_cast<float>(levels[j] - 1) + shift);
}

}  // namespace

uint16_t iq1_m_packed_scale(const uint8_t* block) {
  const uint8_t* words = block + 48;
  return static_cast<uint16_t>((load_u16(words) >> 12) | ((load_u16(words + 2) >> 8) & 0x00f0) |
                               ((load_u16(words + 4) >> 4) & 0x0f00) | (load_u16(words + 6) & 0xf000));
}

void quantize_rows_iq1_s(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq1);
  for_each_block<kBlock>(src, dst, nrows, n_per_row, importance, kIq1SBlockBytes,
                         [&](const float* x, const float* qw, uint8_t* block) {
                           quantize_block_iq1_s(grid, x, qw, block);
                         });
}

void quantize_rows_iq1_m(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq1);
  for_each_block<kBlock>(src, dst, nrows, n_per_row, importance, kIq1MBlockBytes,
                         [&](const float* x, const float* qw, uint8_t* block) {
                           quantize_block_iq1_m(grid, x, qw, block);
                         });
}

void dequantize_iq1_s(const void* src, float* dst, int64_t n) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq1);
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kBlock; ++b, block += kIq1SBlockBytes) {
    const float d = load_f16(block);
    for (int ib = 0; ib < 8; ++ib) {
      const uint16_t high = load_u16(block + 34 + 2 * ib);
      const float scale = d * static_cast<float>(2 * ((high >> 12) & 7) + 1);
      const float shift = (high & 0x8000) ? -kDelta : kDelta;
      for (int k = 0; k < 4; ++k, dst += 8) {
        decode_iq1_group(grid, block[2 + 4 * ib + k] | (((high >> (3 * k)) & 7) << 8), scale, shift, dst);
      }
    }
  }
}

void dequantize_iq1_m(const void* src, float* dst, int64_t n) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq1);
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kBlock; ++b, block += kIq1MBlockBytes) {
    const float d = fp16_to_fp32(iq1_m_packed_scale(block));
    for (int ib = 0; ib < 16; ++ib) {  // sub-blocks of 16: two groups each
      const uint16_t word = load_u16(block + 48 + 2 * (ib / 4));
      const float scale = d * static_cast<float>(2 * ((word >> (3 * (ib % 4))) & 7) + 1);
      const uint8_t high = block[32 + ib];
      for (int k = 0; k < 2; ++k, dst += 8) {
        const float shift = (high & (k == 0 ? 0x08 : 0x80)) ? -kDelta : kDelta;
        decode_iq1_group(grid, block[2 * ib + k] | (((high >> (4 * k)) & 7) << 8), scale, shift, dst);
      }
    }
  }
}

}  // namespace quant::formats
