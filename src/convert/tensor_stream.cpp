#include "convert/tensor_stream.h"

#include <fmt/format.h>

#include <algorithm>

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

Status TensorStreamer::check_input(const TensorInfo& tensor, const uint8_t* data, uint64_t first_row, int64_t rows) {
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
  for (TensorOutput& output : outputs) {
    if (output.writer != nullptr) QUANT_TRY(output.writer->begin_tensor(tensor.name));
  }
  const bool all_copies = std::all_of(outputs.begin(), outputs.end(),
                                      [&](const TensorOutput& o) { return o.format->id == tensor.type; });
  if (all_copies) return stream_copy(tensor, outputs);

  const FormatInfo& source = format_of(tensor.type);
  const int64_t n_per_row = tensor.row_length();
  const int64_t total_rows = tensor.rows();
  const int64_t rows_per_expert = tensor.shape.size() > 1 ? tensor.shape[1] : 1;
  const uint64_t in_row_bytes = *row_bytes(source, n_per_row);
  const int64_t chunk_rows = std::max<int64_t>(1, int64_t(request_.chunk_bytes / (uint64_t(n_per_row) * 4)));

  for (int64_t row = 0; row < total_rows;) {
    // A chunk never spans two experts: each expert has its own slice of the importance vector.
    const int64_t rows = std::min({chunk_rows, total_rows - row, rows_per_expert - row % rows_per_expert});
    const uint64_t bytes = uint64_t(rows) * in_row_bytes;
    raw_.resize(bytes);
    QUANT_TRY(input_.read_tensor(tensor, uint64_t(row) * in_row_bytes, std::span<uint8_t>(raw_.data(), bytes)));
    QUANT_TRY(check_input(tensor, raw_.data(), uint64_t(row), rows));
    QUANT_TRY(widen(tensor, rows));
    for (TensorOutput& output : outputs) {
      if (output.format->id == tensor.type) {
        if (output.writer != nullptr) QUANT_TRY(output.writer->write_tensor_data(std::span<const uint8_t>(raw_.data(), bytes)));
        continue;
      }
      QUANT_TRY(quantize_chunk(tensor, output, uint64_t(row), rows));
    }
    row += rows;
    QUANT_TRY(progress_and_cancel(bytes, tensor.name));
  }
  return Status::success();
}

Status TensorStreamer::stream_copy(const TensorInfo& tensor, std::span<TensorOutput> outputs) {
  const FormatInfo& format = format_of(tensor.type);
  const int64_t n_per_row = tensor.row_length();
  const uint64_t in_row_bytes = *row_bytes(format, n_per_row);
  const int64_t total_rows = tensor.rows();
  const int64_t chunk_rows = std::max<int64_t>(1, int64_t(request_.chunk_bytes / std::max<uint64_t>(1, in_row_bytes)));
  for (int64_t row = 0; row < total_rows;) {
    const int64_t rows = std::min(chunk_rows, total_rows - row);
    const uint64_t bytes = uint64_t(rows) * in_row_bytes;
    raw_.resize(bytes);
    QUANT_TRY(input_.read_tensor(tensor, uint64_t(row) * in_row_bytes, std::span<uint8_t>(raw_.data(), bytes)));
    QUANT_TRY(check_input(tensor, raw_.data(), uint64_t(row), rows));
    for (TensorOutput& output : outputs) {
      if (output.writer != nullptr) QUANT_TRY(output.writer->write_tensor_data(std::span<const uint8_t>(raw_.data(), bytes)));
    }
    row += rows;
    QUANT_TRY(progress_and_cancel(bytes, tensor.name));
  }
  return Status::success();
}

Status TensorStreamer::widen(const TensorInfo& tensor, int64_t rows) {
  const FormatInfo& source = format_of(tensor.type);
  const int64_t n_per_row = tensor.row_length();
  const uint64_t in_row_bytes = *row_bytes(source, n_per_row);
  floats_.resize(size_t(rows * n_per_row));
  if (source.id == TypeId::f32) {
    std::memcpy(floats_.data(), raw_.data(), raw_.size());
    return Status::success();
  }
  if (source.dequantize == nullptr) {
    return in_tensor(impossible(fmt::format("cannot convert from type {}: it has no float form", source.name)),
                     input_.path(), tensor);
  }
  const int64_t task_rows = rows_per_task(n_per_row);
  const int tasks = int((rows + task_rows - 1) / task_rows);
  pool_.run(tasks, [&](int task) {
    const int64_t first = int64_t(task) * task_rows;
    const int64_t count = std::min(task_rows, rows - first);
    source.dequantize(raw_.data() + uint64_t(first) * in_row_bytes, floats_.data() + first * n_per_row,
                      count * n_per_row);
  });
  return Status::success();
}

Status TensorStreamer::quantize_chunk(const TensorInfo& tensor, TensorOutput& output, uint64_t first_row,
                                      int64_t rows) {
  const FormatInfo& target = *output.format;
  const int64_t n_per_row = tensor.row_length();
  const auto out_row_bytes = row_bytes(target, n_per_row);
  if (!out_row_bytes) {
    return in_tensor(impossible(fmt::format("row length {} is not a multiple of {}'s block size {}", n_per_row,
                                            target.name, target.block_size)),
                     input_.path(), tensor);
  }
  const int64_t rows_per_expert = tensor.shape.size() > 1 ? tensor.shape[1] : 1;
  const float* importance =
      output.importance == nullptr ? nullptr : output.importance + (int64_t(first_row) / rows_per_expert) * n_per_row;

  quantized_.resize(size_t(uint64_t(rows) * *out_row_bytes));
  reconstructed_.resize(size_t(rows * n_per_row));
  const int64_t task_rows = rows_per_task(n_per_row);
  const int tasks = int((rows + task_rows - 1) / task_rows);
  std::vector<std::optional<Error>> errors(static_cast<size_t>(tasks));
  std::vector<ErrorStats> stats(static_cast<size_t>(tasks));
  pool_.run(tasks, [&](int task) {
    const int64_t first = int64_t(task) * task_rows;
    const int64_t count = std::min(task_rows, rows - first);
    const float* src = floats_.data() + first * n_per_row;
    uint8_t* dst = quantized_.data() + uint64_t(first) * *out_row_bytes;
    Status status = quantize_rows(target, src, dst, count, n_per_row, importance);
    if (!status) {
      errors[size_t(task)] = std::move(status).error();
      return;
    }
    float* back = reconstructed_.data() + first * n_per_row;
    if (target.dequantize != nullptr) {
      target.dequantize(dst, back, count * n_per_row);
      stats[size_t(task)].add(src, back, count * n_per_row);
    }
  });
  for (int task = 0; task < tasks; ++task) {
    if (errors[size_t(task)]) {
      Error error = std::move(*errors[size_t(task)]);
      // quantize_rows counts rows within its call: make them rows of the tensor.
      const int64_t base_row = int64_t(first_row) + int64_t(task) * task_rows;
      return in_tensor(Error(error.kind(), fmt::format("rows from {}: {}", base_row, error.reason())), input_.path(),
                       tensor);
    }
    output.report->error.merge(stats[size_t(task)]);
  }
  if (output.writer != nullptr) {
    QUANT_TRY(output.writer->write_tensor_data(std::span<const uint8_t>(quantized_.data(), quantized_.size())));
  }
  return Status::success();
}

}  // namespace quant::convert_internal
