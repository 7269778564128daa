#include "model/matmul.h"

#include <algorithm>
#include <cassert>

#include "model/gemm.h"

namespace quant::model {

float* MatmulScratch::tile(int thread, size_t floats) {
  std::vector<float>& buffer = tiles_[size_t(thread)];
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

void dequantize_rows(const WeightView& w, int64_t first, int64_t count, float* out) {
  const FormatInfo& format = format_of(w.type);
  // Types and shapes were checked when the model was opened, so the conversion cannot fail here.
  const Status status = dequantize_values(format, w.raw + uint64_t(first) * w.row_bytes, out, count * w.cols);
  assert(status.ok());
  (void)status;
}

void matmul(ThreadPool& pool, MatmulScratch& scratch, const WeightView& w, const float* x, int64_t n, float* y,
            int64_t ldy) {
  if (n <= 0) return;
  const int threads = pool.threads();
  if (w.dense != nullptr) {
    // Dequantized weights: each thread multiplies a block of tokens by the whole weight. Eigen packs both operands
    // of a call, so the weight is packed once per block and the activations once in all.
    const int64_t blocks = std::min<int64_t>(2 * threads, std::max<int64_t>(1, n / 64));
    const int64_t rows_per_block = (n + blocks - 1) / blocks;
    pool.parallel_for(blocks, [&](int64_t b, int) {
      const int64_t first = b * rows_per_block;
      const int64_t count = std::min(rows_per_block, n - first);
      if (count > 0) {
        gemm(count, w.rows, w.cols, x + first * w.cols, w.cols, w.dense, w.cols, /*b_transposed=*/true,
             y + first * ldy, ldy);
      }
    });
    return;
  }
  // Stored weights: each thread dequantizes a tile of the weight's rows and multiplies every token by it. Tiles are
  // large because each call packs all the activations again.
  int64_t tile = std::max<int64_t>(64, (w.rows + threads - 1) / threads);
  tile = std::min<int64_t>(tile, 512);
  tile = (tile + 15) / 16 * 16;
  const int64_t tiles = (w.rows + tile - 1) / tile;
  pool.parallel_for(tiles, [&](int64_t t, int thread) {
    const int64_t first = t * tile;
    const int64_t count = std::min(tile, w.rows - first);
    float* buffer = scratch.tile(thread, size_t(count * w.cols));
    dequantize_rows(w, first, count, buffer);
    gemm(n, count, w.cols, x, w.cols, buffer, w.cols, /*b_transposed=*/true, y + first, ldy);
  });
}

}  // namespace quant::model
