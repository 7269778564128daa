// The 2-bit grid i-quants iq2_xxs, iq2_xs and iq2_s: ggml's search for sub-block scales and grid points,
// reproduced step for step in float32 so the bytes match (see iq2.h and docs/formats/iq1-iq2.md).
#include "formats/iq2.h"

#include <cmath>
#include <cstring>

#include "formats/block_io.h"
#include "formats/iq_grid_search.h"
#include "formats/kernels.h"

namespace quant::formats {
namespace {

constexpr int kBlock = 256;
constexpr int kMaxLevel = 2;  // levels are 0..2, i.e. magnitudes 1, 3, 5 in units of the scale

// ggml's MAX(a, b) macro, kept for its behaviour on ties and NaN.
inline float max_of(float a, float b) { return a > b ? a : b; }
inline int clamp_level(int l, int top) { return l < 0 ? 0 : (l > top ? top : l); }

inline void store_u16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v); p[1] = static_cast<uint8_t>(v >> 8); }
inline void store_u32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }
inline uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t load_u32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

// iq2_xxs and iq2_xs store 7 sign bits per group; the 8th makes the number of minus signs even.
inline uint8_t expand_signs(uint32_t seven_bits) {
  return static_cast<uint8_t>(seven_bits | ((__builtin_popcount(seven_bits) & 1u) << 7));
}

// Takes the magnitudes of a group of 8 into xval and returns its sign bits (bit i: x[i] < 0). With
// `even_signs`, an odd number of minus signs is made even by flipping the sign of the weight whose
// weight * x^2 is smallest, which then enters the fit as a negative magnitude.
uint8_t fold_signs(const float* x, const float* weight, float* xval, bool even_signs) {
  uint8_t signs = 0;
  int negatives = 0;
  for (int i = 0; i < 8; ++i) {
    if (x[i] >= 0) {
      xval[i] = x[i];
    } else {
      xval[i] = -x[i];
      ++negatives;
      signs = static_cast<uint8_t>(signs | (1u << i));
    }
  }
  if (even_signs && negatives % 2 != 0) {
    int cheapest = 0;
    float cheapest_cost = weight[0] * x[0] * x[0];
    for (int i = 1; i < 8; ++i) {
      const float cost = weight[i] * x[i] * x[i];
      if (cost < cheapest_cost) {
        cheapest_cost = cost;
        cheapest = i;
      }
    }
    xval[cheapest] = -xval[cheapest];
    signs = static_cast<uint8_t>(signs ^ (1u << cheapest));
  }
  return signs;
}

// ggml's make_qp_quants: the weighted least-squares scale for non-negative levels 0..nmax, starting from
// max / nmax, trying 8 nearby scales and then moving single levels while that improves the fit. Levels are
// kept in bytes, as ggml does (a negative level wraps around, which matters for the moves).
float fit_levels_weighted(int n, int nmax, const float* x, uint8_t* levels, const float* weight) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = max_of(max, x[i]);
  if (max < 1e-15f) {
    for (int i = 0; i < n; ++i) levels[i] = 0;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / max;
  for (int i = 0; i < n; ++i) levels[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * levels[i];
    best_mse += weight[i] * diff * diff;
  }
  for (int step = -4; step <= 4; ++step) {
    if (step == 0) continue;
    const float iscale_step = (0.1f * step + nmax) / max;
    const float scale_step = 1 / iscale_step;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale_step * x[i]);
      if (l > nmax) l = nmax;
      const float diff = x[i] - scale_step * l;
      mse += weight[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_step;
    }
  }
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    if (l > nmax) l = nmax;
    levels[i] = static_cast<uint8_t>(l);
    sumlx += weight[i] * x[i] * l;
    suml2 += weight[i] * l * l;
  }
  for (int round = 0; round < 5; ++round) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = weight[i];
      float slx = sumlx - w * x[i] * levels[i];
      float sl2 = suml2 - w * levels[i] * levels[i];
      if (slx > 0 && sl2 > 0) {
        int new_l = nearest_int(x[i] * sl2 / slx);
        if (new_l > nmax) new_l = nmax;
        if (new_l != levels[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            levels[i] = static_cast<uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (changed == 0) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Rounds group k of xval to levels at inverse scale `inverse_scale`; when those are off the grid, takes the
// best of the code's nearest grid points at `scale`. Writes the group's 8 levels; returns whether the rounded
// levels were on the grid.
bool round_group_to_grid(const IqGridSearch& grid, const float* xval, const float* waux, float inverse_scale,
                         float scale, int8_t* levels) {
  for (int i = 0; i < 8; ++i) {
    levels[i] = static_cast<int8_t>(clamp_level(nearest_int(0.5f * (inverse_scale * xval[i] - 1)), kMaxLevel));
  }
  const uint16_t code = iq_pack_levels(levels);
  if (grid.index_of(code) >= 0) return true;
  iq2_best_candidate(grid, grid.neighbours(code), xval, waux, scale, levels);
  return false;
}

// The weighted least-squares sums of xval against magnitudes 2l + 1, over n values.
void weighted_sums(int n, const float* xval, const float* weight, const int8_t* levels, float* sumqx, float* sumq2) {
  float qx = 0, q2 = 0;
  for (int i = 0; i < n; ++i) {
    const float w = weight[i];
    const float q = static_cast<float>(2 * levels[i] + 1);
    qx += w * xval[i] * q;
    q2 += w * q * q;
  }
  *sumqx = qx;
  *sumq2 = q2;
}

// One sub-block of `groups` groups of 8: the fitted scale, the chosen levels, and whether each group's
// rounded levels landed on the grid at the best trial scale.
struct SubBlockFit {
  float scale = 0;
  int8_t levels[32] = {};
  bool on_grid[4] = {true, true, true, true};
};

// Tries inverse scales (5 + step / 10) / reference for step in [-steps, steps], keeping the one whose grid
// levels give the largest sumqx^2 / sumq2, and its least-squares scale.
void search_scales(const IqGridSearch& grid, int groups, const float* xval, const float* weight, const float* waux,
                   float reference, int steps, SubBlockFit* fit) {
  float best = 0;
  for (int step = -steps; step <= steps; ++step) {
    const float inverse_scale = (2 * kMaxLevel + 1 + step * 0.1f) / reference;
    const float trial_scale = 1 / inverse_scale;
    int8_t trial[32];
    bool trial_on_grid[4];
    for (int k = 0; k < groups; ++k) {
      trial_on_grid[k] = round_group_to_grid(grid, xval + 8 * k, waux + 8 * k, inverse_scale, trial_scale,
                                             trial + 8 * k);
    }
    float sumqx, sumq2;
    weighted_sums(8 * groups, xval, weight, trial, &sumqx, &sumq2);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      fit->scale = sumqx / sumq2;
      best = fit->scale * sumqx;
      std::memcpy(fit->levels, trial, static_cast<size_t>(8 * groups));
      for (int k = 0; k < groups; ++k) fit->on_grid[k] = trial_on_grid[k];
    }
  }
}

// Re-rounds the groups not known to be on the grid (all of them with `all_groups`) at the fitted scale and
// refits the scale to the result. Does nothing when the scale is not positive.
void refine_at_scale(const IqGridSearch& grid, int groups, const float* xval, const float* weight,
                     const float* waux, bool all_groups, SubBlockFit* fit) {
  bool any = all_groups;
  for (int k = 0; k < groups; ++k) any = any || !fit->on_grid[k];
  if (!any || !(fit->scale > 0)) return;
  const float inverse_scale = 1 / fit->scale;
  for (int k = 0; k < groups; ++k) {
    if (!all_groups && fit->on_grid[k]) continue;
    round_group_to_grid(grid, xval + 8 * k, waux + 8 * k, inverse_scale, fit->scale, fit->levels + 8 * k);
  }
  float sumqx, sumq2;
  weighted_sums(8 * groups, xval, weight, fit->levels, &sumqx, &sumq2);
  if (sumq2 > 0) fit->scale = sumqx / sumq2;
}

// The 4-bit code of a sub-block scale relative to d (scale ~ d * (2 code + 1)), as ggml rounds it.
inline int scale_code(float inverse_d, float scale) {
  return clamp_level(nearest_int(0.5f * (inverse_d * scale - 1)), 15);
}

// Sum of x^2 over a 256-value super-block, in order.
float sum_of_squares(const float* x) {
  float sum = 0;
  for (int i = 0; i < kBlock; ++i) sum += x[i] * x[i];
  return sum;
}

void quantize_block_iq2_xxs(const IqGridSearch& grid, const float* x, const float* importance, uint8_t* block) {
  uint32_t words[16] = {};
  float scales[8];
  float max_scale = 0;
  const float sigma2 = sum_of_squares(x) / kBlock;
  for (int ib = 0; ib < 8; ++ib) {
    const float* xb = x + 32 * ib;
    const float* qw = importance + 32 * ib;
    float weight[32], waux[32], xval[32];
    uint8_t signs[4];
    for (int i = 0; i < 32; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
    for (int i = 0; i < 32; ++i) waux[i] = std::sqrt(weight[i]);
    for (int k = 0; k < 4; ++k) signs[k] = fold_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, true) & 127;
    float max = xval[0];
    for (int i = 1; i < 32; ++i) max = max_of(max, xval[i]);
    if (max < 1e-15f) {
      scales[ib] = 0;
      continue;
    }
    uint8_t first_levels[32];
    SubBlockFit fit;
    fit.scale = fit_levels_weighted(32, kMaxLevel + 2, xval, first_levels, weight);
    const float effective_max = fit.scale * (kMaxLevel + 1);
    if (effective_max <= 0) {
      scales[ib] = 0;
      continue;
    }
    search_scales(grid, 4, xval, weight, waux, effective_max, 6, &fit);
    refine_at_scale(grid, 4, xval, weight, waux, /*all_groups=*/true, &fit);
    if (fit.scale < 0) {  // ggml guards against this; the sign bits then carry the flip
      fit.scale = -fit.scale;
      for (int k = 0; k < 4; ++k) signs[k] = static_cast<uint8_t>(~signs[k] & 127);
    }
    for (int k = 0; k < 4; ++k) {
      const int index = grid.index_of(iq_pack_levels(fit.levels + 8 * k));
      words[2 * ib] |= static_cast<uint32_t>(index) << (8 * k);
      words[2 * ib + 1] |= static_cast<uint32_t>(signs[k]) << (7 * k);
    }
    scales[ib] = fit.scale;
    max_scale = max_of(max_scale, fit.scale);
  }
  std::memset(block, 0, kIq2XxsBlockBytes);
  if (max_scale == 0) return;
  const float d = max_scale / 31;
  store_f16(block, d);
  const float inverse_d = 1 / d;
  for (int ib = 0; ib < 8; ++ib) words[2 * ib + 1] |= static_cast<uint32_t>(scale_code(inverse_d, scales[ib])) << 28;
  for (int w = 0; w < 16; ++w) store_u32(block + 2 + 4 * w, words[w]);
}

// iq2_xs and iq2_s share the search: 16 sub-blocks of 16 (two groups each), scales tried around max / 5, and
// only off-grid groups re-rounded. They differ in weights, sign handling and packing.
enum class Iq2Variant { xs, s };

void quantize_block_iq2_xs_or_s(Iq2Variant variant, const IqGridSearch& grid, const float* x, const float* importance,
                                uint8_t* block) {
  const bool is_s = variant == Iq2Variant::s;
  uint16_t xs_words[32] = {};
  uint8_t s_index_low[32] = {}, s_signs[32] = {}, s_index_high[8] = {};
  float scales[16];
  float max_scale = 0;
  // iq2_s uses twice the mean square, like the k-quants; iq2_xs the mean square.
  const float sigma2 = (is_s ? 2 * sum_of_squares(x) : sum_of_squares(x)) / kBlock;
  for (int ib = 0; ib < 16; ++ib) {
    const float* xb = x + 16 * ib;
    float weight[16], waux[16], xval[16];
    uint8_t signs[2];
    if (importance != nullptr) {
      const float* qw = importance + 16 * ib;
      for (int i = 0; i < 16; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
    } else {
      for (int i = 0; i < 16; ++i) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
    }
    for (int i = 0; i < 16; ++i) waux[i] = std::sqrt(weight[i]);
    for (int k = 0; k < 2; ++k) {
      const uint8_t s = fold_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, /*even_signs=*/!is_s);
      signs[k] = is_s ? s : static_cast<uint8_t>(s & 127);
    }
    float max = xval[0];
    for (int i = 1; i < 16; ++i) max = max_of(max, xval[i]);
    if (max < (is_s ? 1e-8f : 1e-15f)) {
      scales[ib] = 0;
      continue;
    }
    SubBlockFit fit;
    fit.scale = max / (2 * kMaxLevel + 1);
    search_scales(grid, 2, xval, weight, waux, max, 9, &fit);
    refine_at_scale(grid, 2, xval, weight, waux, /*all_groups=*/false, &fit);
    if (fit.scale < 0) {
      fit.scale = -fit.scale;
      for (int k = 0; k < 2; ++k) signs[k] = static_cast<uint8_t>(is_s ? ~signs[k] : ~signs[k] & 127);
    }
    for (int k = 0; k < 2; ++k) {
      const int index = grid.index_of(iq_pack_levels(fit.levels + 8 * k));
      const int group = 2 * ib + k;
      if (is_s) {
        s_index_low[group] = static_cast<uint8_t>(index & 255);
        s_index_high[group / 4] = static_cast<uint8_t>(s_index_high[group / 4] | ((index >> 8) << (2 * (group % 4))));
        s_signs[group] = signs[k];
      } else {
        xs_words[group] = static_cast<uint16_t>(index | (signs[k] << 9));
      }
    }
    scales[ib] = fit.scale;
    max_scale = max_of(max_scale, fit.scale);
  }
  std::memset(block, 0, static_cast<size_t>(is_s ? kIq2SBlockBytes : kIq2XsBlockBytes));
  if (max_scale == 0) return;
  const float d = max_scale / 31;
  store_f16(block, is_s ? d * 0.9875f : d);  // ggml shrinks iq2_s's stored d slightly
  const float inverse_d = 1 / d;
  uint8_t* scale_bytes = block + (is_s ? 74 : 66);
  for (int ib = 0; ib < 16; ++ib) {
    const int code = scale_code(inverse_d, scales[ib]);
    scale_bytes[ib / 2] = static_cast<uint8_t>(ib % 2 == 0 ? code : scale_bytes[ib / 2] | (code << 4));
  }
  if (is_s) {
    std::memcpy(block + 2, s_index_low, 32);
    std::memcpy(block + 34, s_signs, 32);
    std::memcpy(block + 66, s_index_high, 8);
  } else {
    for (int g = 0; g < 32; ++g) store_u16(block + 2 + 2 * g, xs_words[g]);
  }
}

// Writes 8 dequantized values of one group: scale * magnitude, negated where the sign bit is set.
inline void decode_iq2_group(const IqGridSearch& grid, int index, uint8_t signs, float scale, float* y) {
  const std::array<int8_t, 8>& levels = grid.levels(index);
  for (int j = 0; j < 8; ++j) {
    y[j] = scale * kIq2LevelValue[levels[j]] * ((signs >> j) & 1 ? -1.f : 1.f);
  }
}

}  // namespace

void quantize_rows_iq2_xxs(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq2_xxs);
  for_each_block<kBlock>(src, dst, nrows, n_per_row, importance, kIq2XxsBlockBytes,
                         [&](const float* x, const float* qw, uint8_t* block) {
                           quantize_block_iq2_xxs(grid, x, qw, block);
                         });
}

void quantize_rows_iq2_xs(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq2_xs);
  for_each_block<kBlock>(src, dst, nrows, n_per_row, importance, kIq2XsBlockBytes,
                         [&](const float* x, const float* qw, uint8_t* block) {
                           quantize_block_iq2_xs_or_s(Iq2Variant::xs, grid, x, qw, block);
                         });
}

void quantize_rows_iq2_s(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq2_s);
  for_each_block<kBlock>(src, dst, nrows, n_per_row, importance, kIq2SBlockBytes,
                         [&](const float* x, const float* qw, uint8_t* block) {
                           quantize_block_iq2_xs_or_s(Iq2Variant::s, grid, x, qw, block);
                         });
}

void dequantize_iq2_xxs(const void* src, float* dst, int64_t n) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq2_xxs);
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kBlock; ++b, block += kIq2XxsBlockBytes) {
    const float d = load_f16(block);
    for (int ib = 0; ib < 8; ++ib) {
      const uint8_t* indices = block + 2 + 8 * ib;
      const uint32_t signs_and_scale = load_u32(indices + 4);
      const float scale = d * (0.5f + static_cast<float>(signs_and_scale >> 28)) * 0.25f;
      for (int k = 0; k < 4; ++k, dst += 8) {
        decode_iq2_group(grid, indices[k], expand_signs((signs_and_scale >> (7 * k)) & 127), scale, dst);
      }
    }
  }
}

void dequantize_iq2_xs(const void* src, float* dst, int64_t n) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq2_xs);
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kBlock; ++b, block += kIq2XsBlockBytes) {
    const float d = load_f16(block);
    for (int ib = 0; ib < 8; ++ib) {
      const uint8_t scale_byte = block[66 + ib];
      const float scale[2] = {d * (0.5f + static_cast<float>(scale_byte & 0xf)) * 0.25f,
                              d * (0.5f + static_cast<float>(scale_byte >> 4)) * 0.25f};
      for (int k = 0; k < 4; ++k, dst += 8) {
        const uint16_t word = load_u16(block + 2 + 2 * (4 * ib + k));
        decode_iq2_group(grid, word & 511, expand_signs(word >> 9), scale[k / 2], dst);
      }
    }
  }
}

void dequantize_iq2_s(const void* src, float* dst, int64_t n) {
  const IqGridSearch& grid = IqGridSearch::of(IqGrid::iq2_s);
  const uint8_t* block = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / kBlock; ++b, block += kIq2SBlockBytes) {
    const float d = load_f16(block);
    const uint8_t* index_low = block + 2;
    const uint8_t* signs = block + 34;
    const uint8_t* index_high = block + 66;
    for (int ib = 0; ib < 8; ++ib) {
      const uint8_t scale_byte = block[74 + ib];
      const float scale[2] = {d * (0.5f + static_cast<float>(scale_byte & 0xf)) * 0.25f,
                              d * (0.5f + static_cast<float>(scale_byte >> 4)) * 0.25f};
      for (int k = 0; k < 4; ++k, dst += 8) {
        const int group = 4 * ib + k;
        const int index = index_low[group] | (((index_high[ib] >> (2 * k)) & 3) << 8);
        decode_iq2_group(grid, index, signs[group], scale[k / 2], dst);
      }
    }
  }
}

}  // namespace quant::formats
