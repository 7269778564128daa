#include "convert/tensor_stream.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace quant::convert_internal {
namespace {

// Rows handled by one task of the work pool: a fixed amount of work that does not depend on the thread count,
// so per-task error sums merge in the same order however many threads run.
int64_t rows_per_task(int64_t n_per_row) { return std::max<int64_t>(1, (int64_t(1) << 16) / n_per_row); }

Error in_tensor(Error error, const std::string& file, const TensorInfo& tensor) {
  return std::move(error).in_file(file).in_tensor(tensor.name);
}

}  // namespace

TensorStreamer::TensorStreamer(const ModelSource& input, WorkPool& pool, const StreamOptions& options,
                               uint64_t total_bytes)
    : input_(input), pool_(pool), options_(options), total_bytes_(total_bytes) {}

TensorStreamer::~TensorStreamer() {
  // After finish() nothing is queued; otherwise the conversion failed and what is queued is of no use.
  reader_.abandon();
  writer_.abandon();
}

Status TensorStreamer::progress_and_cancel(uint64_t bytes, const std::string& tensor) {
  done_bytes_ += bytes;
  if (options_.progress) options_.progress(done_bytes_, total_bytes_, tensor);
  if (options_.cancel != nullptr && options_.cancel->load()) return Error(ErrorKind::interrupted, "interrupted");
  return Status::success();
}

Status TensorStreamer::check_input(const TensorInfo& tensor, const uint8_t* data, uint64_t first_row,
                                   int64_t rows) const {
  if (options_.allow_non_finite) return Status::success();
  const FormatInfo& format = format_of(tensor.type);
  if (format.validate == nullptr) return Status::success();
  const int64_t blocks_per_row = tensor.row_length() / format.block_size;
  int64_t bad_block = 0;
  std::string why;
  if (format.validate(data, rows * blocks_per_row, &bad_block, &why)) return Status::success();
  const int64_t row = int64_t(first_row) + bad_block / blocks_per_row;
  const int64_t column = (bad_block % blocks_per_row) * format.block_size;
  return in_tensor(invalid_input(fmt::format("row {}, column {}: {} (llama.cpp refuses such data; "
                                             "--allow-non-finite accepts it)", row, column, why)),
                   input_.file_of(tensor), tensor);
}

Status TensorStreamer::check_finite(const TensorInfo& tensor, const float* values, uint64_t first_row,
                                    int64_t rows) const {
  const int64_t n_per_row = tensor.row_length();
  int64_t bad = 0;
  std::string why;
  if (format_of(TypeId::f32).validate(values, rows * n_per_row, &bad, &why)) return Status::success();
  return in_tensor(invalid_input(fmt::format("row {}, column {}: {}; a converted tensor cannot hold it "
                                             "(--allow-non-finite keeps such values only in tensors copied "
                                             "unchanged)", int64_t(first_row) + bad / n_per_row, bad % n_per_row,
                                             why)),
                   input_.file_of(tensor), tensor);
}

Status TensorStreamer::stream(const TensorInfo& tensor, std::span<TensorOutput> outputs) {
  if (failed_) return *failed_;
  Status status = stream_chunks(tensor, outputs);
  if (!status) failed_ = status.error();
  return status;
}

Status TensorStreamer::finish() {
  // A read of a tensor that never came may still be running; its buffers are not needed.
  (void)reader_.wait_all();
  prefetched_.reset();
  if (failed_) return *failed_;
  return writer_.wait_all();
}

TensorStreamer::Chunk TensorStreamer::chunk_at(const TensorInfo& tensor, bool all_copies, int64_t first_row) const {
  const int64_t n_per_row = tensor.row_length();
  const int64_t total_rows = tensor.rows();
  const uint64_t in_row_bytes = *row_bytes(format_of(tensor.type), n_per_row);
  const uint64_t row_cost = all_copies ? std::max<uint64_t>(1, in_row_bytes) : uint64_t(n_per_row) * 4;
  const int64_t chunk_rows = std::max<int64_t>(1, int64_t(options_.chunk_bytes / std::max<uint64_t>(1, row_cost)));
  const int64_t rows_per_expert = all_copies ? total_rows : (tensor.shape.size() > 1 ? tensor.shape[1] : 1);
  const int64_t rows = std::min({chunk_rows, total_rows - first_row, rows_per_expert - first_row % rows_per_expert});
  return {first_row, rows};
}

TensorStreamer::ChunkRead TensorStreamer::post_read(const TensorInfo& tensor, Chunk chunk, bool check) {
  const size_t slot = next_slot_;
  next_slot_ = (next_slot_ + 1) % kSlots;
  const IoThread::Ticket writes_using_slot = slots_[slot].last_write;
  const IoThread::Ticket ticket = reader_.post([this, &tensor, chunk, check, slot, writes_using_slot]() -> Status {
    // A failed write is reported by stream() or finish(); here it only has to be over.
    (void)writer_.wait(writes_using_slot);
    Slot& target = slots_[slot];
    const uint64_t in_row_bytes = *row_bytes(format_of(tensor.type), tensor.row_length());
    target.raw.resize(size_t(uint64_t(chunk.rows) * in_row_bytes));
    target.read_status =
        input_.read_tensor(tensor, uint64_t(chunk.first_row) * in_row_bytes, std::span<uint8_t>(target.raw));
    if (target.read_status && check) {
      target.read_status = check_input(tensor, target.raw.data(), uint64_t(chunk.first_row), chunk.rows);
    }
    // The outcome belongs to the chunk, not to the thread: a read ahead of a tensor that does not come must
    // not fail the reads after it.
    return Status::success();
  });
  return {&tensor, chunk, check, slot, ticket};
}

Status TensorStreamer::wait_read(const ChunkRead& read) {
  (void)reader_.wait(read.ticket);
  return slots_[read.slot].read_status;
}

void TensorStreamer::prefetch_next(const TensorInfo& tensor, std::span<TensorOutput> outputs) {
  // Every writer declares the tensors in the order they must come, the same order for all: the next one is
  // the tensor after this one. (Their declared lists do not change once writing began.)
  const TensorInfo* next = nullptr;
  bool all_copies = true;
  for (const TensorOutput& output : outputs) {
    if (output.writer == nullptr) return;
    const std::vector<TensorInfo>& declared = output.writer->tensors();
    const auto is_current = [&](size_t i) { return i < declared.size() && declared[i].name == tensor.name; };
    if (is_current(declared_index_ + 1)) {
      ++declared_index_;  // the usual case: the tensor after the previous one
    } else if (!is_current(declared_index_)) {
      const auto found = std::find_if(declared.begin(), declared.end(),
                                      [&](const TensorInfo& t) { return t.name == tensor.name; });
      if (found == declared.end()) return;
      declared_index_ = size_t(found - declared.begin());
    }
    if (declared_index_ + 1 >= declared.size()) return;
    const TensorInfo& following = declared[declared_index_ + 1];
    const TensorInfo* in_input = input_.find_tensor(following.name);
    if (in_input == nullptr || (next != nullptr && next != in_input)) return;
    next = in_input;
    all_copies = all_copies && following.type == next->type;
  }
  if (next == nullptr || next->rows() == 0 || !row_bytes(format_of(next->type), next->row_length())) return;
  prefetched_ = post_read(*next, chunk_at(*next, all_copies, 0), all_copies);
}

void TensorStreamer::post_writes(const TensorInfo& tensor, std::span<TensorOutput> outputs, size_t slot) {
  struct Piece {
    GgufWriter* writer;
    std::span<const uint8_t> bytes;
  };
  std::vector<Piece> pieces;
  for (size_t o = 0; o < outputs.size(); ++o) {
    if (outputs[o].writer == nullptr) continue;
    const bool copy = outputs[o].format->id == tensor.type;
    pieces.push_back({outputs[o].writer, copy ? slots_[slot].raw : slots_[slot].quantized[o]});
  }
  if (pieces.empty()) return;
  slots_[slot].last_write = writer_.post([pieces = std::move(pieces), &tensor]() -> Status {
    for (const Piece& piece : pieces) {
      Status written = piece.writer->write_tensor_data(piece.bytes);
      if (!written) {
        Error error = std::move(written).error();
        // The caller has moved on to later tensors by the time this is reported.
        if (error.tensor().empty()) error.in_tensor(tensor.name);
        if (error.file().empty()) error.in_file(piece.writer->final_path());
        return error;
      }
    }
    return Status::success();
  });
}

Status TensorStreamer::stream_chunks(const TensorInfo& tensor, std::span<TensorOutput> outputs) {
  QUANT_TRY(writer_.failure());  // a write of an earlier tensor failed
  const bool all_copies = std::all_of(outputs.begin(), outputs.end(),
                                      [&](const TensorOutput& o) { return o.format->id == tensor.type; });
  const FormatInfo& source = format_of(tensor.type);
  if (!all_copies && source.id != TypeId::f32 && source.dequantize == nullptr) {
    return in_tensor(impossible(fmt::format("cannot convert from type {}: it has no float form", source.name)),
                     input_.file_of(tensor), tensor);
  }
  for (TensorOutput& output : outputs) {
    if (output.writer == nullptr) continue;
    writer_.post([writer = output.writer, &tensor]() -> Status {
      Status begun = writer->begin_tensor(tensor.name);
      if (!begun) return std::move(begun).error().in_tensor(tensor.name);
      return Status::success();
    });
  }
  const int64_t total_rows = tensor.rows();
  const uint64_t in_row_bytes = *row_bytes(source, tensor.row_length());

  // Copies are checked by the reader thread as they arrive; conversions by the pool's tasks (in parallel, and
  // while the rows are in cache).
  const bool check_on_read = all_copies;
  std::optional<ChunkRead> next;
  if (total_rows > 0) {
    const Chunk first = chunk_at(tensor, all_copies, 0);
    if (prefetched_ && prefetched_->tensor == &tensor && prefetched_->chunk == first &&
        prefetched_->check == check_on_read) {
      next = prefetched_;
    } else {
      next = post_read(tensor, first, check_on_read);  // a read ahead of another tensor, if any, goes unused
    }
  }
  prefetched_.reset();
  while (next) {
    const ChunkRead current = *next;
    next.reset();
    // Keep the reader one chunk ahead, into the next tensor after the last chunk of this one.
    const int64_t end_row = current.chunk.first_row + current.chunk.rows;
    if (end_row < total_rows) {
      next = post_read(tensor, chunk_at(tensor, all_copies, end_row), check_on_read);
    } else {
      prefetch_next(tensor, outputs);
    }
    QUANT_TRY(wait_read(current));
    Slot& slot = slots_[current.slot];
    if (!all_copies) QUANT_TRY(quantize_chunk(tensor, outputs, current.chunk, slot));
    post_writes(tensor, outputs, current.slot);
    QUANT_TRY(writer_.failure());
    QUANT_TRY(progress_and_cancel(uint64_t(current.chunk.rows) * in_row_bytes, tensor.name));
  }
  return Status::success();
}

Status TensorStreamer::quantize_chunk(const TensorInfo& tensor, std::span<TensorOutput> outputs, Chunk chunk,
                                      Slot& slot) {
  const FormatInfo& source = format_of(tensor.type);
  const int64_t n_per_row = tensor.row_length();
  const uint64_t in_row_bytes = *row_bytes(source, n_per_row);
  const int64_t rows_per_expert = tensor.shape.size() > 1 ? tensor.shape[1] : 1;
  const int64_t rows = chunk.rows;

  // What each output needs: its row size and importance slice; copies of the input take no work here.
  struct Job {
    size_t output;
    uint64_t out_row_bytes;
    const float* importance;
  };
  std::vector<Job> jobs;
  slot.quantized.resize(outputs.size());
  for (size_t o = 0; o < outputs.size(); ++o) {
    const FormatInfo& target = *outputs[o].format;
    if (target.id == tensor.type) continue;
    const auto out_row_bytes = row_bytes(target, n_per_row);
    if (!out_row_bytes) {
      return in_tensor(impossible(fmt::format("row length {} is not a multiple of {}'s block size {}", n_per_row,
                                              target.name, target.block_size)),
                       input_.file_of(tensor), tensor);
    }
    const float* importance = outputs[o].importance == nullptr
                                  ? nullptr
                                  : outputs[o].importance + (chunk.first_row / rows_per_expert) * n_per_row;
    slot.quantized[o].resize(size_t(uint64_t(rows) * *out_row_bytes));
    jobs.push_back({o, *out_row_bytes, importance});
  }
  floats_.resize(size_t(rows * n_per_row));
  reconstructed_.resize(size_t(rows * n_per_row));

  // Each task widens its rows and quantizes them for every output while they are in cache. Per-task error
  // sums merge in task order, so the report does not depend on the thread count either.
  const int64_t task_rows = rows_per_task(n_per_row);
  const int tasks = int((rows + task_rows - 1) / task_rows);
  std::vector<std::optional<Error>> input_errors(static_cast<size_t>(tasks));
  std::vector<std::optional<Error>> errors(jobs.size() * size_t(tasks));
  std::vector<ErrorStats> stats(jobs.size() * size_t(tasks));
  const uint8_t* raw = slot.raw.data();
  pool_.run(tasks, [&](int task) {
    const int64_t first = int64_t(task) * task_rows;
    const int64_t count = std::min(task_rows, rows - first);
    Status checked =
        check_input(tensor, raw + uint64_t(first) * in_row_bytes, uint64_t(chunk.first_row + first), count);
    if (!checked) {
      input_errors[size_t(task)] = std::move(checked).error();
      return;
    }
    float* values = floats_.data() + first * n_per_row;
    if (source.id == TypeId::f32) {
      std::memcpy(values, raw + uint64_t(first) * in_row_bytes, size_t(count * n_per_row) * sizeof(float));
    } else {
      source.dequantize(raw + uint64_t(first) * in_row_bytes, values, count * n_per_row);
    }
    if (options_.allow_non_finite) {
      // The input check was skipped, but a NaN or Inf never goes into a converted tensor.
      Status finite = check_finite(tensor, values, uint64_t(chunk.first_row + first), count);
      if (!finite) {
        input_errors[size_t(task)] = std::move(finite).error();
        return;
      }
    }
    for (size_t j = 0; j < jobs.size(); ++j) {
      const FormatInfo& target = *outputs[jobs[j].output].format;
      uint8_t* dst = slot.quantized[jobs[j].output].data() + uint64_t(first) * jobs[j].out_row_bytes;
      const size_t cell = j * size_t(tasks) + size_t(task);  // this job's result for this task
      Status status = quantize_rows(target, values, dst, count, n_per_row, jobs[j].importance);
      if (!status) {
        errors[cell] = std::move(status).error();
        continue;
      }
      if (target.dequantize != nullptr) {
        float* back = reconstructed_.data() + first * n_per_row;
        target.dequantize(dst, back, count * n_per_row);
        stats[cell].add(values, back, count * n_per_row);
      }
    }
  });
  // The first bad input row wins over any output error, as when the whole chunk was checked first.
  for (std::optional<Error>& error : input_errors) {
    if (error) return std::move(*error);
  }
  for (size_t j = 0; j < jobs.size(); ++j) {
    for (int task = 0; task < tasks; ++task) {
      const size_t cell = j * size_t(tasks) + size_t(task);
      if (errors[cell]) {
        Error error = std::move(*errors[cell]);
        // quantize_rows counts rows within its call: make them rows of the tensor.
        const int64_t base_row = chunk.first_row + int64_t(task) * task_rows;
        return in_tensor(Error(error.kind(), fmt::format("rows from {}: {}", base_row, error.reason())),
                         input_.file_of(tensor), tensor);
      }
      outputs[jobs[j].output].report->error.merge(stats[cell]);
    }
  }
  return Status::success();
}

}  // namespace quant::convert_internal
