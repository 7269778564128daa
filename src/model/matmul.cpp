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
  // Tiles of W's rows: enough of them to keep every thread busy, few enough that each GEMM call packs the
  // activations once for a good share of the work (Eigen packs the left operand per call).
  const int threads = pool.threads();
  int64_t tile = std::max<int64_t>(16, (w.rows + 4 * threads - 1) / (4 * threads));
  tile = std::min<int64_t>(tile, 512);
  tile = (tile + 15) / 16 * 16;
  const int64_t tiles = (w.rows + tile - 1) / tile;
  pool.parallel_for(tiles, [&](int64_t t, int thread) {
    const int64_t first = t * tile;
    const int64_t count = std::min(tile, w.rows - first);
    const float* weights = w.dense != nullptr ? w.dense + first * w.cols : nullptr;
    if (weights == nullptr) {
      float* buffer = scratch.tile(thread, size_t(count * w.cols));
      dequantize_rows(w, first, count, buffer);
      weights = buffer;
    }
    gemm(n, count, w.cols, x, w.cols, weights, w.cols, /*b_transposed=*/true, y + first, ldy);
  });
}

}  // namespace quant::model
