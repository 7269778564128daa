// The proxy measurer: how much error each candidate type puts into a tensor's output, relative to the output,
// without running the model.
//
// For a matrix W fed inputs x whose columns are independent with mean squares imp_j (what an importance matrix
// holds), the expected energy of the output error is E||(W − Q(W)) x||² = Σ_ij imp_j (w_ij − q_ij)², and of the
// output itself Σ_ij imp_j w_ij². Their ratio (a noise-to-signal ratio) is comparable across tensors of any scale.
// Rows are quantized independently by every ggml type, so a sample of rows measures the whole tensor.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

#include <fmt/format.h>

#include "convert/work_pool.h"
#include "quant/automix.h"

namespace quant {
namespace {

// Fewer rows than this would let one row's luck decide a tensor's figure.
constexpr int64_t kMinSampleRows = 16;

// The rows to measure: all of them, or `limit` evenly spaced ones.
std::vector<int64_t> sample_rows(int64_t rows, int64_t limit) {
  std::vector<int64_t> picked;
  if (rows <= limit) {
    for (int64_t r = 0; r < rows; ++r) picked.push_back(r);
    return picked;
  }
  for (int64_t k = 0; k < limit; ++k) picked.push_back(int64_t((2 * k + 1) * static_cast<unsigned __int128>(rows) / (2 * limit)));
  return picked;
}

struct SampledRows {
  int64_t row_length = 0;
  std::vector<int64_t> rows;   // indices into the tensor's rows (all dimensions above the first flattened)
  std::vector<float> values;   // rows.size() x row_length
};

Result<SampledRows> read_sampled_rows(const ModelSource& model, const TensorInfo& tensor, int64_t limit) {
  const FormatInfo& source = format_of(tensor.type);
  if (source.dequantize == nullptr) {
    return Error(impossible(fmt::format("type {} cannot be read as numbers", source.name))).in_tensor(tensor.name);
  }
  SampledRows sampled;
  sampled.row_length = tensor.row_length();
  sampled.rows = sample_rows(tensor.rows(), limit);
  const std::optional<uint64_t> bytes_per_row = row_bytes(source, sampled.row_length);
  if (!bytes_per_row) return Error(invalid_input("row length does not fill its type's blocks")).in_tensor(tensor.name);
  sampled.values.resize(sampled.rows.size() * size_t(sampled.row_length));
  std::vector<uint8_t> raw(*bytes_per_row);
  for (size_t k = 0; k < sampled.rows.size(); ++k) {
    QUANT_TRY(model.read_tensor(tensor, uint64_t(sampled.rows[k]) * *bytes_per_row, raw));
    source.dequantize(raw.data(), sampled.values.data() + k * size_t(sampled.row_length), sampled.row_length);
  }
  return sampled;
}

// Σ imp (w − q)² and Σ imp w² of the sampled rows for one type; rows of one expert share an importance slice.
struct ErrorSums {
  double error = 0;
  double signal = 0;
};

Result<ErrorSums> weighted_error(const SampledRows& sampled, const TensorInfo& tensor, const float* importance,
                                 TypeId type) {
  const FormatInfo& format = format_of(type);
  const int64_t n = sampled.row_length;
  const int64_t rows_per_expert = tensor.shape.size() > 1 ? tensor.shape[1] : 1;
  const std::optional<uint64_t> bytes_per_row = row_bytes(format, n);
  if (!bytes_per_row) return Error(impossible(fmt::format("rows do not fill {} blocks", format.name))).in_tensor(tensor.name);
  std::vector<uint8_t> packed(*bytes_per_row);
  std::vector<float> back(size_t(n), 0.0f);
  ErrorSums sums;
  for (size_t k = 0; k < sampled.rows.size(); ++k) {
    const float* row = sampled.values.data() + k * size_t(n);
    const int64_t expert = sampled.rows[k] / std::max<int64_t>(rows_per_expert, 1);
    const float* weights = importance == nullptr ? nullptr : importance + expert * n;
    // One row at a time gives the same bytes as the converter's chunks: every ggml quantizer works row by row.
    Status quantized = quantize_rows(format, row, packed.data(), 1, n, weights);
    if (!quantized) return std::move(quantized).error().in_tensor(tensor.name);
    format.dequantize(packed.data(), back.data(), n);
    for (int64_t j = 0; j < n; ++j) {
      const double w = weights == nullptr ? 1.0 : double(weights[j]);
      const double d = double(row[j]) - double(back[size_t(j)]);
      sums.error += w * d * d;
      sums.signal += w * double(row[j]) * double(row[j]);
    }
  }
  return sums;
}

class WeightedErrorMeasurer final : public SensitivityMeasurer {
 public:
  explicit WeightedErrorMeasurer(int64_t sample_values) : sample_values_(std::max<int64_t>(sample_values, 1)) {}

  std::string id() const override { return fmt::format("weighted-error/1 values={}", sample_values_); }
  std::string unit() const override { return "relative weighted error"; }

  Result<SensitivityTable> measure(const MeasureContext& context) override {
    const auto started = std::chrono::steady_clock::now();
    SensitivityTable table;
    table.unit = unit();
    table.tensors.resize(context.tensors.size());
    std::mutex mutex;
    std::optional<Error> failure;
    std::atomic<size_t> done{0};
    convert_internal::WorkPool pool(context.threads);
    pool.run(int(context.tensors.size()), [&](int index) {
      const MeasureTensor& item = context.tensors[size_t(index)];
      if (context.cancel != nullptr && context.cancel->load()) return;
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (failure) return;
      }
      Result<TensorSensitivity> measured = measure_tensor(*context.model, item);
      std::lock_guard<std::mutex> lock(mutex);
      if (!measured) {
        if (!failure) failure = std::move(measured).error();
        return;
      }
      table.tensors[size_t(index)] = std::move(measured).value();
      const size_t finished = ++done;
      if (context.progress) context.progress(finished, context.tensors.size(), item.tensor->name);
    });
    if (failure) return std::move(*failure).in_file(context.model->path());
    if (context.cancel != nullptr && context.cancel->load()) return Error(ErrorKind::interrupted, "interrupted");
    table.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return table;
  }

 private:
  Result<TensorSensitivity> measure_tensor(const ModelSource& model, const MeasureTensor& item) const {
    TensorSensitivity result;
    result.name = item.tensor->name;
    const int64_t row_length = std::max<int64_t>(item.tensor->row_length(), 1);
    const int64_t rows = std::max<int64_t>(kMinSampleRows, (sample_values_ + row_length - 1) / row_length);
    QUANT_ASSIGN_OR_RETURN(const SampledRows sampled, read_sampled_rows(model, *item.tensor, rows));
    for (TypeId type : item.types) {
      if (type == item.tensor->type) {
        result.costs.push_back({type, 0.0});  // kept as it is: exact
        continue;
      }
      auto sums = weighted_error(sampled, *item.tensor, item.importance, type);
      // A type whose quantized data would be invalid here (a scale overflowing f16) cannot be written: leave it out.
      if (!sums) {
        if (sums.error().kind() == ErrorKind::impossible) continue;
        return std::move(sums).error();
      }
      const double relative = sums->signal > 0 ? sums->error / sums->signal : (sums->error > 0 ? 1.0 : 0.0);
      result.costs.push_back({type, relative});
    }
    return result;
  }

  int64_t sample_values_;
};

}  // namespace

std::unique_ptr<SensitivityMeasurer> make_weighted_error_measurer(int64_t sample_values) {
  return std::make_unique<WeightedErrorMeasurer>(sample_values);
}

}  // namespace quant
