// The streaming GGUF v3 writer. The header (metadata and tensor infos with their offsets) is computable before
// any tensor data exists, so it is written first and tensor bytes follow one tensor at a time; the file is a
// temporary one until commit() renames it into place (rename is atomic within a directory).
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "core/checked_math.h"
#include "gguf/file_io.h"
#include "quant/gguf.h"
#include "quant/kernel_level.h"

namespace quant {
namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxTensorNameBytes = 63;
constexpr size_t kMaxTensorDims = 4;
constexpr uint8_t kZeros[256] = {};

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

void put(std::vector<uint8_t>& out, const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  out.insert(out.end(), bytes, bytes + size);
}
template <typename T>
void put_scalar(std::vector<uint8_t>& out, T v) { put(out, &v, sizeof(T)); }
void put_string(std::vector<uint8_t>& out, std::string_view text) {
  put_scalar<uint64_t>(out, text.size());
  put(out, text.data(), text.size());
}

// Fault injection for the whole-program fault tests (tests/cli/faults_test.cpp, docs/reliability.md). With
// QUANT_FAULT_KILL_AFTER_BYTES=N the process sends itself SIGKILL once N bytes of GGUF output have been written
// (counted over every writer of the process); with QUANT_FAULT_STOP_AFTER_BYTES=N it stops itself (SIGSTOP)
// once at that point, so a test can act on a paused conversion at a reproducible place and then continue it.
// Outside tests the variables are unset and this costs one branch per write.
struct FaultPoint {
  uint64_t after_bytes = 0;
  int signal = 0;  // 0: no fault injection
  bool fired = false;
  uint64_t written = 0;
};

FaultPoint& fault_point() {
  static FaultPoint point = [] {
    FaultPoint p;
    for (const auto& [name, signal] : {std::pair{"QUANT_FAULT_KILL_AFTER_BYTES", SIGKILL},
                                       std::pair{"QUANT_FAULT_STOP_AFTER_BYTES", SIGSTOP}}) {
      const char* value = std::getenv(name);
      if (value == nullptr || *value == '\0') continue;
      p.after_bytes = std::strtoull(value, nullptr, 10);
      p.signal = signal;
      break;
    }
    return p;
  }();
  return point;
}

// How many of the next `size` bytes may be written before the fault point fires (all of them when none is set
// or it already fired).
size_t bytes_before_fault(size_t size) {
  const FaultPoint& point = fault_point();
  if (point.signal == 0 || point.fired || point.written + size < point.after_bytes) return size;
  return size_t(point.after_bytes - point.written);
}

// Counts written bytes and fires the fault once its point is reached.
void after_write(size_t size) {
  FaultPoint& point = fault_point();
  if (point.signal == 0) return;
  point.written += size;
  if (!point.fired && point.written >= point.after_bytes) {
    point.fired = true;
    std::raise(point.signal);
  }
}

}  // namespace

Result<GgufWriter> GgufWriter::create(const std::string& final_path, const WriterOptions& options) {
  if (!is_power_of_two(options.alignment)) {
    return usage_error(fmt::format("alignment {} is not a power of two", options.alignment)).in_file(final_path);
  }
  if (options.alignment > UINT32_MAX) {
    return usage_error(fmt::format("alignment {} does not fit general.alignment (u32)", options.alignment))
        .in_file(final_path);
  }
  GgufWriter writer;
  writer.final_path_ = final_path;
  writer.options_ = options;
  writer.alignment_ = options.alignment;
  // The scalar kernel level promises no CPU-specific instructions: hash with the portable code there.
  writer.hasher_ = Sha256(sha256_kernel_for(active_kernel_level()));
  QUANT_ASSIGN_OR_RETURN(writer.file_, AtomicFile::create(final_path));
  writer.temp_path_ = writer.file_.temp_path();
  return writer;
}

GgufWriter::GgufWriter(GgufWriter&& other) noexcept { *this = std::move(other); }

GgufWriter& GgufWriter::operator=(GgufWriter&& other) noexcept {
  if (this == &other) return *this;
  discard();
  final_path_ = std::move(other.final_path_);
  temp_path_ = std::move(other.temp_path_);
  file_ = std::move(other.file_);
  options_ = other.options_;
  stage_ = other.stage_;
  alignment_ = other.alignment_;
  alignment_from_metadata_ = other.alignment_from_metadata_;
  metadata_ = std::move(other.metadata_);
  tensors_ = std::move(other.tensors_);
  next_tensor_ = other.next_tensor_;
  in_tensor_ = other.in_tensor_;
  written_in_tensor_ = other.written_in_tensor_;
  bytes_written_ = other.bytes_written_;
  hasher_ = other.hasher_;
  sha256_hex_ = std::move(other.sha256_hex_);
  return *this;
}

GgufWriter::~GgufWriter() { discard(); }

void GgufWriter::discard() { file_.discard(); }  // nothing once the file is placed

Status GgufWriter::fail(Error error) {
  discard();
  stage_ = Stage::failed;
  return error;
}

Status GgufWriter::check_stage(Stage expected, std::string_view operation) {
  if (stage_ == expected) return {};
  const char* why = stage_ == Stage::failed      ? "the writer already failed"
                    : stage_ == Stage::committed ? "the file is already committed"
                    : stage_ == Stage::finished  ? "the file is already finished"
                    : stage_ == Stage::declaring ? "begin() has not been called"
                                                 : "begin() was already called";
  // A call in the wrong order is a bug in the caller; it also abandons the output.
  Error error = usage_error(fmt::format("{}: {}", operation, why)).in_file(final_path_);
  if (stage_ == Stage::failed || stage_ == Stage::committed || file_.placed()) return error;
  return fail(std::move(error));
}

Status GgufWriter::add_metadata(std::string key, Value value) {
  QUANT_TRY(check_stage(Stage::declaring, "add_metadata"));
  if (key.empty()) return fail(usage_error("metadata key is empty").in_file(final_path_));
  if (std::any_of(metadata_.begin(), metadata_.end(), [&](const KeyValue& kv) { return kv.key == key; })) {
    return fail(usage_error(fmt::format("duplicate metadata key '{}'", key)).in_file(final_path_));
  }
  if (key == "general.alignment") {
    if (value.type() != ValueType::u32 || !is_power_of_two(value.as<uint32_t>())) {
      return fail(usage_error("general.alignment must be a u32 power of two").in_file(final_path_));
    }
    alignment_ = value.as<uint32_t>();
    alignment_from_metadata_ = true;
  }
  metadata_.push_back(KeyValue{std::move(key), std::move(value)});
  return {};
}

Status GgufWriter::add_tensor(std::string name, TypeId type, std::vector<int64_t> shape) {
  QUANT_TRY(check_stage(Stage::declaring, "add_tensor"));
  auto reject = [&](std::string reason) { return fail(usage_error(std::move(reason)).in_file(final_path_).in_tensor(name)); };
  if (name.size() > kMaxTensorNameBytes) {
    return reject(fmt::format("name of {} bytes is too long (at most {})", name.size(), kMaxTensorNameBytes));
  }
  if (std::any_of(tensors_.begin(), tensors_.end(), [&](const TensorInfo& t) { return t.name == name; })) {
    return reject("duplicate tensor name");
  }
  if (shape.size() > kMaxTensorDims) return reject(fmt::format("{} dimensions (at most {})", shape.size(), kMaxTensorDims));
  const FormatInfo* format = find_format(type);
  if (format == nullptr) return reject(fmt::format("unknown tensor type {}", uint32_t(type)));
  int64_t elements = 1;
  for (int64_t ne : shape) {
    if (ne < 0) return reject(fmt::format("negative dimension {}", ne));
    const auto product = checked_mul_signed(elements, ne);
    if (!product) return reject("element count overflows 64 bits");
    elements = *product;
  }
  const int64_t row_length = shape.empty() ? 1 : shape[0];
  if (row_length % format->block_size != 0) {
    return reject(fmt::format("row length {} is not a multiple of {}'s block size {}", row_length, format->name,
                              format->block_size));
  }
  const auto size = checked_mul(uint64_t(elements) / uint64_t(format->block_size), format->block_bytes);
  if (!size) return reject("byte size overflows 64 bits");
  TensorInfo info;
  info.name = std::move(name);
  info.type = type;
  info.shape = std::move(shape);
  info.size_bytes = *size;
  tensors_.push_back(std::move(info));
  return {};
}

Status GgufWriter::begin() {
  QUANT_TRY(check_stage(Stage::declaring, "begin"));
  // A reader takes the alignment from general.alignment or assumes 32: record any other choice.
  if (!alignment_from_metadata_ && alignment_ != kDefaultAlignment) {
    metadata_.push_back(KeyValue{"general.alignment", Value::u32(uint32_t(alignment_))});
  }
  uint64_t offset = 0;
  for (TensorInfo& tensor : tensors_) {
    tensor.offset = offset;
    const auto end = checked_add(offset, tensor.size_bytes);
    const auto next = end ? checked_align_up(*end, alignment_) : std::nullopt;
    if (!next) return fail(usage_error("total tensor data overflows 64 bits").in_file(final_path_));
    offset = *next;
  }

  std::vector<uint8_t> header;
  header.reserve(4096);  // (also keeps GCC 12 from a false -Wstringop-overflow on the first put())
  put(header, "GGUF", 4);
  put_scalar<uint32_t>(header, kVersion);
  put_scalar<int64_t>(header, int64_t(tensors_.size()));
  put_scalar<int64_t>(header, int64_t(metadata_.size()));
  for (const KeyValue& kv : metadata_) {
    put_string(header, kv.key);
    put_scalar<uint32_t>(header, uint32_t(kv.value.type()));
    kv.value.encode_v3(header);
  }
  for (const TensorInfo& tensor : tensors_) {
    put_string(header, tensor.name);
    put_scalar<uint32_t>(header, uint32_t(tensor.shape.size()));
    for (int64_t ne : tensor.shape) put_scalar<int64_t>(header, ne);
    put_scalar<uint32_t>(header, uint32_t(tensor.type));
    put_scalar<uint64_t>(header, tensor.offset);
  }
  // A file without tensors has no data section, so it ends here (as gguf-py writes vocabulary files).
  if (!tensors_.empty()) header.resize(*checked_align_up(header.size(), alignment_), 0);
  stage_ = Stage::writing;
  return write_bytes(header.data(), header.size());
}

Result<uint64_t> gguf_file_size(std::span<const KeyValue> metadata, std::span<const TensorInfo> tensors,
                                uint64_t alignment) {
  // Counts what begin() and the tensor writes put in the file: header, key-values, tensor infos, padding, data.
  uint64_t header = 4 + 4 + 8 + 8;  // magic, version, tensor count, key count
  bool alignment_in_metadata = false;
  for (const KeyValue& kv : metadata) {
    if (kv.key == "general.alignment") {
      if (kv.value.type() != ValueType::u32 || !is_power_of_two(kv.value.as<uint32_t>())) {
        return usage_error("general.alignment must be a u32 power of two");
      }
      alignment = kv.value.as<uint32_t>();
      alignment_in_metadata = true;
    }
    const auto next = checked_add(header, 8 + kv.key.size() + 4 + kv.value.encoded_size_v3());
    if (!next) return usage_error("metadata size overflows 64 bits");
    header = *next;
  }
  if (!is_power_of_two(alignment)) return usage_error(fmt::format("alignment {} is not a power of two", alignment));
  if (!alignment_in_metadata && alignment != kDefaultAlignment) header += 8 + 17 + 4 + 4;  // general.alignment u32
  uint64_t data = 0;
  for (const TensorInfo& tensor : tensors) {
    header += 8 + tensor.name.size() + 4 + 8 * tensor.shape.size() + 4 + 8;
    const FormatInfo* format = find_format(tensor.type);
    if (format == nullptr) return Error(usage_error("unknown tensor type")).in_tensor(tensor.name);
    std::optional<uint64_t> bytes = row_bytes(*format, tensor.row_length());
    for (size_t d = 1; bytes && d < tensor.shape.size(); ++d) {
      bytes = tensor.shape[d] < 0 ? std::nullopt : checked_mul(*bytes, uint64_t(tensor.shape[d]));
    }
    const auto padded = bytes ? checked_align_up(*bytes, alignment) : std::nullopt;
    const auto total = padded ? checked_add(data, *padded) : std::nullopt;
    if (!total) {
      return Error(usage_error("its shape does not fill its type's blocks, or its size overflows 64 bits"))
          .in_tensor(tensor.name);
    }
    data = *total;
  }
  if (tensors.empty()) return header;  // no data section, no padding (as begin() writes it)
  const auto aligned = checked_align_up(header, alignment);
  const auto total = aligned ? checked_add(*aligned, data) : std::nullopt;
  if (!total) return usage_error("file size overflows 64 bits");
  return *total;
}

Status GgufWriter::write_bytes(const uint8_t* data, size_t size) {
  // Split at the fault point (tests only), so the fault fires after exactly that many bytes.
  for (size_t part; size > 0; data += part, size -= part) {
    part = bytes_before_fault(size);
    Status status = write_all_fd(file_.fd(), temp_path_, data, part);
    if (!status) return fail(std::move(status).error().in_file(final_path_));
    // Hash what landed in the file, while it is still in cache; before the fault point so that a stopped
    // process has hashed exactly the bytes written.
    if (options_.sha256) hasher_.update(data, part);
    bytes_written_ += part;
    after_write(part);
  }
  return {};
}

Status GgufWriter::finish_current_tensor() {
  if (!in_tensor_) return {};
  const TensorInfo& tensor = tensors_[next_tensor_ - 1];
  if (written_in_tensor_ != tensor.size_bytes) {
    return fail(usage_error(fmt::format("got {} of its {} bytes", written_in_tensor_, tensor.size_bytes))
                    .in_file(final_path_)
                    .in_tensor(tensor.name));
  }
  in_tensor_ = false;
  uint64_t padding = *checked_align_up(tensor.size_bytes, alignment_) - tensor.size_bytes;
  while (padding > 0) {
    const size_t chunk = size_t(std::min<uint64_t>(padding, sizeof(kZeros)));
    QUANT_TRY(write_bytes(kZeros, chunk));
    padding -= chunk;
  }
  return {};
}

Status GgufWriter::begin_tensor(std::string_view name) {
  QUANT_TRY(check_stage(Stage::writing, "begin_tensor"));
  QUANT_TRY(finish_current_tensor());
  if (next_tensor_ >= tensors_.size()) {
    return fail(usage_error(fmt::format("tensor '{}' was not declared, or all declared tensors are written", name))
                    .in_file(final_path_));
  }
  if (tensors_[next_tensor_].name != name) {
    return fail(usage_error(fmt::format("tensor '{}' comes out of order: the next declared tensor is '{}'", name,
                                        tensors_[next_tensor_].name))
                    .in_file(final_path_));
  }
  ++next_tensor_;
  in_tensor_ = true;
  written_in_tensor_ = 0;
  return {};
}

Status GgufWriter::write_tensor_data(std::span<const uint8_t> bytes) {
  QUANT_TRY(check_stage(Stage::writing, "write_tensor_data"));
  if (!in_tensor_) return fail(usage_error("tensor data written before begin_tensor()").in_file(final_path_));
  const TensorInfo& tensor = tensors_[next_tensor_ - 1];
  if (bytes.size() > tensor.size_bytes - written_in_tensor_) {
    return fail(usage_error(fmt::format("{} more bytes would exceed its {} bytes ({} written)", bytes.size(),
                                        tensor.size_bytes, written_in_tensor_))
                    .in_file(final_path_)
                    .in_tensor(tensor.name));
  }
  QUANT_TRY(write_bytes(bytes.data(), bytes.size()));
  written_in_tensor_ += bytes.size();
  return {};
}

Status GgufWriter::write_tensor(std::string_view name, std::span<const uint8_t> bytes) {
  QUANT_TRY(begin_tensor(name));
  QUANT_TRY(write_tensor_data(bytes));
  return finish_current_tensor();
}

Status GgufWriter::finish() {
  QUANT_TRY(check_stage(Stage::writing, "finish"));
  QUANT_TRY(finish_current_tensor());
  if (next_tensor_ != tensors_.size()) {
    return fail(usage_error(fmt::format("only {} of {} tensors were written (next: '{}')", next_tensor_,
                                        tensors_.size(), tensors_[next_tensor_].name))
                    .in_file(final_path_));
  }
  Status closed = file_.finish(options_.fsync);
  if (!closed) return fail(std::move(closed).error());
  stage_ = Stage::finished;
  if (options_.sha256) sha256_hex_ = hasher_.finish_hex();
  return Status::success();
}

Status GgufWriter::commit(const OutputPolicy& policy) {
  if (stage_ != Stage::finished) QUANT_TRY(finish());
  OutputPolicy synced = policy;
  synced.fsync = policy.fsync || options_.fsync;
  AtomicFile* files[] = {&file_};
  auto placed = commit_files(files, synced);
  if (!placed) return fail(std::move(placed).error());
  stage_ = Stage::committed;
  return Status::success();
}

const std::string& GgufWriter::sha256_hex() const {
  static const std::string none;
  return file_.placed() && stage_ != Stage::failed ? sha256_hex_ : none;
}

}  // namespace quant
