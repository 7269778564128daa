// `quantize calibrate --data FILE... --method M...`: choose activation ranges from a calibration dataset and
// write a calibration table (docs/calibration.md).
#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <map>
#include <memory>

#include "command.h"
#include "quant/atomic_file.h"
#include "quant/calibrate.h"
#include "quant/dataset.h"

namespace quant::cli {

namespace {

struct CalibrateArgs {
  std::vector<std::string> data;
  std::vector<std::string> methods;
  std::string dtype = "int8";
  bool symmetric = false;
  std::optional<int> per_channel;
  std::optional<double> percentile;
  std::string convention = "quantize";
  std::string output;
};

// Streams every batch of the dataset to `visit(tensor, values, shape)`.
template <typename Visit>
Status for_each_batch(const std::vector<std::string>& files, Visit&& visit) {
  QUANT_ASSIGN_OR_RETURN(DatasetReader reader, open_dataset(files));
  Batch batch;
  while (true) {
    QUANT_ASSIGN_OR_RETURN(bool more, reader.next(batch));
    if (!more) break;
    const std::vector<int64_t> shape = {batch.tokens, batch.features};
    QUANT_TRY(visit(batch.tensor, batch.values, shape));
  }
  return Status::success();
}

Result<CalibrationTable> calibrate(const CalibrateArgs& args) {
  CalibrationTable table;
  QUANT_ASSIGN_OR_RETURN(table.convention, parse_convention(args.convention));
  QUANT_ASSIGN_OR_RETURN(table.spec, parse_dtype(args.dtype));
  table.spec.symmetric = args.symmetric;
  table.channel_axis = args.per_channel;
  table.percentile = args.percentile;
  table.sources = args.data;
  std::vector<CalibrationMethod> methods;
  for (const std::string& m : args.methods) {
    QUANT_ASSIGN_OR_RETURN(CalibrationMethod method, parse_method(m));
    methods.push_back(method);
  }
  CalibrationOptions options;
  options.convention = table.convention;
  options.spec = table.spec;
  options.channel_axis = table.channel_axis;
  options.percentile = table.percentile;
  for (CalibrationMethod method : methods) {  // fail on a bad combination before reading any data
    options.method = method;
    QUANT_TRY(Calibrator::create(options));
  }

  // One calibrator per (tensor, method), created when the tensor is first met.
  std::map<std::pair<std::string, CalibrationMethod>, std::unique_ptr<Calibrator>> calibrators;
  std::vector<std::string> tensor_order;
  int passes = 1;
  for (int pass = 0; pass < passes; ++pass) {
    for (auto& [key, c] : calibrators) c->start_pass(pass);
    QUANT_TRY(for_each_batch(args.data, [&](const std::string& tensor, std::span<const float> values,
                                            std::span<const int64_t> shape) -> Status {
      for (CalibrationMethod method : methods) {
        auto& slot = calibrators[{tensor, method}];
        if (!slot) {
          options.method = method;
          QUANT_ASSIGN_OR_RETURN(slot, Calibrator::create(options));
          slot->start_pass(pass);
          passes = std::max(passes, slot->passes_needed());
          if (method == methods.front()) tensor_order.push_back(tensor);
        }
        if (pass < slot->passes_needed()) {
          Status s = slot->observe(values, shape);
          if (!s) return std::move(s).error().in_tensor(tensor);
        }
      }
      return Status::success();
    }));
  }

  std::map<std::pair<std::string, CalibrationMethod>, QuantErrorMeter> meters;
  for (const std::string& tensor : tensor_order) {
    for (CalibrationMethod method : methods) {
      auto result = calibrators[{tensor, method}]->finish();
      if (!result) return std::move(result).error().in_tensor(tensor);
      meters.emplace(std::pair{tensor, method}, QuantErrorMeter(result->qparams, table.channel_axis));
      table.entries.push_back({tensor, method, std::move(*result), std::nullopt, std::nullopt});
    }
  }
  // A last pass measures what each choice would cost on the calibration data itself.
  QUANT_TRY(for_each_batch(args.data, [&](const std::string& tensor, std::span<const float> values,
                                          std::span<const int64_t> shape) -> Status {
    for (CalibrationMethod method : methods) QUANT_TRY(meters.at({tensor, method}).add(values, shape));
    return Status::success();
  }));
  for (CalibrationEntry& e : table.entries) {
    const QuantErrorMeter& m = meters.at({e.tensor, e.method});
    e.mse = m.mse();
    e.sqnr_db = m.sqnr_db();
  }
  return table;
}

void print_table(const CalibrationTable& table) {
  fmt::print("convention {}, dtype {}{}{}\n", convention_name(table.convention), dtype_name(table.spec),
             table.spec.symmetric ? " symmetric" : " affine",
             table.channel_axis ? fmt::format(", per channel along axis {}", *table.channel_axis) : "");
  std::string current;
  for (const CalibrationEntry& e : table.entries) {
    if (e.tensor != current) {
      current = e.tensor;
      fmt::print("{}  (observed [{:.6g}, {:.6g}])\n", e.tensor, e.result.observed_min[0], e.result.observed_max[0]);
      fmt::print("  {:<11} {:>12} {:>12} {:>13} {:>6} {:>12} {:>9}\n", "method", "range min", "range max", "scale",
                 "zp", "mse", "sqnr dB");
    }
    const bool per_channel = e.result.lo.size() > 1;
    const std::string note = per_channel ? fmt::format(" ({} channels, first shown)", e.result.lo.size()) : "";
    fmt::print("  {:<11} {:>12.6g} {:>12.6g} {:>13.6g} {:>6} {:>12.6g} {:>9.2f}{}\n", method_name(e.method),
               e.result.lo[0], e.result.hi[0], e.result.qparams[0].scale, e.result.qparams[0].zero_point,
               e.mse.value_or(0.0), e.sqnr_db.value_or(0.0), note);
  }
}

}  // namespace

Command add_calibrate_command(CLI::App& parent, GlobalOptions& globals) {
  auto* app = parent.add_subcommand("calibrate", "Choose activation ranges from calibration data; write a table");
  auto args = std::make_shared<CalibrateArgs>();
  app->add_option("--data", args->data, "Calibration files (safetensors, .npy, .npz), activations keyed by tensor")
      ->required();
  app->add_option("--method", args->methods, "minmax, ema, entropy, percentile or mse (repeatable)")->required();
  app->add_option("--dtype", args->dtype, "int8, uint8, int4, uint4 (or intN / uintN, N in 2..8)");
  app->add_flag("--symmetric", args->symmetric, "Symmetric quantization (zero point in the middle of the grid)");
  app->add_option("--per-channel", args->per_channel, "Per-channel ranges along this axis (minmax, ema)");
  app->add_option("--percentile", args->percentile, "Percentile for the percentile method");
  app->add_option("--convention", args->convention, "quantize (default), torch, onnxruntime or tensorrt");
  app->add_option("-o,--output", args->output, "Write the calibration table (JSON) here");
  return Command{app, [args, &globals]() -> int {
                   if (!args->output.empty()) {
                     Status guard = refuse_output_over_inputs(args->output, args->data);
                     if (!guard) return fail(guard.error());
                   }
                   auto table = calibrate(*args);
                   if (!table) return fail(table.error());
                   const std::string json = calibration_table_to_json(*table);
                   if (!args->output.empty()) {
                     Status s = write_file_atomically(args->output, std::span<const uint8_t>(
                         reinterpret_cast<const uint8_t*>(json.data()), json.size()));
                     if (!s) return fail(s.error());
                   }
                   if (globals.json) {
                     std::cout << json;
                   } else if (!globals.quiet) {
                     print_table(*table);
                   }
                   return kExitOk;
                 }};
}

}  // namespace quant::cli
