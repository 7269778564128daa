// `quantize imatrix --data FILE... -o imatrix.gguf [--format gguf|dat] [--model MODEL.gguf]`: compute llama.cpp's
// importance matrix from calibration activations and write it in llama.cpp's format (docs/imatrix.md).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "command.h"
#include "quant/imatrix.h"

namespace quant::cli {

namespace {

struct ImatrixArgs {
  std::vector<std::string> data;
  std::string output;
  std::string format = "gguf";
  std::string model;
  bool force = false;
  CLI::Option* output_option = nullptr;
};

int run_imatrix(const ImatrixArgs& args, const GlobalOptions& globals) {
  if (args.format != "gguf" && args.format != "dat") {
    return fail(usage_error(fmt::format("--format must be gguf or dat, not '{}'", args.format)));
  }
  std::vector<std::string> inputs = args.data;
  if (!args.model.empty()) inputs.push_back(args.model);
  const OutputPolicy policy = output_policy(args.force, inputs);
  if (Status given = check_path_given(args.output_option, args.output); !given) return fail(given.error());
  // Refused before any data is read: an output that exists without --force, is not a regular file, or is an input.
  if (Status usable = check_output_path(args.output, policy); !usable) return fail(usable.error());
  DatasetOptions options;
  if (!args.model.empty()) {
    auto features = model_weight_features(args.model);
    if (!features) return fail(features.error());
    options.weight_features = std::move(features).value();
  }
  spdlog::debug("collecting from {} file(s){}", args.data.size(),
                args.model.empty() ? "" : fmt::format(", checked against {}", args.model));
  auto collection = collect_imatrix(args.data, options);
  if (!collection) return fail(collection.error());
  const ImatrixFormat format = args.format == "dat" ? ImatrixFormat::dat : ImatrixFormat::gguf;
  const Status written = write_imatrix(args.output, format, *collection, policy);
  if (!written) return fail(written.error());
  spdlog::debug("wrote {}: {} batches read, {} skipped", args.output, collection->batches_read,
                collection->batches_skipped);

  const ImatrixCollection& c = *collection;
  if (globals.json) {
    nlohmann::json out = {{"output", args.output},
                          {"format", args.format},
                          {"datasets", c.metadata.datasets},
                          {"entries", c.accumulator.sums().size()},
                          {"chunk_count", c.metadata.chunk_count},
                          {"chunk_size", c.metadata.chunk_size},
                          {"batches_read", c.batches_read},
                          {"batches_skipped", c.batches_skipped}};
    std::cout << out.dump(2) << "\n";
  } else if (!globals.quiet) {
    fmt::print("wrote {} ({}): {} weights, {} chunks of up to {} tokens; {} of {} batches skipped (under {} tokens)\n",
               args.output, args.format, c.accumulator.sums().size(), c.metadata.chunk_count, c.metadata.chunk_size,
               c.batches_skipped, c.batches_read, ImatrixAccumulator::kMinTokens);
  }
  return kExitOk;
}

}  // namespace

Command add_imatrix_command(CLI::App& parent, GlobalOptions& globals) {
  auto* app = parent.add_subcommand("imatrix", "Compute an importance matrix (llama.cpp imatrix) from activations");
  auto args = std::make_shared<ImatrixArgs>();
  app->add_option("--data", args->data,
                  "Activation files (safetensors, .npy, .npz) keyed by weight name; batches in the order given")
      ->required();
  args->output_option = app->add_option("-o,--output", args->output, "Importance matrix to write")->required();
  app->add_flag("-f,--force", args->force, "Replace an existing output file (only a regular file is ever replaced)");
  app->add_option("--format", args->format, "gguf (default, llama.cpp's current format) or dat (legacy)");
  app->add_option("--model", args->model, "GGUF model: check every activation array against its weight's row length");
  return Command{app, [args, &globals]() -> int { return run_imatrix(*args, globals); }};
}

}  // namespace quant::cli
