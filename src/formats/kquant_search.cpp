// Scale searches for the k-quants. Every expression keeps ggml's float32 evaluation order (products left to
// right, sums accumulated in index order) and its integer conversions: the results are stored bytes and must
// match ggml's bit for bit, so "equivalent" rewrites are not allowed here.
#include "formats/kquant_search.h"

#include <cmath>

#include "formats/kernels.h"

namespace quant::formats::kquant {
namespace {

// The value of largest magnitude, keeping its sign (the first one on ties), and that magnitude.
struct SignedPeak {
  float value = 0;
  float magnitude = 0;
};

SignedPeak signed_peak(int n, const float* x) {
  SignedPeak peak;
  for (int i = 0; i < n; ++i) {
    const float magnitude = std::fabs(x[i]);
    if (magnitude > peak.magnitude) {
      peak.magnitude = magnitude;
      peak.value = x[i];
    }
  }
  return peak;
}

int clamp_level(int level, int lowest, int highest) {
  // ggml's MAX(lowest, MIN(highest, level)).
  const int upper = highest < level ? highest : level;
  return lowest > upper ? lowest : upper;
}

// The symmetric level of x under inverse scale iscale: round(iscale*x) kept in [-nmax, nmax-1].
int symmetric_level(float iscale, float x, int nmax) { return clamp_level(nearest_int(iscale * x), -nmax, nmax - 1); }

// Weighted sums sum(w*x*l) and sum(w*l*l) of a symmetric quantization under one inverse scale.
struct FitSums {
  float sum_xl = 0;
  float sum_ll = 0;
};

FitSums symmetric_fit_sums(int n, int nmax, const float* x, const float* weights, float iscale) {
  FitSums sums;
  for (int i = 0; i < n; ++i) {
    const int l = symmetric_level(iscale, x[i], nmax);
    const float w = weights != nullptr ? weights[i] : x[i] * x[i];
    sums.sum_xl += w * x[i] * l;
    sums.sum_ll += w * l * l;
  }
  return sums;
}

// The k-quant groups searched here have 16 or 32 values (the super-block level has 8 or 16).
constexpr int kMaxGroup = 32;

float affine_error_term(float diff, ErrorNorm norm) { return norm == ErrorNorm::absolute ? std::fabs(diff) : diff * diff; }

}  // namespace

float search_symmetric_scale(int n, int nmax, const float* x, int8_t* levels, const float* weights) {
  const SignedPeak peak = signed_peak(n, x);
  if (peak.magnitude < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) levels[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / peak.value;
  for (int i = 0; i < n; ++i) levels[i] = static_cast<int8_t>(symmetric_level(iscale, x[i], nmax) + nmax);
  FitSums sums = symmetric_fit_sums(n, nmax, x, weights, iscale);
  float scale = sums.sum_ll != 0 ? sums.sum_xl / sums.sum_ll : 0.0f;
  // `best` is scale * sum_xl, the reduction in weighted squared error the fit achieves; a candidate wins when
  // its own reduction sum_xl^2 / sum_ll is larger (compared without dividing, as ggml does).
  float best = scale * sums.sum_xl;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(nmax + 0.1f * step) / peak.value;
    sums = symmetric_fit_sums(n, nmax, x, weights, iscale);
    if (sums.sum_ll > 0 && sums.sum_xl * sums.sum_xl > best * sums.sum_ll) {
      for (int i = 0; i < n; ++i) levels[i] = static_cast<int8_t>(symmetric_level(iscale, x[i], nmax) + nmax);
      scale = sums.sum_xl / sums.sum_ll;
      best = scale * sums.sum_xl;
    }
  }
  return scale;
}

float search_q3_scale(int n, int nmax, const float* x, int8_t* levels) {
  const SignedPeak peak = signed_peak(n, x);
  if (peak.magnitude < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) levels[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / peak.value;
  float sum_xl = 0;
  float sum_ll = 0;
  for (int i = 0; i < n; ++i) {
    const int l = symmetric_level(iscale, x[i], nmax);
    levels[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sum_xl += w * x[i] * l;
    sum_ll += w * l * l;
  }
  // Coordinate descent: move one level to its best value given the others, keep it if the fit improves.
  for (int sweep = 0; sweep < 5; ++sweep) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float xl_without = sum_xl - w * x[i] * levels[i];
      if (!(xl_without > 0)) continue;
      float ll_without = sum_ll - w * levels[i] * levels[i];
      const int candidate = clamp_level(nearest_int(x[i] * ll_without / xl_without), -nmax, nmax - 1);
      if (candidate == levels[i]) continue;
      xl_without += w * x[i] * candidate;
      ll_without += w * candidate * candidate;
      if (ll_without > 0 && xl_without * xl_without * sum_ll > sum_xl * sum_xl * ll_without) {
        levels[i] = static_cast<int8_t>(candidate);
        sum_xl = xl_without;
        sum_ll = ll_without;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) levels[i] = static_cast<int8_t>(levels[i] + nmax);
  return sum_ll > 0.0f ? sum_xl / sum_ll : 0.0f;
}

float search_affine_scale(int n, int nmax, const float* x, const float* weights, uint8_t* levels,
                          float* negated_min, ScaleGrid grid, ErrorNorm norm, LevelClamp clamp) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;  // the minimum is only ever subtracted, never added
  if (max <= min) {
    for (int i = 0; i < n; ++i) levels[i] = 0;
    *negated_min = -min;
    return 0.f;
  }

  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    levels[i] = static_cast<uint8_t>(clamp_level(nearest_int(iscale * (x[i] - min)), 0, nmax));
    const float diff = scale * levels[i] + min - x[i];
    best_error += weights[i] * affine_error_term(diff, norm);
  }
  if (grid.steps < 1) {
    *negated_min = -min;
    return scale;
  }

  uint8_t candidate[kMaxGroup];
  for (int step = 0; step <= grid.steps; ++step) {
    // `min` is the best fit so far, so the grid moves with it as ggml's does.
    iscale = (grid.first_offset + grid.step * step + nmax) / (max - min);
    float sum_l = 0, sum_ll = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l;
      if (clamp == LevelClamp::round_then_clamp) {
        l = clamp_level(nearest_int(iscale * (x[i] - min)), 0, nmax);
      } else {
        const float scaled = iscale * (x[i] - min);
        const float capped = scaled < nmax ? scaled : static_cast<float>(nmax);  // ggml's MIN(v, nmax)
        l = scaled > 0 ? nearest_int(capped) : 0;
      }
      candidate[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_ll += w * l * l;
      sum_xl += w * l * x[i];
    }
    // Weighted least squares for x ~ this_scale * l + this_min.
    const float determinant = sum_w * sum_ll - sum_l * sum_l;
    if (!(determinant > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / determinant;
    float this_min = (sum_ll * sum_x - sum_l * sum_xl) / determinant;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_ll;
    }
    float error = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = this_scale * candidate[i] + this_min - x[i];
      error += weights[i] * affine_error_term(diff, norm);
    }
    if (error < best_error) {
      for (int i = 0; i < n; ++i) levels[i] = candidate[i];
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  *negated_min = -min;
  return scale;
}

float search_positive_scale(int n, int nmax, const float* x, uint8_t* levels, const float* weights) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
  if (max < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) levels[i] = 0;
    return 0.f;
  }
  // Levels are stored as bytes before they are clamped from above, and never clamped from below: a negative
  // input wraps, as in ggml. The error sums read the stored byte back.
  float iscale = nmax / max;
  for (int i = 0; i < n; ++i) levels[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
  const float first_scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - first_scale * levels[i];
    best_error += weights[i] * diff * diff;
  }
  for (int step = -4; step <= 4; ++step) {
    if (step == 0) continue;
    const float trial_iscale = (0.1f * step + nmax) / max;
    const float trial_scale = 1 / trial_iscale;
    float error = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(trial_iscale * x[i]);
      l = nmax < l ? nmax : l;
      const float diff = x[i] - trial_scale * l;
      error += weights[i] * diff * diff;
    }
    if (error < best_error) {
      best_error = error;
      iscale = trial_iscale;
    }
  }

  float sum_xl = 0;
  float sum_ll = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = nmax < l ? nmax : l;
    levels[i] = static_cast<uint8_t>(l);
    const float w = weights[i];
    sum_xl += w * x[i] * l;
    sum_ll += w * l * l;
  }
  for (int sweep = 0; sweep < 5; ++sweep) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = weights[i];
      float xl_without = sum_xl - w * x[i] * levels[i];
      float ll_without = sum_ll - w * levels[i] * levels[i];
      if (!(xl_without > 0 && ll_without > 0)) continue;
      int candidate = nearest_int(x[i] * ll_without / xl_without);
      candidate = nmax < candidate ? nmax : candidate;
      if (candidate == levels[i]) continue;
      xl_without += w * x[i] * candidate;
      ll_without += w * candidate * candidate;
      if (xl_without * xl_without * sum_ll > sum_xl * sum_xl * ll_without) {
        levels[i] = static_cast<uint8_t>(candidate);
        sum_xl = xl_without;
        sum_ll = ll_without;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  return sum_ll > 0.0f ? sum_xl / sum_ll : 0.0f;
}

}  // namespace quant::formats::kquant
