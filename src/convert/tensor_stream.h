// Streams one tensor from the input to every output, a chunk of rows at a time: read the chunk once, check it
// the way llama.cpp checks tensors it loads, widen it to float32 once, then for each output either copy the
// bytes or quantize the rows (on the work pool), measure the error of what was stored, and append.
// The chunks flow through a three-stage pipeline: a reader thread reads (and, for copies, checks) chunk k+1, the
// work pool widens and quantizes chunk k (each task takes a few rows from f16 to every output while they are in
// cache), and a writer thread appends chunk k-1 to the outputs; reads never queue behind writes. The pipeline
// runs across tensor boundaries: stream() returns once its tensor's last writes are queued, and the next
// tensor's first chunk (the writers declare which tensor comes next) is read while this one's last chunk is
// quantized. Each chunk takes the next of three buffer slots in turn; a slot is refilled only after the writes
// that read from it are done, so memory stays at three chunks whatever the model. The bytes written do not
// depend on the thread count or the timing.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "convert/work_pool.h"
#include "quant/convert.h"
#include "quant/gguf.h"
#include "quant/report.h"

namespace quant::convert_internal {

// An allocator whose resize() leaves new elements uninitialized: the chunk buffers are always overwritten whole
// (read, widened or quantized into) before use, and zero-filling them each time a tensor needs a larger chunk
// than the one before was a measurable share of a q4_0 conversion.
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
template <typename T>
using ChunkBuffer = std::vector<T, UninitializedAllocator<T>>;

// One output's part in the current tensor.
struct TensorOutput {
  const FormatInfo* format = nullptr;   // the target type
  const float* importance = nullptr;    // ne0 * ne2 weights (one ne0 slice per expert), or null
  GgufWriter* writer = nullptr;         // null under --dry-run
  TensorReport* report = nullptr;
};

class TensorStreamer {
 public:
  TensorStreamer(const ModelSource& input, WorkPool& pool, const StreamOptions& options, uint64_t total_bytes);
  // Skips whatever I/O is still queued (after an error the caller discards the writers) and joins the I/O
  // threads before any buffer goes away.
  ~TensorStreamer();
  TensorStreamer(const TensorStreamer&) = delete;
  TensorStreamer& operator=(const TensorStreamer&) = delete;

  // Streams `tensor` to every output; returns once every chunk is quantized and its writes are queued (they
  // may still be running). Errors name the tensor; a failed write of an earlier tensor is reported here or by
  // finish(). After an error the streamer only reports it again.
  Status stream(const TensorInfo& tensor, std::span<TensorOutput> outputs);
  // Waits for every queued write; call after the last stream() and before committing the writers.
  Status finish();

 private:
  struct Chunk {
    int64_t first_row;
    int64_t rows;
    bool operator==(const Chunk&) const = default;
  };
  // The buffers of one chunk in flight.
  struct Slot {
    ChunkBuffer<uint8_t> raw;                      // the chunk as stored in the input
    std::vector<ChunkBuffer<uint8_t>> quantized;   // one per output
    Status read_status;                            // set by the reader thread: the read and its check
    IoThread::Ticket last_write = 0;               // writer_ job that last reads raw or quantized (0: none)
  };
  static constexpr size_t kSlots = 3;  // one being read, one being quantized, one being written
  // A posted read: what it reads, whether it checks, and where it lands.
  struct ChunkRead {
    const TensorInfo* tensor;
    Chunk chunk;
    bool check;
    size_t slot;
    IoThread::Ticket ticket;  // on reader_
  };

  Status stream_chunks(const TensorInfo& tensor, std::span<TensorOutput> outputs);
  // The chunk starting at `first_row`: chunk_bytes of stored bytes for copies, of float32 for conversions, and
  // never across two experts for conversions (each expert has its own slice of the importance vector).
  Chunk chunk_at(const TensorInfo& tensor, bool all_copies, int64_t first_row) const;
  // Queues the read of `chunk` into the next slot, after the writes still reading that slot; checked as it
  // arrives when `check`.
  ChunkRead post_read(const TensorInfo& tensor, Chunk chunk, bool check);
  // Waits for `read` and returns its outcome.
  Status wait_read(const ChunkRead& read);
  // Queues the first read of the tensor the writers expect after `tensor`, if they agree on one.
  void prefetch_next(const TensorInfo& tensor, std::span<TensorOutput> outputs);
  // Queues the writes of the chunk in `slot` to every output.
  void post_writes(const TensorInfo& tensor, std::span<TensorOutput> outputs, size_t slot);
  // The input check llama.cpp makes when it loads a tensor (skipped under allow_non_finite).
  Status check_input(const TensorInfo& tensor, const uint8_t* data, uint64_t first_row, int64_t rows) const;
  // Under allow_non_finite: the widened values of a tensor being converted must still be finite.
  Status check_finite(const TensorInfo& tensor, const float* values, uint64_t first_row, int64_t rows) const;
  Status quantize_chunk(const TensorInfo& tensor, std::span<TensorOutput> outputs, Chunk chunk, Slot& slot);
  Status progress_and_cancel(uint64_t bytes, const std::string& tensor);

  const ModelSource& input_;
  WorkPool& pool_;
  const StreamOptions& options_;
  uint64_t total_bytes_;
  uint64_t done_bytes_ = 0;
  std::optional<Error> failed_;  // the first error stream() returned
  // Buffers reused across chunks and tensors; each grows to one chunk at most.
  Slot slots_[kSlots];
  size_t next_slot_ = 0;
  std::optional<ChunkRead> prefetched_;  // the first read of the tensor expected next
  size_t declared_index_ = 0;            // where the current tensor was found in the writers' declared order
  ChunkBuffer<float> floats_;
  ChunkBuffer<float> reconstructed_;
  // Last, so they are joined first while the buffers their jobs use still exist; the reader (whose jobs wait
  // on the writer's tickets) before the writer.
  IoThread writer_;
  IoThread reader_;
};

}  // namespace quant::convert_internal
