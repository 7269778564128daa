// Threshold searches, in the precision and order of each reference (searches.h).
#include "calibrate/searches.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "calibrate/histograms.h"

namespace quant::calibration {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// scipy.special.rel_entr.
double relative_entropy_term(double p, double q) {
  if (p > 0.0 && q > 0.0) return p * std::log(p / q);
  if (p == 0.0 && q >= 0.0) return 0.0;
  return kInf;
}

// c10's floor division of floats (torch.div(..., rounding_mode="floor")).
float torch_floor_divide(float a, float b) {
  if (b == 0.0f) return a / b;
  const float mod = std::fmod(a, b);
  float div = (a - mod) / b;
  if (mod != 0.0f && ((b < 0.0f) != (mod < 0.0f))) div -= 1.0f;
  if (div == 0.0f) return std::copysign(0.0f, a / b);
  float floored = std::floor(div);
  if (div - floored > 0.5f) floored += 1.0f;
  return floored;
}

// onnxruntime smooth_distribution: zeros get eps, non-zeros give up eps * zeros / non-zeros; float32.
// Returns false when every entry is zero.
bool smooth(std::vector<float>& values) {
  int64_t zeros = 0;
  for (float v : values) zeros += v == 0.0f ? 1 : 0;
  const int64_t nonzeros = static_cast<int64_t>(values.size()) - zeros;
  if (nonzeros == 0) return false;
  const float eps = 1e-4f;
  const float taken = static_cast<float>(1e-4 * static_cast<double>(zeros) / static_cast<double>(nonzeros));
  for (float& v : values) v = v == 0.0f ? v + eps : v + (-taken);
  return true;
}

// KL(p || q) after normalising both, in float32 with numpy's summation.
float kl_divergence_f32(const std::vector<float>& p, const std::vector<float>& q) {
  const int64_t n = static_cast<int64_t>(p.size());
  const float p_sum = numpy_pairwise_sum(p.data(), n);
  const float q_sum = numpy_pairwise_sum(q.data(), n);
  std::vector<float> terms(p.size());
  for (int64_t j = 0; j < n; ++j) {
    const float pn = p[j] / p_sum;
    const float qn = q[j] / q_sum;
    terms[j] = pn > 0.0f && qn > 0.0f ? pn * std::log(pn / qn) : (pn == 0.0f ? 0.0f : INFINITY);
  }
  return numpy_pairwise_sum(terms.data(), n);
}

}  // namespace

int64_t tensorrt_entropy_bins(std::span<const int64_t> counts, int levels, int64_t start_bin) {
  const int64_t n = static_cast<int64_t>(counts.size());
  if (n < 2) return n;
  std::vector<int64_t> bins(counts.begin(), counts.end());
  bins[0] = bins[1];  // hides the spike of exact zeros a ReLU leaves in the first bin
  std::vector<int64_t> tail(n + 1, 0);
  for (int64_t j = n - 1; j >= 0; --j) tail[j] = tail[j + 1] + bins[j];

  double best = kInf;
  int64_t best_i = std::min(start_bin, n);
  std::vector<double> reference, candidate, group_sum(levels), terms;
  std::vector<int64_t> group_count(levels);
  for (int64_t i = start_bin; i <= n; ++i) {
    std::fill(group_sum.begin(), group_sum.end(), 0.0);
    std::fill(group_count.begin(), group_count.end(), 0);
    for (int64_t j = 0; j < i; ++j) {
      if (bins[j] == 0) continue;
      const int64_t g = j * levels / i;  // exact: the group boundaries are multiples of i / levels
      group_sum[g] += static_cast<double>(bins[j]);
      group_count[g] += 1;
    }
    for (int g = 0; g < levels; ++g) {
      if (group_count[g] != 0) group_sum[g] = group_sum[g] / static_cast<double>(group_count[g]);
    }
    candidate.assign(i, 0.0);
    for (int64_t j = 0; j < i; ++j) {
      if (bins[j] != 0) candidate[j] = group_sum[j * levels / i];
    }
    // scipy.stats.entropy normalises both (the reference's own normalisation is a no-op).
    int64_t reference_total = tail[0];
    reference.assign(i, 0.0);
    for (int64_t j = 0; j < i; ++j) reference[j] = static_cast<double>(bins[j]);
    reference[i - 1] += static_cast<double>(tail[i]);
    const double candidate_total = numpy_pairwise_sum(candidate.data(), i);
    terms.assign(i, 0.0);
    for (int64_t j = 0; j < i; ++j) {
      const double p = reference[j] / static_cast<double>(reference_total);
      const double q = candidate[j] / candidate_total;
      terms[j] = relative_entropy_term(p, q);
    }
    const double divergence = numpy_pairwise_sum(terms.data(), i);
    if (divergence <= best) {  // ties go to the larger threshold
      best = divergence;
      best_i = i;
    }
  }
  return best_i;
}

int64_t tensorrt_mse_center(std::span<const int64_t> counts, std::span<const float> centers, int bits,
                            bool is_unsigned, int64_t start_bin) {
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(counts.size()), static_cast<int64_t>(centers.size()));
  const float bound = static_cast<float>((int64_t{1} << (bits - 1 + (is_unsigned ? 1 : 0))) - 1);
  const float lowest = is_unsigned ? 0.0f : -bound;  // fake_tensor_quant defaults to narrow range
  double best = kInf;
  int64_t best_i = start_bin;
  for (int64_t i = start_bin; i < n; ++i) {
    const float amax = centers[i];
    const float scale = bound / amax;
    double total = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      const float code = std::clamp(std::nearbyint(centers[j] * scale), lowest, bound);
      const float diff = code / scale - centers[j];
      total += static_cast<double>(diff * diff * static_cast<float>(counts[j]));
    }
    const double mean = total / static_cast<double>(n);
    if (mean < best) {
      best = mean;
      best_i = i;
    }
  }
  return best_i;
}

int64_t cumulative_fraction_index(std::span<const int64_t> counts, double fraction) {
  double total = 0.0;
  for (int64_t c : counts) total += static_cast<double>(c);
  double cdf = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cdf += static_cast<double>(counts[i]) / total;
    if (cdf >= fraction) return static_cast<int64_t>(i);
  }
  return static_cast<int64_t>(counts.size());
}

std::pair<int64_t, int64_t> onnxruntime_entropy_window(std::span<const int64_t> counts, int quantized_bins) {
  const int64_t n = static_cast<int64_t>(counts.size());
  const int64_t center = n / 2;
  const int64_t half_quantized = quantized_bins / 2;
  std::vector<int64_t> prefix(n + 1, 0);
  for (int64_t j = 0; j < n; ++j) prefix[j + 1] = prefix[j] + counts[j];

  float best = INFINITY;
  std::pair<int64_t, int64_t> best_window{0, n};
  bool have_best = false;
  std::vector<float> p, q;
  std::vector<int64_t> merged(quantized_bins);
  for (int64_t i = half_quantized; i <= center; ++i) {
    const int64_t start = center - i;
    const int64_t end = std::min(center + i + 1, n);
    const int64_t width = end - start;
    std::vector<int64_t> folded(counts.begin() + start, counts.begin() + end);
    folded.front() += prefix[start];
    folded.back() += prefix[n] - prefix[end];
    const int64_t per_group = width / quantized_bins;
    for (int k = 0; k < quantized_bins; ++k) {
      merged[k] = prefix[start + (k + 1) * per_group] - prefix[start + k * per_group];
    }
    merged[quantized_bins - 1] += prefix[end] - prefix[start + quantized_bins * per_group];
    std::vector<int64_t> expanded(width, 0);
    for (int k = 0; k < quantized_bins; ++k) {
      int64_t nonzero = 0;
      for (int64_t j = k * per_group; j < (k + 1) * per_group; ++j) nonzero += folded[j] != 0 ? 1 : 0;
      if (nonzero == 0) continue;
      // The reference stores a float quotient into an int64 array: truncation.
      const int64_t level = static_cast<int64_t>(static_cast<double>(merged[k]) / static_cast<double>(nonzero));
      for (int64_t j = k * per_group; j < (k + 1) * per_group; ++j) expanded[j] = level;
    }
    p.assign(folded.begin(), folded.end());
    q.assign(expanded.begin(), expanded.end());
    float divergence = INFINITY;
    if (smooth(p) && smooth(q)) divergence = kl_divergence_f32(p, q);
    if (!have_best || divergence < best) {  // first minimum wins
      best = divergence;
      best_window = {start, end};
      have_best = true;
    }
  }
  return best_window;
}

std::pair<float, float> torch_l2_search(std::span<const float> counts, float min, float max, int dst_levels) {
  const int64_t bins = static_cast<int64_t>(counts.size());
  const float bin_width = (max - min) / static_cast<float>(bins);
  double total_d = 0.0;
  std::vector<float> cumulative(bins);
  for (int64_t j = 0; j < bins; ++j) {  // torch's cumsum accumulates floats in double
    total_d += static_cast<double>(counts[j]);
    cumulative[j] = static_cast<float>(total_d);
  }
  const double total = static_cast<float>(total_d);
  const double bin_width_d = (static_cast<double>(max) - static_cast<double>(min)) / static_cast<double>(bins);

  auto quantization_error = [&](int64_t first, int64_t last) -> double {
    const double dst_width_d = bin_width_d * static_cast<double>(last - first + 1) / dst_levels;
    if (dst_width_d == 0.0) return 0.0;
    const float bw = static_cast<float>(bin_width_d);
    const float dw = static_cast<float>(dst_width_d);
    const float half = static_cast<float>(dst_width_d / 2);
    const float neg_half = static_cast<float>(-dst_width_d / 2);
    const float top = static_cast<float>(dst_levels - 1);
    auto l2 = [](float a, float b, float density) { return density * ((b * b * b - a * a * a) / 3.0f); };
    double sum = 0.0;
    for (int64_t j = 0; j < bins; ++j) {
      const float begin = static_cast<float>(j - first) * bw;
      const float end = begin + bw;
      const float dst_begin = std::clamp(torch_floor_divide(begin, dw), 0.0f, top);
      const float dst_end = std::clamp(torch_floor_divide(end, dw), 0.0f, top);
      const float density = counts[j] / bw;
      float norm = 0.0f;
      norm += l2(begin - (dst_begin + 0.5f) * dw, 1.0f * half, density);
      norm += (dst_end - dst_begin - 1.0f) * l2(neg_half, half, density);
      norm += l2(neg_half, end - (dst_end * dw + half), density);
      sum += static_cast<double>(norm);
    }
    return static_cast<double>(static_cast<float>(sum));
  };

  double alpha = 0.0, beta = 1.0;
  int64_t start = 0, end = bins - 1;
  double best = kInf;
  while (alpha < beta) {
    const double next_alpha = alpha + 1e-5;
    const double next_beta = beta - 1e-5;
    int64_t l = start, r = end;
    while (l < end && cumulative[l] < static_cast<float>(next_alpha * total)) ++l;
    while (r > start && cumulative[r] > static_cast<float>(next_beta * total)) --r;
    int64_t next_start = start, next_end = end;
    if ((l - start) > (end - r)) {
      next_start = l;
      alpha = next_alpha;
    } else {
      next_end = r;
      beta = next_beta;
    }
    if (next_start == start && next_end == end) continue;
    const double error = quantization_error(next_start, next_end);
    if (error > best) break;
    best = error;
    start = next_start;
    end = next_end;
  }
  return {min + bin_width * static_cast<float>(start), min + bin_width * static_cast<float>(end + 1)};
}

}  // namespace quant::calibration
