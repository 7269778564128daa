// `quantize calibrate --data FILE... --method M...`: choose activation ranges from a calibration dataset and
// write a calibration table (docs/calibration.md).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "command.h"
#include "quant/atomic_file.h"
#include "quant/calibrate.h"

namespace quant::cli {

namespace {

// What the command line gives beyond the request itself: the names the library parses, and the output.
struct CalibrateArgs {
  CalibrationRequest request;
  std::vector<std::string> methods;
  std::string dtype = "int8";
  bool symmetric = false;
  std::string convention = "quantize";
  std::string output;
  bool force = false;
};

Result<CalibrationRequest> build_request(CalibrateArgs& args) {
  CalibrationRequest& request = args.request;
  QUANT_ASSIGN_OR_RETURN(request.options.convention, parse_convention(args.convention));
  QUANT_ASSIGN_OR_RETURN(request.options.spec, parse_dtype(args.dtype));
  request.options.spec.symmetric = args.symmetric;
  for (const std::string& name : args.methods) {
    QUANT_ASSIGN_OR_RETURN(CalibrationMethod method, parse_method(name));
    request.methods.push_back(method);
  }
  return request;
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
  CalibrationOptions& options = args->request.options;
  app->add_option("--data", args->request.data_files,
                  "Calibration files (safetensors, .npy, .npz), activations keyed by tensor")
      ->required();
  app->add_option("--method", args->methods, "minmax, ema, entropy, percentile or mse (repeatable)")->required();
  app->add_option("--dtype", args->dtype, "int8, uint8, int4, uint4 (or intN / uintN, N in 2..8)");
  app->add_flag("--symmetric", args->symmetric, "Symmetric quantization (zero point in the middle of the grid)");
  app->add_option("--per-channel", options.channel_axis, "Per-channel ranges along this axis (minmax, ema)");
  app->add_option("--percentile", options.percentile, "Percentile for the percentile method, in [0, 100]");
  app->add_option("--convention", args->convention, "quantize (default), torch, onnxruntime or tensorrt");
  CLI::Option* output = app->add_option("-o,--output", args->output, "Write the calibration table (JSON) here");
  app->add_flag("-f,--force", args->force, "Replace an existing output file (only a regular file is ever replaced)");
  return Command{app, [args, output, &globals]() -> int {
                   const OutputPolicy policy = output_policy(args->force, args->request.data_files);
                   if (Status given = check_path_given(output, args->output); !given) return fail(given.error());
                   if (!args->output.empty()) {
                     if (Status usable = check_output_path(args->output, policy); !usable) return fail(usable.error());
                   }
                   auto request = build_request(*args);
                   if (!request) return fail(request.error());
                   spdlog::debug("calibrating {} file(s) with {} method(s)", request->data_files.size(),
                                 request->methods.size());
                   auto table = calibrate_dataset(*request);
                   if (!table) return fail(table.error());
                   const std::string json = calibration_table_to_json(*table);
                   if (!args->output.empty()) {
                     Status written = write_file_atomically(
                         args->output, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(json.data()), json.size()),
                         policy);
                     if (!written) return fail(written.error());
                     spdlog::debug("wrote {} ({} entries)", args->output, table->entries.size());
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
