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
//
// GridLaneSearch runs the trial-scale search around it (iq2.cpp search_scales and refine_at_scale, iq3.cpp
// search_block) with one lane per sub-block: 16 sub-blocks at a time, transposed so that step i of every lane is
// value i of its sub-block, every branch of the scalar search a per-lane select. The rounding, the grid
// membership test (a gather from the code -> index table) and the least-squares sums run across the lanes; a
// lane whose rounded group is off the grid gets the candidate search above. The lanes run on 16-lane vectors:
// AVX-512 itself, or two AVX2 vectors (PairOps), which also keeps two dependent chains in flight.
// Include after the instruction-set pragma, the ops header, simd_ops_pair.h and simd_kquants.h; internal
// linkage.
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

// What weighs a value when there is no importance vector: iq2_s uses sigma2 / 4 + x^2, iq3 x^2.
enum class UnweightedRule { quarter_sigma2_plus_square, square };

// The preparation the grid i-quants share (iq2_layout.h prepare_sub_block, iq3_layout.h prepare_block) for n
// values (a multiple of 8 and of V::kWidth), element-wise across lanes: the weights importance * sqrt(sigma2 +
// x^2) (or the unweighted rule), their square roots, the magnitudes (x >= 0 ? x : -x, so -0 stays -0) and per 8
// values the sign bits (x < 0 or unordered). With `even_signs`, a group of 8 with an odd number of minus signs
// gets the bit of its value of least weight * x * x (the first on ties) toggled and that magnitude negated;
// `seven_bits` keeps 7 sign bits. Returns the largest of the resulting magnitudes (a non-zero maximum does not
// depend on the order it is taken in; a zero one only in its sign, which every caller treats alike).
template <class V>
float prepare_group_values(const float* x, const float* importance, float sigma2, UnweightedRule rule, int n,
                           bool even_signs, bool seven_bits, float* weight, float* waux, float* xval,
                           uint8_t* signs) {
  constexpr int W = V::kWidth;
  using F = typename V::F;
  const F zero = V::set1(0.0f);
  for (int i = 0; i < n; i += W) {
    const F v = V::load(x + i);
    const F square = V::mul(v, v);
    F w;
    if (importance != nullptr) {
      w = V::mul(V::load(importance + i), V::sqrt(V::add(V::set1(sigma2), square)));
    } else if (rule == UnweightedRule::quarter_sigma2_plus_square) {
      w = V::add(V::mul(V::set1(0.25f), V::set1(sigma2)), square);
    } else {
      w = square;
    }
    V::store(weight + i, w);
    V::store(waux + i, V::sqrt(w));
    const auto non_negative = V::le(zero, v);
    const F magnitude = V::select(non_negative, v, negate_lanes<V>(v));
    V::store(xval + i, magnitude);
    const unsigned negative = ~V::bits(non_negative) & ((1u << W) - 1);
    for (int k = 0; k < W / 8; ++k) signs[(i + 8 * k) / 8] = static_cast<uint8_t>(negative >> (8 * k));
  }
  for (int k = 0; k < n / 8; ++k) {
    uint8_t bits = signs[k];
    if (even_signs && (__builtin_popcount(bits) & 1) != 0) {
      const float* xk = x + 8 * k;
      const float* wk = weight + 8 * k;
      int least = 0;
      float least_value = wk[0] * xk[0] * xk[0];
      for (int i = 1; i < 8; ++i) {
        const float value = wk[i] * xk[i] * xk[i];
        const bool smaller = value < least_value;
        least_value = smaller ? value : least_value;
        least = smaller ? i : least;
      }
      xval[8 * k + least] = -xval[8 * k + least];
      bits = static_cast<uint8_t>(bits ^ (1u << least));
    }
    signs[k] = seven_bits ? static_cast<uint8_t>(bits & 127) : bits;
  }
  // The largest magnitude after the sign fix, as the scalar code takes it.
  F largest = V::load(xval);
  for (int i = W; i < n; i += W) largest = V::max(largest, V::load(xval + i));
  return V::reduce_max(largest);
}

// How a grid type searches a sub-block's scale (the same for every lane).
struct GridSearchRule {
  int values;              // per sub-block: 16 or 32
  int trial_steps;         // inverse scales (base + step * step_size) / reference for step in [-steps, steps]
  float base;
  float step_size;
  bool start_on_grid;      // what a group counts as before any trial wins
  bool refine_always;      // refine at the fitted scale even when every group was on the grid
  bool refine_all_groups;  // the refinement re-rounds every group, not only the off-grid ones
};

// A grid of kPositions-value groups with levels 0..kTopLevel in kBits bits; Grid is IqGridSearch or
// Iq3GridSearch (index_table(), neighbour_code_list()).
template <class V, class Grid, int kPositions, int kBits, int kTopLevel>
struct GridLaneSearch {
  using S = Lanes16<V>;
  using F = typename S::F;
  using I = typename S::I;
  using Candidates = GridCandidates<V, kPositions, kBits>;
  static constexpr int kLanes = 16;
  static constexpr int kMaxValues = 32;

  // The sixteen sub-blocks of a batch: per lane its values and the square roots of its weights (which weigh
  // the nearest-point choice), and the values and weights transposed.
  struct Batch {
    const float* xval[kLanes];
    const float* waux[kLanes];
    unsigned active;  // lanes holding a sub-block that is searched (not skipped, not padding)
    alignas(64) float xt[kMaxValues * kLanes];
    alignas(64) float wt[kMaxValues * kLanes];
    alignas(64) float reference[kLanes];
    alignas(64) float start_scale[kLanes];
  };

  // The best neighbour at `scale` of lane g's group k, rounded to `code` (off the grid): the point's code.
  static int32_t nearest_point(const Grid& grid, const Batch& batch, int k, uint16_t code, float scale, int g) {
    typename V::F tables[kPositions];
    // 2l + 1 for l = lane mod 2^kBits
    const typename V::F values =
        V::to_float(V::iadd(V::template shift_left<1>(V::iand(V::iota(), V::iset1((1 << kBits) - 1))), V::iset1(1)));
    Candidates::terms(values, batch.xval[g] + kPositions * k, batch.waux[g] + kPositions * k, scale, tables);
    const auto candidates = grid.neighbour_code_list(code);
    const int position = Candidates::nearest(candidates.codes, candidates.count, tables);
    // The scalar searches keep the first candidate when no distance is finite.
    return candidates.codes[position < 0 ? 0 : position];
  }

  // Rounds group k of every lane at inverse scale `inverse` to levels clamp(nearest_int((inverse x - 1) / 2)),
  // writing them to rows kPositions * k.. of levels_t; returns the rounded codes.
  static I round_group(const Batch& batch, int k, F inverse, int32_t* levels_t) {
    using L = Lanes<S>;
    using G = GroupLanes<S>;
    I code = S::iset1(0);
    for (int i = kPositions - 1; i >= 0; --i) {
      const int row = kPositions * k + i;
      const F x = S::load(batch.xt + row * kLanes);
      const I level =
          G::clamp(L::nearest_int(S::mul(S::set1(0.5f), S::sub(S::mul(inverse, x), S::set1(1.0f)))), 0, kTopLevel);
      S::istore(levels_t + row * kLanes, level);
      code = S::ior(S::template shift_left<kBits>(code), level);
    }
    return code;
  }

  // For every lane in `lanes` whose code is off the grid, the nearest-point search at that lane's scale; the
  // chosen points' levels replace rows kPositions * k.. of levels_t in those lanes. Returns the lanes whose code
  // was on the grid.
  static unsigned snap_to_grid(const Grid& grid, const Batch& batch, int k, I code, F scale, unsigned lanes,
                               int32_t* levels_t) {
    const unsigned on_grid = S::bits(S::igt(S::igather(grid.index_table(), code), S::iset1(-1)));
    const unsigned off = lanes & ~on_grid;
    if (off == 0) return on_grid;
    alignas(64) int32_t codes[kLanes];
    alignas(64) float scales[kLanes];
    S::istore(codes, code);
    S::store(scales, scale);
    for (unsigned rest = off; rest != 0; rest &= rest - 1) {
      const int g = __builtin_ctz(rest);
      codes[g] = nearest_point(grid, batch, k, static_cast<uint16_t>(codes[g]), scales[g], g);
    }
    const I chosen = S::iload(codes);
    const auto take = S::mask_from_bits(off);
    for (int i = 0; i < kPositions; ++i) {
      int32_t* row = levels_t + (kPositions * k + i) * kLanes;
      const I level = S::iand(S::shift_right_lanes(chosen, S::iset1(kBits * i)), S::iset1((1 << kBits) - 1));
      S::istore(row, S::iselect(take, level, S::iload(row)));
    }
    return on_grid;
  }

  // sum w * x * q and sum w * q * q over n values with q = 2l + 1, in index order.
  static void sums(const Batch& batch, int n, const int32_t* levels_t, F* sum_qx, F* sum_qq) {
    F qx = S::set1(0.0f), qq = S::set1(0.0f);
    for (int i = 0; i < n; ++i) {
      const F w = S::load(batch.wt + i * kLanes);
      const F q = S::to_float(S::iadd(S::template shift_left<1>(S::iload(levels_t + i * kLanes)), S::iset1(1)));
      qx = S::add(qx, S::mul(S::mul(w, S::load(batch.xt + i * kLanes)), q));
      qq = S::add(qq, S::mul(S::mul(w, q), q));
    }
    *sum_qx = qx;
    *sum_qq = qq;
  }

  // The trial scales, then the refinement at the fitted scale, for every active lane. Writes each lane's
  // scale and its levels, transposed (levels_t[i * 16 + lane]).
  static void search(const GridSearchRule& rule, const Grid& grid, const Batch& batch, float* scales,
                     int32_t* levels_t) {
    const int n = rule.values;
    const int groups = n / kPositions;
    const F zero = S::set1(0.0f);
    const F reference = S::load(batch.reference);
    F scale = S::load(batch.start_scale);
    F best = zero;
    unsigned on_grid[kMaxValues / kPositions];
    for (int k = 0; k < groups; ++k) on_grid[k] = rule.start_on_grid ? ~0u : 0u;
    for (int i = 0; i < n; ++i) S::istore(levels_t + i * kLanes, S::iset1(0));
    alignas(64) int32_t trial_t[kMaxValues * kLanes];
    for (int step = -rule.trial_steps; step <= rule.trial_steps; ++step) {
      const F inverse = S::div(S::set1(rule.base + static_cast<float>(step) * rule.step_size), reference);
      const F trial_scale = S::div(S::set1(1.0f), inverse);
      unsigned trial_on_grid[kMaxValues / kPositions];
      for (int k = 0; k < groups; ++k) {
        const I code = round_group(batch, k, inverse, trial_t);
        trial_on_grid[k] = snap_to_grid(grid, batch, k, code, trial_scale, batch.active, trial_t);
      }
      F qx, qq;
      sums(batch, n, trial_t, &qx, &qq);
      // With the least-squares scale of fixed levels, the error falls as qx^2 / qq rises.
      const auto better_mask = S::mand(S::mask_from_bits(batch.active),
                                       S::mand(S::gt(qq, zero), S::gt(S::mul(qx, qx), S::mul(best, qq))));
      const unsigned better = S::bits(better_mask);
      if (better == 0) continue;
      scale = S::select(better_mask, S::div(qx, qq), scale);
      best = S::select(better_mask, S::mul(scale, qx), best);
      for (int i = 0; i < n; ++i) {
        S::istore(levels_t + i * kLanes,
                  S::iselect(better_mask, S::iload(trial_t + i * kLanes), S::iload(levels_t + i * kLanes)));
      }
      for (int k = 0; k < groups; ++k) on_grid[k] = (on_grid[k] & ~better) | (trial_on_grid[k] & better);
    }

    // Refinement at the fitted scale, for lanes with a group off the grid (every lane with refine_always) and
    // a positive scale.
    unsigned any_off = rule.refine_always ? batch.active : 0;
    for (int k = 0; k < groups; ++k) any_off |= batch.active & ~on_grid[k];
    const unsigned refine = any_off & S::bits(S::gt(scale, zero));
    if (refine != 0) {
      const F inverse = S::div(S::set1(1.0f), scale);
      for (int k = 0; k < groups; ++k) {
        const unsigned redo = rule.refine_all_groups ? refine : refine & ~on_grid[k];
        if (redo == 0) continue;
        const I code = round_group(batch, k, inverse, trial_t);
        const auto take = S::mask_from_bits(redo);
        for (int i = kPositions * k; i < kPositions * (k + 1); ++i) {
          S::istore(levels_t + i * kLanes,
                    S::iselect(take, S::iload(trial_t + i * kLanes), S::iload(levels_t + i * kLanes)));
        }
        snap_to_grid(grid, batch, k, code, scale, redo, levels_t);
      }
      F qx, qq;
      sums(batch, n, levels_t, &qx, &qq);
      scale = S::select(S::mand(S::mask_from_bits(refine), S::gt(qq, zero)), S::div(qx, qq), scale);
    }
    S::store(scales, scale);
  }

  // Fills lane g of the batch from a sub-block's values (xval), weights and square-rooted weights (waux), or
  // leaves it inactive with zeros.
  static void fill_lane(Batch& batch, int g, bool used, const float* xval, const float* weight, const float* waux,
                        int n, float reference, float start_scale) {
    batch.xval[g] = xval;
    batch.waux[g] = waux;
    if (used) batch.active |= 1u << g;
    batch.reference[g] = used ? reference : 1.0f;
    batch.start_scale[g] = used ? start_scale : 0.0f;
    for (int i = 0; i < n; ++i) {
      batch.xt[i * kLanes + g] = used ? xval[i] : 0.0f;
      batch.wt[i * kLanes + g] = used ? weight[i] : 0.0f;
    }
  }
};

}  // namespace
}  // namespace quant::formats
