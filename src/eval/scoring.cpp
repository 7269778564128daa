#include "eval/scoring.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

namespace quant {

int64_t kl_row_values(int64_t n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }

namespace {

// perplexity.cpp's nearest_int (round half to even through the 1.5·2^23 trick).
inline int nearest_int(float value) {
  float shifted = value + 12582912.f;
  int bits;
  std::memcpy(&bits, &shifted, sizeof(int));
  return (bits & 0x007fffff) - 0x00400000;
}

}  // namespace

double compress_log_probs(const float* logits, int64_t n_vocab, int32_t token, uint16_t* row) {
  float max_logit = logits[0];
  float min_logit = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) {
    max_logit = std::max(max_logit, logits[i]);
    min_logit = std::min(min_logit, logits[i]);
  }
  min_logit = std::max(min_logit, max_logit - 16);
  double sum_exp = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum_exp += expf(logits[i] - max_logit);
  const float log_sum_exp = float(log(sum_exp));
  const float min_log_prob = min_logit - max_logit - log_sum_exp;
  const float scale = (max_logit - min_logit) / 65535.f;
  std::memcpy(row, &scale, sizeof(float));
  std::memcpy(row + 2, &min_log_prob, sizeof(float));
  uint16_t* values = row + 4;
  if (scale != 0.0f) {
    const float inv_scale = 1 / scale;
    for (int64_t i = 0; i < n_vocab; ++i) {
      values[i] = logits[i] > min_logit ? uint16_t(nearest_int(inv_scale * (logits[i] - min_logit))) : 0;
    }
  } else {
    std::memset(values, 0, size_t(n_vocab) * sizeof(uint16_t));
  }
  if (n_vocab % 2 != 0) values[n_vocab] = 0;  // llama-perplexity's buffer starts zeroed and never writes the pad
  return max_logit + log_sum_exp - logits[token];
}

namespace eval {
namespace {

// mean_and_uncertainty and covariance from kl_divergence().
std::pair<double, double> mean_and_uncertainty(double sum, double sum2, int64_t count) {
  if (count < 1) return {0.0, 0.0};
  const double f = sum / double(count);
  double df = sum2 / double(count) - f * f;
  df = df > 0 && count > 10 ? sqrt(df / double(count - 1)) : 0.;
  return {f, df};
}

double covariance(double suma, double sumb, double sumab, int64_t count) {
  if (count < 10) return 0.0;
  double var = sumab / double(count) - (suma / double(count)) * (sumb / double(count));
  var /= double(count - 1);
  return var;
}

// The percentile lambda of kl_divergence() (float interpolation), on sorted values.
float percentile(const std::vector<float>& values, float fraction) {
  if (fraction <= 0) return values.front();
  if (fraction >= 1) return values.back();
  float p = fraction * float(values.size() - 1);
  const size_t ip = size_t(p);
  p -= float(ip);
  return (1 - p) * values[ip] + p * values[std::min(ip + 1, values.size() - 1)];
}

float median(const std::vector<float>& values) {
  const size_t n = values.size();
  return n % 2 == 0 ? 0.5f * (values[n / 2] + values[n / 2 - 1]) : values[n / 2];
}

Percentiles percentiles(std::vector<float> values) {
  Percentiles out;
  if (values.empty()) return out;
  std::sort(values.begin(), values.end());
  out.max = values.back();
  out.p99_9 = percentile(values, 0.999f);
  out.p99 = percentile(values, 0.990f);
  out.p95 = percentile(values, 0.950f);
  out.p90 = percentile(values, 0.900f);
  out.p75 = percentile(values, 0.750f);
  out.median = median(values);
  out.p25 = percentile(values, 0.250f);
  out.p10 = percentile(values, 0.100f);
  out.p5 = percentile(values, 0.050f);
  out.p1 = percentile(values, 0.010f);
  out.p0_1 = percentile(values, 0.001f);
  out.min = values.front();
  return out;
}

}  // namespace

double token_nll(const float* logits, int64_t n_vocab, int32_t token) {
  float max_logit = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum_exp = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum_exp += expf(logits[i] - max_logit);
  return -((logits[token] - max_logit) - log(sum_exp));
}

PerplexityStats PerplexitySums::finish() const {
  // perplexity(): nll2/count - (nll/count)², then sqrt(·/(count-1)) times the perplexity.
  PerplexityStats stats;
  if (count == 0) return stats;
  const double mean = nll / double(count);
  double variance = nll2 / double(count) - mean * mean;
  stats.value = exp(mean);
  stats.uncertainty = variance > 0 ? sqrt(variance / double(count - 1)) * stats.value : 0.0;
  return stats;
}

void KlSums::add(const float* logits, int64_t n_vocab, const uint16_t* base_row, int32_t token) {
  float max_logit = logits[0];
  int64_t imax = 0;
  for (int64_t i = 1; i < n_vocab; ++i) {
    if (logits[i] > max_logit) {
      max_logit = logits[i];
      imax = i;
    }
  }
  double sum_exp = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum_exp += expf(logits[i] - max_logit);
  const float log_sum_exp = float(log(sum_exp));
  float scale, min_log_prob;
  std::memcpy(&scale, base_row, sizeof(float));
  std::memcpy(&min_log_prob, base_row + 2, sizeof(float));
  const uint16_t* base = base_row + 4;

  const float nll = max_logit + log_sum_exp - logits[token];
  sum_nll_ += nll;
  sum_nll2_ += nll * nll;
  const float nll_base = -(scale * base[token] + min_log_prob);
  sum_nll_base_ += nll_base;
  sum_nll_base2_ += nll_base * nll_base;
  sum_nll_nll_base_ += nll * nll_base;

  max_logit += log_sum_exp;
  double sum = 0;
  int64_t imax_base = -1;
  float p_log_base_max = 0;
  for (int64_t i = 0; i < n_vocab; ++i) {
    const float p_log_base = scale * base[i] + min_log_prob;
    if (i == 0 || p_log_base > p_log_base_max) {
      p_log_base_max = p_log_base;
      imax_base = i;
    }
    if (p_log_base > -16.f) {
      const float p_base = expf(p_log_base);
      sum += p_base * (p_log_base - logits[i] + max_logit);
    }
  }
  sum_kld_ += sum;
  sum_kld2_ += sum * sum;
  ++count_;
  if (imax == imax_base) ++n_same_top_;

  const float p_base = expf(-nll_base);
  const float p = expf(-nll);
  const float p_diff = p - p_base;
  sum_p_diff_ += p_diff;
  const double p_diff2 = p_diff * p_diff;
  sum_p_diff2_ += p_diff2;
  sum_p_diff4_ += p_diff2 * p_diff2;
  max_p_diff_ = std::max(max_p_diff_, std::fabs(p_diff));
  kld_values_.push_back(float(sum));
  p_diff_values_.push_back(p_diff);
}

PerplexityStats KlSums::perplexity() const {
  const auto log_ppl = mean_and_uncertainty(sum_nll_, sum_nll2_, count_);
  return {exp(log_ppl.first), exp(log_ppl.first) * log_ppl.second};
}

KlDivergenceStats KlSums::finish() const {
  KlDivergenceStats s;
  const auto log_ppl = mean_and_uncertainty(sum_nll_, sum_nll2_, count_);
  const double ppl_val = exp(log_ppl.first);
  const double ppl_unc = ppl_val * log_ppl.second;
  const auto log_ppl_base = mean_and_uncertainty(sum_nll_base_, sum_nll_base2_, count_);
  s.base_perplexity = {exp(log_ppl_base.first), exp(log_ppl_base.first) * log_ppl_base.second};
  const double log_ppl_cov = covariance(sum_nll_, sum_nll_base_, sum_nll_nll_base_, count_);
  s.log_ppl_correlation = log_ppl_cov / (log_ppl.second * log_ppl_base.second);
  s.log_ppl_ratio = log_ppl.first - log_ppl_base.first;
  s.log_ppl_ratio_uncertainty = sqrt(log_ppl.second * log_ppl.second +
                                     log_ppl_base.second * log_ppl_base.second - 2.0 * log_ppl_cov);
  s.ppl_ratio = exp(s.log_ppl_ratio);
  s.ppl_ratio_uncertainty = s.ppl_ratio * s.log_ppl_ratio_uncertainty;
  const double ppl_cov = ppl_val * s.base_perplexity.value * log_ppl_cov;
  s.ppl_difference = ppl_val - s.base_perplexity.value;
  s.ppl_difference_uncertainty = sqrt(ppl_unc * ppl_unc +
                                      s.base_perplexity.uncertainty * s.base_perplexity.uncertainty - 2.0 * ppl_cov);

  const auto kl_div = mean_and_uncertainty(sum_kld_, sum_kld2_, count_);
  s.mean = kl_div.first;
  s.uncertainty = kl_div.second;
  s.kld = percentiles(kld_values_);

  const auto p_diff = mean_and_uncertainty(sum_p_diff_, sum_p_diff2_, count_);
  s.delta_p_mean = p_diff.first;
  s.delta_p_uncertainty = p_diff.second;
  s.delta_p = percentiles(p_diff_values_);
  const auto p_diff_mse = mean_and_uncertainty(sum_p_diff2_, sum_p_diff4_, count_);
  s.delta_p_rms = sqrt(p_diff_mse.first);
  s.delta_p_rms_uncertainty = 0.5 / s.delta_p_rms * p_diff_mse.second;
  s.same_top = count_ > 0 ? double(n_same_top_) / double(count_) : 0.0;
  s.same_top_uncertainty = count_ > 1 ? sqrt(s.same_top * (1.0 - s.same_top) / double(count_ - 1)) : 0.0;
  return s;
}

}  // namespace eval
}  // namespace quant
