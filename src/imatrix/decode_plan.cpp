#include "imatrix/decode_plan.h"

#include <fmt/format.h>

#include <algorithm>

namespace quant::imatrix {

Result<DecodePlan> decode_plan(int64_t n_ctx, int64_t n_batch, int64_t n_ubatch) {
  if (n_ctx < 1 || n_batch < 1 || n_ubatch < 1) {
    return usage_error(fmt::format("context {}, batch {} and ubatch {} must each be at least 1", n_ctx, n_batch,
                                   n_ubatch));
  }
  DecodePlan plan;
  plan.n_ctx = n_ctx;
  plan.n_seq = std::max<int64_t>(1, n_batch / n_ctx);
  plan.n_batch = std::min(n_batch, plan.n_seq * n_ctx);
  plan.n_ubatch = std::min(n_ubatch, plan.n_batch);
  return plan;
}

std::vector<Ubatch> group_ubatches(const DecodePlan& plan, int64_t seqs) {
  std::vector<Ubatch> ubatches;
  if (plan.n_seq == 1) {
    // One stream: each decode batch of the chunk is cut into runs of n_ubatch tokens.
    for (int64_t batch = 0; batch < plan.n_ctx; batch += plan.n_batch) {
      const int64_t batch_end = std::min(plan.n_ctx, batch + plan.n_batch);
      for (int64_t begin = batch; begin < batch_end; begin += plan.n_ubatch) {
        ubatches.push_back(Ubatch{begin, std::min(batch_end, begin + plan.n_ubatch), 1});
      }
    }
    return ubatches;
  }
  // Several streams: the whole group is one decode batch (n_seq * n_ctx <= n_batch), split equally.
  const int64_t step = std::max<int64_t>(1, plan.n_ubatch / seqs);
  for (int64_t begin = 0; begin < plan.n_ctx; begin += step) {
    ubatches.push_back(Ubatch{begin, std::min(plan.n_ctx, begin + step), seqs});
  }
  return ubatches;
}

}  // namespace quant::imatrix
