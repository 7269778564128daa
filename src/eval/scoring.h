// llama-perplexity's per-token arithmetic and its statistics (tools/perplexity/perplexity.cpp at 34af94c): the
// same float and double operations in the same order, so equal logits give llama-perplexity's numbers.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/eval.h"

namespace quant::eval {

// The plain perplexity path (`process_logits` without a logits file): -log p(token), with llama-perplexity's
// log_softmax (float max and differences, double sum and log).
double token_nll(const float* logits, int64_t n_vocab, int32_t token);

// Sums of NLL and NLL² (perplexity without a base).
struct PerplexitySums {
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  void add(double v) { nll += v; nll2 += v * v; ++count; }
  PerplexityStats finish() const;
};

// llama-perplexity's kl_divergence_result plus the per-token values for the percentiles.
class KlSums {
 public:
  // One token: the model's logits and the base's stored row (kl_row_values(n_vocab) u16).
  void add(const float* logits, int64_t n_vocab, const uint16_t* base_row, int32_t token);
  int64_t count() const { return count_; }
  PerplexityStats perplexity() const;
  KlDivergenceStats finish() const;

 private:
  double sum_nll_ = 0, sum_nll2_ = 0, sum_nll_base_ = 0, sum_nll_base2_ = 0, sum_nll_nll_base_ = 0;
  double sum_kld_ = 0, sum_kld2_ = 0, sum_p_diff_ = 0, sum_p_diff2_ = 0, sum_p_diff4_ = 0;
  float max_p_diff_ = 0;
  int64_t n_same_top_ = 0, count_ = 0;
  std::vector<float> kld_values_, p_diff_values_;
};

}  // namespace quant::eval
