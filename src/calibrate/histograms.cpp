// Histogram construction, float32 operation by operation as the reference libraries do it (histograms.h).
#include "calibrate/histograms.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace quant::calibration {

std::vector<float> torch_linspace(float start, float end, int64_t steps, int vector_width) {
  std::vector<float> out(static_cast<size_t>(std::max<int64_t>(steps, 0)));
  if (steps <= 0) return out;
  if (steps == 1) {
    out[0] = start;
    return out;
  }
  // torch keeps the step in the output type and counts the second half down from `end`.
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  auto block_base = [&](int64_t idx) {
    return idx < halfway ? start + step * static_cast<float>(idx)
                         : end - step * static_cast<float>(steps - idx - 1);
  };
  // The vectorised loop fills two vectors at a time, each stepping from its first lane; a scalar tail follows.
  const int64_t vector_end = (steps / (2 * vector_width)) * (2 * vector_width);
  for (int64_t j = 0; j < vector_end; j += vector_width) {
    const float base = block_base(j);
    for (int lane = 0; lane < vector_width; ++lane) out[j + lane] = base + static_cast<float>(lane) * step;
  }
  for (int64_t j = vector_end; j < steps; ++j) out[j] = block_base(j);
  return out;
}

std::vector<float> torch_arange_from_zero(float end, float step, int vector_width) {
  const double size = std::ceil(static_cast<double>(end) / static_cast<double>(step));
  const int64_t n = size > 0 ? static_cast<int64_t>(size) : 0;
  std::vector<float> out(static_cast<size_t>(n));
  const double step_d = step;
  const int64_t vector_end = (n / (2 * vector_width)) * (2 * vector_width);
  // arange accumulates in double; each vector starts from its base rounded to float, then adds lane * step.
  for (int64_t j = 0; j < vector_end; j += vector_width) {
    const float base = static_cast<float>(step_d * static_cast<double>(j));
    for (int lane = 0; lane < vector_width; ++lane) {
      out[j + lane] = static_cast<float>(static_cast<double>(base) + static_cast<double>(lane) * step_d);
    }
  }
  for (int64_t j = vector_end; j < n; ++j) out[j] = static_cast<float>(step_d * static_cast<double>(j));
  return out;
}

void torch_histc_add(std::span<const float> values, float lo, float hi, std::span<double> counts) {
  const int64_t bins = static_cast<int64_t>(counts.size());
  if (bins == 0) return;
  double left = lo, right = hi;
  if (left == right && !values.empty()) {  // histc falls back to the data's own extremes
    float mn = INFINITY, mx = -INFINITY;
    for (float v : values) {
      if (std::isnan(v)) continue;
      mn = std::min(mn, v);
      mx = std::max(mx, v);
    }
    left = mn;
    right = mx;
  }
  if (left == right) {
    left -= 1.0;
    right += 1.0;
  }
  const float left_f = static_cast<float>(left), right_f = static_cast<float>(right);
  const float span = right_f - left_f;
  const float bins_f = static_cast<float>(bins);
  for (float v : values) {
    if (!(v >= left_f && v <= right_f)) continue;
    int64_t pos = static_cast<int64_t>((v - left_f) * bins_f / span);
    if (pos >= bins) pos = bins - 1;  // the last bin includes its right edge
    counts[pos] += 1.0;
  }
}

std::vector<float> numpy_uniform_edges(float first, float last, int64_t bins) {
  std::vector<float> edges(static_cast<size_t>(bins + 1));
  const float step = (last - first) / static_cast<float>(bins);
  for (int64_t k = 0; k <= bins; ++k) edges[k] = static_cast<float>(k) * step + first;
  edges[bins] = last;
  return edges;
}

void numpy_histogram_add(std::span<const float> values, float first, float last, std::span<const float> edges,
                         bool absolute, std::span<int64_t> counts) {
  const int64_t bins = static_cast<int64_t>(counts.size());
  const float denom = last - first;
  const float bins_f = static_cast<float>(bins);
  for (float raw : values) {
    const float v = absolute ? std::fabs(raw) : raw;
    if (!(v >= first && v <= last)) continue;
    int64_t idx = static_cast<int64_t>(((v - first) / denom) * bins_f);
    idx = std::clamp<int64_t>(idx, 0, bins);
    if (idx == bins) idx -= 1;
    // numpy corrects the estimate against the float32 edges it returns.
    if (v < edges[idx]) idx -= 1;
    if (idx >= 0 && idx != bins - 1 && v >= edges[idx + 1]) idx += 1;
    if (idx < 0) continue;
    counts[idx] += 1;
  }
}

Status AbsoluteGrowingHistogram::add(std::span<const float> values) {
  std::vector<float> magnitudes;
  magnitudes.reserve(values.size());
  float batch_max = -INFINITY;
  for (float v : values) {
    const float m = std::fabs(v);
    magnitudes.push_back(m);
    batch_max = std::max(batch_max, m);
  }
  if (magnitudes.empty()) return Status::success();
  if (edges_.empty()) {
    std::vector<double> counts(static_cast<size_t>(first_bins_), 0.0);
    torch_histc_add(magnitudes, 0.0f, batch_max, counts);
    counts_.assign(counts.begin(), counts.end());
    edges_ = torch_linspace(0.0f, batch_max, first_bins_ + 1);
    return Status::success();
  }
  if (batch_max > edges_.back()) {
    const float width = edges_[1] - edges_[0];
    const double wanted = std::ceil(static_cast<double>(batch_max / width));
    if (merged_ || wanted > static_cast<double>(max_bins_)) {
      QUANT_TRY(merge_pairs_until_within_cap(batch_max));
    } else {
      // pytorch-quantization keeps the first batch's width and appends bins with torch.arange.
      edges_ = torch_arange_from_zero(batch_max + width, width);
      counts_.resize(static_cast<size_t>(wanted), 0);
    }
  }
  if (merged_) {
    // Past the cap the edges are ours (i * width): place each value by its edges.
    for (float m : magnitudes) {
      auto it = std::upper_bound(edges_.begin(), edges_.end(), m);
      int64_t idx = static_cast<int64_t>(it - edges_.begin()) - 1;
      idx = std::clamp<int64_t>(idx, 0, static_cast<int64_t>(counts_.size()) - 1);
      counts_[idx] += 1;
    }
    return Status::success();
  }
  std::vector<double> batch_counts(counts_.size(), 0.0);
  torch_histc_add(magnitudes, 0.0f, edges_.back(), batch_counts);
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += static_cast<int64_t>(batch_counts[i]);
  return Status::success();
}

Status AbsoluteGrowingHistogram::merge_pairs_until_within_cap(float batch_max) {
  if (!merge_past_cap_) {
    return impossible(fmt::format(
        "the histogram would need more than {} bins to reach {} with the first batch's bin width {} "
        "(TensorRT keeps that width; use the quantize convention, which merges bins past the cap)",
        max_bins_, batch_max, edges_[1] - edges_[0]));
  }
  double width = static_cast<double>(edges_[1]) - static_cast<double>(edges_[0]);
  while (std::ceil(static_cast<double>(batch_max) / width) > static_cast<double>(max_bins_)) {
    std::vector<int64_t> merged((counts_.size() + 1) / 2, 0);
    for (size_t i = 0; i < counts_.size(); ++i) merged[i / 2] += counts_[i];
    counts_ = std::move(merged);
    width *= 2.0;
  }
  const size_t bins = std::max(counts_.size(), static_cast<size_t>(std::ceil(batch_max / width)));
  counts_.resize(bins, 0);
  edges_.resize(bins + 1);
  for (size_t i = 0; i <= bins; ++i) edges_[i] = static_cast<float>(width * static_cast<double>(i));
  if (edges_.back() < batch_max) edges_.back() = batch_max;
  merged_ = true;
  return Status::success();
}

void RangeMergingHistogram::add(std::span<const float> values) {
  if (values.empty()) return;
  float batch_min = INFINITY, batch_max = -INFINITY;
  for (float v : values) {
    batch_min = std::min(batch_min, v);
    batch_max = std::max(batch_max, v);
  }
  if (!initialised_) {
    std::vector<double> counts(static_cast<size_t>(bins_), 0.0);
    torch_histc_add(values, batch_min, batch_max, counts);
    counts_.assign(counts.begin(), counts.end());
    min_ = batch_min;
    max_ = batch_max;
    initialised_ = true;
    return;
  }
  const float new_min = std::min(min_, batch_min);
  const float new_max = std::max(max_, batch_max);
  std::vector<double> update(static_cast<size_t>(bins_), 0.0);
  torch_histc_add(values, new_min, new_max, update);
  std::vector<float> combined(static_cast<size_t>(bins_));
  if (new_min == min_ && new_max == max_) {
    for (int64_t i = 0; i < bins_; ++i) combined[i] = counts_[i] + static_cast<float>(update[i]);
  } else if (min_ == max_) {
    // A histogram of one value moves whole into the new bin holding that value.
    float mass = 0.0f;
    for (float c : counts_) mass += c;
    std::vector<double> one(static_cast<size_t>(bins_), 0.0);
    const float value = min_;
    torch_histc_add(std::span<const float>(&value, 1), new_min, new_max, one);
    for (int64_t i = 0; i < bins_; ++i) combined[i] = static_cast<float>(one[i]) * mass + static_cast<float>(update[i]);
  } else {
    const std::vector<float> moved = upscale(new_min, new_max);
    for (int64_t i = 0; i < bins_; ++i) combined[i] = static_cast<float>(update[i]) + moved[i];
  }
  counts_ = std::move(combined);
  min_ = new_min;
  max_ = new_max;
}

std::vector<float> RangeMergingHistogram::upscale(float new_min, float new_max) const {
  constexpr int64_t kUpsample = 16;  // torch 2.x fixes the upsample rate at 16
  const int64_t fine_bins = bins_ * kUpsample;
  const float sub_width = (max_ - min_) / static_cast<float>(fine_bins);
  const std::vector<float> fine_edges = torch_linspace(min_, max_, fine_bins + 1);
  const std::vector<float> boundaries = torch_linspace(new_min, new_max, bins_ + 1);
  const float half_sub = 0.5f * sub_width;
  std::vector<float> moved(static_cast<size_t>(bins_), 0.0f);
  for (int64_t i = 0; i < fine_bins; ++i) {
    const float middle = fine_edges[i] + half_sub;
    const float weight = counts_[i / kUpsample] / static_cast<float>(kUpsample);
    auto it = std::upper_bound(boundaries.begin(), boundaries.end(), middle);
    int64_t bucket = static_cast<int64_t>(it - boundaries.begin()) - 1;
    bucket = std::clamp<int64_t>(bucket, 0, bins_ - 1);
    moved[bucket] += weight;
  }
  return moved;
}

namespace {
template <typename T>
T pairwise(const T* a, int64_t n) {
  if (n < 8) {
    T sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += a[i];
    return sum;
  }
  if (n <= 128) {
    T r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    T sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) sum += a[i];
    return sum;
  }
  int64_t half = n / 2;
  half -= half % 8;
  return pairwise(a, half) + pairwise(a + half, n - half);
}
}  // namespace

double numpy_pairwise_sum(const double* values, int64_t n) { return pairwise(values, n); }
float numpy_pairwise_sum(const float* values, int64_t n) { return pairwise(values, n); }

}  // namespace quant::calibration
