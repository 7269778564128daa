// How llama-imatrix hands its chunks to llama_decode, and how llama.cpp cuts each decode into the ubatches its
// graph evaluates — the batches the imatrix collector sees, so what its 16-token rule and its counts apply to.
//
// llama-imatrix (tools/imatrix/imatrix.cpp, main and compute_imatrix at 34af94c) decodes n_seq = max(1,
// n_batch / n_ctx) chunks together, one sequence each, with n_parallel = n_seq and a context of n_seq * n_ctx;
// the batch is then min(n_batch, n_seq * n_ctx) tokens, a chunk longer than that is decoded in several batches.
// llama_context caps the ubatch at the batch. The KV cache is not unified (common_params.kv_unified = false),
// so it has one stream per sequence and splits a batch with
//   - split_simple when there is one stream: consecutive runs of n_ubatch tokens;
//   - split_equal(sequential) otherwise: every sequence of the batch advances by the same number of tokens,
//     k = max(1, n_ubatch / sequences) (the last ubatch takes what is left), and the ubatch holds each
//     sequence's k rows, sequence after sequence (src/llama-batch.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "quant/error.h"

namespace quant::imatrix {

struct DecodePlan {
  int64_t n_ctx = 0;     // tokens per chunk (one sequence)
  int64_t n_seq = 0;     // chunks decoded together
  int64_t n_batch = 0;   // tokens per llama_decode call
  int64_t n_ubatch = 0;  // tokens per graph evaluation, at most
};

// The plan for llama-imatrix's -c n_ctx, -b n_batch, -ub n_ubatch. All three must be at least 1 (usage error).
Result<DecodePlan> decode_plan(int64_t n_ctx, int64_t n_batch, int64_t n_ubatch);

// One ubatch of a group of `seqs` chunks decoded together: positions [begin, end) of each chunk of the group,
// chunk after chunk.
struct Ubatch {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t seqs = 0;
  int64_t tokens() const { return (end - begin) * seqs; }
};

// The ubatches of one group, in evaluation order (seqs is 1..plan.n_seq).
std::vector<Ubatch> group_ubatches(const DecodePlan& plan, int64_t seqs);

}  // namespace quant::imatrix
