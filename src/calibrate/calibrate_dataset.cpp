// calibrate_dataset(): the `quantize calibrate` job, dataset files to a checked calibration table.
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <memory>
#include <utility>

#include "quant/calibrate.h"
#include "quant/dataset.h"

namespace quant {
namespace {

using Key = std::pair<std::string, CalibrationMethod>;

// Streams every batch of the dataset to `visit(batch)`.
template <typename Visit>
Status for_each_batch(const std::vector<std::string>& files, Visit&& visit) {
  QUANT_ASSIGN_OR_RETURN(DatasetReader reader, open_dataset(files));
  Batch batch;
  for (;;) {
    QUANT_ASSIGN_OR_RETURN(bool more, reader.next(batch));
    if (!more) return Status::success();
    QUANT_TRY(visit(batch));
  }
}

// The files a tensor's arrays come from, for messages: "a.npy" or "a.npy (and 2 more files)".
std::string files_of(const DatasetReader& reader, const std::string& tensor) {
  std::vector<std::string> files;
  for (const DatasetArray& array : reader.arrays()) {
    if (array.tensor == tensor && (files.empty() || files.back() != array.file)) files.push_back(array.file);
  }
  if (files.empty()) return "";
  return files.size() == 1 ? files[0] : fmt::format("{} (and {} more files)", files[0], files.size() - 1);
}

// A result a quantizer can use: finite ranges and a positive, finite scale for every channel. A range too wide
// for float32 arithmetic (activations near ±3e38) gives an infinite scale, which would quantize everything to
// the zero point and is written to JSON as null.
Status check_result(const CalibrationResult& result, CalibrationMethod method) {
  if (result.values_seen == result.values_ignored) {
    return impossible(fmt::format("every one of its {} values is NaN or infinite: nothing to calibrate",
                                  result.values_seen));
  }
  for (size_t c = 0; c < result.qparams.size(); ++c) {
    const std::string channel = result.qparams.size() > 1 ? fmt::format(" (channel {})", c) : "";
    const float lo = result.lo[c];
    const float hi = result.hi[c];
    const float scale = result.qparams[c].scale;
    if (!std::isfinite(lo) || !std::isfinite(hi) || !std::isfinite(scale) || !(scale > 0.0f)) {
      return impossible(fmt::format("method {}{}: the range [{:g}, {:g}] gives scale {:g}, which no integer grid can "
                                    "use (the values are too large for float32 arithmetic)",
                                    method_name(method), channel, lo, hi, scale));
    }
  }
  return Status::success();
}

}  // namespace

Result<CalibrationTable> calibrate_dataset(const CalibrationRequest& request) {
  if (request.methods.empty()) return usage_error("no calibration method given");
  CalibrationOptions options = request.options;
  for (CalibrationMethod method : request.methods) {  // a bad combination fails before any data is read
    options.method = method;
    QUANT_TRY(Calibrator::create(options));
  }
  CalibrationTable table;
  table.convention = options.convention;
  table.spec = options.spec;
  table.channel_axis = options.channel_axis;
  table.percentile = options.percentile;
  table.averaging_constant = options.averaging_constant;
  table.sources = request.data_files;

  // The dataset as its headers describe it: something to calibrate, every array with values.
  QUANT_ASSIGN_OR_RETURN(DatasetReader dataset, open_dataset(request.data_files));
  if (dataset.tensors().empty()) {
    return Error(impossible("the dataset holds no arrays: nothing to calibrate"))
        .in_file(request.data_files.empty() ? "" : request.data_files.front());
  }
  for (const DatasetTensor& tensor : dataset.tensors()) {
    if (tensor.batches == 0 || tensor.tokens == 0 || tensor.features == 0) {
      return Error(impossible(fmt::format("no values ({} batches of {} tokens x {} features): nothing to calibrate",
                                          tensor.batches, tensor.tokens, tensor.features)))
          .in_file(files_of(dataset, tensor.name))
          .in_tensor(tensor.name);
    }
  }

  // One calibrator per (tensor, method), created when the tensor is first met; a pass reads every batch.
  std::map<Key, std::unique_ptr<Calibrator>> calibrators;
  std::vector<std::string> tensor_order;
  int passes = 1;
  for (int pass = 0; pass < passes; ++pass) {
    for (auto& [key, calibrator] : calibrators) calibrator->start_pass(pass);
    QUANT_TRY(for_each_batch(request.data_files, [&](const Batch& batch) -> Status {
      const std::vector<int64_t> shape = {batch.tokens, batch.features};
      for (CalibrationMethod method : request.methods) {
        std::unique_ptr<Calibrator>& slot = calibrators[{batch.tensor, method}];
        if (!slot) {
          options.method = method;
          QUANT_ASSIGN_OR_RETURN(slot, Calibrator::create(options));
          slot->start_pass(pass);
          passes = std::max(passes, slot->passes_needed());
          if (method == request.methods.front()) tensor_order.push_back(batch.tensor);
        }
        if (pass < slot->passes_needed()) {
          Status observed = slot->observe(batch.values, shape);
          if (!observed) return std::move(observed).error().in_file(batch.file).in_tensor(batch.tensor);
        }
      }
      return Status::success();
    }));
  }

  // The results, each checked where it is computed, and a meter for each.
  std::map<Key, QuantErrorMeter> meters;
  for (const std::string& tensor : tensor_order) {
    for (CalibrationMethod method : request.methods) {
      auto result = calibrators.at({tensor, method})->finish();
      if (result) {
        Status usable = check_result(*result, method);
        if (!usable) result = std::move(usable).error();
      }
      if (!result) return std::move(result).error().in_file(files_of(dataset, tensor)).in_tensor(tensor);
      meters.emplace(Key{tensor, method}, QuantErrorMeter(result->qparams, table.channel_axis));
      table.entries.push_back({tensor, method, std::move(*result), std::nullopt, std::nullopt});
    }
  }
  // A last pass measures what each choice would cost on the calibration data itself.
  QUANT_TRY(for_each_batch(request.data_files, [&](const Batch& batch) -> Status {
    const std::vector<int64_t> shape = {batch.tokens, batch.features};
    for (CalibrationMethod method : request.methods) {
      Status added = meters.at({batch.tensor, method}).add(batch.values, shape);
      if (!added) return std::move(added).error().in_file(batch.file).in_tensor(batch.tensor);
    }
    return Status::success();
  }));
  for (CalibrationEntry& e : table.entries) {
    const QuantErrorMeter& meter = meters.at({e.tensor, e.method});
    e.mse = meter.mse();
    e.sqnr_db = meter.sqnr_db();
  }
  return table;
}

}  // namespace quant
