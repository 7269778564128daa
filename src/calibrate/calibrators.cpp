// The calibrators behind Calibrator::create: running min/max (per tensor or channel), and the three histogram
// families, each paired with the searches of its reference.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "calibrate/histograms.h"
#include "calibrate/searches.h"
#include "quant/calibrate.h"

namespace quant {

namespace {

using calibration::AbsoluteGrowingHistogram;
using calibration::RangeMergingHistogram;

// Splits a batch into (outer, channels, inner) around the channel axis; per tensor is one channel.
struct ChannelSplit {
  int64_t outer = 1, channels = 1, inner = 1;
};

Result<ChannelSplit> split_channels(std::span<const int64_t> shape, std::optional<int> axis, size_t count) {
  ChannelSplit split;
  int64_t total = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(total, d, &total)) return invalid_input("batch shape is negative or overflows");
  }
  if (static_cast<uint64_t>(total) != count) {
    return invalid_input(fmt::format("batch shape holds {} values but the batch has {}", total, count));
  }
  if (!axis) {
    split.inner = total;
    return split;
  }
  const int rank = static_cast<int>(shape.size());
  const int a = *axis < 0 ? *axis + rank : *axis;
  if (a < 0 || a >= rank) return usage_error(fmt::format("channel axis {} is outside a batch of rank {}", *axis, rank));
  split.channels = shape[a];
  for (int d = 0; d < a; ++d) split.outer *= shape[d];
  for (int d = a + 1; d < rank; ++d) split.inner *= shape[d];
  return split;
}

Result<std::vector<QParams>> qparams_for(const std::vector<float>& lo, const std::vector<float>& hi,
                                         const CalibrationOptions& options) {
  std::vector<QParams> out;
  out.reserve(lo.size());
  for (size_t c = 0; c < lo.size(); ++c) {
    QUANT_ASSIGN_OR_RETURN(QParams p, compute_qparams(lo[c], hi[c], options.spec, options.convention));
    out.push_back(p);
  }
  return out;
}

// Filters out NaN and infinities, which every reference ignores or would turn into an unusable range.
std::vector<float> finite_values(std::span<const float> values, uint64_t& ignored) {
  std::vector<float> out;
  out.reserve(values.size());
  for (float v : values) {
    if (std::isfinite(v)) out.push_back(v);
    else ++ignored;
  }
  return out;
}

// minmax and ema, per tensor or per channel.
class RunningRangeCalibrator final : public Calibrator {
 public:
  explicit RunningRangeCalibrator(CalibrationOptions options) : options_(std::move(options)) {}

  Status observe(std::span<const float> values, std::span<const int64_t> shape) override {
    QUANT_ASSIGN_OR_RETURN(ChannelSplit split, split_channels(shape, options_.channel_axis, values.size()));
    if (!min_.empty() && static_cast<int64_t>(min_.size()) != split.channels) {
      return invalid_input(fmt::format("batch has {} channels, earlier batches had {}", split.channels, min_.size()));
    }
    std::vector<float> batch_min(split.channels, INFINITY), batch_max(split.channels, -INFINITY);
    std::vector<bool> seen(split.channels, false);
    for (int64_t o = 0; o < split.outer; ++o) {
      for (int64_t c = 0; c < split.channels; ++c) {
        const float* row = values.data() + (o * split.channels + c) * split.inner;
        for (int64_t k = 0; k < split.inner; ++k) {
          const float v = row[k];
          if (!std::isfinite(v)) {
            ++ignored_;
            continue;
          }
          batch_min[c] = std::min(batch_min[c], v);
          batch_max[c] = std::max(batch_max[c], v);
          seen[c] = true;
        }
      }
    }
    seen_ += values.size();
    if (std::none_of(seen.begin(), seen.end(), [](bool b) { return b; })) return Status::success();
    if (min_.empty()) {  // the first batch sets the state, for ema too (no averaging with infinities)
      min_ = batch_min;
      max_ = batch_max;
      return Status::success();
    }
    const float c = static_cast<float>(options_.averaging_constant);
    for (size_t ch = 0; ch < min_.size(); ++ch) {
      if (!seen[ch]) continue;
      if (options_.method == CalibrationMethod::ema) {
        min_[ch] = min_[ch] + c * (batch_min[ch] - min_[ch]);
        max_[ch] = max_[ch] + c * (batch_max[ch] - max_[ch]);
      } else {
        min_[ch] = std::min(min_[ch], batch_min[ch]);
        max_[ch] = std::max(max_[ch], batch_max[ch]);
      }
    }
    return Status::success();
  }

  Result<CalibrationResult> finish() const override {
    if (min_.empty()) return impossible("no finite values were observed");
    CalibrationResult r;
    r.values_seen = seen_;
    r.values_ignored = ignored_;
    r.observed_min = min_;
    r.observed_max = max_;
    r.lo = min_;
    r.hi = max_;
    for (size_t c = 0; c < min_.size(); ++c) {
      const float amax = std::max(std::fabs(min_[c]), std::fabs(max_[c]));
      if (options_.convention == Convention::tensorrt) {  // MaxCalibrator keeps amax only
        r.lo[c] = options_.spec.is_signed ? -amax : 0.0f;
        r.hi[c] = amax;
      } else if (options_.convention == Convention::onnxruntime && options_.spec.symmetric) {
        r.lo[c] = -amax;  // MinMaxCalibrater(symmetric=True)
        r.hi[c] = amax;
      }
    }
    QUANT_ASSIGN_OR_RETURN(r.qparams, qparams_for(r.lo, r.hi, options_));
    return r;
  }

 private:
  CalibrationOptions options_;
  std::vector<float> min_, max_;
  uint64_t seen_ = 0, ignored_ = 0;
};

// Our default and TensorRT's: |x| histogram from 0 with the first batch's bin width.
class AbsoluteHistogramCalibrator final : public Calibrator {
 public:
  explicit AbsoluteHistogramCalibrator(CalibrationOptions options)
      : options_(std::move(options)),
        histogram_(options_.num_bins, options_.max_histogram_bins, options_.convention == Convention::quantize) {}

  Status observe(std::span<const float> values, std::span<const int64_t> shape) override {
    QUANT_TRY(split_channels(shape, std::nullopt, values.size()));
    const std::vector<float> finite = finite_values(values, ignored_);
    seen_ += values.size();
    for (float v : finite) {
      min_ = std::min(min_, v);
      max_ = std::max(max_, v);
    }
    return histogram_.add(finite);
  }

  Result<CalibrationResult> finish() const override {
    if (histogram_.empty()) return impossible("no finite values were observed");
    const auto& counts = histogram_.counts();
    const auto& edges = histogram_.edges();
    HistogramSummary summary;
    summary.bins = static_cast<int64_t>(counts.size());
    summary.bin_width = static_cast<double>(edges[1]) - static_cast<double>(edges[0]);
    summary.first_edge = edges.front();
    summary.last_edge = edges.back();
    for (int64_t c : counts) summary.total += static_cast<double>(c);
    const bool is_unsigned = !options_.spec.is_signed;
    float amax = 0.0f;
    switch (options_.method) {
      case CalibrationMethod::entropy: {
        const int levels = 1 << (options_.spec.bits - 1 + (is_unsigned ? 1 : 0));
        const int64_t kept = calibration::tensorrt_entropy_bins(counts, levels);
        summary.chosen_index = kept;
        amax = edges[std::min<size_t>(kept, edges.size() - 1)];
        break;
      }
      case CalibrationMethod::percentile: {
        const double p = options_.percentile.value_or(99.99);
        const int64_t idx = calibration::cumulative_fraction_index(counts, p / 100.0);
        summary.chosen_index = idx;
        amax = edges[std::min<size_t>(idx, edges.size() - 1)];
        break;
      }
      case CalibrationMethod::mse: {
        std::vector<float> centers(edges.size() - 1);
        for (size_t j = 0; j + 1 < edges.size(); ++j) centers[j] = (edges[j + 1] + edges[j]) / 2.0f;
        const int64_t idx = calibration::tensorrt_mse_center(counts, centers, options_.spec.bits, is_unsigned);
        summary.chosen_index = idx;
        amax = centers[std::min<size_t>(idx, centers.size() - 1)];
        break;
      }
      default: return usage_error("histogram calibrator asked for a non-histogram method");
    }
    CalibrationResult r;
    r.values_seen = seen_;
    r.values_ignored = ignored_;
    r.observed_min = {min_};
    r.observed_max = {max_};
    // Our default reports (0, amax) for tensors that never went negative; TensorRT only knows amax.
    const bool one_sided = is_unsigned || (options_.convention == Convention::quantize && min_ >= 0.0f);
    r.lo = {one_sided ? 0.0f : -amax};
    r.hi = {amax};
    r.histogram = summary;
    QUANT_ASSIGN_OR_RETURN(r.qparams, qparams_for(r.lo, r.hi, options_));
    return r;
  }

 private:
  CalibrationOptions options_;
  AbsoluteGrowingHistogram histogram_;
  float min_ = INFINITY, max_ = -INFINITY;
  uint64_t seen_ = 0, ignored_ = 0;
};

// ONNX Runtime's: one histogram of the whole dataset over its final range, hence two passes.
class WholeRangeHistogramCalibrator final : public Calibrator {
 public:
  explicit WholeRangeHistogramCalibrator(CalibrationOptions options) : options_(std::move(options)) {
    absolute_ = options_.method == CalibrationMethod::percentile && !options_.percentile_both_tails;
  }

  int passes_needed() const override { return 2; }

  void start_pass(int pass) override {
    pass_ = pass;
    if (pass != 1 || !std::isfinite(min_)) return;
    if (absolute_) {
      first_ = abs_min_;
      last_ = abs_max_;
    } else {
      const float threshold = std::max(std::fabs(min_), std::fabs(max_));
      first_ = -threshold;
      last_ = threshold;
    }
    if (first_ == last_) {  // numpy widens an empty range by half a unit each way
      first_ = first_ - 0.5f;
      last_ = last_ + 0.5f;
    }
    edges_ = calibration::numpy_uniform_edges(first_, last_, options_.num_bins);
    counts_.assign(static_cast<size_t>(options_.num_bins), 0);
  }

  Status observe(std::span<const float> values, std::span<const int64_t> shape) override {
    QUANT_TRY(split_channels(shape, std::nullopt, values.size()));
    if (pass_ == 0) {
      const std::vector<float> finite = finite_values(values, ignored_);
      seen_ += values.size();
      for (float v : finite) {
        min_ = std::min(min_, v);
        max_ = std::max(max_, v);
        abs_min_ = std::min(abs_min_, std::fabs(v));
        abs_max_ = std::max(abs_max_, std::fabs(v));
      }
      return Status::success();
    }
    if (edges_.empty()) return Status::success();
    uint64_t dropped = 0;
    const std::vector<float> finite = finite_values(values, dropped);
    calibration::numpy_histogram_add(finite, first_, last_, edges_, absolute_, counts_);
    return Status::success();
  }

  Result<CalibrationResult> finish() const override {
    if (!std::isfinite(min_)) return impossible("no finite values were observed");
    if (edges_.empty()) return impossible("the second pass over the data (filling the histogram) did not run");
    HistogramSummary summary;
    summary.bins = static_cast<int64_t>(counts_.size());
    summary.bin_width = static_cast<double>(edges_[1]) - static_cast<double>(edges_[0]);
    summary.first_edge = edges_.front();
    summary.last_edge = edges_.back();
    for (int64_t c : counts_) summary.total += static_cast<double>(c);
    float lo = 0.0f, hi = 0.0f;
    if (options_.method == CalibrationMethod::entropy) {
      const auto [start, end] = calibration::onnxruntime_entropy_window(counts_, options_.num_quantized_bins);
      summary.chosen_index = end;
      lo = edges_[start];
      hi = edges_[end];
    } else if (absolute_) {
      const double p = options_.percentile.value_or(99.999);
      const int64_t idx = calibration::cumulative_fraction_index(counts_, p / 100.0);
      summary.chosen_index = idx;
      hi = edges_[std::min<size_t>(idx, edges_.size() - 1)];
      lo = -hi;
    } else {
      const double p = options_.percentile.value_or(99.999);
      const double cut = (100.0 - p) / 200.0;
      const int64_t right = calibration::cumulative_fraction_index(counts_, 1.0 - cut);
      const int64_t left = calibration::cumulative_fraction_index(counts_, cut);
      summary.chosen_index = right;
      lo = edges_[std::min<size_t>(left, edges_.size() - 1)];
      hi = edges_[std::min<size_t>(right, edges_.size() - 1)];
    }
    // ONNX Runtime clamps the thresholds to the observed signed range.
    lo = std::max(lo, min_);
    hi = std::min(hi, max_);
    CalibrationResult r;
    r.values_seen = seen_;
    r.values_ignored = ignored_;
    r.observed_min = {min_};
    r.observed_max = {max_};
    r.lo = {lo};
    r.hi = {hi};
    r.histogram = summary;
    QUANT_ASSIGN_OR_RETURN(r.qparams, qparams_for(r.lo, r.hi, options_));
    return r;
  }

 private:
  CalibrationOptions options_;
  bool absolute_ = false;
  int pass_ = 0;
  float min_ = INFINITY, max_ = -INFINITY, abs_min_ = INFINITY, abs_max_ = -INFINITY;
  float first_ = 0.0f, last_ = 0.0f;
  std::vector<float> edges_;
  std::vector<int64_t> counts_;
  uint64_t seen_ = 0, ignored_ = 0;
};

// torch.ao HistogramObserver: signed histogram merged batch by batch, then the greedy L2 search.
class MergingHistogramCalibrator final : public Calibrator {
 public:
  explicit MergingHistogramCalibrator(CalibrationOptions options)
      : options_(std::move(options)), histogram_(options_.num_bins) {}

  Status observe(std::span<const float> values, std::span<const int64_t> shape) override {
    QUANT_TRY(split_channels(shape, std::nullopt, values.size()));
    seen_ += values.size();
    histogram_.add(finite_values(values, ignored_));
    return Status::success();
  }

  Result<CalibrationResult> finish() const override {
    if (histogram_.empty()) return impossible("no finite values were observed");
    const auto [lo, hi] = calibration::torch_l2_search(histogram_.counts(), histogram_.min(), histogram_.max());
    HistogramSummary summary;
    summary.bins = static_cast<int64_t>(histogram_.counts().size());
    summary.bin_width = (static_cast<double>(histogram_.max()) - histogram_.min()) / static_cast<double>(summary.bins);
    summary.first_edge = histogram_.min();
    summary.last_edge = histogram_.max();
    for (float c : histogram_.counts()) summary.total += c;
    CalibrationResult r;
    r.values_seen = seen_;
    r.values_ignored = ignored_;
    r.observed_min = {histogram_.min()};
    r.observed_max = {histogram_.max()};
    r.lo = {lo};
    r.hi = {hi};
    r.histogram = summary;
    QUANT_ASSIGN_OR_RETURN(r.qparams, qparams_for(r.lo, r.hi, options_));
    return r;
  }

 private:
  CalibrationOptions options_;
  RangeMergingHistogram histogram_;
  uint64_t seen_ = 0, ignored_ = 0;
};

}  // namespace

std::string_view method_name(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::minmax: return "minmax";
    case CalibrationMethod::ema: return "ema";
    case CalibrationMethod::entropy: return "entropy";
    case CalibrationMethod::percentile: return "percentile";
    case CalibrationMethod::mse: return "mse";
  }
  return "?";
}

Result<CalibrationMethod> parse_method(std::string_view name) {
  for (CalibrationMethod m : {CalibrationMethod::minmax, CalibrationMethod::ema, CalibrationMethod::entropy,
                              CalibrationMethod::percentile, CalibrationMethod::mse}) {
    if (name == method_name(m)) return m;
  }
  return usage_error(fmt::format("unknown calibration method '{}' (expected minmax, ema, entropy, percentile or mse)",
                                 name));
}

Result<std::unique_ptr<Calibrator>> Calibrator::create(const CalibrationOptions& options) {
  QUANT_TRY(integer_range(options.spec, options.convention));
  // Written as "not inside" so that NaN, which every comparison fails, is refused too.
  if (!(options.averaging_constant > 0.0 && options.averaging_constant <= 1.0)) {
    return usage_error(fmt::format("averaging constant {} is outside (0, 1]", options.averaging_constant));
  }
  if (options.percentile && !(*options.percentile >= 0.0 && *options.percentile <= 100.0)) {
    return usage_error(fmt::format("percentile {} is outside [0, 100]", *options.percentile));
  }
  if (options.num_bins < 2 || options.num_quantized_bins < 2 || options.num_quantized_bins > options.num_bins) {
    return usage_error("histograms need at least 2 bins and no more quantized bins than bins");
  }
  const auto name = [&] {
    return fmt::format("{} convention has no {} calibrator", convention_name(options.convention),
                       method_name(options.method));
  };
  const bool histogram = options.method != CalibrationMethod::minmax && options.method != CalibrationMethod::ema;
  if (histogram && options.channel_axis) {
    return usage_error(fmt::format("{} is per tensor only (as in every reference); use minmax or ema per channel",
                                   method_name(options.method)));
  }
  switch (options.method) {
    case CalibrationMethod::minmax: break;
    case CalibrationMethod::ema:
      if (options.convention == Convention::tensorrt) return usage_error(name() + " (pytorch-quantization has none)");
      break;
    case CalibrationMethod::entropy:
    case CalibrationMethod::percentile:
      if (options.convention == Convention::torch) return usage_error(name() + " (torch.ao has none)");
      if (options.convention == Convention::onnxruntime) {
        return std::unique_ptr<Calibrator>(new WholeRangeHistogramCalibrator(options));
      }
      return std::unique_ptr<Calibrator>(new AbsoluteHistogramCalibrator(options));
    case CalibrationMethod::mse:
      if (options.convention == Convention::onnxruntime) return usage_error(name() + " (onnxruntime has none)");
      if (options.convention == Convention::torch) {
        return std::unique_ptr<Calibrator>(new MergingHistogramCalibrator(options));
      }
      return std::unique_ptr<Calibrator>(new AbsoluteHistogramCalibrator(options));
  }
  return std::unique_ptr<Calibrator>(new RunningRangeCalibrator(options));
}

}  // namespace quant
