// The three ways the references build histograms, each reproduced in float32 the way its library computes it,
// and the growing histogram our default convention uses (TensorRT's, with a memory cap).
//   AbsoluteGrowingHistogram  pytorch-quantization HistogramCalibrator (torch_hist=True): |x| from 0, the bin width
//                             fixed by the first batch, bins appended (torch.arange edges) when a batch exceeds them.
//   RangeMergingHistogram     torch.ao HistogramObserver (2.x): signed over [min, max], a fixed bin count; when the
//                             range grows the old histogram is split into 16 sub-bins placed at their midpoints.
//   numpy_uniform_histogram   numpy.histogram with float32 data and range (ONNX Runtime's collectors).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "quant/error.h"

namespace quant::calibration {

// torch.linspace(start, end, steps) for float32 on CPU: the first half counts up from start, the second half
// down from end, in blocks of `vector_width` lanes that step from the block's first value.
std::vector<float> torch_linspace(float start, float end, int64_t steps, int vector_width = 8);
// torch.arange(start=0, end, step) for float32 on CPU: computed in double, lanes step from each block's base.
std::vector<float> torch_arange_from_zero(float end, float step, int vector_width = 8);
// torch.histc(x, bins, lo, hi) on CPU (bin = trunc((x - lo) * bins / (hi - lo)) in float32; values outside are
// dropped, the last bin is closed). Counts are added into `counts` (size bins).
void torch_histc_add(std::span<const float> values, float lo, float hi, std::span<double> counts);

// numpy.linspace(first, last, n + 1) in float32 (numpy 2.x), the edges np.histogram uses for float32 data.
std::vector<float> numpy_uniform_edges(float first, float last, int64_t bins);
// np.histogram(values, bins, range=(first, last)) for float32 values (numpy 2.x rules), added into `counts`.
// With `absolute`, histograms |x|.
void numpy_histogram_add(std::span<const float> values, float first, float last, std::span<const float> edges,
                         bool absolute, std::span<int64_t> counts);

class AbsoluteGrowingHistogram {
 public:
  AbsoluteGrowingHistogram(int64_t first_bins, int64_t max_bins, bool merge_past_cap)
      : first_bins_(first_bins), max_bins_(max_bins), merge_past_cap_(merge_past_cap) {}
  Status add(std::span<const float> values);
  bool empty() const { return edges_.empty(); }
  const std::vector<int64_t>& counts() const { return counts_; }
  const std::vector<float>& edges() const { return edges_; }

 private:
  Status merge_pairs_until_within_cap(float batch_max);
  int64_t first_bins_;
  int64_t max_bins_;
  bool merge_past_cap_;
  bool merged_ = false;   // past the cap: edges are i * width, grown by us, not by torch.arange
  std::vector<int64_t> counts_;
  std::vector<float> edges_;
};

class RangeMergingHistogram {
 public:
  explicit RangeMergingHistogram(int64_t bins) : bins_(bins) {}
  void add(std::span<const float> values);   // values must be finite
  bool empty() const { return !initialised_; }
  const std::vector<float>& counts() const { return counts_; }
  float min() const { return min_; }
  float max() const { return max_; }

 private:
  std::vector<float> upscale(float new_min, float new_max) const;
  int64_t bins_;
  bool initialised_ = false;
  float min_ = 0.0f, max_ = 0.0f;
  std::vector<float> counts_;
};

// numpy's pairwise summation (np.sum / np.add.reduce over a contiguous 1-D array).
double numpy_pairwise_sum(const double* values, int64_t n);
float numpy_pairwise_sum(const float* values, int64_t n);

}  // namespace quant::calibration
