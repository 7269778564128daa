// `quantize imatrix`: an importance matrix in llama.cpp's format (docs/imatrix.md), from one of
//   MODEL --text FILE [--ctx N] [--chunks N] [--process-output] [--no-ppl] [--in-file F]...   (llama-imatrix)
//   --data FILE... [--model MODEL]                                                             (activation files)
//   --in-file F... [MODEL]                                                                     (combine files)
// written with -o OUT [--format gguf|dat].
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "command.h"
#include "interrupt.h"
#include "progress.h"
#include "quant/imatrix.h"
#include "quant/model_source.h"

namespace quant::cli {

namespace {

struct ImatrixArgs {
  std::string model;
  std::string text;
  std::vector<std::string> data;
  std::vector<std::string> in_files;
  std::string output;
  std::string format = "gguf";
  int64_t ctx = 512;
  int64_t chunks = -1;
  bool process_output = false;
  bool no_ppl = false;
  bool parse_special = false;
  int threads = 0;
  bool force = false;
  CLI::Option* output_option = nullptr;
};

// "1:02:03" / "2:03".
std::string clock_time(double seconds) {
  const int64_t total = int64_t(seconds + 0.5);
  return total >= 3600 ? fmt::format("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60)
                       : fmt::format("{}:{:02}", total / 60, total % 60);
}

// llama-imatrix's running perplexity line: "[1]12.3456,[2]11.9876,...".
std::string running_perplexity_line(const std::vector<double>& values) {
  std::string line;
  for (size_t i = 0; i < values.size(); ++i) line += fmt::format("[{}]{:.4f},", i + 1, values[i]);
  return line;
}

nlohmann::json text_json(const TextImatrixStats& t) {
  nlohmann::json out = {{"path", t.text},
                        {"format", t.text_format},
                        {"documents", t.documents},
                        {"tokens", t.text_tokens},
                        {"ctx", t.n_ctx},
                        {"chunks", t.chunks},
                        {"tokens_evaluated", t.tokens_evaluated},
                        {"tokenize_seconds", t.tokenize_seconds},
                        {"seconds", t.seconds},
                        {"tokens_per_second", t.tokens_per_second()}};
  if (t.perplexity) {
    out["perplexity"] = {{"value", *t.perplexity},
                         {"uncertainty", t.perplexity_uncertainty},
                         {"per_chunk", t.running_perplexity}};
  } else {
    out["perplexity"] = nullptr;
  }
  return out;
}

// The collection the arguments ask for: text, activation files, or files combined.
Result<ImatrixCollection> collect(const ImatrixArgs& args, const GlobalOptions& globals) {
  const int sources = int(!args.text.empty()) + int(!args.data.empty());
  if (sources > 1) return usage_error("give either --text or --data, not both");
  if (sources == 0 && args.in_files.empty()) return usage_error("nothing to measure: give --text FILE (with MODEL), --data FILE... or --in-file FILE...");
  if (!args.data.empty() && !args.in_files.empty()) {
    return usage_error("--in-file merges with a --text run, not with --data");
  }
  // open_model: any shard of a split model stands for the whole model.
  std::unique_ptr<ModelSource> model;
  if (!args.model.empty()) {
    QUANT_ASSIGN_OR_RETURN(model, open_model(args.model));
  }
  if (!args.data.empty()) {
    DatasetOptions options;
    if (model != nullptr) options.weight_features = model_weight_features(*model);
    return collect_imatrix(args.data, options);
  }
  if (args.text.empty()) return combine_imatrices(args.in_files, args.ctx, model.get());
  if (model == nullptr) return usage_error("--text needs the MODEL to run it through");

  TextImatrixOptions options;
  options.text_path = args.text;
  options.n_ctx = args.ctx;
  options.max_chunks = args.chunks;
  options.process_output = args.process_output;
  options.compute_perplexity = !args.no_ppl;
  options.parse_special = args.parse_special;
  options.in_files = args.in_files;
  options.threads = args.threads;
  options.cancel = install_interrupt_handlers();
  ProgressBar bar(globals.quiet || globals.json);
  if (bar.enabled()) {
    options.progress = [&bar](const TextImatrixProgress& p) {
      const double rate = p.seconds > 0 ? double(p.tokens_done) / p.seconds : 0;
      const double eta = p.seconds * double(p.chunks_total - p.chunks_done) / double(std::max<int64_t>(1, p.chunks_done));
      std::string label = fmt::format("{}/{} {:.0f} t/s ETA {}", p.chunks_done, p.chunks_total, rate, clock_time(eta));
      if (p.perplexity) label += fmt::format(" PPL {:.4f}", *p.perplexity);
      bar.update(uint64_t(p.chunks_done), uint64_t(p.chunks_total), label);
    };
  }
  auto collection = imatrix_from_text(*model, options);
  bar.finish();
  return collection;
}

int run_imatrix(const ImatrixArgs& args, const GlobalOptions& globals) {
  if (args.format != "gguf" && args.format != "dat") {
    return fail(usage_error(fmt::format("--format must be gguf or dat, not '{}'", args.format)));
  }
  if (args.threads < 0) return fail(usage_error("-t/--threads must be 0 (all cores) or more"));
  std::vector<std::string> inputs = args.data;
  inputs.insert(inputs.end(), args.in_files.begin(), args.in_files.end());
  // Any shard of a split model names the whole model, a folder all its files: the output may be none of them.
  if (!args.model.empty()) {
    for (std::string& file : model_files(args.model)) inputs.push_back(std::move(file));
  }
  if (!args.text.empty()) inputs.push_back(args.text);
  const OutputPolicy policy = output_policy(args.force, inputs);
  if (Status given = check_path_given(args.output_option, args.output); !given) return fail(given.error());
  // Refused before any data is read: an output that exists without --force, is not a regular file, or is an input.
  if (Status usable = check_output_path(args.output, policy); !usable) return fail(usable.error());

  auto collection = collect(args, globals);
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
                          {"merged", c.merged_files},
                          {"batches_read", c.batches_read},
                          {"batches_skipped", c.batches_skipped}};
    if (!args.model.empty()) out["model"] = args.model;
    if (c.text) out["text"] = text_json(*c.text);
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (globals.quiet) return kExitOk;
  if (c.text) {
    const TextImatrixStats& t = *c.text;
    if (!t.running_perplexity.empty()) std::cout << running_perplexity_line(t.running_perplexity) << "\n";
    if (t.perplexity) fmt::print("Final estimate: PPL = {:.4f} +/- {:.5f}\n", *t.perplexity, t.perplexity_uncertainty);
    fmt::print("wrote {} ({}): {} weights, {} chunks of {} tokens; {} tokens in {:.1f} s ({:.0f} tokens/s)\n",
               args.output, args.format, c.accumulator.sums().size(), c.metadata.chunk_count, c.metadata.chunk_size,
               t.tokens_evaluated, t.seconds, t.tokens_per_second());
  } else if (!args.data.empty()) {
    fmt::print("wrote {} ({}): {} weights, {} chunks of up to {} tokens; {} of {} batches skipped (under {} tokens)\n",
               args.output, args.format, c.accumulator.sums().size(), c.metadata.chunk_count, c.metadata.chunk_size,
               c.batches_skipped, c.batches_read, ImatrixAccumulator::kMinTokens);
  } else {
    fmt::print("wrote {} ({}): {} weights combined from {} files, {} chunks of {} tokens\n", args.output, args.format,
               c.accumulator.sums().size(), c.merged_files.size(), c.metadata.chunk_count, c.metadata.chunk_size);
  }
  return kExitOk;
}

}  // namespace

Command add_imatrix_command(CLI::App& parent, GlobalOptions& globals) {
  auto* app = parent.add_subcommand(
      "imatrix", "Compute an importance matrix (llama.cpp imatrix) from a text run through the model, or from activations");
  auto args = std::make_shared<ImatrixArgs>();
  app->add_option("MODEL,--model", args->model,
                  "GGUF model: runs the --text through it; with --data, checks every array against its weight");
  app->add_option("--text", args->text,
                  "Calibration text: plain UTF-8 (read as llama-imatrix -f reads it) or JSONL (.jsonl/.ndjson: "
                  "\"text\", \"messages\" or \"conversations\" per line)")
      ->group("Text");
  app->add_option("-c,--ctx", args->ctx, "Tokens per chunk, BOS first (default 512, as llama-imatrix)")->group("Text");
  app->add_option("--chunks", args->chunks, "Evaluate at most N chunks (default -1: all)")->group("Text");
  app->add_flag("--process-output", args->process_output, "Collect output.weight too")->group("Text");
  app->add_flag("--no-ppl", args->no_ppl, "Do not compute the perplexity")->group("Text");
  app->add_flag("--parse-special", args->parse_special, "Match special tokens written in the text")->group("Text");
  app->add_option("--in-file", args->in_files,
                  "Imatrix (GGUF or .dat) of this model to merge first, as llama-imatrix --in-file (repeatable); "
                  "alone: combine files")
      ->allow_extra_args(false)
      ->group("Text");
  app->add_option("-t,--threads", args->threads, "Forward-pass threads (default 0: all cores)")->group("Text");
  app->add_option("--data", args->data,
                  "Activation files (safetensors, .npy, .npz) keyed by weight name; batches in the order given")
      ->group("Activations");
  args->output_option = app->add_option("-o,--output", args->output, "Importance matrix to write")->required();
  app->add_flag("-f,--force", args->force, "Replace an existing output file (only a regular file is ever replaced)");
  app->add_option("--format,--output-format", args->format, "gguf (default, llama.cpp's current format) or dat (legacy)");
  return Command{app, [args, &globals]() -> int { return run_imatrix(*args, globals); }};
}

}  // namespace quant::cli
