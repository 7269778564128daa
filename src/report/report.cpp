#include "quant/report.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "formats/simd_kernels.h"

namespace quant {

void ErrorStats::add(const float* reference, const float* reconstructed, int64_t n) {
  // Four interleaved double accumulators in a fixed order (formats/simd_kernels.h), so the sums are the same
  // at every kernel level.
  formats::ErrorSums sums;
  sums.max_abs = max_abs_;
  formats::accumulate_error_sums(reference, reconstructed, n, &sums);
  count_ += n;
  sum_sq_error_ += sums.sum_sq_error;
  sum_sq_reference_ += sums.sum_sq_reference;
  sum_sq_reconstructed_ += sums.sum_sq_reconstructed;
  dot_ += sums.dot;
  max_abs_ = sums.max_abs;
}

void ErrorStats::merge(const ErrorStats& other) {
  count_ += other.count_;
  sum_sq_error_ += other.sum_sq_error_;
  sum_sq_reference_ += other.sum_sq_reference_;
  sum_sq_reconstructed_ += other.sum_sq_reconstructed_;
  dot_ += other.dot_;
  max_abs_ = std::max(max_abs_, other.max_abs_);
}

double ErrorStats::rmse() const { return count_ == 0 ? 0.0 : std::sqrt(sum_sq_error_ / double(count_)); }

double ErrorStats::sqnr_db() const {
  if (sum_sq_error_ == 0) return std::numeric_limits<double>::infinity();
  if (sum_sq_reference_ == 0) return 0.0;
  return 10.0 * std::log10(sum_sq_reference_ / sum_sq_error_);
}

double ErrorStats::cosine() const {
  if (sum_sq_reference_ == 0 && sum_sq_reconstructed_ == 0) return 1.0;
  if (sum_sq_reference_ == 0 || sum_sq_reconstructed_ == 0) return 0.0;
  return dot_ / (std::sqrt(sum_sq_reference_) * std::sqrt(sum_sq_reconstructed_));
}

double ConversionReport::bits_per_weight() const {
  uint64_t bytes = 0;
  int64_t values = 0;
  for (const TensorReport& t : tensors) {
    bytes += t.bytes_out;
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    values += n;
  }
  return values == 0 ? 0.0 : 8.0 * double(bytes) / double(values);
}

double ConversionReport::input_mb_per_second() const {
  return wall_seconds <= 0 ? 0.0 : double(input_bytes) / 1e6 / wall_seconds;
}

double ConversionReport::parameters_per_second() const {
  return wall_seconds <= 0 ? 0.0 : double(parameters) / wall_seconds;
}

uint64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

double process_cpu_seconds() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

namespace {
// JSON has no infinity: an exact reconstruction's SQNR is written as null.
nlohmann::json finite_or_null(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}
}  // namespace

nlohmann::json to_json(const ErrorStats& stats) {
  if (stats.count() == 0) return nullptr;
  return {{"rmse", stats.rmse()},
          {"max_abs_error", stats.max_abs_error()},
          {"sqnr_db", finite_or_null(stats.sqnr_db())},
          {"cosine", stats.cosine()},
          {"values", stats.count()}};
}

nlohmann::json to_json(const TensorReport& t) {
  nlohmann::json out = {{"name", t.name},
                        {"shape", t.shape},
                        {"type_in", std::string(format_of(t.type_in).name)},
                        {"type_out", std::string(format_of(t.type_out).name)},
                        {"bytes_in", t.bytes_in},
                        {"bytes_out", t.bytes_out},
                        {"converted", t.converted},
                        {"reason", t.reason}};
  out["error"] = to_json(t.error);  // null for copies too: they have no error pass
  return out;
}

nlohmann::json to_json(const ShardReport& s) {
  return {{"path", s.path},
          {"index", s.index},
          {"tensors", s.tensors},
          {"tensor_bytes", s.tensor_bytes},
          {"file_bytes", s.file_bytes},
          {"sha256", s.sha256.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.sha256)}};
}

nlohmann::json to_json(const ModelQuality& q) {
  return {{"text", q.text},
          {"n_ctx", q.n_ctx},
          {"chunks", q.chunks},
          {"tokens_scored", q.tokens_scored},
          {"perplexity", {{"value", q.perplexity}, {"uncertainty", q.perplexity_uncertainty}}},
          {"base_perplexity", {{"value", q.base_perplexity}, {"uncertainty", q.base_perplexity_uncertainty}}},
          {"kl_divergence",
           {{"mean", q.kld_mean}, {"uncertainty", q.kld_uncertainty}, {"median", q.kld_median},
            {"percentiles", {{"99", q.kld_p99}}}, {"max", q.kld_max}}},
          {"same_top_fraction", q.same_top},
          {"same_top_uncertainty", q.same_top_uncertainty},
          {"seconds", q.seconds}};
}

nlohmann::json to_json(const TextImatrixSummary& s) {
  return {{"text", s.text},
          {"n_ctx", s.n_ctx},
          {"chunks", s.chunks},
          {"tokens", s.tokens},
          {"entries", s.entries},
          {"perplexity", s.perplexity ? nlohmann::json(*s.perplexity) : nlohmann::json(nullptr)},
          {"seconds", s.seconds}};
}

nlohmann::json to_json(const ConversionReport& r) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorReport& t : r.tensors) tensors.push_back(to_json(t));
  nlohmann::json out = {{"input", r.input},
          {"output", r.dry_run ? nlohmann::json(nullptr) : nlohmann::json(r.output)},
          {"target", r.target},
          {"dry_run", r.dry_run},
          {"warnings", r.warnings},
          {"tensors", tensors},
          {"totals",
           {{"input_bytes", r.input_bytes},
            {"output_bytes", r.output_bytes},
            {"ratio", r.ratio()},
            {"parameters", r.parameters},
            {"bits_per_weight", r.bits_per_weight()},
            {"wall_seconds", r.wall_seconds},
            {"cpu_seconds", r.cpu_seconds},
            {"input_mb_per_second", r.input_mb_per_second()},
            {"parameters_per_second", r.parameters_per_second()},
            {"peak_rss_bytes", r.peak_rss_bytes},
            {"threads", r.threads},
            {"output_sha256", r.dry_run || r.output_sha256.empty() ? nlohmann::json(nullptr)
                                                                    : nlohmann::json(r.output_sha256)}}}};
  if (!r.shards.empty()) {
    nlohmann::json shards = nlohmann::json::array();
    for (const ShardReport& s : r.shards) shards.push_back(to_json(s));
    out["shards"] = std::move(shards);
    out["shard_count"] = r.shard_count;
  }
  if (r.quality) out["model"] = to_json(*r.quality);
  if (r.imatrix_from_text) out["imatrix_from_text"] = to_json(*r.imatrix_from_text);
  return out;
}

}  // namespace quant
