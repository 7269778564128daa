// `quantize INPUT --target-size SIZE | --target-bpw B [options]`: an automatic mix for a size budget.
// Parses, calls quant::automix, prints. The options it shares with the main job (-o, --imatrix, --tensor-type...)
// are parsed by convert_command.cpp (convert_args.h) and read from there.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "convert_args.h"
#include "interrupt.h"
#include "progress.h"
#include "quant/automix.h"
#include "quant/convert.h"
#include "report_printer.h"

namespace quant::cli {

struct AutomixOptions {
  std::string target_size;
  double target_bpw = 0;
  int64_t calibration_tokens = 4096;
  std::string sensitivity_cache;
  std::string save_plan;
  std::string frontier;
  int frontier_points = 24;
};

namespace {

std::string human_bytes(uint64_t bytes) {
  return fmt::format("{} bytes ({:.3f} MiB)", bytes, double(bytes) / (1024.0 * 1024.0));
}

nlohmann::json frontier_json(const Frontier& frontier) {
  auto points = [](const std::vector<FrontierPoint>& list) {
    nlohmann::json out = nlohmann::json::array();
    for (const FrontierPoint& p : list) {
      out.push_back({{"label", p.label}, {"file_bytes", p.file_bytes}, {"bits_per_weight", p.bits_per_weight},
                     {"cost", p.cost}});
    }
    return out;
  };
  return {{"unit", frontier.unit}, {"auto", points(frontier.ours)}, {"mixes", points(frontier.mixes)}};
}

nlohmann::json to_json(const AutomixResult& r) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const AutomixTensor& t : r.tensors) {
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"type_in", format_of(t.source_type).name},
                       {"type_out", format_of(t.type).name}, {"bytes", t.bytes}, {"cost", t.cost},
                       {"quantized", t.quantizable}, {"pinned", t.pinned}});
  }
  nlohmann::json out = {
      {"input", r.input},
      {"output", r.output.empty() ? nlohmann::json() : nlohmann::json(r.output)},
      {"dry_run", r.output.empty()},
      {"budget", r.budget.kind == SizeBudget::Kind::file_bytes
                     ? nlohmann::json{{"file_bytes", r.budget.file_bytes}}
                     : nlohmann::json{{"bits_per_weight", r.budget.bits_per_weight}}},
      {"reachable_bytes", {r.min_file_bytes, r.max_file_bytes}},
      {"file_bytes", r.file_bytes},
      {"bits_per_weight", r.bits_per_weight},
      {"predicted_cost", r.predicted_cost},
      {"measured", r.measured ? nlohmann::json{{"kld", r.measured->cost}, {"same_top_fraction", r.measured->same_top}}
                              : nlohmann::json()},
      {"cost_unit", r.cost_unit},
      {"measurer", r.measurer},
      {"imatrix_from_text", r.imatrix_from_text ? quant::to_json(*r.imatrix_from_text) : nlohmann::json()},
      {"cache_used", r.cache_used},
      {"measure_seconds", r.measure_seconds},
      {"check_seconds", r.check_seconds},
      {"solve_seconds", r.solve_seconds},
      {"base_file_type", r.base_file_type},
      {"llama_quantize_command", r.llama_quantize_command},
      {"tensors", tensors},
      {"warnings", r.warnings},
  };
  if (r.frontier) out["frontier"] = frontier_json(*r.frontier);
  if (r.conversion) out["conversion"] = quant::to_json(*r.conversion);
  return out;
}

void print_result(std::ostream& out, const AutomixResult& r) {
  out << fmt::format("{} -> {} (automatic mix, file type {})\n", r.input, r.output.empty() ? "(dry run)" : r.output,
                     r.base_file_type);
  const std::string budget = r.budget.kind == SizeBudget::Kind::file_bytes
                                 ? human_bytes(r.budget.file_bytes)
                                 : fmt::format("{} bits per weight", r.budget.bits_per_weight);
  out << fmt::format("  budget      {}  (files of {} to {} bytes are reachable)\n", budget, r.min_file_bytes,
                     r.max_file_bytes);
  out << fmt::format("  file        {}  ({:.4f} bits per weight)\n", human_bytes(r.file_bytes), r.bits_per_weight);
  out << fmt::format("  predicted   {:.6g} ({})\n", r.predicted_cost, r.cost_unit);
  if (r.measured) {
    out << fmt::format("  measured    KLD {:.6g}, same top token {:.3f} % (the whole mix on the calibration text)\n",
                       r.measured->cost, 100.0 * r.measured->same_top);
  }
  if (r.imatrix_from_text && !r.conversion) {  // a conversion's report prints it below
    const TextImatrixSummary& m = *r.imatrix_from_text;
    out << fmt::format("  imatrix     {} weights from {} chunks of {} tokens of {}, computed in {:.2f} s\n", m.entries,
                       m.chunks, m.n_ctx, m.text, m.seconds);
  }
  out << fmt::format("  measured by {}{}, {:.2f} s; solved in {:.3f} s; the mix checked in {:.2f} s\n", r.measurer,
                     r.cache_used ? " (from the sensitivity cache)" : "", r.measure_seconds, r.solve_seconds,
                     r.check_seconds);
  out << fmt::format("  {:<32} {:>6} {:>8} {:>10} {:>12}\n", "tensor", "from", "type", "bytes", "cost");
  for (const AutomixTensor& t : r.tensors) {
    if (!t.quantizable) continue;
    out << fmt::format("  {:<32} {:>6} {:>8} {:>10} {:>12.4g}{}\n", t.name, format_of(t.source_type).name,
                       format_of(t.type).name, t.bytes, t.cost, t.pinned ? "  (pinned)" : "");
  }
  if (r.frontier) {
    out << fmt::format("  frontier ({}):\n  {:<8} {:>12} {:>8} {:>12}\n", r.frontier->unit, "", "bytes", "bpw", "cost");
    for (const FrontierPoint& p : r.frontier->ours) {
      out << fmt::format("  {:<8} {:>12} {:>8.3f} {:>12.4g}\n", p.label, p.file_bytes, p.bits_per_weight, p.cost);
    }
    for (const FrontierPoint& p : r.frontier->mixes) {
      out << fmt::format("  {:<8} {:>12} {:>8.3f} {:>12.4g}\n", p.label, p.file_bytes, p.bits_per_weight, p.cost);
    }
  }
  out << fmt::format("  reproduce with: {}\n", r.llama_quantize_command);
  if (r.conversion) print_report(out, *r.conversion, false);
}

// The first main-job option given that an automatic mix does not take, if any.
const char* option_not_taken(const ConvertArgs& args) {
  const ConvertRequest& request = args.request;
  const TypeChoices& types = request.types;
  const std::pair<bool, const char*> given[] = {
      {types.pure, "--pure"}, {types.leave_output_tensor, "--leave-output-tensor"},
      {types.allow_requantize, "--allow-requantize"},
      {!args.output_tensor_type.empty(), "--output-tensor-type"},
      {!args.token_embedding_type.empty(), "--token-embedding-type"},
      {!request.imatrix.include_weights.empty(), "--include-weights"},
      {!request.imatrix.exclude_weights.empty(), "--exclude-weights"},
      {!args.override_kv.empty(), "--override-kv"}, {!request.calibration_table.empty(), "--calibration"},
      {args.calibration_chunks != -1, "--calibration-chunks"}, {!args.eval_text.empty(), "--eval-text"},
      {args.max_kld.has_value(), "--max-kld"}, {request.output.fsync, "--fsync"},
      {request.stream.allow_non_finite, "--allow-non-finite"}, {request.split.keep_split, "--keep-split"},
      {!args.split_max_size.empty(), "--split-max-size"},
      {request.split.limits.max_tensors != 0, "--split-max-tensors"}, {!args.shard.empty(), "--shard"}};
  for (const auto& [is_given, name] : given) {
    if (is_given) return name;
  }
  return nullptr;
}

Result<AutomixRequest> build_request(const AutomixOptions& options, const ConvertArgs& args) {
  AutomixRequest request;
  if (!args.to.empty()) return usage_error("--to and --target-size/--target-bpw are alternatives: give one");
  if (!options.target_size.empty() && options.target_bpw != 0) {
    return usage_error("--target-size and --target-bpw are alternatives: give one");
  }
  if (const char* refused = option_not_taken(args); refused != nullptr) {
    return usage_error(fmt::format("{} cannot be combined with --target-size/--target-bpw", refused));
  }
  const std::string& imatrix = args.request.imatrix.path;
  if (imatrix.empty() && args.calibration_text.empty()) {
    // Without importance data the measurement falls back to unweighted errors and the i-quants that need it are
    // out of reach: a budget run takes one source or the other.
    return usage_error("--target-size/--target-bpw need --imatrix FILE, --calibration-text FILE (the importance "
                       "matrix is then computed from the text), or both");
  }
  request.input = args.request.input;
  if (args.outputs.size() > 1) return usage_error("an automatic mix writes one output: give at most one -o");
  if (!args.outputs.empty()) request.output = args.outputs.front();
  if (!options.target_size.empty()) {
    QUANT_ASSIGN_OR_RETURN(request.budget.file_bytes, parse_byte_size(options.target_size));
    request.budget.kind = SizeBudget::Kind::file_bytes;
    request.budget_text = options.target_size;
  } else {
    if (!(options.target_bpw > 0) || !std::isfinite(options.target_bpw)) {
      return usage_error("--target-bpw must be a number above 0");
    }
    request.budget.kind = SizeBudget::Kind::bits_per_weight;
    request.budget.bits_per_weight = options.target_bpw;
    request.budget_text = fmt::format("{}bpw", options.target_bpw);
  }
  request.imatrix_path = imatrix;
  request.calibration_text = args.calibration_text;
  // Without --calibration-ctx the search picks its context (0), not the main job's default.
  const int64_t ctx = args.calibration_ctx_option->count() == 0 ? 0 : args.calibration_ctx;
  if (ctx < 0 || options.calibration_tokens <= 0) {
    return usage_error("--calibration-ctx must be 0 (automatic) or more, --calibration-tokens more than 0");
  }
  request.kld.ctx = ctx;
  request.kld.max_tokens = options.calibration_tokens;
  request.sensitivity_cache = options.sensitivity_cache;
  for (const std::string& text : args.tensor_types) {
    QUANT_ASSIGN_OR_RETURN(TensorTypeOverride pin, parse_tensor_type_override(text));
    request.pins.push_back(std::move(pin));
  }
  if (!args.tensor_type_file.empty()) {
    QUANT_ASSIGN_OR_RETURN(std::vector<TensorTypeOverride> list, read_tensor_type_file(args.tensor_type_file));
    for (TensorTypeOverride& pin : list) request.pins.push_back(std::move(pin));
  }
  request.save_plan = options.save_plan;
  if (!options.frontier.empty()) {
    if (options.frontier_points < 2) return usage_error("--frontier-points must be 2 or more");
    request.frontier = FrontierOptions{options.frontier, options.frontier_points};
  }
  request.dry_run = args.request.dry_run;
  request.overwrite = args.request.output.overwrite;
  if (args.request.threads < 0) return usage_error("--threads must be 0 (all cores) or more");
  request.threads = args.request.threads;
  return request;
}

}  // namespace

std::shared_ptr<AutomixOptions> add_automix_options(CLI::App& app) {
  auto options = std::make_shared<AutomixOptions>();
  const char* group = "Automatic mix (instead of --to)";
  app.add_option("--target-size", options->target_size,
                 "Write the least-error mix whose FILE is at most SIZE: bytes, or K/M/G (x1000^n, as "
                 "llama-gguf-split), KiB/MiB/GiB (x1024^n); header and metadata included")
      ->group(group);
  app.add_option("--target-bpw", options->target_bpw,
                 "Same, for a budget in bits per weight (8 x tensor bytes / parameters, llama.cpp's BPW)")
      ->group(group);
  app.add_option("--calibration-tokens", options->calibration_tokens,
                 "Tokens of --calibration-text measured on, in whole chunks (default 4096). Without a text "
                 "the cost is a proxy: the importance-weighted quantization error")
      ->group(group);
  app.add_option("--sensitivity-cache", options->sensitivity_cache,
                 "Keep the measurements in FILE: reused when it matches the model, imatrix and text, written otherwise")
      ->group(group);
  app.add_option("--save-plan", options->save_plan,
                 "Write the chosen types as a llama-quantize --tensor-type-file (reproduces the file)")
      ->group(group);
  app.add_option("--frontier", options->frontier,
                 "Write PREFIX.csv, PREFIX.json and PREFIX.svg: predicted cost against size over a range of budgets, "
                 "with llama-quantize's mixes")
      ->group(group);
  app.add_option("--frontier-points", options->frontier_points, "Budgets on the frontier (default 24)")->group(group);
  return options;
}

bool automix_requested(const AutomixOptions& options) {
  return !options.target_size.empty() || options.target_bpw != 0;
}

int run_automix(const AutomixOptions& options, const ConvertArgs& args, const GlobalOptions& globals) {
  auto request = build_request(options, args);
  if (!request) return fail(request.error());
  ProgressBar progress(globals.quiet || globals.json);
  if (progress.enabled()) {
    request->progress = [&progress](size_t done, size_t total, const std::string& tensor) {
      progress.update(done, total, "measuring " + tensor);
    };
  }
  request->cancel = install_interrupt_handlers();
  auto result = automix(*request);
  progress.finish();
  if (!result) return fail(result.error());
  for (const std::string& warning : result->warnings) spdlog::warn("{}", warning);
  if (globals.json) {
    std::cout << to_json(*result).dump(2) << "\n";
  } else if (!globals.quiet) {
    print_result(std::cout, *result);
  }
  return kExitOk;
}

}  // namespace quant::cli
