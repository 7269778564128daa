// The main job: `quantize INPUT --to TYPE[,TYPE...] [-o OUTPUT...] [options]`.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "interrupt.h"
#include "progress.h"
#include "quant/eval.h"
#include "quant/convert.h"
#include "report_printer.h"

namespace quant::cli {
namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t comma; (comma = text.find(',', start)) != std::string::npos; start = comma + 1) {
    parts.push_back(text.substr(start, comma - start));
  }
  parts.push_back(text.substr(start));
  return parts;
}

struct ConvertArgs {
  std::string input;
  std::string to;
  std::vector<std::string> outputs;
  std::string imatrix;
  std::vector<std::string> include_weights, exclude_weights;
  std::string output_tensor_type, token_embedding_type;
  std::vector<std::string> tensor_types;
  std::string tensor_type_file;
  std::vector<std::string> override_kv;
  std::string calibration;
  std::string calibration_text;
  int64_t calibration_ctx = 512, calibration_chunks = -1;
  bool pure = false, allow_requantize = false, leave_output_tensor = false, dry_run = false, force = false;
  bool fsync = false, allow_non_finite = false;
  int threads = 0;
  bool keep_split = false;
  std::string split_max_size, shard;
  uint64_t split_max_tensors = 0;
  // Scoring the outputs against the input (docs/eval.md).
  std::string eval_text;
  int64_t eval_ctx = 0, eval_chunks = -1;
  std::optional<double> max_kld;
};

Result<ConvertRequest> build_request(const ConvertArgs& args) {
  ConvertRequest request;
  request.input = args.input;
  const std::vector<std::string> types = split_commas(args.to);
  if (!args.outputs.empty() && args.outputs.size() != types.size()) {
    return usage_error(fmt::format("{} output paths given for {} target types: give one -o per type, or none",
                                   args.outputs.size(), types.size()));
  }
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i].empty()) return usage_error(fmt::format("--to '{}' has an empty type name", args.to));
    request.targets.push_back(ConvertTarget{types[i], args.outputs.empty() ? "" : args.outputs[i]});
  }
  if (!args.include_weights.empty() && !args.exclude_weights.empty()) {
    return usage_error("--include-weights and --exclude-weights cannot be combined");
  }
  if ((!args.include_weights.empty() || !args.exclude_weights.empty()) && args.imatrix.empty() &&
      args.calibration_text.empty()) {
    return usage_error("--include-weights / --exclude-weights need --imatrix or --calibration-text");
  }
  if (!args.calibration_text.empty()) {
    TextImatrixOptions text;
    text.text_path = args.calibration_text;
    text.n_ctx = args.calibration_ctx;
    text.max_chunks = args.calibration_chunks;
    text.threads = args.threads;
    request.calibration_text = text;
  }
  request.imatrix_path = args.imatrix;
  request.include_weights = args.include_weights;
  request.exclude_weights = args.exclude_weights;
  request.pure = args.pure;
  request.allow_requantize = args.allow_requantize;
  request.leave_output_tensor = args.leave_output_tensor;
  request.calibration_table = args.calibration;
  request.dry_run = args.dry_run;
  request.overwrite = args.force;
  request.fsync = args.fsync;
  request.allow_non_finite = args.allow_non_finite;
  if (args.threads < 0) return usage_error("--threads must be 0 (all cores) or more");
  request.threads = args.threads;
  if (!args.output_tensor_type.empty()) {
    QUANT_ASSIGN_OR_RETURN(request.output_tensor_type, parse_ggml_type_name(args.output_tensor_type));
  }
  if (!args.token_embedding_type.empty()) {
    QUANT_ASSIGN_OR_RETURN(request.token_embedding_type, parse_ggml_type_name(args.token_embedding_type));
  }
  for (const std::string& text : args.tensor_types) {
    QUANT_ASSIGN_OR_RETURN(TensorTypeOverride o, parse_tensor_type_override(text));
    request.tensor_types.push_back(std::move(o));
  }
  if (!args.tensor_type_file.empty()) {
    QUANT_ASSIGN_OR_RETURN(std::vector<TensorTypeOverride> list, read_tensor_type_file(args.tensor_type_file));
    for (TensorTypeOverride& o : list) request.tensor_types.push_back(std::move(o));
  }
  request.split.keep_split = args.keep_split;
  if (!args.split_max_size.empty()) {
    QUANT_ASSIGN_OR_RETURN(request.split.limits.max_bytes, parse_split_size(args.split_max_size));
  }
  request.split.limits.max_tensors = args.split_max_tensors;
  if (!args.shard.empty()) {
    QUANT_ASSIGN_OR_RETURN(request.split.shard, parse_shard_selection(args.shard));
  }
  for (const std::string& text : args.override_kv) {
    QUANT_ASSIGN_OR_RETURN(KvOverride o, parse_kv_override(text));
    request.kv_overrides.push_back(std::move(o));
  }
  return request;
}

int run_convert(const ConvertArgs& args, const GlobalOptions& globals) {
  if (args.max_kld && args.eval_text.empty()) return fail(usage_error("--max-kld needs --eval-text"));
  if (!args.eval_text.empty() && args.dry_run) return fail(usage_error("--eval-text scores written outputs: not with --dry-run"));
  if (!args.eval_text.empty() && !args.shard.empty()) {
    // One job holds one shard of the output: the model is scored once every job is done (`quantize eval`).
    return fail(usage_error("--eval-text scores whole outputs: not with --shard (score the set with `quantize eval` "
                            "once every shard is written)"));
  }
  auto request = build_request(args);
  if (!request) return fail(request.error());
  ProgressBar progress(globals.quiet || globals.json);
  if (progress.enabled()) {
    request->progress = [&progress](uint64_t done, uint64_t total, const std::string& tensor) {
      progress.update(done, total, tensor);
    };
    if (request->calibration_text) {
      request->calibration_text->progress = [&progress](const TextImatrixProgress& p) {
        progress.update(uint64_t(p.chunks_done), uint64_t(p.chunks_total),
                        fmt::format("imatrix: {}/{} chunks", p.chunks_done, p.chunks_total));
      };
    }
  }
  request->cancel = install_interrupt_handlers();
  if (request->calibration_text) request->calibration_text->cancel = request->cancel;
  auto reports = convert(*request);
  progress.finish();
  if (!reports) return fail(reports.error());
  if (!args.eval_text.empty()) {
    EvalOptions options;
    options.n_ctx = args.eval_ctx;
    options.max_chunks = args.eval_chunks;
    options.cancel = request->cancel;  // the outputs are complete by now; a signal stops only their scoring
    if (Status scored = score_conversions(args.input, *reports, args.eval_text, options, args.threads); !scored) {
      return fail(scored.error());
    }
  }
  if (globals.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const ConversionReport& report : *reports) out.push_back(to_json(report));
    std::cout << (out.size() == 1 ? out[0] : nlohmann::json{{"outputs", out}}).dump(2) << "\n";
  } else if (!globals.quiet) {
    for (const ConversionReport& report : *reports) print_report(std::cout, report, globals.verbose);
  }
  if (args.max_kld) {
    for (const ConversionReport& report : *reports) {
      if (report.quality && report.quality->kld_mean > *args.max_kld) {
        spdlog::error("{}: mean KL divergence {:.6f} exceeds --max-kld {} (the file is written)", report.output,
                      report.quality->kld_mean, *args.max_kld);
        return kExitQualityGate;
      }
    }
  }
  return kExitOk;
}

SharedConvertValues shared_values(const ConvertArgs& args) {
  SharedConvertValues shared{args.input,     args.to,      args.outputs,          args.imatrix,
                             args.tensor_types, args.tensor_type_file, args.dry_run, args.force,
                             args.threads,    args.calibration_text, args.calibration_ctx, {}, &g_interrupted};
  const std::pair<bool, const char*> given[] = {
      {args.pure, "--pure"}, {args.leave_output_tensor, "--leave-output-tensor"},
      {!args.output_tensor_type.empty(), "--output-tensor-type"},
      {!args.token_embedding_type.empty(), "--token-embedding-type"},
      {!args.include_weights.empty(), "--include-weights"}, {!args.exclude_weights.empty(), "--exclude-weights"},
      {!args.override_kv.empty(), "--override-kv"}, {!args.calibration.empty(), "--calibration"},
      {args.calibration_chunks != -1, "--calibration-chunks"}, {!args.eval_text.empty(), "--eval-text"},
      {args.max_kld.has_value(), "--max-kld"}};
  for (const auto& [is_given, name] : given) {
    if (is_given) shared.unsupported.push_back(name);
  }
  install_interrupt_handlers();
  return shared;
}

}  // namespace

Command add_convert_options(CLI::App& app, GlobalOptions& globals) {
  auto args = std::make_shared<ConvertArgs>();
  app.add_option("INPUT", args->input, "GGUF model to convert");
  app.add_option("--to", args->to,
                 "Target type(s), llama-quantize's names (Q4_K_M, q8_0, IQ2_XS, COPY...; case-insensitive); "
                 "comma-separated for several outputs from one read: Q8_0,Q4_K_M (docs/cli.md lists every name)")
      ->group("Conversion");
  app.add_option("-o,--output", args->outputs,
                 "Output path, one per target (default: <input stem>-<TYPE>.gguf beside the input)")
      ->allow_extra_args(false)
      ->group("Conversion");
  app.add_flag("--pure", args->pure, "Give every quantizable tensor the one type: no mix rules")->group("Conversion");
  app.add_option("--imatrix", args->imatrix, "Importance matrix (llama.cpp GGUF imatrix or legacy .dat)")
      ->group("Conversion");
  app.add_option("--calibration-text", args->calibration_text,
                 "Compute the importance matrix in this run from a text (plain or JSONL), as llama-imatrix would, "
                 "and use it as --imatrix would (docs/imatrix.md). With --target-size: the text each tensor's cost "
                 "is measured on, and without --imatrix the importance matrix's source too (docs/automix.md)")
      ->group("Conversion");
  app.add_option("--calibration-ctx", args->calibration_ctx,
                 "Tokens per chunk for --calibration-text (default 512, llama-imatrix's; with --target-size, 512 or "
                 "the model's training context when smaller)")
      ->group("Conversion");
  app.add_option("--calibration-chunks", args->calibration_chunks,
                 "Use at most this many chunks of --calibration-text (default -1: all)")
      ->group("Conversion");
  app.add_option("--include-weights", args->include_weights,
                 "Use importance data only for tensors whose name contains this (repeatable)")->allow_extra_args(false)
      ->group("Conversion");
  app.add_option("--exclude-weights", args->exclude_weights,
                 "Do not use importance data for tensors whose name contains this (repeatable)")->allow_extra_args(false)
      ->group("Conversion");
  app.add_option("--output-tensor-type", args->output_tensor_type, "ggml type for output.weight (e.g. q8_0)")
      ->group("Conversion");
  app.add_option("--token-embedding-type", args->token_embedding_type, "ggml type for token_embd.weight")
      ->group("Conversion");
  app.add_option("--tensor-type", args->tensor_types,
                 "REGEX=TYPE: ggml type for tensors whose name matches (repeatable; first match wins)")
      ->allow_extra_args(false)
      ->group("Conversion");
  app.add_option("--tensor-type-file", args->tensor_type_file, "File of whitespace-separated REGEX=TYPE entries")
      ->group("Conversion");
  app.add_flag("--allow-requantize", args->allow_requantize,
               "Accept already-quantized input tensors (dequantize, then quantize: loses accuracy)")
      ->group("Conversion");
  app.add_flag("--leave-output-tensor", args->leave_output_tensor, "Do not quantize output.weight")
      ->group("Conversion");
  app.add_option("--override-kv", args->override_kv,
                 "KEY=TYPE:VALUE metadata to set in the output, TYPE one of int, float, bool, str (repeatable)")
      ->allow_extra_args(false)
      ->group("Conversion");
  app.add_option("--calibration", args->calibration,
                 "Calibration table (JSON from `quantize calibrate -o`) to embed as quantize.calibration.* keys")
      ->group("Conversion");
  app.add_flag("--dry-run", args->dry_run, "Print the per-tensor plan and sizes; write nothing")->group("Conversion");
  app.add_option("-t,--threads", args->threads, "Worker threads (default 0: all cores); output is identical for any N")
      ->group("Conversion");
  app.add_flag("-f,--force", args->force, "Replace an existing output file")->group("Conversion");
  app.add_option("--eval-text", args->eval_text,
                 "Score each output against the input on this text (llama-perplexity's PPL, KL divergence, same top)")
      ->group("Quality");
  app.add_option("--eval-ctx", args->eval_ctx, "Context for --eval-text (default 512)")->group("Quality");
  app.add_option("--eval-chunks", args->eval_chunks, "Score at most this many chunks of --eval-text")->group("Quality");
  app.add_option("--max-kld", args->max_kld,
                 "With --eval-text: exit 5 (outputs still written) when an output's mean KL divergence exceeds this")
      ->group("Quality");
  app.add_flag("--fsync", args->fsync,
               "Flush the output to disk before renaming it into place (survives power loss; slower)")
      ->group("Conversion");
  app.add_flag("--keep-split", args->keep_split,
               "Write one output shard per input shard, OUT-0000i-of-0000n.gguf, as llama-quantize --keep-split")
      ->group("Split output");
  app.add_option("--split-max-size", args->split_max_size,
                 "Cut the output into shards of at most N bytes of tensor data: N, NM (10^6) or NG (10^9), as "
                 "llama-gguf-split --split-max-size cuts llama-quantize's output")
      ->group("Split output");
  app.add_option("--split-max-tensors", args->split_max_tensors,
                 "Cut the output into shards of at most N tensors, as llama-gguf-split --split-max-tensors")
      ->group("Split output");
  app.add_option("--shard", args->shard,
                 "I/N: write only shard I of the output cut into N shards balanced by bytes (OUT-0000I-of-0000N.gguf), "
                 "reading only its tensors; N jobs make one split model (docs/scale-out.md)")
      ->group("Split output");
  app.add_flag("--allow-non-finite", args->allow_non_finite,
               "Accept NaN/Inf in input tensors (llama.cpp refuses to load such files)")
      ->group("Conversion");
  std::shared_ptr<AutomixOptions> automix = add_automix_options(app);
  return Command{&app, [args, automix, &globals, &app]() -> int {
                   if (!args->input.empty() && automix_requested(*automix)) {
                     SharedConvertValues shared = shared_values(*args);
                     if (app.count("--calibration-ctx") == 0) shared.calibration_ctx = 0;
                     return run_automix(*automix, shared, globals);
                   }
                   if (args->input.empty() || args->to.empty()) {
                     std::cerr << app.help();
                     return kExitUsage;
                   }
                   return run_convert(*args, globals);
                 }};
}

}  // namespace quant::cli
