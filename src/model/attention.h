// Causal self-attention of the forward pass, per sequence and head, with the numerics of ggml-cpu's flash
// attention (ops.cpp, ggml_compute_forward_flash_attn_ext_f16) over llama.cpp's f16 KV cache:
//   tiled (a sequence of >= 64 query rows, head size a multiple of the SIMD width): Q in f32, K and V as f16
//     values, scores scaled then masked, softmax and the V sum in f32;
//   one row at a time (shorter sequences): Q rounded to f16, the V sum kept in an f16 accumulator that is rescaled
//     and added to in f16, as ggml_vec_scale_f16 / ggml_vec_mad_f16 do.
// K and V must already hold f16-representable values (the cache stores them in f16).
#pragma once

#include <cstdint>

#include "model/matmul.h"
#include "model/thread_pool.h"

namespace quant::model {

struct AttentionShape {
  int64_t n_seq = 0;
  int64_t seq_len = 0;    // rows per sequence, positions 0..seq_len-1
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;
  bool f16_accumulator = false;  // the one-row kernel's numerics
};

// q: rows x n_head·head_dim, k and v: rows x n_head_kv·head_dim, out: rows x n_head·head_dim (rows = n_seq·seq_len,
// sequence-major).
void attention(ThreadPool& pool, MatmulScratch& scratch, const AttentionShape& shape, const float* q, const float* k,
               const float* v, float* out);

}  // namespace quant::model
