// The nearest-point search of the grid i-quants (iq_grid_search.h, iq3_grids.h) across SIMD lanes, written over
// a vector-operations struct V (simd_ops_avx2.h, simd_ops_avx512.h).
//
// When a group's rounded levels are not a grid point, the quantizers score every point of the code's neighbour
// list by d = sum_i w_i * (scale * value(l_i) - x_i)^2, summed over the group's positions in order, and keep the
// first point with the smallest d. Here lane k carries candidate j + k of the list: every lane adds the same
// terms in the same order as the scalar loop, so its d is the scalar d bit for bit. The term of position i at
// level l, (w_i * (scale * value_l - x_i)) * (scale * value_l - x_i), depends only on (i, l), so it is computed
// once per search into a vector whose lane l holds it, and each candidate looks its terms up by its levels
// (a lane permute: the table repeats its levels' terms with period 2^kBits, so the permute may read the code
// shifted down to position i without masking off the positions above it). The first smallest d is found as the scalar scan finds it: per lane the first strictly
// smaller value, then across lanes the smallest value at the earliest position. NaN distances never win, and
// when no distance is below FLT_MAX the caller gets -1 (the scalar scans then fall back as they always did).
// Include after the instruction-set pragma and the ops header; internal linkage.
#pragma once

#include <cfloat>
#include <cstdint>

namespace quant::formats {
namespace {

// A grid's code shape: kPositions levels of kBits bits each, value i in bits kBits*i.. of the code, and at most
// V::kWidth distinct levels (a term table is one vector).
template <class V, int kPositions, int kBits>
struct GridCandidates {
  using F = typename V::F;
  using I = typename V::I;
  static constexpr int W = V::kWidth;
  static_assert((1 << kBits) <= W, "a position's terms must fit in one vector");

  // The term tables of one search: tables[i] lane l = (w[i] * (scale * v - x[i])) * (scale * v - x[i]) with
  // v = value(l mod 2^kBits), as the scalar distance computes it. `level_values` holds value(l mod 2^kBits) in
  // lane l.
  static void terms(F level_values, const float* x, const float* w, float scale, F* tables) {
    const F scaled = V::mul(V::set1(scale), level_values);
    for (int i = 0; i < kPositions; ++i) {
      const F diff = V::sub(scaled, V::set1(x[i]));
      tables[i] = V::mul(V::mul(V::set1(w[i]), diff), diff);
    }
  }

  // The position in codes[0..count) of the first candidate with the least distance, or -1 when no distance is
  // below FLT_MAX. codes must stay readable for W entries past any position below count.
  static int nearest(const uint16_t* codes, int count, const F* tables) {
    F best = V::set1(FLT_MAX);
    I best_at = V::iset1(0);
    for (int j = 0; j < count; j += W) {
      const I code = V::load_u16(codes + j);
      F d = V::add(V::set1(0.0f), V::permute(tables[0], code));
      for (int i = 1; i < kPositions; ++i) {
        d = V::add(d, V::permute(tables[i], V::shift_right_lanes(code, V::iset1(kBits * i))));
      }
      const I at = V::iadd(V::iota(), V::iset1(j));
      const auto better = V::mand(V::igt(V::iset1(count), at), V::lt(d, best));
      best = V::select(better, d, best);
      best_at = V::iselect(better, at, best_at);
    }
    const float least = V::reduce_min(best);
    if (!(least < FLT_MAX)) return -1;
    unsigned lanes = V::bits(V::eq(best, V::set1(least)));
    if (count <= W) return __builtin_ctz(lanes);  // one pass: a lane's position is its index
    alignas(64) int32_t positions[W];
    V::istore(positions, best_at);
    int first = count;
    for (; lanes != 0; lanes &= lanes - 1) {
      const int position = positions[__builtin_ctz(lanes)];
      first = position < first ? position : first;
    }
    return first;
  }
};

}  // namespace
}  // namespace quant::formats
