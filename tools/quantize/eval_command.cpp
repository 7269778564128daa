// `quantize eval MODEL --text FILE [--base BASE.gguf | --kl-base FILE] [--save-kl-base FILE]`: llama-perplexity's
// perplexity and KL-divergence statistics for a model (docs/eval.md).
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "command.h"
#include "interrupt.h"
#include "progress.h"
#include "quant/eval.h"
#include "quant/model_source.h"
#include "quant/report.h"

namespace quant::cli {
namespace {

struct EvalArgs {
  std::string model;
  std::string text;
  std::string base;
  std::string kl_base;
  std::string save_kl_base;
  bool force = false;  // --save-kl-base may replace an existing regular file
  int64_t ctx = 0;
  int64_t chunks = -1;
  int64_t pass_tokens = 4096;
  int threads = 0;
};

Result<std::unique_ptr<Model>> open_for_eval(const std::string& path, int threads) {
  QUANT_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model(path));
  ModelOptions options;
  options.threads = threads;
  return Model::open(std::shared_ptr<const ModelSource>(std::move(source)), options);
}

void print_result(std::ostream& out, const EvalResult& r, int threads, bool verbose) {
  out << fmt::format("{}{}: {} chunks of {} tokens, {} tokens scored\n", r.model,
                     r.base.empty() ? "" : " vs " + r.base, r.chunks, r.n_ctx, r.tokens_scored);
  out << fmt::format("  perplexity    {:.4f} ± {:.5f}", r.perplexity.value, r.perplexity.uncertainty);
  if (r.kl_divergence) {
    const KlDivergenceStats& k = *r.kl_divergence;
    out << fmt::format("   (base {:.4f} ± {:.5f}, ratio {:.4f} ± {:.4f})\n", k.base_perplexity.value,
                       k.base_perplexity.uncertainty, k.ppl_ratio, k.ppl_ratio_uncertainty);
    out << fmt::format("  KL divergence {:.6f} ± {:.6f}   (median {:.6f}, 99% {:.6f}, max {:.6f})\n", k.mean,
                       k.uncertainty, k.kld.median, k.kld.p99, k.kld.max);
    out << fmt::format("  same top      {:.3f} ± {:.3f} %\n", 100 * k.same_top, 100 * k.same_top_uncertainty);
    out << fmt::format("  Δp            mean {:.3f} ± {:.3f} %, RMS {:.3f} ± {:.3f} %\n", 100 * k.delta_p_mean,
                       100 * k.delta_p_uncertainty, 100 * k.delta_p_rms, 100 * k.delta_p_rms_uncertainty);
    if (verbose) {
      // llama-perplexity's full tables.
      const Percentiles& p = k.kld;
      out << fmt::format("  KLD           max {:.6f}, 99.9% {:.6f}, 99% {:.6f}, 95% {:.6f}, 90% {:.6f}, median {:.6f},\n"
                         "                10% {:.6f}, 5% {:.6f}, 1% {:.6f}, 0.1% {:.6f}, min {:.6f}\n",
                         p.max, p.p99_9, p.p99, p.p95, p.p90, p.median, p.p10, p.p5, p.p1, p.p0_1, p.min);
      const Percentiles& d = k.delta_p;
      out << fmt::format("  Δp %          max {:.3f}, 99.9% {:.3f}, 99% {:.3f}, 95% {:.3f}, 90% {:.3f}, 75% {:.3f}, "
                         "median {:.3f},\n                25% {:.3f}, 10% {:.3f}, 5% {:.3f}, 1% {:.3f}, 0.1% {:.3f}, "
                         "min {:.3f}\n",
                         100 * d.max, 100 * d.p99_9, 100 * d.p99, 100 * d.p95, 100 * d.p90, 100 * d.p75,
                         100 * d.median, 100 * d.p25, 100 * d.p10, 100 * d.p5, 100 * d.p1, 100 * d.p0_1, 100 * d.min);
      out << fmt::format("  ln(PPL ratio) {:.6f} ± {:.6f}, correlation {:.2f} %, PPL difference {:.6f} ± {:.6f}\n",
                         k.log_ppl_ratio, k.log_ppl_ratio_uncertainty, 100 * k.log_ppl_correlation, k.ppl_difference,
                         k.ppl_difference_uncertainty);
    }
  } else {
    out << "\n";
  }
  out << fmt::format("  time          {:.2f} s, {:.0f} tokens/s, {} threads, peak RSS {:.1f} MiB\n", r.seconds,
                     r.tokens_per_second(), threads, double(peak_rss_bytes()) / (1 << 20));
}

int run_eval(const EvalArgs& args, const GlobalOptions& globals) {
  if (!args.base.empty() && !args.kl_base.empty()) return fail(usage_error("give --base or --kl-base, not both"));
  if (args.text.empty() && args.kl_base.empty()) {
    return fail(usage_error("--text FILE is needed (or --kl-base FILE, whose tokens are scored)"));
  }
  if (args.ctx < 0 || args.chunks < -1 || args.threads < 0 || args.pass_tokens < 1) {
    return fail(usage_error("--ctx, --chunks, --threads and --pass-tokens take positive numbers"));
  }
  // --save-kl-base follows the rules of every output (quant/atomic_file.h): checked now, before hours of work,
  // and again when it is placed.
  OutputPolicy save_policy;
  save_policy.overwrite = args.force;
  save_policy.release_in_background = true;
  for (const std::string* input : {&args.text, &args.kl_base}) {
    if (!input->empty()) save_policy.inputs.push_back(*input);
  }
  for (const std::string* model : {&args.model, &args.base}) {  // every shard of a split model, a folder's files
    if (model->empty()) continue;
    for (std::string& file : model_files(*model)) save_policy.inputs.push_back(std::move(file));
  }
  if (!args.save_kl_base.empty()) {
    if (Status allowed = check_output_path(args.save_kl_base, save_policy); !allowed) return fail(allowed.error());
  }
  auto model = open_for_eval(args.model, args.threads);
  if (!model) return fail(model.error());
  std::unique_ptr<Model> base_model;
  std::optional<KlBaseReader> base_file;
  EvalBase base;
  if (!args.base.empty()) {
    auto opened = open_for_eval(args.base, args.threads);
    if (!opened) return fail(opened.error());
    base_model = std::move(*opened);
    base.model = base_model.get();
  }
  if (!args.kl_base.empty()) {
    auto opened = KlBaseReader::open(args.kl_base);
    if (!opened) return fail(opened.error());
    base_file = std::move(*opened);
    base.file = &*base_file;
  }
  auto text = read_eval_text((*model)->source(), args.text);  // with --kl-base alone: only the BOS rule
  if (!text) return fail(text.error());

  EvalOptions options;
  options.n_ctx = args.ctx;
  options.max_chunks = args.chunks;
  options.text_path = args.text;
  options.tokens_per_pass = args.pass_tokens;
  options.save_kl_base = args.save_kl_base;
  options.save_policy = save_policy;
  options.cancel = install_interrupt_handlers();
  ProgressBar progress(globals.quiet || globals.json);
  const auto started = std::chrono::steady_clock::now();
  if (progress.enabled()) {
    options.progress = [&](int64_t done, int64_t total) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      const double rate = seconds > 0 ? double(done) / seconds : 0;
      progress.update(uint64_t(done), uint64_t(total),
                      fmt::format("{}/{} chunks, {:.1f} chunks/s, ETA {:.0f} s", done, total, rate,
                                  rate > 0 ? double(total - done) / rate : 0.0));
    };
  }
  auto result = evaluate(**model, text->tokens, text->add_bos, text->bos, base, options);
  progress.finish();
  if (!result) return fail(result.error());
  if (globals.json) {
    nlohmann::json out = to_json(*result);
    out["threads"] = (*model)->threads();
    out["peak_rss_bytes"] = peak_rss_bytes();
    std::cout << out.dump(2) << "\n";
  } else if (!globals.quiet) {
    print_result(std::cout, *result, (*model)->threads(), globals.verbose);
  }
  return kExitOk;
}

}  // namespace

Command add_eval_command(CLI::App& parent, GlobalOptions& globals) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* app = parent.add_subcommand(
      "eval", "Score a model as llama-perplexity does: perplexity, and KL divergence against a base (docs/eval.md)");
  app->add_option("MODEL", args->model, "GGUF model to score")->required();
  app->add_option("--text", args->text, "Text to score, read as llama-perplexity -f reads it");
  app->add_option("--base", args->base, "Base model (e.g. the f16 the model came from): report KL divergence");
  app->add_option("--kl-base", args->kl_base,
                  "Base logits written by llama-perplexity --kl-divergence-base or --save-kl-base (its tokens are "
                  "scored)");
  app->add_option("--save-kl-base", args->save_kl_base,
                  "Write the base's log-probabilities (the model's without a base) in llama-perplexity's format");
  app->add_flag("-f,--force", args->force, "Let --save-kl-base replace an existing file (a regular file only)");
  app->add_option("-c,--ctx", args->ctx, "Context (chunk) size in tokens (default 512, or the --kl-base file's)");
  app->add_option("--chunks", args->chunks, "Score at most this many chunks (default: all)");
  app->add_option("-t,--threads", args->threads, "Threads (default 0: all cores)");
  app->add_option("--pass-tokens", args->pass_tokens,
                  "Tokens evaluated per pass over the weights (whole chunks; default 4096)");
  return Command{app, [args, &globals] { return run_eval(*args, globals); }};
}

}  // namespace quant::cli
