// Weight matmuls of the forward pass: y = x · Wᵀ with W dequantized tile by tile (or kept dequantized), x already
// rounded to W's activation type (activation.h), the GEMM in float32.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/formats.h"
#include "model/thread_pool.h"

namespace quant::model {

// A weight as one evaluation multiplies by it: either dequantized floats or the stored rows of `type`.
struct WeightView {
  TypeId type = TypeId::f32;
  const float* dense = nullptr;    // rows x cols floats, or null
  const uint8_t* raw = nullptr;    // rows of row_bytes bytes, when dense is null
  uint64_t row_bytes = 0;
  int64_t rows = 0;                // output features (ne1)
  int64_t cols = 0;                // input features (ne0)
};

// Per-thread buffers reused across matmuls.
class MatmulScratch {
 public:
  explicit MatmulScratch(int threads) : tiles_(size_t(threads)) {}
  // A buffer of at least `floats` for `thread` (each thread only touches its own).
  float* tile(int thread, size_t floats);

 private:
  std::vector<std::vector<float>> tiles_;
};

// y[n x ldy] (columns 0..w.rows) = x[n x w.cols] · Wᵀ, split over tiles of W's rows across the pool.
void matmul(ThreadPool& pool, MatmulScratch& scratch, const WeightView& w, const float* x, int64_t n, float* y,
            int64_t ldy);

// Dequantizes rows [first, first + count) of a raw weight into out (count x w.cols floats).
void dequantize_rows(const WeightView& w, int64_t first, int64_t count, float* out);

}  // namespace quant::model
