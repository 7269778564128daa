// Searching the grid i-quant codebooks (iq_grids.h): which point a group of 8 levels is, and which points lie
// nearest to a group that is not on the grid.
//
// The quantizers round each weight of a group of 8 to a level 0..2, pack the levels into a code, and either find
// the code in the codebook or pick among the code's nearest grid points the one that best fits the weights. The
// nearest points of every off-grid code are computed once per codebook, the way ggml's iq2xs_init_impl does:
// by squared distance in level space, keeping every point at the smallest `neighbour_distances` distinct
// distances (2 for iq2_xxs and iq2_xs, 1 for iq2_s, 3 for the iq1 grid), ordered by distance, then by index.
// Codes holding a level 3 never occur (levels are clamped to 0..2) and have no neighbour list.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "formats/iq_grids.h"

namespace quant::formats {

class IqGridSearch {
 public:
  // The search tables of a codebook, built on first use (thread-safe) and never changed afterwards.
  static const IqGridSearch& of(IqGrid grid);

  int size() const { return static_cast<int>(levels_.size()); }
  // The 8 levels (0..2) of grid point `index`.
  const std::array<int8_t, 8>& levels(int index) const { return levels_[static_cast<size_t>(index)]; }
  // The grid index of a packed code, or -1 when the code is not a grid point.
  int index_of(uint16_t code) const { return slot_[code] >= 0 ? slot_[code] : -1; }
  // The nearest grid points of an off-grid code with levels 0..2, ordered by (distance, index).
  std::span<const uint16_t> neighbours(uint16_t code) const;
  // neighbours(code) as packed codes, for the SIMD searches: `count` codes at `codes`, in the same order. The
  // array behind every list runs on for at least kListPadding entries after its end, so a vector load of up to
  // that many codes from inside a list stays in bounds. Only for off-grid codes with levels 0..2 (unchecked).
  struct CodeList {
    const uint16_t* codes;
    int count;
  };
  CodeList neighbour_code_list(uint16_t code) const {
    const size_t list = static_cast<size_t>(-1 - slot_[code]);
    return {neighbour_codes_.data() + list_begin_[list], static_cast<int>(list_begin_[list + 1] - list_begin_[list])};
  }
  static constexpr int kListPadding = 16;
  // Per 16-bit code: the grid index (>= 0), or a negative value when the code is not a grid point. For
  // vector gathers of index_of.
  const int32_t* index_table() const { return slot_.data(); }

 private:
  explicit IqGridSearch(IqGrid grid);

  std::vector<std::array<int8_t, 8>> levels_;
  // Per 16-bit code: the grid index (>= 0), or -1 - k for the k-th neighbour list, or kNoList.
  std::vector<int32_t> slot_;
  std::vector<uint32_t> list_begin_;  // neighbour list k is neighbour_indices_[list_begin_[k], list_begin_[k+1])
  std::vector<uint16_t> neighbour_indices_;
  std::vector<uint16_t> neighbour_codes_;  // the codes of neighbour_indices_, then kListPadding zeros
};

// Packs 8 levels (0..3) into a code, value i in bits 2i..2i+1.
inline uint16_t iq_pack_levels(const int8_t* levels) {
  uint16_t code = 0;
  for (int i = 0; i < 8; ++i) code = static_cast<uint16_t>(code | (levels[i] << (2 * i)));
  return code;
}

// iq2 family: among `candidates`, the point minimising sum_i weight[i] * (scale * (2 l_i + 1) - xval[i])^2
// (first one on ties); writes its levels to `levels` and returns its index.
int iq2_best_candidate(const IqGridSearch& grid, std::span<const uint16_t> candidates, const float* xval,
                       const float* weight, float scale, int8_t* levels);

// iq1 family: the same with level l decoding to `level_value[l]` instead of 2l + 1. If no candidate gives a
// finite distance (overflowing inputs) every grid point is tried, then the first candidate is taken.
int iq1_best_candidate(const IqGridSearch& grid, std::span<const uint16_t> candidates, const float* xval,
                       const float* weight, float scale, const float* level_value, int8_t* levels);

}  // namespace quant::formats
