// Streams one tensor from the input to every output, a chunk of rows at a time: read the chunk once, check it
// the way llama.cpp checks tensors it loads, widen it to float32 once, then for each output either copy the
// bytes or quantize the rows (on the work pool), measure the error of what was stored, and append.
// The chunks flow through a pipeline: the I/O thread reads (and checks) chunk k+1 and writes chunk k-1 while the
// work pool widens and quantizes chunk k, each task of the pool taking a few rows from f16 to every output while
// they are in cache. Two buffers of each kind alternate between the stages; the bytes written do not depend on
// the thread count or the timing.
#pragma once

#include <atomic>
#include <cstdint>
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

  // Streams `tensor` to every output. Errors name the tensor. Every byte is handed to the writers before it
  // returns (the caller commits them after the last tensor).
  Status stream(const TensorInfo& tensor, std::span<TensorOutput> outputs);
  // Waits for every queued write; call after the last stream() and before committing the writers.
  Status finish();

 private:
  struct Chunk {
    int64_t first_row;
    int64_t rows;
  };
  Status stream_chunks(const TensorInfo& tensor, std::span<TensorOutput> outputs);
  // Queues the read of `chunk` into raw_[buffer], checked as it arrives when `check`.
  IoThread::Ticket post_read(const TensorInfo& tensor, Chunk chunk, int buffer, bool check);
  Status check_input(const TensorInfo& tensor, const uint8_t* data, uint64_t first_row, int64_t rows) const;
  Status quantize_chunk(const TensorInfo& tensor, std::span<TensorOutput> outputs, Chunk chunk, int buffer);
  Status progress_and_cancel(uint64_t bytes, const std::string& tensor);

  const GgufFile& input_;
  WorkPool& pool_;
  const ConvertRequest& request_;
  uint64_t total_bytes_;
  uint64_t done_bytes_ = 0;
  // Buffers reused across chunks and tensors; each grows to one chunk at most. raw_ and quantized_ come in
  // pairs: chunk k uses buffer k % 2 while the I/O thread fills or drains the other one.
  std::vector<uint8_t> raw_[2];
  std::vector<std::vector<uint8_t>> quantized_[2];  // one per output
  std::vector<float> floats_;
  std::vector<float> reconstructed_;
  IoThread io_;  // last: destroyed (joined) first, while the buffers its jobs use still exist
};

}  // namespace quant::convert_internal
