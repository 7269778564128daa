// Codebooks of the grid i-quants: iq2_xxs, iq2_xs, iq2_s, iq1_s and iq1_m.
//
// These formats store a group of 8 weights as the index of one point of a fixed codebook (a "grid") plus, for
// the iq2 family, 8 sign bits. A grid point is 8 levels, each 0, 1 or 2, packed 2 bits per value (value i in
// bits 2i..2i+1) into a 16-bit code. The codebooks are subsets of {0,1,2}^8 chosen by ggml's authors; there is
// no rule that generates them, so they are stored as data (iq_grids.cpp).
//   iq2_xxs: 256 points, iq2_xs: 512, iq2_s: 1024, iq1_s / iq1_m: 2048 (the same grid).
// A level l decodes to the magnitude kIq2LevelValue[l] in the iq2 family (times a scale and a sign) and to
// l - 1 (i.e. -1, 0, +1, then shifted by +-1/8) in the iq1 family.
#pragma once

#include <cstdint>
#include <span>

namespace quant::formats {

enum class IqGrid { iq2_xxs, iq2_xs, iq2_s, iq1 };

// The packed codes of a grid's points, ascending; the position of a code is its index in stored blocks.
std::span<const uint16_t> iq_grid_codes(IqGrid grid);

// Level i (0, 1 or 2) of a packed code.
inline int iq_code_level(uint16_t code, int i) { return (code >> (2 * i)) & 3; }

// What the iq2 formats multiply by the sub-block scale for levels 0, 1, 2 (ggml's iq2 grids hold these bytes;
// they are close to 8 * (1, 3, 5)). Index 3 never occurs in a codebook and is there only to keep lookups in range.
inline constexpr uint8_t kIq2LevelValue[4] = {8, 25, 43, 0};

}  // namespace quant::formats
