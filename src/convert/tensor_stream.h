// Streams one tensor from the input to every output, a chunk of rows at a time: read the chunk once, check it
// the way llama.cpp checks tensors it loads, widen it to float32 once, then for each output either copy the
// bytes or quantize the rows (on the work pool), measure the error of what was stored, and append.
#pragma once

#include <atomic>
#include <span>
#include <vector>

#include "convert/work_pool.h"
#include "quant/convert.h"
#include "quant/gguf.h"
#include "quant/report.h"

namespace quant::convert_internal {

// One output's part in the current tensor.
struct TensorOutput {
  const FormatInfo* format = nullptr;   // the target type
  const float* importance = nullptr;    // ne0 * ne2 weights (one ne0 slice per expert), or null
  GgufWriter* writer = nullptr;         // null under --dry-run
  TensorReport* report = nullptr;
};

class TensorStreamer {
 public:
  TensorStreamer(const GgufFile& input, WorkPool& pool, const ConvertRequest& request, uint64_t total_bytes);

  // Streams `tensor` to every output. Errors name the tensor.
  Status stream(const TensorInfo& tensor, std::span<TensorOutput> outputs);

 private:
  Status stream_copy(const TensorInfo& tensor, std::span<TensorOutput> outputs);
  Status check_input(const TensorInfo& tensor, const uint8_t* data, uint64_t first_row, int64_t rows);
  Status widen(const TensorInfo& tensor, int64_t rows);
  Status quantize_chunk(const TensorInfo& tensor, TensorOutput& output, uint64_t first_row, int64_t rows);
  Status progress_and_cancel(uint64_t bytes, const std::string& tensor);

  const GgufFile& input_;
  WorkPool& pool_;
  const ConvertRequest& request_;
  uint64_t total_bytes_;
  uint64_t done_bytes_ = 0;
  // Buffers reused across chunks and tensors; each grows to one chunk at most.
  std::vector<uint8_t> raw_;
  std::vector<float> floats_;
  std::vector<uint8_t> quantized_;
  std::vector<float> reconstructed_;
};

}  // namespace quant::convert_internal
