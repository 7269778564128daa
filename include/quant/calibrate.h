// Calibration: choosing activation ranges from a representative dataset, streamed one batch at a time.
//
// A Calibrator observes batches (never the whole dataset) and then gives, per tensor or per channel, the observed
// min/max, the chosen range [lo, hi] and the scale / zero point for a QuantSpec. Methods:
//   minmax      running min and max.
//   ema         moving-average min/max: the first batch sets the state, then m <- m + c * (batch_m - m), c = 0.01.
//   entropy     the threshold minimising the KL divergence between the histogram and its quantized version.
//   percentile  the histogram bin where the cumulative count reaches p percent.
//   mse         the range minimising the L2 quantization error over the histogram.
// Each Convention (quant/qparams.h) reproduces its reference: histograms are built the way the reference builds
// them, so ranges match it bit for bit (docs/calibration.md lists the exceptions). Histogram methods are per
// tensor only; minmax and ema also work per channel along any axis.
//
// Some references (ONNX Runtime's histogram calibrators) histogram the whole dataset over its final range: their
// calibrators ask for two passes over the batches (passes_needed() == 2); the first only finds the range, so
// memory stays bounded by the histogram.
//
// A CalibrationTable gathers the results per tensor and method; it is written as JSON (docs/calibration.md has
// the schema) and turns into GGUF metadata under the keys quantize.calibration.*.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "quant/error.h"
#include "quant/qparams.h"

namespace quant {

enum class CalibrationMethod { minmax, ema, entropy, percentile, mse };

std::string_view method_name(CalibrationMethod method);
Result<CalibrationMethod> parse_method(std::string_view name);

struct CalibrationOptions {
  Convention convention = Convention::quantize;
  CalibrationMethod method = CalibrationMethod::minmax;
  QuantSpec spec;
  double averaging_constant = 0.01;       // ema
  std::optional<double> percentile;       // default: 99.99 (quantize, tensorrt), 99.999 (onnxruntime)
  bool percentile_both_tails = false;     // onnxruntime: cut (100 - p) / 2 % from each tail of the signed histogram
  int num_bins = 2048;                    // histogram bins (onnxruntime entropy, first batch of tensorrt / torch)
  int num_quantized_bins = 128;           // onnxruntime entropy
  std::optional<int> channel_axis;        // per-channel minmax / ema
  // Memory cap of one growing histogram (quantize and tensorrt conventions), in bins of 8 bytes. Past it our
  // default convention merges neighbouring bins (doubling the width); tensorrt fails instead of diverging.
  int64_t max_histogram_bins = int64_t{1} << 20;
};

// What a histogram-based method looked at, for reports and reproducibility.
struct HistogramSummary {
  int64_t bins = 0;
  double bin_width = 0.0;
  float first_edge = 0.0f;
  float last_edge = 0.0f;
  double total = 0.0;
  int64_t chosen_index = -1;   // the bin / edge / centre index the method settled on
};

// One calibrated tensor: vectors have one entry per channel (one for per-tensor).
struct CalibrationResult {
  std::vector<float> observed_min, observed_max;
  std::vector<float> lo, hi;   // the chosen range
  std::vector<QParams> qparams;
  std::optional<HistogramSummary> histogram;
  uint64_t values_seen = 0;
  uint64_t values_ignored = 0;  // NaN or infinite
};

class Calibrator {
 public:
  virtual ~Calibrator() = default;

  // A calibrator for one tensor, or an error if the convention has no such method or the options conflict.
  static Result<std::unique_ptr<Calibrator>> create(const CalibrationOptions& options);

  // 1, or 2 when every batch must be observed twice (first to find the range, then to fill the histogram).
  virtual int passes_needed() const { return 1; }
  // Called before the batches of pass 0, 1, ...
  virtual void start_pass(int pass) { (void)pass; }
  // Observes one batch of values in C order with this shape.
  virtual Status observe(std::span<const float> values, std::span<const int64_t> shape) = 0;
  // The range and qparams of everything observed so far.
  virtual Result<CalibrationResult> finish() const = 0;
};

// Error of quantizing `values` with the result's qparams: mean squared error and signal-to-quantization-noise
// ratio in dB (infinite when the error is zero). Accumulates over batches.
class QuantErrorMeter {
 public:
  QuantErrorMeter(std::vector<QParams> qparams, std::optional<int> channel_axis)
      : qparams_(std::move(qparams)), channel_axis_(channel_axis) {}
  Status add(std::span<const float> values, std::span<const int64_t> shape);
  double mse() const { return count_ == 0 ? 0.0 : error_sum_ / static_cast<double>(count_); }
  double sqnr_db() const;

 private:
  std::vector<QParams> qparams_;
  std::optional<int> channel_axis_;
  double error_sum_ = 0.0;
  double signal_sum_ = 0.0;
  uint64_t count_ = 0;
};

// A calibration table: per tensor, per method, the result and the settings that made it.
struct CalibrationEntry {
  std::string tensor;
  CalibrationMethod method = CalibrationMethod::minmax;
  CalibrationResult result;
  std::optional<double> mse, sqnr_db;
};

struct CalibrationTable {
  Convention convention = Convention::quantize;
  QuantSpec spec;
  std::optional<int> channel_axis;
  std::optional<double> percentile;
  double averaging_constant = 0.01;
  std::vector<std::string> sources;        // the data files read
  std::vector<CalibrationEntry> entries;
};

// The table as JSON text (schema in docs/calibration.md), and back.
std::string calibration_table_to_json(const CalibrationTable& table);
Result<CalibrationTable> calibration_table_from_json(std::string_view text);

// GGUF-ready metadata: plain key / value pairs for the GGUF writer. Keys (docs/calibration.md):
//   quantize.calibration.version (u32), .convention, .dtype (str), .symmetric (bool), .per_channel_axis (i32,
//   -1 when per tensor), .tensors (array of str), and per entry i, in the order of .tensors:
//   quantize.calibration.<tensor>.<method>.{min,max,lo,hi,scale} (array of f32),
//   quantize.calibration.<tensor>.<method>.zero_point (array of i32).
struct MetadataValue {
  std::variant<uint32_t, int32_t, bool, std::string, std::vector<std::string>, std::vector<float>,
               std::vector<int32_t>>
      value;
};
struct MetadataEntry {
  std::string key;
  MetadataValue value;
};
std::vector<MetadataEntry> calibration_table_to_gguf_metadata(const CalibrationTable& table);

// `quantize calibrate` as a library call (beside collect_imatrix in quant/imatrix.h): every batch of the dataset
// goes through one Calibrator per tensor and method (twice when a method needs two passes), then a last pass
// measures each choice's MSE and SQNR on the same data. Memory holds one batch and the calibrators' state.
struct CalibrationRequest {
  std::vector<std::string> data_files;      // read in this order (quant/dataset.h)
  std::vector<CalibrationMethod> methods;   // one entry per method, in this order, for every tensor
  CalibrationOptions options;               // convention, spec, channel axis, percentile...; `method` is ignored
};
// Errors: a method the convention lacks or a bad option (usage), before any value is read; a file that cannot be
// read (io) or is damaged (invalid_input); and, naming the file and tensor, a dataset with nothing to calibrate
// (no arrays, an array with no values, only NaN/Inf) or a result no quantizer can use, such as a range too wide
// for a float32 scale (impossible). A table that comes back always reads back with calibration_table_from_json.
Result<CalibrationTable> calibrate_dataset(const CalibrationRequest& request);

}  // namespace quant
