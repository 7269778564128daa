// The JSON form of an evaluation (docs/eval.md).
#include <nlohmann/json.hpp>

#include "quant/eval.h"

namespace quant {
namespace {

nlohmann::json percentile_json(const Percentiles& p, bool quartiles) {
  nlohmann::json out = {{"99.9", p.p99_9}, {"99", p.p99}, {"95", p.p95}, {"90", p.p90}, {"10", p.p10}, {"5", p.p5},
                        {"1", p.p1}, {"0.1", p.p0_1}};
  if (quartiles) {
    out["75"] = p.p75;
    out["25"] = p.p25;
  }
  return out;
}

}  // namespace

nlohmann::json to_json(const EvalResult& r) {
  nlohmann::json out;
  out["model"] = r.model;
  if (!r.base.empty()) out["base"] = r.base;
  out["n_ctx"] = r.n_ctx;
  out["chunks"] = r.chunks;
  out["tokens_scored"] = r.tokens_scored;
  out["perplexity"] = {{"value", r.perplexity.value}, {"uncertainty", r.perplexity.uncertainty}};
  if (r.kl_divergence) {
    const KlDivergenceStats& k = *r.kl_divergence;
    out["base_perplexity"] = {{"value", k.base_perplexity.value}, {"uncertainty", k.base_perplexity.uncertainty}};
    out["log_perplexity_ratio"] = {{"value", k.log_ppl_ratio}, {"uncertainty", k.log_ppl_ratio_uncertainty},
                                   {"correlation", k.log_ppl_correlation}};
    out["perplexity_ratio"] = {{"value", k.ppl_ratio}, {"uncertainty", k.ppl_ratio_uncertainty}};
    out["perplexity_difference"] = {{"value", k.ppl_difference}, {"uncertainty", k.ppl_difference_uncertainty}};
    out["kl_divergence"] = {{"mean", k.mean},
                            {"uncertainty", k.uncertainty},
                            {"max", k.kld.max},
                            {"median", k.kld.median},
                            {"min", k.kld.min},
                            {"percentiles", percentile_json(k.kld, false)}};
    out["delta_p"] = {{"mean", k.delta_p_mean},
                      {"uncertainty", k.delta_p_uncertainty},
                      {"max", k.delta_p.max},
                      {"median", k.delta_p.median},
                      {"min", k.delta_p.min},
                      {"percentiles", percentile_json(k.delta_p, true)},
                      {"rms", k.delta_p_rms},
                      {"rms_uncertainty", k.delta_p_rms_uncertainty}};
    out["same_top_fraction"] = k.same_top;
    out["same_top_uncertainty"] = k.same_top_uncertainty;
  }
  out["seconds"] = r.seconds;
  out["tokens_per_second"] = r.tokens_per_second();
  return out;
}

}  // namespace quant
