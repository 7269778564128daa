// The 1-bit grid i-quants iq1_s and iq1_m: ggml's exhaustive split of each sub-block into three levels,
// snapped to the ternary grid, reproduced step for step in float32 (see iq1.h and docs/formats/iq1-iq2.md).
#include "formats/iq1.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <numeric>

#include "formats/block_io.h"
#include "formats/iq1_layout.h"
#include "formats/iq_grid_search.h"
#include "formats/kernels.h"

namespace quant::formats {
namespace {

using iq1::kBlock;
using iq1::kDelta;
using iq1::load_u16;

// iq1_s's exhaustive split search over one prepared sub-block: every pair of split points in sorted order and
// both shift directions, scored from the prefix sums, keeping the best weighted least-squares fit.
iq1::Split search_s(const iq1::SSubBlock& sub) {
  const float* sumx = sub.sumx;
  const float* sumw = sub.sumw;
  iq1::BestSplit best;
  best.split.scale = sub.max;
  for (int i1 = 0; i1 <= 32; ++i1) {
    for (int i2 = i1; i2 <= 32; ++i2) {
      for (const int shift : {1, -1}) {
        const float* v = shift == 1 ? iq1::kShiftedUp : iq1::kShiftedDown;
        const float sumqx = (sumx[i1] - sumx[0]) * v[0] + (sumx[i2] - sumx[i1]) * v[1] + (sumx[32] - sumx[i2]) * v[2];
        const float sumq2 = (sumw[i1] - sumw[0]) * v[0] * v[0] + (sumw[i2] - sumw[i1]) * v[1] * v[1] +
                            (sumw[32] - sumw[i2]) * v[2] * v[2];
        best.offer(sumqx, sumq2, i1, i2, shift);
      }
    }
  }
  return best.split;
}

void quantize_block_iq1_s(const IqGridSearch& grid, const float* x, const float* importance, uint8_t* block) {
  std::memset(block, 0, kIq1SBlockBytes);
  const float sigma2 = iq1::super_block_sigma2(x);
  iq1::SSuperBlock super;
  for (int ib = 0; ib < 8; ++ib) {
    iq1::SSubBlock sub;
    iq1::prepare_s(x, importance, sigma2, ib, &sub);
    const iq1::Split split = sub.skip ? iq1::Split{} : search_s(sub);
    iq1::finish_s(grid, iq1::nearest_point_scalar, x, sub, ib, split, &super, block);
  }
  iq1::pack_s(super, block);
}

// iq1_m's exhaustive split search over one prepared sub-block of 16: ggml accumulates the sums directly (no
// prefix sums), in sorted order, for all four shift choices.
iq1::Split search_m(const float* xb, const iq1::MSubBlock& sub) {
  const float* weight = sub.weight;
  const int* order = sub.order;
  iq1::BestSplit best;
  best.split.scale = sub.max;
  for (int i1 = 0; i1 <= 16; ++i1) {
    for (int i2 = i1; i2 <= 16; ++i2) {
      float sumqx[4] = {}, sumq2[4] = {};
      for (int j = 0; j < 16; ++j) {
        const int i = order[j];
        const int level = j < i1 ? 0 : (j < i2 ? 1 : 2);
        for (int choice = 0; choice < 4; ++choice) {
          const float v = iq1::m_group_values(choice, i < 8 ? 0 : 1)[level];
          sumqx[choice] += weight[i] * v * xb[i];
          sumq2[choice] += weight[i] * v * v;
        }
      }
      for (int choice = 0; choice < 4; ++choice) best.offer(sumqx[choice], sumq2[choice], i1, i2, choice);
    }
  }
  return best.split;
}

void quantize_block_iq1_m(const IqGridSearch& grid, const float* x, const float* importance, uint8_t* block) {
  std::memset(block, 0, kIq1MBlockBytes);
  const float sigma2 = iq1::super_block_sigma2(x);
  iq1::MSuperBlock super;
  for (int ib = 0; ib < 16; ++ib) {
    iq1::MSubBlock sub;
    iq1::prepare_m(x, importance, sigma2, ib, &sub);
    const iq1::Split split = sub.skip ? iq1::Split{} : search_m(x + 16 * ib, sub);
    iq1::finish_m(grid, iq1::nearest_point_scalar, x, sub, ib, split, &super, block);
  }
  iq1::pack_m(grid, x, importance, sigma2, super, block);
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
