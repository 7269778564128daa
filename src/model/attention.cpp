#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/gemm.h"
#include "quant/half.h"

namespace quant::model {
namespace {

// Query rows per task of the tiled kernel: one GEMM for the scores of the block, one for the weighted V sum.
constexpr int64_t kQueryBlock = 128;

inline float round_f16(float x) { return fp16_to_fp32(fp32_to_fp16(x)); }

void attention_block(MatmulScratch& scratch, int thread, const AttentionShape& shape, const float* q,
                     const float* k, const float* v, float* out, int64_t seq, int64_t head, int64_t q0) {
  const int64_t dim = shape.head_dim;
  const int64_t ldq = shape.n_head * dim, ldkv = shape.n_head_kv * dim;
  const int64_t group = head / (shape.n_head / shape.n_head_kv);
  const int64_t base = seq * shape.seq_len;
  const int64_t q1 = std::min(q0 + kQueryBlock, shape.seq_len);
  const int64_t m = q1 - q0, keys = q1;  // causal: the block's last row sees keys 0..q1-1

  float* scores = scratch.tile(thread, size_t(m * keys + m * dim));
  float* block_out = scores + m * keys;
  const float* q_block = q + (base + q0) * ldq + head * dim;
  const float* k_seq = k + base * ldkv + group * dim;
  const float* v_seq = v + base * ldkv + group * dim;
  gemm(m, keys, dim, q_block, ldq, k_seq, ldkv, /*b_transposed=*/true, scores, keys);

  std::vector<float> inverse_sums(size_t(m), 0.0f);
  for (int64_t i = 0; i < m; ++i) {
    float* row = scores + i * keys;
    const int64_t visible = q0 + i + 1;
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < visible; ++j) {
      row[j] = row[j] * shape.scale;
      max = std::max(max, row[j]);
    }
    double sum = 0.0;
    for (int64_t j = 0; j < visible; ++j) {
      row[j] = expf(row[j] - max);
      sum += row[j];
    }
    for (int64_t j = visible; j < keys; ++j) row[j] = 0.0f;
    inverse_sums[size_t(i)] = 1.0f / float(sum);
  }
  gemm(m, dim, keys, scores, keys, v_seq, ldkv, /*b_transposed=*/false, block_out, dim);
  for (int64_t i = 0; i < m; ++i) {
    float* dst = out + (base + q0 + i) * ldq + head * dim;
    const float* src = block_out + i * dim;
    for (int64_t d = 0; d < dim; ++d) dst[d] = src[d] * inverse_sums[size_t(i)];
  }
}

// ggml_compute_forward_flash_attn_ext_f16_one_chunk for one query row with an f16 K/V cache.
void attention_row_f16(const AttentionShape& shape, const float* q, const float* k, const float* v, float* out,
                       int64_t seq, int64_t head, int64_t pos, float* scratch) {
  const int64_t dim = shape.head_dim;
  const int64_t ldq = shape.n_head * dim, ldkv = shape.n_head_kv * dim;
  const int64_t group = head / (shape.n_head / shape.n_head_kv);
  const int64_t base = seq * shape.seq_len;
  float* q16 = scratch;
  float* acc = scratch + dim;  // holds f16 values
  const float* q_row = q + (base + pos) * ldq + head * dim;
  for (int64_t d = 0; d < dim; ++d) {
    q16[d] = round_f16(q_row[d]);
    acc[d] = 0.0f;
  }
  float sum = 0.0f;
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j <= pos; ++j) {
    const float* k_row = k + (base + j) * ldkv + group * dim;
    const float* v_row = v + (base + j) * ldkv + group * dim;
    double dot = 0.0;
    for (int64_t d = 0; d < dim; ++d) dot += double(k_row[d] * q16[d]);
    const float s = float(dot) * shape.scale;
    float ms = 1.0f, vs = 1.0f;
    if (s > max) {
      const float old = max;
      max = s;
      ms = expf(old - max);
      for (int64_t d = 0; d < dim; ++d) acc[d] = round_f16(acc[d] * ms);
    } else {
      vs = expf(s - max);
    }
    for (int64_t d = 0; d < dim; ++d) acc[d] = round_f16(acc[d] + v_row[d] * vs);
    sum = sum * ms + vs;
  }
  const float inverse = sum == 0.0f ? 0.0f : 1.0f / sum;
  float* dst = out + (base + pos) * ldq + head * dim;
  for (int64_t d = 0; d < dim; ++d) dst[d] = acc[d] * inverse;
}

}  // namespace

void attention(ThreadPool& pool, MatmulScratch& scratch, const AttentionShape& shape, const float* q, const float* k,
               const float* v, float* out) {
  if (shape.f16_accumulator) {
    const int64_t tasks = shape.n_seq * shape.n_head;
    pool.parallel_for(tasks, [&](int64_t task, int thread) {
      float* buffer = scratch.tile(thread, size_t(2 * shape.head_dim));
      for (int64_t pos = 0; pos < shape.seq_len; ++pos) {
        attention_row_f16(shape, q, k, v, out, task / shape.n_head, task % shape.n_head, pos, buffer);
      }
    });
    return;
  }
  const int64_t blocks = (shape.seq_len + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = shape.n_seq * shape.n_head * blocks;
  pool.parallel_for(tasks, [&](int64_t task, int thread) {
    const int64_t block = task % blocks;
    const int64_t head = (task / blocks) % shape.n_head;
    const int64_t seq = task / (blocks * shape.n_head);
    attention_block(scratch, thread, shape, q, k, v, out, seq, head, block * kQueryBlock);
  });
}

}  // namespace quant::model
