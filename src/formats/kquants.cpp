// The k-quants q2_K, q3_K, q4_K, q5_K and q6_K: 256-value super-blocks split into groups of 16 or 32, each
// group with its own quantized scale (and, for q2_K/q4_K/q5_K, minimum) under one or two f16 super-block
// scales. Layouts and procedures follow ggml (ggml-common.h, ggml-quants.c); docs/formats/kquants.md
// describes them. Without importance weights ggml_quantize_chunk runs each type's reference quantizer
// (heuristic weights per group); with them it runs a second procedure weighted by
// importance * sqrt(sigma2 + x^2), sigma2 taken over the super-block. Both are reproduced here.
#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>

#include "formats/kernels.h"
#include "formats/kquant_layout.h"
#include "formats/kquant_lowbit_layout.h"
#include "formats/kquant_search.h"

namespace quant::formats {
namespace {

using kquant::ErrorNorm;
using kquant::kSuperBlock;
using kquant::LevelClamp;
using kquant::pack_2bit_levels;
using kquant::q3_k_packed_scale;
using kquant::ScaleGrid;
using kquant::super_block_sigma2;
using kquant::unpack_scale_min;

// Block layouts, byte for byte (f16 fields little-endian, read with load_f16/store_f16).
struct BlockQ2K {
  uint8_t scales[16];  // per group of 16: low nibble scale, high nibble min
  uint8_t qs[64];      // 2-bit levels, four per byte
  uint8_t d[2];        // f16 scale of the group scales
  uint8_t dmin[2];     // f16 scale of the group mins
};
struct BlockQ3K {
  uint8_t hmask[32];   // third bit of every level
  uint8_t qs[64];      // low two bits of every level
  uint8_t scales[12];  // sixteen 6-bit signed scales (offset 32)
  uint8_t d[2];
};
struct BlockQ4K {
  uint8_t d[2];
  uint8_t dmin[2];
  uint8_t scales[12];  // eight 6-bit scales and eight 6-bit mins
  uint8_t qs[128];     // 4-bit levels, two per byte
};
struct BlockQ5K {
  uint8_t d[2];
  uint8_t dmin[2];
  uint8_t scales[12];
  uint8_t qh[32];      // fifth bit of every level
  uint8_t qs[128];     // low four bits
};
struct BlockQ6K {
  uint8_t ql[128];     // low four bits of every level
  uint8_t qh[64];      // high two bits
  int8_t scales[16];   // signed 8-bit group scales
  uint8_t d[2];
};
static_assert(sizeof(BlockQ2K) == 84 && sizeof(BlockQ3K) == 110 && sizeof(BlockQ4K) == 144 &&
              sizeof(BlockQ5K) == 176 && sizeof(BlockQ6K) == 210);
// The SIMD kernels address q2_K and q3_K fields by these offsets (kquant_lowbit_layout.h).
static_assert(offsetof(BlockQ2K, qs) == kquant::kQ2KQsOffset && offsetof(BlockQ2K, d) == kquant::kQ2KDOffset &&
              offsetof(BlockQ2K, dmin) == kquant::kQ2KDminOffset && sizeof(BlockQ2K) == kquant::kQ2KBytes);
static_assert(offsetof(BlockQ3K, qs) == kquant::kQ3KQsOffset && offsetof(BlockQ3K, scales) == kquant::kQ3KScalesOffset &&
              offsetof(BlockQ3K, d) == kquant::kQ3KDOffset && sizeof(BlockQ3K) == kquant::kQ3KBytes);

int clamp_int(int value, int lowest, int highest) {
  const int upper = highest < value ? highest : value;
  return lowest > upper ? lowest : upper;
}

// ---------------------------------------------------------------------------------------------------- q2_K

void quantize_block_q2_k(const float* x, const float* importance, BlockQ2K* block) {
  uint8_t levels[kSuperBlock];
  float scales[16];
  float mins[16];
  float weights[16];
  if (importance == nullptr) {
    // Reference procedure: |x| as weights, absolute error, group scales on a linear 4-bit grid.
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = kquant::search_affine_scale(16, 3, x + 16 * j, weights, levels + 16 * j, &mins[j],
                                              ScaleGrid{-0.5f, 0.1f, 15}, ErrorNorm::absolute,
                                              LevelClamp::round_then_clamp);
    }
    kquant::quantize_q2_k_scales(scales, mins, nullptr, block->scales, block->d, block->dmin);
  } else {
    // Weighted procedure: finer affine search per group, then the scales and mins fitted as data themselves,
    // weighted by each group's total importance.
    const float sigma2 = super_block_sigma2(x, 1.0f);
    float group_weight[16];
    for (int j = 0; j < 16; ++j) {
      const float* qw = importance + 16 * j;
      for (int l = 0; l < 16; ++l) weights[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
      group_weight[j] = 0;
      for (int l = 0; l < 16; ++l) group_weight[j] += weights[l];
      scales[j] = kquant::search_affine_scale(16, 3, x + 16 * j, weights, levels + 16 * j, &mins[j],
                                              ScaleGrid{-0.9f, 0.05f, 36}, ErrorNorm::squared,
                                              LevelClamp::clamp_then_round);
    }
    kquant::quantize_q2_k_scales(scales, mins, group_weight, block->scales, block->d, block->dmin);
  }

  // Requantize every value against the scales as stored (f16 and 4-bit), so levels match what is decoded.
  const float d = load_f16(block->d);
  const float dmin = load_f16(block->dmin);
  for (int j = 0; j < 16; ++j) {
    const float group_scale = d * (block->scales[j] & 0xF);
    if (group_scale == 0) continue;  // keep the search's levels; they decode to -min either way
    const float group_min = dmin * (block->scales[j] >> 4);
    for (int l = 0; l < 16; ++l) {
      const int level = nearest_int((x[16 * j + l] + group_min) / group_scale);
      levels[16 * j + l] = static_cast<uint8_t>(clamp_int(level, 0, 3));
    }
  }
  pack_2bit_levels(levels, block->qs);
}

void dequantize_block_q2_k(const BlockQ2K* block, float* y) {
  const float d = load_f16(block->d);
  const float dmin = load_f16(block->dmin);
  for (int half = 0; half < 2; ++half) {
    const uint8_t* q = block->qs + 32 * half;
    for (int shift = 0; shift < 8; shift += 2) {
      for (int sixteen = 0; sixteen < 2; ++sixteen) {
        const uint8_t packed_scale = block->scales[8 * half + shift + sixteen];
        const float group_scale = d * (packed_scale & 0xF);
        const float group_min = dmin * (packed_scale >> 4);
        for (int l = 0; l < 16; ++l) *y++ = group_scale * ((q[16 * sixteen + l] >> shift) & 3) - group_min;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------- q3_K

void quantize_block_q3_k(const float* x, const float* importance, BlockQ3K* block) {
  int8_t levels[kSuperBlock];
  float scales[16];
  if (importance == nullptr) {
    // Reference procedure: refined symmetric groups, then scales on a symmetric 6-bit grid set by the
    // largest-magnitude group scale.
    for (int j = 0; j < 16; ++j) scales[j] = kquant::search_q3_scale(16, 4, x + 16 * j, levels + 16 * j);
    kquant::quantize_q3_k_scales(scales, nullptr, block->scales, block->d);
  } else {
    const float sigma2 = super_block_sigma2(x, 2.0f);
    float weights[16];
    float group_weight[16];
    for (int j = 0; j < 16; ++j) {
      const float* qw = importance + 16 * j;
      for (int l = 0; l < 16; ++l) weights[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
      float sum = 0;
      for (int l = 0; l < 16; ++l) sum += weights[l];
      group_weight[j] = sum;
      scales[j] = kquant::search_symmetric_scale(16, 4, x + 16 * j, levels + 16 * j, weights);
    }
    kquant::quantize_q3_k_scales(scales, group_weight, block->scales, block->d);
  }

  const float d = load_f16(block->d);
  for (int j = 0; j < 16; ++j) {
    const float group_scale = d * static_cast<int8_t>(q3_k_packed_scale(block->scales, j) - 32);
    if (group_scale == 0) continue;
    for (int l = 0; l < 16; ++l) {
      levels[16 * j + l] = static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + l] / group_scale), -4, 3) + 4);
    }
  }
  kquant::pack_q3_k_levels(levels, block->hmask, block->qs);
}

void dequantize_block_q3_k(const BlockQ3K* block, float* y) {
  const float d = load_f16(block->d);
  for (int i = 0; i < kSuperBlock; ++i) {
    const int half = i / 128;
    const int within = i % 128;
    const int shift = 2 * (within / 32);
    const int low = (block->qs[32 * half + within % 32] >> shift) & 3;
    const bool high = (block->hmask[i % 32] >> (i / 32)) & 1;
    const float group_scale = d * (q3_k_packed_scale(block->scales, i / 16) - 32);
    y[i] = group_scale * (low - (high ? 0 : 4));
  }
}

// ------------------------------------------------------------------------------------------------ q4_K, q5_K

// Chooses levels 0..nmax for the 256 values of a q4_K (nmax 15) or q5_K (nmax 31) block and fills its d,
// dmin and packed scales.
struct AffineSearch {
  int nmax;
  ScaleGrid reference_grid;  // the grid of the reference (unweighted) procedure
  bool clamp_weighted_scales;  // q5_K clamps the weighted procedure's scale levels to 63, q4_K does not
};

void quantize_affine_32(const float* x, const float* importance, const AffineSearch& search, uint8_t* d_field,
                        uint8_t* dmin_field, uint8_t* packed_scales, uint8_t* levels) {
  float scales[8];
  float mins[8];
  float weights[32];
  if (importance == nullptr) {
    // Reference procedure: weights rms(group) + |x|, scales and mins on linear 6-bit grids up to their maxima.
    for (int j = 0; j < 8; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float rms = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = rms + std::fabs(x[32 * j + l]);
      scales[j] = kquant::search_affine_scale(32, search.nmax, x + 32 * j, weights, levels + 32 * j, &mins[j],
                                              search.reference_grid, ErrorNorm::squared,
                                              LevelClamp::round_then_clamp);
    }
    kquant::quantize_scales_and_mins(scales, mins, nullptr, search.clamp_weighted_scales, d_field, dmin_field,
                                     packed_scales);
  } else {
    const float sigma2 = super_block_sigma2(x, 2.0f);
    float group_weight[8];
    for (int j = 0; j < 8; ++j) {
      const float* qw = importance + 32 * j;
      for (int l = 0; l < 32; ++l) weights[l] = qw[l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
      float sum = 0;
      for (int l = 0; l < 32; ++l) sum += weights[l];
      group_weight[j] = sum;
      scales[j] = kquant::search_affine_scale(32, search.nmax, x + 32 * j, weights, levels + 32 * j, &mins[j],
                                              ScaleGrid{-0.9f, 0.05f, 36}, ErrorNorm::squared,
                                              LevelClamp::clamp_then_round);
    }
    kquant::quantize_scales_and_mins(scales, mins, group_weight, search.clamp_weighted_scales, d_field,
                                     dmin_field, packed_scales);
  }

  const float d = load_f16(d_field);
  const float dmin = load_f16(dmin_field);
  for (int j = 0; j < 8; ++j) {
    uint8_t scale_level, min_level;
    unpack_scale_min(packed_scales, j, &scale_level, &min_level);
    const float group_scale = d * scale_level;
    if (group_scale == 0) continue;
    const float group_min = dmin * min_level;
    for (int l = 0; l < 32; ++l) {
      const int level = nearest_int((x[32 * j + l] + group_min) / group_scale);
      levels[32 * j + l] = static_cast<uint8_t>(clamp_int(level, 0, search.nmax));
    }
  }
}

constexpr AffineSearch kQ4KSearch{15, ScaleGrid{-1.f, 0.1f, 20}, false};
constexpr AffineSearch kQ5KSearch{31, ScaleGrid{-0.5f, 0.1f, 15}, true};

void quantize_block_q4_k(const float* x, const float* importance, BlockQ4K* block) {
  uint8_t levels[kSuperBlock];
  quantize_affine_32(x, importance, kQ4KSearch, block->d, block->dmin, block->scales, levels);
  kquant::pack_q4_k_levels(levels, block->qs);
}

void quantize_block_q5_k(const float* x, const float* importance, BlockQ5K* block) {
  uint8_t levels[kSuperBlock];
  quantize_affine_32(x, importance, kQ5KSearch, block->d, block->dmin, block->scales, levels);
  kquant::pack_q5_k_levels(levels, block->qh, block->qs);
}

void dequantize_block_q4_k(const BlockQ4K* block, float* y) {
  const float d = load_f16(block->d);
  const float dmin = load_f16(block->dmin);
  for (int chunk = 0; chunk < 4; ++chunk) {
    for (int nibble = 0; nibble < 2; ++nibble) {
      uint8_t scale_level, min_level;
      unpack_scale_min(block->scales, 2 * chunk + nibble, &scale_level, &min_level);
      const float group_scale = d * scale_level;
      const float group_min = dmin * min_level;
      for (int l = 0; l < 32; ++l) {
        *y++ = group_scale * ((block->qs[32 * chunk + l] >> (4 * nibble)) & 0xF) - group_min;
      }
    }
  }
}

void dequantize_block_q5_k(const BlockQ5K* block, float* y) {
  const float d = load_f16(block->d);
  const float dmin = load_f16(block->dmin);
  for (int chunk = 0; chunk < 4; ++chunk) {
    for (int nibble = 0; nibble < 2; ++nibble) {
      uint8_t scale_level, min_level;
      unpack_scale_min(block->scales, 2 * chunk + nibble, &scale_level, &min_level);
      const float group_scale = d * scale_level;
      const float group_min = dmin * min_level;
      const int high_bit = 2 * chunk + nibble;
      for (int l = 0; l < 32; ++l) {
        const int level = ((block->qs[32 * chunk + l] >> (4 * nibble)) & 0xF) | (((block->qh[l] >> high_bit) & 1) << 4);
        *y++ = group_scale * level - group_min;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------- q6_K

void quantize_block_q6_k(const float* x, const float* importance, BlockQ6K* block) {
  int8_t levels[kSuperBlock];
  float scales[16];
  for (int j = 0; j < 16; ++j) {
    // With an imatrix ggml weights the fit by the importance alone (no sigma2 term), else by x^2.
    scales[j] = kquant::search_symmetric_scale(16, 32, x + 16 * j, levels + 16 * j,
                                               importance != nullptr ? importance + 16 * j : nullptr);
  }
  if (!kquant::quantize_q6_k_scales(scales, block->d, block->scales)) {
    std::memset(block, 0, sizeof *block);
    return;
  }
  const float d = load_f16(block->d);
  for (int j = 0; j < 16; ++j) {
    const float group_scale = d * block->scales[j];
    if (group_scale == 0) continue;
    for (int l = 0; l < 16; ++l) {
      levels[16 * j + l] = static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + l] / group_scale), -32, 31) + 32);
    }
  }
  kquant::pack_q6_k_levels(levels, block->ql, block->qh);
}

void dequantize_block_q6_k(const BlockQ6K* block, float* y) {
  const float d = load_f16(block->d);
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = block->ql + 64 * half;
    const uint8_t* qh = block->qh + 32 * half;
    const int8_t* scales = block->scales + 8 * half;
    float* out = y + 128 * half;
    for (int l = 0; l < 32; ++l) {
      const int group = l / 16;
      for (int quarter = 0; quarter < 4; ++quarter) {
        const int low = (ql[l + 32 * (quarter & 1)] >> (4 * (quarter >> 1))) & 0xF;
        const int level = (low | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
        out[l + 32 * quarter] = d * scales[group + 2 * quarter] * level;
      }
    }
  }
}

// ------------------------------------------------------------------------------------------- table entries

// Quantizes row by row, block by block; the importance vector is per column, so block b of every row reads
// importance[256*b ..].
template <typename Block, void (*QuantizeBlock)(const float*, const float*, Block*)>
void quantize_rows(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  const int64_t blocks_per_row = n_per_row / kSuperBlock;
  Block* out = static_cast<Block*>(dst);
  for (int64_t row = 0; row < nrows; ++row) {
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      QuantizeBlock(src, importance != nullptr ? importance + kSuperBlock * b : nullptr, out);
      src += kSuperBlock;
      ++out;
    }
  }
}

template <typename Block, void (*DequantizeBlock)(const Block*, float*)>
void dequantize_values(const void* src, float* dst, int64_t n) {
  const Block* blocks = static_cast<const Block*>(src);
  for (int64_t b = 0; b < n / kSuperBlock; ++b) DequantizeBlock(blocks + b, dst + kSuperBlock * b);
}

// ggml_validate_row_data: the f16 super-block scales must be finite (the level bits can hold anything).
bool check_f16_field(const uint8_t* field, const char* name, std::string* why) {
  if (f16_is_finite(field)) return true;
  uint16_t bits;
  std::memcpy(&bits, field, 2);
  *why = std::string(name) + ((bits & 0x3ffu) != 0 ? " is NaN" : " is infinite");
  return false;
}

template <typename Block, bool kHasMin>
bool validate_blocks(const void* data, int64_t nblocks, int64_t* bad_block, std::string* why) {
  const Block* blocks = static_cast<const Block*>(data);
  for (int64_t b = 0; b < nblocks; ++b) {
    bool ok = check_f16_field(blocks[b].d, "d", why);
    if constexpr (kHasMin) ok = ok && check_f16_field(blocks[b].dmin, "dmin", why);
    if (!ok) {
      *bad_block = b;
      return false;
    }
  }
  return true;
}

constexpr FormatKernels kKquantKernels[] = {
    {TypeId::q2_K, quantize_rows<BlockQ2K, quantize_block_q2_k>, dequantize_values<BlockQ2K, dequantize_block_q2_k>,
     validate_blocks<BlockQ2K, true>},
    {TypeId::q3_K, quantize_rows<BlockQ3K, quantize_block_q3_k>, dequantize_values<BlockQ3K, dequantize_block_q3_k>,
     validate_blocks<BlockQ3K, false>},
    {TypeId::q4_K, quantize_rows<BlockQ4K, quantize_block_q4_k>, dequantize_values<BlockQ4K, dequantize_block_q4_k>,
     validate_blocks<BlockQ4K, true>},
    {TypeId::q5_K, quantize_rows<BlockQ5K, quantize_block_q5_k>, dequantize_values<BlockQ5K, dequantize_block_q5_k>,
     validate_blocks<BlockQ5K, true>},
    {TypeId::q6_K, quantize_rows<BlockQ6K, quantize_block_q6_k>, dequantize_values<BlockQ6K, dequantize_block_q6_k>,
     validate_blocks<BlockQ6K, false>},
};

}  // namespace

std::span<const FormatKernels> kquant_kernels() { return kKquantKernels; }

}  // namespace quant::formats
