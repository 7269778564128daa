// `quantize merge SHARD OUT [--dry-run]`: llama-gguf-split --merge.
#include <memory>

#include "command.h"
#include "interrupt.h"
#include "shard_printer.h"

namespace quant::cli {
namespace {

struct MergeArgs {
  std::string shard;
  std::string output;
  bool dry_run = false, force = false, fsync = false;
};

int run_merge(const MergeArgs& args, const GlobalOptions& globals) {
  SplitJobOptions options;
  options.dry_run = args.dry_run;
  options.output.overwrite = args.force;
  options.output.fsync = args.fsync;
  options.cancel = install_interrupt_handlers();
  auto report = merge_model(args.shard, args.output, options);
  if (!report) return fail(report.error());
  return print_split_job(*report, args.dry_run, globals);
}

}  // namespace

Command add_merge_command(CLI::App& parent, GlobalOptions& globals) {
  auto* app = parent.add_subcommand(
      "merge", "Join the shards of a split model into one file, as llama-gguf-split --merge writes it");
  auto args = std::make_shared<MergeArgs>();
  app->add_option("SHARD", args->shard, "Any shard of the split model (usually NAME-00001-of-0000n.gguf)")
      ->required();
  app->add_option("OUT", args->output, "The merged GGUF file")->required();
  app->add_flag("--dry-run", args->dry_run, "Check the shards and print what it would write; write nothing");
  app->add_flag("-f,--force", args->force, "Replace an existing output");
  app->add_flag("--fsync", args->fsync, "Flush the output to disk before placing it");
  return Command{app, [args, &globals]() -> int { return run_merge(*args, globals); }};
}

}  // namespace quant::cli
