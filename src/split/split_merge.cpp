// quantize split / quantize merge: a model's tensors copied, unchanged and in order, into other files.
//
// Both write what llama-gguf-split writes (tools/gguf-split/gguf-split.cpp at 34af94c): `--split` gives the first
// shard the input's metadata and every shard the split keys (split_strategy), `--merge` gives the output the
// first shard's metadata with split.count set to 0 and the tensors of every shard in order (gguf_merge). Tensor
// bytes are copied a chunk at a time, the next chunk read while one is written, so memory stays at two chunks
// whatever the model; every file is written to a temporary name and all of them are placed together at the end,
// or none.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>

#include "core/worker_signals.h"
#include "quant/split.h"
#include "split/output_files.h"

namespace quant {
namespace {


// One file to write: its path, its metadata and the source tensors it holds, in order.
struct PlannedFile {
  std::string path;
  std::vector<KeyValue> metadata;
  std::vector<const TensorInfo*> tensors;
};

Result<ShardReport> planned_report(const PlannedFile& file, uint32_t index) {
  ShardReport report;
  report.path = file.path;
  report.index = index;
  report.tensors = file.tensors.size();
  for (const TensorInfo* t : file.tensors) report.tensor_bytes += t->size_bytes;
  std::vector<TensorInfo> tensors;
  for (const TensorInfo* t : file.tensors) tensors.push_back(*t);
  QUANT_ASSIGN_OR_RETURN(report.file_bytes, gguf_file_size(file.metadata, tensors));
  return report;
}

Result<GgufWriter> open_writer(const PlannedFile& file, const SplitJobOptions& options) {
  WriterOptions writer_options;
  writer_options.fsync = options.output.fsync;
  QUANT_ASSIGN_OR_RETURN(GgufWriter writer, GgufWriter::create(file.path, writer_options));
  for (const KeyValue& kv : file.metadata) QUANT_TRY(writer.add_metadata(kv.key, kv.value));
  for (const TensorInfo* t : file.tensors) QUANT_TRY(writer.add_tensor(t->name, t->type, t->shape));
  QUANT_TRY(writer.begin());
  return writer;
}

// One chunk of a tensor to copy.
struct Piece {
  const TensorInfo* tensor;
  uint64_t offset;
  uint64_t size;
};

std::vector<Piece> pieces_of(const PlannedFile& file, uint64_t chunk_bytes) {
  std::vector<Piece> pieces;
  for (const TensorInfo* tensor : file.tensors) {
    uint64_t done = 0;
    do {
      const uint64_t size = std::min(tensor->size_bytes - done, std::max<uint64_t>(1, chunk_bytes));
      pieces.push_back({tensor, done, size});
      done += size;
    } while (done < tensor->size_bytes);
  }
  return pieces;
}

// Copies the tensors of `file` from `source` into `writer`, a chunk at a time, reading the next chunk (on another
// thread) while this one is written, so reading and writing overlap.
Status copy_tensors(const ModelSource& source, const PlannedFile& file, GgufWriter& writer,
                    const SplitJobOptions& options, std::vector<uint8_t> (&buffers)[2]) {
  const std::vector<Piece> pieces = pieces_of(file, options.chunk_bytes);
  const auto read = [&](size_t i) -> Status {
    std::vector<uint8_t>& buffer = buffers[i % 2];
    buffer.resize(size_t(pieces[i].size));
    return source.read_tensor(*pieces[i].tensor, pieces[i].offset, buffer);
  };
  Status next_read = pieces.empty() ? Status::success() : read(0);
  for (size_t i = 0; i < pieces.size(); ++i) {
    QUANT_TRY(std::move(next_read));
    if (options.cancel != nullptr && options.cancel->load()) return Error(ErrorKind::interrupted, "interrupted");
    std::future<Status> ahead;
    if (i + 1 < pieces.size()) {
      const WorkerSignals reader_takes_no_stop_signals;
      ahead = std::async(std::launch::async, read, i + 1);
    }
    Status written = pieces[i].offset == 0 ? writer.begin_tensor(pieces[i].tensor->name) : Status::success();
    if (written) written = writer.write_tensor_data(buffers[i % 2]);
    next_read = ahead.valid() ? ahead.get() : Status::success();
    QUANT_TRY(std::move(written));
  }
  return Status::success();
}

// Writes every planned file from `source`, all or none; or, in a dry run, only says what they would be.
Result<SplitJobReport> write_files(const ModelSource& source, std::vector<PlannedFile> files,
                                   const SplitJobOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  SplitJobReport report;
  report.input = source.path();
  report.input_bytes = source.input_bytes();
  report.total_tensors = source.tensors().size();
  for (size_t i = 0; i < files.size(); ++i) {
    QUANT_ASSIGN_OR_RETURN(ShardReport planned, planned_report(files[i], uint32_t(i)));
    report.files.push_back(std::move(planned));
  }
  if (options.dry_run) return report;

  OutputPolicy policy = options.output;
  for (std::string& file : source.files()) policy.inputs.push_back(std::move(file));
  for (const PlannedFile& file : files) QUANT_TRY(check_output_path(file.path, policy));
  std::vector<GgufWriter> writers;
  writers.reserve(files.size());
  std::vector<uint8_t> buffers[2];
  for (const PlannedFile& file : files) {
    QUANT_ASSIGN_OR_RETURN(GgufWriter writer, open_writer(file, options));
    writers.push_back(std::move(writer));
    QUANT_TRY(copy_tensors(source, file, writers.back(), options, buffers));
  }
  std::vector<GgufWriter*> all;
  for (GgufWriter& writer : writers) all.push_back(&writer);
  QUANT_TRY(split_internal::commit_together(all, policy, options.cancel));
  for (size_t i = 0; i < writers.size(); ++i) {
    report.files[i].file_bytes = writers[i].bytes_written();
    report.files[i].sha256 = writers[i].sha256_hex();
  }
  report.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace

Result<SplitJobReport> split_model(const std::string& input, const std::string& prefix, const ShardLimits& limits,
                                   const SplitJobOptions& options) {
  if (prefix.empty()) return usage_error("the output prefix is empty");
  QUANT_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model(input));
  const std::vector<TensorInfo>& tensors = source->tensors();
  std::vector<uint64_t> sizes;
  sizes.reserve(tensors.size());
  for (const TensorInfo& t : tensors) sizes.push_back(t.size_bytes);
  auto cut = cut_by_limits(sizes, limits);
  if (!cut) return std::move(cut).error().in_file(input);

  const uint32_t count = uint32_t(cut->size());
  std::vector<PlannedFile> files(count);
  size_t next = 0;
  for (uint32_t i = 0; i < count; ++i) {
    files[i].path = split_path(prefix, i, count);
    files[i].metadata = shard_metadata(source->metadata(), i, count, tensors.size(), SplitKeyOrder::gguf_split);
    for (uint64_t k = 0; k < (*cut)[i]; ++k) files[i].tensors.push_back(&tensors[next++]);
  }
  return write_files(*source, std::move(files), options);
}

Result<SplitJobReport> merge_model(const std::string& shard, const std::string& output,
                                   const SplitJobOptions& options) {
  QUANT_ASSIGN_OR_RETURN(std::unique_ptr<SplitModel> model, SplitModel::open(shard));
  PlannedFile file;
  file.path = output;
  // gguf_merge sets split.count to 0 on the first shard ("do not trigger merge if we try to merge again the
  // output") with gguf_set_val_u16, which moves the key last; split.no and split.tensors.count stay.
  for (const KeyValue& kv : model->metadata()) {
    if (kv.key != kSplitCountKey) file.metadata.push_back(kv);
  }
  file.metadata.push_back(KeyValue{std::string(kSplitCountKey), Value::u16(0)});
  for (const TensorInfo& t : model->tensors()) file.tensors.push_back(&t);
  return write_files(*model, {std::move(file)}, options);
}

}  // namespace quant
