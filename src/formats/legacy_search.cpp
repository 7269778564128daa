// Weighted scale searches for the legacy block types (see legacy_search.h). Every sum is float32, accumulated in
// index order, and every product keeps ggml's association (w * x * l is (w * x) * l): with contraction off this
// reproduces ggml's rounding step by step.
#include "formats/legacy_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "formats/kernels.h"

namespace quant::formats {
namespace {

// ggml treats a group whose largest magnitude is below this as all zeros (GROUP_MAX_EPS).
constexpr float kZeroGroupThreshold = 1e-15f;
// The largest group search_offset_scale takes (its candidate levels live on the stack).
constexpr int kMaxGroup = 256;

// The level for x on a symmetric grid, clamped to [-nmax, nmax - 1] (before adding the nmax bias).
int symmetric_level(float inverse_scale, float x, int nmax) {
  return std::max(-nmax, std::min(nmax - 1, nearest_int(inverse_scale * x)));
}

}  // namespace

float search_symmetric_scale(int n, int nmax, const float* x, const float* weights, int8_t* levels) {
  // The signed value of largest magnitude (the first one on ties) fixes the sign of the scale.
  float largest = 0.0f;
  float largest_magnitude = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float magnitude = std::fabs(x[i]);
    if (magnitude > largest_magnitude) {
      largest_magnitude = magnitude;
      largest = x[i];
    }
  }
  if (largest_magnitude < kZeroGroupThreshold) {
    std::memset(levels, 0, static_cast<size_t>(n));
    return 0.0f;
  }

  // First candidate: the largest value lands exactly on level -nmax.
  float inverse_scale = static_cast<float>(-nmax) / largest;
  float sum_wxl = 0.0f;
  float sum_wll = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = symmetric_level(inverse_scale, x[i], nmax);
    levels[i] = static_cast<int8_t>(l + nmax);
    const float lf = static_cast<float>(l);
    sum_wxl += weights[i] * x[i] * lf;
    sum_wll += weights[i] * lf * lf;
  }
  float scale = sum_wll != 0.0f ? sum_wxl / sum_wll : 0.0f;
  // For the least-squares scale of fixed levels, the error falls as sum_wxl^2 / sum_wll rises.
  float best = scale * sum_wxl;

  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    inverse_scale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / largest;
    sum_wxl = 0.0f;
    sum_wll = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float lf = static_cast<float>(symmetric_level(inverse_scale, x[i], nmax));
      sum_wxl += weights[i] * x[i] * lf;
      sum_wll += weights[i] * lf * lf;
    }
    if (sum_wll > 0.0f && sum_wxl * sum_wxl > best * sum_wll) {
      for (int i = 0; i < n; ++i) {
        levels[i] = static_cast<int8_t>(symmetric_level(inverse_scale, x[i], nmax) + nmax);
      }
      scale = sum_wxl / sum_wll;
      best = scale * sum_wxl;
    }
  }
  return scale;
}

float search_offset_scale(int n, int nmax, const float* x, const float* weights, uint8_t* levels, float* offset,
                          float rmin, float rdelta, int nstep) {
  float low = x[0];
  float high = x[0];
  float sum_w = weights[0];
  float sum_wx = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < low) low = x[i];
    if (x[i] > high) high = x[i];
    sum_w += weights[i];
    sum_wx += weights[i] * x[i];
  }
  // The offset is never positive: a group of positive values still starts its grid at zero.
  if (low > 0.0f) low = 0.0f;
  if (high <= low) {
    std::memset(levels, 0, static_cast<size_t>(n));
    *offset = low;
    return 0.0f;
  }

  // First candidate: the range [low, high] spread evenly over the nmax + 1 levels.
  const float nmax_f = static_cast<float>(nmax);
  const float range_inverse_scale = nmax_f / (high - low);
  float scale = 1.0f / range_inverse_scale;
  float min = low;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = std::max(0, std::min(nmax, nearest_int(range_inverse_scale * (x[i] - low))));
    levels[i] = static_cast<uint8_t>(l);
    const float diff = scale * static_cast<float>(l) + low - x[i];
    best_error += weights[i] * (diff * diff);
  }
  if (nstep < 1) {  // ggml keeps the plain range fit when asked for no search steps
    *offset = low;
    return scale;
  }

  uint8_t candidate[kMaxGroup];
  for (int step = 0; step <= nstep; ++step) {
    // ggml measures each candidate grid from the best offset found so far, not from the smallest value: once
    // a candidate wins, later candidates start from its offset.
    const float inverse_scale = (rmin + rdelta * static_cast<float>(step) + nmax_f) / (high - min);
    float sum_wl = 0.0f;
    float sum_wll = 0.0f;
    float sum_wlx = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, nearest_int(inverse_scale * (x[i] - min))));
      candidate[i] = static_cast<uint8_t>(l);
      const float lf = static_cast<float>(l);
      sum_wl += weights[i] * lf;
      sum_wll += weights[i] * lf * lf;
      sum_wlx += weights[i] * lf * x[i];
    }
    // Weighted least squares for x ~ scale * l + min; D is the determinant of the normal equations.
    const float determinant = sum_w * sum_wll - sum_wl * sum_wl;
    if (!(determinant > 0.0f)) continue;
    float this_scale = (sum_w * sum_wlx - sum_wx * sum_wl) / determinant;
    float this_min = (sum_wll * sum_wx - sum_wl * sum_wlx) / determinant;
    if (this_min > 0.0f) {
      this_min = 0.0f;
      this_scale = sum_wlx / sum_wll;
    }
    float error = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float diff = this_scale * static_cast<float>(candidate[i]) + this_min - x[i];
      error += weights[i] * (diff * diff);
    }
    if (error < best_error) {
      std::memcpy(levels, candidate, static_cast<size_t>(n));
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  *offset = min;
  return scale;
}

}  // namespace quant::formats
