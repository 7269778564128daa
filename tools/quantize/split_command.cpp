// `quantize split IN PREFIX (--split-max-size N | --split-max-tensors N) [--dry-run]`: llama-gguf-split --split.
#include <memory>

#include "command.h"
#include "interrupt.h"
#include "shard_printer.h"

namespace quant::cli {
namespace {

constexpr uint64_t kDefaultMaxTensors = 128;

struct SplitArgs {
  std::string input;
  std::string prefix;
  std::string max_size;
  uint64_t max_tensors = 0;
  bool dry_run = false, force = false, fsync = false;
};

int run_split(const SplitArgs& args, const GlobalOptions& globals) {
  ShardLimits limits;
  if (!args.max_size.empty()) {
    auto bytes = parse_split_size(args.max_size);
    if (!bytes) return fail(bytes.error());
    limits.max_bytes = *bytes;
  }
  limits.max_tensors = args.max_tensors;
  if (limits.max_bytes != 0 && limits.max_tensors != 0) {
    return fail(usage_error("give one of --split-max-size N[M|G] and --split-max-tensors N, not both"));
  }
  // llama-gguf-split's default: 128 tensors per shard.
  if (limits.max_bytes == 0 && limits.max_tensors == 0) limits.max_tensors = kDefaultMaxTensors;
  SplitJobOptions options;
  options.dry_run = args.dry_run;
  options.output.overwrite = args.force;
  options.output.fsync = args.fsync;
  options.cancel = install_interrupt_handlers();
  auto report = split_model(args.input, args.prefix, limits, options);
  if (!report) return fail(report.error());
  return print_split_job(*report, args.dry_run, globals);
}

}  // namespace

Command add_split_command(CLI::App& parent, GlobalOptions& globals) {
  auto* app = parent.add_subcommand(
      "split", "Cut a model into shards PREFIX-0000i-of-0000n.gguf, as llama-gguf-split --split writes them");
  auto args = std::make_shared<SplitArgs>();
  app->add_option("IN", args->input, "Model to cut (a GGUF file, or any shard of a split model)")->required();
  app->add_option("PREFIX", args->prefix, "Output prefix: shards are PREFIX-00001-of-0000n.gguf ...")->required();
  app->add_option("--split-max-size", args->max_size,
                  "At most N bytes of tensor data per shard: N, NM (10^6 bytes) or NG (10^9 bytes)");
  app->add_option("--split-max-tensors", args->max_tensors,
                  "At most N tensors per shard (the default, 128, when no limit is given, as in llama-gguf-split)")
      ->check(at_least_one());  // 0 would be "no limit given" (llama-gguf-split divides by it and crashes)
  app->add_flag("--dry-run", args->dry_run, "Print the shards it would write; write nothing");
  app->add_flag("-f,--force", args->force, "Replace existing shard files");
  app->add_flag("--fsync", args->fsync, "Flush every shard to disk before placing it");
  return Command{app, [args, &globals]() -> int { return run_split(*args, globals); }};
}

}  // namespace quant::cli
