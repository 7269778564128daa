// Weight matmuls of the forward pass: y = x · Wᵀ with W dequantized tile by tile (or kept dequantized), x already
// rounded to W's activation type (activation.h), the GEMM in float32.
#pragma once

#include <cstdint>
#include <vector>

#include "core/grow_buffer.h"
#include "quant/error.h"
#include "quant/formats.h"
#include "quant/model_source.h"
#include "model/thread_pool.h"

namespace quant::model {

// A weight as one evaluation multiplies by it: dequantized floats, stored rows of `type` in memory, or stored rows
// still in the model file, read by the tile that needs them (so the reads are spread over the threads and no copy
// of the whole weight is made).
struct WeightView {
  TypeId type = TypeId::f32;
  const float* dense = nullptr;           // rows x cols floats, or null
  const uint8_t* raw = nullptr;           // rows of row_bytes bytes, when dense is null
  const ModelSource* source = nullptr;    // when dense and raw are null: `tensor`'s rows are read from here
  const TensorInfo* tensor = nullptr;
  uint64_t row_bytes = 0;
  int64_t rows = 0;                       // output features (ne1)
  int64_t cols = 0;                       // input features (ne0)
};

// Per-thread buffers reused across matmuls.
class MatmulScratch {
 public:
  explicit MatmulScratch(int threads) : tiles_(size_t(threads)), bytes_(size_t(threads)) {}
  // A buffer of at least `floats` for `thread` (each thread only touches its own).
  float* tile(int thread, size_t floats) { return tiles_[size_t(thread)].at_least(floats); }
  // Room for `size` stored bytes of a weight read from the file, for `thread`.
  uint8_t* bytes(int thread, size_t size) { return bytes_[size_t(thread)].at_least(size); }

 private:
  std::vector<GrowBuffer<float>> tiles_;
  std::vector<GrowBuffer<uint8_t>> bytes_;
};

// y[n x ldy] (columns 0..w.rows) = x[n x w.cols] · Wᵀ, split over tiles of W's rows across the pool. Fails only when
// a weight read from the file cannot be read (the first failing tile's error).
Status matmul(ThreadPool& pool, MatmulScratch& scratch, const WeightView& w, const float* x, int64_t n, float* y,
              int64_t ldy);

// Rows [first, first + count) of a stored weight (raw, or read from its source into `bytes`, which must hold
// count · row_bytes) dequantized into out (count x w.cols floats).
Status dequantize_rows(const WeightView& w, int64_t first, int64_t count, uint8_t* bytes, float* out);

}  // namespace quant::model
