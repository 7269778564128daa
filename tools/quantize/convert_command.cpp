// The main job: `quantize INPUT --to TYPE[,TYPE...] [-o OUTPUT...] [options]`.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "convert_args.h"
#include "interrupt.h"
#include "progress.h"
#include "quant/convert.h"
#include "quant/eval.h"
#include "quant/kernel_level.h"
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

// Completes the request from the text options; usage errors for what no conversion could accept.
Status complete_request(ConvertArgs& args) {
  ConvertRequest& request = args.request;
  const std::vector<std::string> types = split_commas(args.to);
  if (!args.outputs.empty() && args.outputs.size() != types.size()) {
    return usage_error(fmt::format("{} output paths given for {} target types: give one -o per type, or none",
                                   args.outputs.size(), types.size()));
  }
  for (const std::string& output : args.outputs) QUANT_TRY(check_path_given(args.output_option, output));
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i].empty()) return usage_error(fmt::format("--to '{}' has an empty type name", args.to));
    request.targets.push_back(ConvertTarget{types[i], args.outputs.empty() ? "" : args.outputs[i]});
  }
  const ImatrixOptions& imatrix = request.imatrix;
  if (!imatrix.include_weights.empty() && !imatrix.exclude_weights.empty()) {
    return usage_error("--include-weights and --exclude-weights cannot be combined");
  }
  if ((!imatrix.include_weights.empty() || !imatrix.exclude_weights.empty()) && imatrix.path.empty() &&
      args.calibration_text.empty()) {
    return usage_error("--include-weights / --exclude-weights need --imatrix or --calibration-text");
  }
  if (!args.calibration_text.empty()) {
    TextImatrixOptions text;
    text.text_path = args.calibration_text;
    text.n_ctx = args.calibration_ctx;
    text.max_chunks = args.calibration_chunks;
    text.threads = request.threads;
    request.imatrix.calibration_text = text;
  }
  if (request.threads < 0) return usage_error("--threads must be 0 (all cores) or more");
  if (!args.output_tensor_type.empty()) {
    QUANT_ASSIGN_OR_RETURN(request.types.output_tensor_type, parse_ggml_type_name(args.output_tensor_type));
  }
  if (!args.token_embedding_type.empty()) {
    QUANT_ASSIGN_OR_RETURN(request.types.token_embedding_type, parse_ggml_type_name(args.token_embedding_type));
  }
  for (const std::string& text : args.tensor_types) {
    QUANT_ASSIGN_OR_RETURN(TensorTypeOverride o, parse_tensor_type_override(text));
    request.types.tensor_types.push_back(std::move(o));
  }
  if (!args.tensor_type_file.empty()) {
    QUANT_ASSIGN_OR_RETURN(std::vector<TensorTypeOverride> list, read_tensor_type_file(args.tensor_type_file));
    for (TensorTypeOverride& o : list) request.types.tensor_types.push_back(std::move(o));
  }
  if (!args.split_max_size.empty()) {
    QUANT_ASSIGN_OR_RETURN(request.split.limits.max_bytes, parse_split_size(args.split_max_size));
  }
  if (!args.shard.empty()) {
    QUANT_ASSIGN_OR_RETURN(request.split.shard, parse_shard_selection(args.shard));
  }
  for (const std::string& text : args.override_kv) {
    QUANT_ASSIGN_OR_RETURN(KvOverride o, parse_kv_override(text));
    request.kv_overrides.push_back(std::move(o));
  }
  // The text --eval-text reads is an input too: no output may replace it.
  if (!args.eval_text.empty()) request.output.inputs.push_back(args.eval_text);
  // A replaced model's blocks are freed by a helper process, without keeping the user waiting.
  request.output.release_in_background = true;
  return Status::success();
}

void log_request(const ConvertRequest& request) {
  for (const ConvertTarget& target : request.targets) {
    spdlog::debug("{} -> {} ({})", request.input, target.output.empty() ? "(default name)" : target.output,
                  target.type_name);
  }
  spdlog::debug("threads {} (0: all cores), chunks of {} bytes, {} kernels{}{}{}", request.threads,
                request.stream.chunk_bytes, kernel_level_name(active_kernel_level()),
                request.output.overwrite ? ", --force" : "", request.output.fsync ? ", --fsync" : "",
                request.dry_run ? ", dry run" : "");
}

int run_convert(ConvertArgs& args, const GlobalOptions& globals) {
  if (args.max_kld && args.eval_text.empty()) return fail(usage_error("--max-kld needs --eval-text"));
  if (args.max_kld && !(*args.max_kld >= 0)) {  // NaN too: a gate nothing can pass, or that passes everything
    return fail(usage_error(fmt::format("--max-kld {} is not a KL divergence: give 0 or more", *args.max_kld)));
  }
  if (args.eval_ctx < 0 || args.eval_chunks == 0 || args.eval_chunks < -1) {
    return fail(usage_error("--eval-ctx takes 0 (512) or more, --eval-chunks 1 or more (or -1: every chunk)"));
  }
  if (!args.eval_text.empty() && args.request.dry_run) {
    return fail(usage_error("--eval-text scores written outputs: not with --dry-run"));
  }
  if (!args.eval_text.empty() && !args.shard.empty()) {
    // One job holds one shard of the output: the model is scored once every job is done (`quantize eval`).
    return fail(usage_error("--eval-text scores whole outputs: not with --shard (score the set with `quantize eval` "
                            "once every shard is written)"));
  }
  if (Status complete = complete_request(args); !complete) return fail(complete.error());
  ConvertRequest& request = args.request;
  EvalOptions eval_options;
  eval_options.n_ctx = args.eval_ctx;
  eval_options.max_chunks = args.eval_chunks;
  eval_options.text_path = args.eval_text;
  std::optional<EvalText> eval_text;
  if (!args.eval_text.empty()) {
    // A text that cannot score the outputs is refused before anything is converted.
    auto prepared = prepare_eval_text(request.input, eval_options);
    if (!prepared) return fail(prepared.error());
    eval_text = std::move(*prepared);
  }
  ProgressBar progress(globals.quiet || globals.json);
  if (progress.enabled()) {
    request.stream.progress = [&progress](uint64_t done, uint64_t total, const std::string& tensor) {
      progress.update(done, total, tensor);
    };
    if (request.imatrix.calibration_text) {
      request.imatrix.calibration_text->progress = [&progress](const TextImatrixProgress& p) {
        progress.update(uint64_t(p.chunks_done), uint64_t(p.chunks_total),
                        fmt::format("imatrix: {}/{} chunks", p.chunks_done, p.chunks_total));
      };
    }
  }
  request.stream.cancel = install_interrupt_handlers();
  if (request.imatrix.calibration_text) request.imatrix.calibration_text->cancel = request.stream.cancel;
  log_request(request);
  auto reports = convert(request);
  progress.finish();
  if (!reports) return fail(reports.error());
  // Every report of one run carries the run's warnings: say each once.
  for (const std::string& warning : reports->front().warnings) spdlog::warn("{}", warning);
  for (const ConversionReport& report : *reports) {
    if (report.dry_run) continue;
    spdlog::debug("{}: {} ({} bytes, sha256 {}), {} threads, {:.2f} s", report.output,
                  report.replaced_existing ? "replaced the existing file" : "created", report.output_bytes,
                  report.output_sha256, report.threads, report.wall_seconds);
  }
  if (eval_text) {
    eval_options.cancel = request.stream.cancel;  // the outputs are complete by now; a signal stops only their scoring
    const int threads = reports->front().threads;  // what the conversion could start, not what was asked
    if (Status scored = score_conversions(request.input, *reports, *eval_text, eval_options, threads); !scored) {
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

// The TYPE names for --help, a few to a line, each as llama-quantize spells it.
std::string type_names_help() {
  std::string out = "TYPE (--to), case-insensitive, or its llama_ftype number:";
  size_t column = 80;
  for (const FileTypeInfo& info : all_file_types()) {
    if (column + info.name.size() + 1 > 100) {
      out += "\n ";
      column = 1;
    }
    out += " ";
    out += info.name;
    column += info.name.size() + 1;
  }
  return out + "\n(docs/cli.md says what each one is)";
}

}  // namespace

Command add_convert_options(CLI::App& app, GlobalOptions& globals) {
  auto args = std::make_shared<ConvertArgs>();
  ConvertRequest& request = args->request;
  app.footer(type_names_help() + "\n\n" + app.get_footer());
  app.add_option("INPUT", request.input, "GGUF model to convert");
  args->to_option = app.add_option("--to", args->to,
                 "Target type(s), llama-quantize's names (Q4_K_M, q8_0, IQ2_XS, COPY...; case-insensitive, listed "
                 "below); comma-separated for several outputs from one read: Q8_0,Q4_K_M")
      ->group("Conversion");
  args->output_option = app.add_option("-o,--output", args->outputs,
                                       "Output path, one per target (default: <input stem>-<TYPE>.gguf beside the "
                                       "input)")
                            ->allow_extra_args(false)
                            ->group("Conversion");
  app.add_flag("--pure", request.types.pure, "Give every quantizable tensor the one type: no mix rules")
      ->group("Conversion");
  app.add_option("--imatrix", request.imatrix.path, "Importance matrix (llama.cpp GGUF imatrix or legacy .dat)")
      ->group("Conversion");
  app.add_option("--calibration-text", args->calibration_text,
                 "Compute the importance matrix in this run from a text (plain or JSONL), as llama-imatrix would, "
                 "and use it as --imatrix would (docs/imatrix.md). With --target-size: the text each tensor's cost "
                 "is measured on, and without --imatrix the importance matrix's source too (docs/automix.md)")
      ->group("Conversion");
  args->calibration_ctx_option = app.add_option("--calibration-ctx", args->calibration_ctx,
                 "Tokens per chunk for --calibration-text (default 512, llama-imatrix's; with --target-size, 512 or "
                 "the model's training context when smaller)")
      ->group("Conversion");
  app.add_option("--calibration-chunks", args->calibration_chunks,
                 "Use at most this many chunks of --calibration-text (default -1: all)")
      ->group("Conversion");
  app.add_option("--include-weights", request.imatrix.include_weights,
                 "Use importance data only for tensors whose name contains this (repeatable)")->allow_extra_args(false)
      ->group("Conversion");
  app.add_option("--exclude-weights", request.imatrix.exclude_weights,
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
  app.add_flag("--allow-requantize", request.types.allow_requantize,
               "Accept already-quantized input tensors (dequantize, then quantize: loses accuracy)")
      ->group("Conversion");
  app.add_flag("--leave-output-tensor", request.types.leave_output_tensor, "Do not quantize output.weight")
      ->group("Conversion");
  app.add_option("--override-kv", args->override_kv,
                 "KEY=TYPE:VALUE metadata to set in the output, TYPE one of int, float, bool, str (repeatable)")
      ->allow_extra_args(false)
      ->group("Conversion");
  app.add_option("--calibration", request.calibration_table,
                 "Calibration table (JSON from `quantize calibrate -o`) to embed as quantize.calibration.* keys")
      ->group("Conversion");
  app.add_flag("--dry-run", request.dry_run, "Print the per-tensor plan and the exact output sizes; write nothing")
      ->group("Conversion");
  app.add_option("-t,--threads", request.threads,
                 "Worker threads (default 0: all cores); output is identical for any N")
      ->group("Conversion");
  app.add_flag("-f,--force", request.output.overwrite,
               "Replace an existing output file (only a regular file is ever replaced)")
      ->group("Conversion");
  app.add_flag("--fsync", request.output.fsync,
               "Flush the outputs to disk before renaming them into place (survives power loss; slower)")
      ->group("Conversion");
  app.add_flag("--allow-non-finite", request.stream.allow_non_finite,
               "Accept NaN/Inf in input tensors copied unchanged (llama.cpp refuses to load such files)")
      ->group("Conversion");
  app.add_option("--eval-text", args->eval_text,
                 "Score each output against the input on this text (llama-perplexity's PPL, KL divergence, same top)")
      ->group("Quality");
  app.add_option("--eval-ctx", args->eval_ctx, "Context for --eval-text (default 512)")->group("Quality");
  app.add_option("--eval-chunks", args->eval_chunks, "Score at most this many chunks of --eval-text")->group("Quality");
  app.add_option("--max-kld", args->max_kld,
                 "With --eval-text: exit 5 (outputs still written) when an output's mean KL divergence exceeds this")
      ->group("Quality");
  app.add_flag("--keep-split", request.split.keep_split,
               "Write one output shard per input shard, OUT-0000i-of-0000n.gguf, as llama-quantize --keep-split")
      ->group("Split output");
  app.add_option("--split-max-size", args->split_max_size,
                 "Cut the output into shards of at most N bytes of tensor data: N, NM (10^6) or NG (10^9), as "
                 "llama-gguf-split --split-max-size cuts llama-quantize's output")
      ->group("Split output");
  app.add_option("--split-max-tensors", request.split.limits.max_tensors,
                 "Cut the output into shards of at most N tensors, as llama-gguf-split --split-max-tensors")
      ->check(at_least_one())  // 0 would silently mean "not split"
      ->group("Split output");
  app.add_option("--shard", args->shard,
                 "I/N: write only shard I of the output cut into N shards balanced by bytes (OUT-0000I-of-0000N.gguf), "
                 "reading only its tensors; N jobs make one split model (docs/scale-out.md)")
      ->group("Split output");
  std::shared_ptr<AutomixOptions> automix = add_automix_options(app);
  return Command{&app, [args, automix, &globals, &app]() -> int {
                   if (!args->request.input.empty() && automix_requested(*automix)) {
                     return run_automix(*automix, *args, globals);
                   }
                   // One line that says what is missing, not the whole help.
                   const bool no_input = args->request.input.empty();
                   const bool no_type = args->to_option->count() == 0;
                   if (no_input || no_type) {
                     return fail(usage_error(fmt::format(
                         "missing {} (usage: quantize INPUT --to TYPE [-o OUTPUT] [OPTIONS], or --target-size SIZE "
                         "for an automatic mix; quantize --help lists every option and TYPE)",
                         no_input && no_type ? "INPUT and --to TYPE"
                         : no_input          ? "INPUT, the GGUF model to convert"
                                             : "--to TYPE, the type to convert to (Q4_K_M, Q8_0, ...)")));
                   }
                   return run_convert(*args, globals);
                 }};
}

}  // namespace quant::cli
