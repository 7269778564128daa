// How the grid i-quants' neighbour lists are built (iq_grid_search.cpp, iq3_grids.cpp), the way ggml's
// iq2xs_init_impl and iq3xs_init_impl build them: for a code that is not a grid point, every grid point at the
// `wanted` smallest distinct squared distances (in level space) from it, ordered by distance, then by index.
// ggml sorts all points by (distance, index); the same list comes from finding the `wanted` smallest distances
// and emitting the points at each in index order. Distances here are sums of squared level differences (ggml
// measures between odd values 2l + 1, i.e. four times these: the same order).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace quant::formats {

// The grid points' levels by position: level_at[i][p] is level i of point p.
struct GridColumns {
  std::vector<std::vector<uint8_t>> level_at;
  int points() const { return level_at.empty() ? 0 : static_cast<int>(level_at[0].size()); }
};

// Appends the neighbour list of the code whose levels are `levels` (one per position) to `out`. `distance`
// (at least points() entries) and `near` are scratch space.
inline void append_neighbours(const GridColumns& grid, const int* levels, int wanted, std::vector<int16_t>& distance,
                              std::vector<uint16_t>& near, std::vector<uint16_t>& out) {
  const int points = grid.points();
  int16_t* d = distance.data();
  std::fill(d, d + points, int16_t{0});
  for (size_t i = 0; i < grid.level_at.size(); ++i) {
    const uint8_t* column = grid.level_at[i].data();
    const int level = levels[i];
    for (int p = 0; p < points; ++p) {  // plain integer arithmetic over contiguous arrays: vectorizes
      const int diff = column[p] - level;
      d[p] = static_cast<int16_t>(d[p] + diff * diff);
    }
  }
  // The `wanted` smallest distinct distances (each pass a minimum over the distances above the last one, which
  // vectorizes), then the points at each of them in index order.
  constexpr int kNone = 0x7fff;
  int kept[4];
  int count = 0;
  int floor = 0;  // the next distance must be at least this
  for (; count < wanted && count < 4; ++count) {
    int next = kNone;
    for (int p = 0; p < points; ++p) {
      const int distance_p = d[p];
      const int candidate = distance_p >= floor ? distance_p : kNone;
      next = candidate < next ? candidate : next;
    }
    if (next == kNone) break;
    kept[count] = next;
    floor = next + 1;
  }
  if (count == 0) return;
  // One pass over the points for those within the largest kept distance (a few dozen of thousands), then those
  // in distance order.
  near.clear();
  for (int p = 0; p < points; ++p) {
    if (d[p] <= kept[count - 1]) near.push_back(static_cast<uint16_t>(p));
  }
  for (int k = 0; k < count; ++k) {
    for (const uint16_t p : near) {
      if (d[p] == kept[k]) out.push_back(p);
    }
  }
}

}  // namespace quant::formats
