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

TensorStreamer::TensorStreamer(const GgufFile& input, WorkPool& pool, const ConvertRequest& request,
                               uint64_t total_bytes)
    : input_(input), pool_(pool), request_(request), total_bytes_(total_bytes) {}

Status TensorStreamer::progress_and_cancel(uint64_t bytes, const std::string& tensor) {
  done_bytes_ += bytes;
  if (request_.progress) request_.progress(done_bytes_, total_bytes_, tensor);
  if (request_.cancel != nullptr && request_.cancel->load()) return Error(ErrorKind::interrupted, "interrupted");
  return Status::success();
}

Status TensorStreamer::check_input(const TensorInfo& tensor, const uint8_t* data, uint64_t first_row,
                                   int64_t rows) const {
  if (request_.allow_non_finite) return Status::success();
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
                   input_.path(), tensor);
}

Status TensorStreamer::stream(const TensorInfo& tensor, std::span<TensorOutput> outputs) {
  Status status = stream_chunks(tensor, outputs);
  // Drain the writes even after an error: their buffers are reused, and the caller commits or discards the
  // writers next.
  Status drained = io_.wait_all();
  if (!status) return status;
  return drained;
}

Status TensorStreamer::finish() { return io_.wait_all(); }

IoThread::Ticket TensorStreamer::post_read(const TensorInfo& tensor, Chunk chunk, int buffer, bool check) {
  return io_.post([this, &tensor, chunk, buffer, check]() -> Status {
    const uint64_t in_row_bytes = *row_bytes(format_of(tensor.type), tensor.row_length());
    std::vector<uint8_t>& raw = raw_[buffer];
    raw.resize(size_t(uint64_t(chunk.rows) * in_row_bytes));
    QUANT_TRY(input_.read_tensor(tensor, uint64_t(chunk.first_row) * in_row_bytes, std::span<uint8_t>(raw)));
    return check ? check_input(tensor, raw.data(), uint64_t(chunk.first_row), chunk.rows) : Status::success();
  });
}

Status TensorStreamer::stream_chunks(const TensorInfo& tensor, std::span<TensorOutput> outputs) {
  for (TensorOutput& output : outputs) {
    if (output.writer == nullptr) continue;
    io_.post([writer = output.writer, &tensor] { return writer->begin_tensor(tensor.name); });
  }
  const bool all_copies = std::all_of(outputs.begin(), outputs.end(),
                                      [&](const TensorOutput& o) { return o.format->id == tensor.type; });
  const FormatInfo& source = format_of(tensor.type);
  if (!all_copies && source.id != TypeId::f32 && source.dequantize == nullptr) {
    return in_tensor(impossible(fmt::format("cannot convert from type {}: it has no float form", source.name)),
                     input_.path(), tensor);
  }
  const int64_t n_per_row = tensor.row_length();
  const int64_t total_rows = tensor.rows();
  const uint64_t in_row_bytes = *row_bytes(source, n_per_row);
  // Copies move chunk_bytes of stored bytes at a time; conversions chunk_bytes of float32. A conversion's chunk
  // never spans two experts: each expert has its own slice of the importance vector.
  const uint64_t row_cost = all_copies ? std::max<uint64_t>(1, in_row_bytes) : uint64_t(n_per_row) * 4;
  const int64_t chunk_rows = std::max<int64_t>(1, int64_t(request_.chunk_bytes / row_cost));
  const int64_t rows_per_expert = all_copies ? total_rows : (tensor.shape.size() > 1 ? tensor.shape[1] : 1);
  std::vector<Chunk> chunks;
  for (int64_t row = 0; row < total_rows;) {
    const int64_t rows = std::min({chunk_rows, total_rows - row, rows_per_expert - row % rows_per_expert});
    chunks.push_back({row, rows});
    row += rows;
  }
  for (int b = 0; b < 2; ++b) quantized_[b].resize(outputs.size());

  // Copies are checked by the I/O thread as they are read; conversions by the pool's tasks (in parallel, and
  // while the rows are in cache).
  const bool check_on_read = all_copies;
  IoThread::Ticket read_ticket = chunks.empty() ? 0 : post_read(tensor, chunks[0], 0, check_on_read);
  for (size_t k = 0; k < chunks.size(); ++k) {
    const int buffer = int(k % 2);
    // Once chunk k is read, every job before it is done too: the writes of chunk k - 2 no longer use the
    // buffers chunk k is about to fill.
    QUANT_TRY(io_.wait(read_ticket));
    if (k + 1 < chunks.size()) read_ticket = post_read(tensor, chunks[k + 1], 1 - buffer, check_on_read);
    if (!all_copies) QUANT_TRY(quantize_chunk(tensor, outputs, chunks[k], buffer));
    for (size_t o = 0; o < outputs.size(); ++o) {
      if (outputs[o].writer == nullptr) continue;
      const bool copy = outputs[o].format->id == tensor.type;
      const std::vector<uint8_t>& bytes = copy ? raw_[buffer] : quantized_[buffer][o];
      io_.post([writer = outputs[o].writer, data = std::span<const uint8_t>(bytes)] {
        return writer->write_tensor_data(data);
      });
    }
    QUANT_TRY(progress_and_cancel(uint64_t(chunks[k].rows) * in_row_bytes, tensor.name));
  }
  return Status::success();
}

Status TensorStreamer::quantize_chunk(const TensorInfo& tensor, std::span<TensorOutput> outputs, Chunk chunk,
                                      int buffer) {
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
  for (size_t o = 0; o < outputs.size(); ++o) {
    const FormatInfo& target = *outputs[o].format;
    if (target.id == tensor.type) continue;
    const auto out_row_bytes = row_bytes(target, n_per_row);
    if (!out_row_bytes) {
      return in_tensor(impossible(fmt::format("row length {} is not a multiple of {}'s block size {}", n_per_row,
                                              target.name, target.block_size)),
                       input_.path(), tensor);
    }
    const float* importance = outputs[o].importance == nullptr
                                  ? nullptr
                                  : outputs[o].importance + (chunk.first_row / rows_per_expert) * n_per_row;
    quantized_[buffer][o].resize(size_t(uint64_t(rows) * *out_row_bytes));
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
  const uint8_t* raw = raw_[buffer].data();
  pool_.run(tasks, [&](int task) {
    const int64_t first = int64_t(task) * task_rows;
    const int64_t count = std::min(task_rows, rows - first);
    Status checked = check_input(tensor, raw + uint64_t(first) * in_row_bytes, uint64_t(chunk.first_row + first), count);
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
    for (size_t j = 0; j < jobs.size(); ++j) {
      const FormatInfo& target = *outputs[jobs[j].output].format;
      uint8_t* dst = quantized_[buffer][jobs[j].output].data() + uint64_t(first) * jobs[j].out_row_bytes;
      const size_t slot = j * size_t(tasks) + size_t(task);
      Status status = quantize_rows(target, values, dst, count, n_per_row, jobs[j].importance);
      if (!status) {
        errors[slot] = std::move(status).error();
        continue;
      }
      if (target.dequantize != nullptr) {
        float* back = reconstructed_.data() + first * n_per_row;
        target.dequantize(dst, back, count * n_per_row);
        stats[slot].add(values, back, count * n_per_row);
      }
    }
  });
  // The first bad input row wins over any output error, as when the whole chunk was checked first.
  for (std::optional<Error>& error : input_errors) {
    if (error) return std::move(*error);
  }
  for (size_t j = 0; j < jobs.size(); ++j) {
    for (int task = 0; task < tasks; ++task) {
      const size_t slot = j * size_t(tasks) + size_t(task);
      if (errors[slot]) {
        Error error = std::move(*errors[slot]);
        // quantize_rows counts rows within its call: make them rows of the tensor.
        const int64_t base_row = chunk.first_row + int64_t(task) * task_rows;
        return in_tensor(Error(error.kind(), fmt::format("rows from {}: {}", base_row, error.reason())),
                         input_.path(), tensor);
      }
      outputs[jobs[j].output].report->error.merge(stats[slot]);
    }
  }
  return Status::success();
}

}  // namespace quant::convert_internal
