// Codebooks of the 3-bit grid i-quants iq3_xxs and iq3_s, and the search tables built from them.
//
// Both formats store a group of 4 magnitudes as the index of one point of a fixed codebook (a "grid"). A grid
// point is 4 levels, each 0..7, packed 3 bits per value (value i in bits 3i..3i+2) into a 12-bit code; the
// quantizers work with the odd numbers 2l + 1 (1, 3, ..., 15). The codebooks are subsets of {0..7}^4 chosen by
// ggml's authors (iq3_xxs: 256 points, iq3_s: 512); no rule generates them, so their codes are stored as data
// in iq3_grids.cpp. What a level decodes to differs: iq3_s uses 2l + 1, iq3_xxs uses 4 (2l + 1) except that
// level 7 decodes to 62 rather than 60 (ggml's iq3xxs_grid bytes).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace quant::formats {

enum class Iq3Grid { xxs, s };

// The packed codes of a grid's points, ascending; the position of a code is its index in stored blocks.
std::span<const uint16_t> iq3_grid_codes(Iq3Grid grid);

// Level i (0..7) of a packed code.
inline int iq3_code_level(uint16_t code, int i) { return (code >> (3 * i)) & 7; }

// What iq3_xxs multiplies by its block scale for levels 0..7.
inline constexpr uint8_t kIq3XxsLevelValue[8] = {4, 12, 20, 28, 36, 44, 52, 62};

// The lookups a quantizer needs, built once per grid on first use (thread-safe) and never changed afterwards,
// the way ggml's iq3xs_init_impl builds them: for every 12-bit code, its grid index, or, when the code is not
// a grid point, the grid points nearest to it by squared distance between the odd values 2l + 1, keeping every
// point at the 2 (iq3_xxs) or 3 (iq3_s) smallest distinct distances, ordered by distance, then by index.
class Iq3GridSearch {
 public:
  static const Iq3GridSearch& of(Iq3Grid grid);

  // The code of grid point `index`.
  uint16_t code(int index) const { return codes_[static_cast<size_t>(index)]; }
  // The grid index of a packed code, or -1 when the code is not a grid point.
  int index_of(uint16_t code) const { return index_of_code_[code]; }
  // The nearest grid points of a code that is not on the grid, ordered by (distance, index); empty for grid
  // points.
  std::span<const uint16_t> neighbours(uint16_t code) const;
  // neighbours(code) as codes, for the SIMD searches: `count` codes at `codes`, in the same order. The array
  // behind every list runs on for at least kListPadding entries after its end, so a vector load of that many
  // codes from inside a list stays in bounds.
  struct CodeList {
    const uint16_t* codes;
    int count;
  };
  CodeList neighbour_code_list(uint16_t code) const {
    return {neighbour_codes_.data() + list_begin_[code], static_cast<int>(list_begin_[code + 1] - list_begin_[code])};
  }
  static constexpr int kListPadding = 16;
  // index_of for every 12-bit code, for vector gathers.
  const int32_t* index_table() const { return index_of_code_.data(); }

 private:
  explicit Iq3GridSearch(Iq3Grid grid);

  std::span<const uint16_t> codes_;
  std::vector<int32_t> index_of_code_;   // 4096 entries
  std::vector<uint32_t> list_begin_;     // 4097 entries: code c's list is neighbours_[begin[c], begin[c + 1])
  std::vector<uint16_t> neighbours_;
  std::vector<uint16_t> neighbour_codes_;  // the codes of neighbours_, then kListPadding zeros
};

}  // namespace quant::formats
