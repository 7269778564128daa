// Search tables of the grid i-quant codebooks: code -> index map and nearest-point lists (see iq_grid_search.h).
#include "formats/iq_grid_search.h"

#include "formats/grid_neighbours.h"

#include <cassert>
#include <cfloat>
#include <limits>

namespace quant::formats {
namespace {

constexpr int32_t kNoList = std::numeric_limits<int32_t>::min();  // codes holding a level 3
constexpr int kCodeCount = 1 << 16;

// How many distinct distances ggml keeps in a neighbour list, per codebook (iq2xs_init_impl's nwant).
int neighbour_distances(IqGrid grid) {
  switch (grid) {
    case IqGrid::iq2_xxs:
    case IqGrid::iq2_xs: return 2;
    case IqGrid::iq2_s: return 1;
    case IqGrid::iq1: return 3;
  }
  return 0;
}

bool levels_at_most_two(uint16_t code) {
  for (int i = 0; i < 8; ++i) {
    if (iq_code_level(code, i) == 3) return false;
  }
  return true;
}

}  // namespace

const IqGridSearch& IqGridSearch::of(IqGrid grid) {
  // One function-local static per codebook: built on first use, thread-safe, read-only afterwards.
  switch (grid) {
    case IqGrid::iq2_xxs: { static const IqGridSearch search(IqGrid::iq2_xxs); return search; }
    case IqGrid::iq2_xs: { static const IqGridSearch search(IqGrid::iq2_xs); return search; }
    case IqGrid::iq2_s: { static const IqGridSearch search(IqGrid::iq2_s); return search; }
    case IqGrid::iq1: break;
  }
  static const IqGridSearch search(IqGrid::iq1);
  return search;
}

IqGridSearch::IqGridSearch(IqGrid grid) : slot_(kCodeCount, kNoList) {
  const std::span<const uint16_t> codes = iq_grid_codes(grid);
  levels_.resize(codes.size());
  for (size_t p = 0; p < codes.size(); ++p) {
    for (int i = 0; i < 8; ++i) levels_[p][i] = static_cast<int8_t>(iq_code_level(codes[p], i));
    slot_[codes[p]] = static_cast<int32_t>(p);
  }

  // Only codes with levels 0..2 are ever looked up, so only they get a list (grid_neighbours.h).
  const int wanted = neighbour_distances(grid);
  GridColumns columns;
  columns.level_at.assign(8, std::vector<uint8_t>(codes.size()));
  for (size_t p = 0; p < codes.size(); ++p) {
    for (int i = 0; i < 8; ++i) columns.level_at[static_cast<size_t>(i)][p] = static_cast<uint8_t>(levels_[p][i]);
  }
  std::vector<int16_t> distance(codes.size());
  std::vector<uint16_t> near;
  list_begin_.push_back(0);
  for (int code = 0; code < kCodeCount; ++code) {
    if (slot_[code] != kNoList || !levels_at_most_two(static_cast<uint16_t>(code))) continue;
    int levels[8];
    for (int i = 0; i < 8; ++i) levels[i] = iq_code_level(static_cast<uint16_t>(code), i);
    append_neighbours(columns, levels, wanted, distance, near, neighbour_indices_);
    slot_[code] = -1 - static_cast<int32_t>(list_begin_.size() - 1);
    list_begin_.push_back(static_cast<uint32_t>(neighbour_indices_.size()));
  }
  neighbour_codes_.reserve(neighbour_indices_.size() + kListPadding);
  for (const uint16_t index : neighbour_indices_) neighbour_codes_.push_back(codes[index]);
  neighbour_codes_.resize(neighbour_indices_.size() + kListPadding, 0);
}

std::span<const uint16_t> IqGridSearch::neighbours(uint16_t code) const {
  const int32_t slot = slot_[code];
  assert(slot < 0 && slot != kNoList && "neighbours asked for an on-grid code or one holding a level 3");
  if (slot >= 0 || slot == kNoList) return {};
  const size_t list = static_cast<size_t>(-1 - slot);
  return std::span<const uint16_t>(neighbour_indices_).subspan(list_begin_[list],
                                                              list_begin_[list + 1] - list_begin_[list]);
}

int iq2_best_candidate(const IqGridSearch& grid, std::span<const uint16_t> candidates, const float* xval,
                       const float* weight, float scale, int8_t* levels) {
  float best_distance = FLT_MAX;
  int best = candidates.empty() ? 0 : candidates[0];
  for (const uint16_t candidate : candidates) {
    const std::array<int8_t, 8>& point = grid.levels(candidate);
    float d2 = 0;
    for (int i = 0; i < 8; ++i) {
      const float q = static_cast<float>(2 * point[i] + 1);
      const float diff = scale * q - xval[i];
      d2 += weight[i] * diff * diff;
    }
    if (d2 < best_distance) {
      best_distance = d2;
      best = candidate;
    }
  }
  const std::array<int8_t, 8>& point = grid.levels(best);
  for (int i = 0; i < 8; ++i) levels[i] = point[i];
  return best;
}

namespace {

// sum_i weight[i] * (scale * level_value[l_i] - xval[i])^2 for one grid point, in ggml's order.
float iq1_distance(const std::array<int8_t, 8>& point, const float* xval, const float* weight, float scale,
                   const float* level_value) {
  float d2 = 0;
  for (int i = 0; i < 8; ++i) {
    const float diff = scale * level_value[point[i]] - xval[i];
    d2 += weight[i] * diff * diff;
  }
  return d2;
}

}  // namespace

int iq1_best_candidate(const IqGridSearch& grid, std::span<const uint16_t> candidates, const float* xval,
                       const float* weight, float scale, const float* level_value, int8_t* levels) {
  float best_distance = FLT_MAX;
  int best = -1;
  for (const uint16_t candidate : candidates) {
    const float d2 = iq1_distance(grid.levels(candidate), xval, weight, scale, level_value);
    if (d2 < best_distance) {
      best_distance = d2;
      best = candidate;
    }
  }
  // ggml then scans the whole grid but indexes xval by the grid index there (reading out of bounds); we scan it
  // with the right index. This only happens when every distance overflows, which finite weights of sane size
  // never do.
  if (best < 0) {
    for (int index = 0; index < grid.size(); ++index) {
      const float d2 = iq1_distance(grid.levels(index), xval, weight, scale, level_value);
      if (d2 < best_distance) {
        best_distance = d2;
        best = index;
      }
    }
  }
  if (best < 0) best = candidates.empty() ? 0 : candidates[0];
  const std::array<int8_t, 8>& point = grid.levels(best);
  for (int i = 0; i < 8; ++i) levels[i] = point[i];
  return best;
}

}  // namespace quant::formats
