// GGUF: ggml's single-file model format. Reading (GgufFile) and streaming, atomic writing (GgufWriter).
//
// Layout (v3, all little-endian):
//   "GGUF" | u32 version | i64 n_tensors | i64 n_kv
//   n_kv x      { key: u64 length + bytes | i32 value type | value }
//   n_tensors x { name: u64 length + bytes | u32 n_dims | i64 ne[n_dims] | i32 ggml type | u64 offset }
//   zero padding to `alignment` (general.alignment, u32, default 32), then the data section: each tensor at its
//   offset (relative to the data section), tensors contiguous and in order, each padded with zeros to `alignment`.
// v1 (2023) has the same structure with 32-bit counts, string lengths, array counts and dimensions; one early
// writer stored the magic byte-swapped ("FUGG"). Both are read; the writer always writes v3.
// The reader is hardened against hostile files (see docs/gguf.md for every check and the resource caps).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "quant/atomic_file.h"
#include "quant/error.h"
#include "quant/formats.h"
#include "quant/gguf_values.h"
#include "quant/model_source.h"
#include "quant/sha256.h"

namespace quant {

// Caps for hostile-but-valid files, so a small file cannot make us allocate gigabytes. Counts and lengths
// are also always checked against the bytes left in the file.
struct GgufLimits {
  uint64_t max_header_bytes = uint64_t(256) << 20;  // metadata + tensor infos, held in memory
  uint64_t max_kv_count = uint64_t(1) << 20;
  uint64_t max_tensor_count = uint64_t(1) << 20;
  uint64_t max_nested_values = uint64_t(1) << 20;   // Values created for arrays of arrays, in total
  uint32_t max_array_depth = 16;                    // arrays of arrays of ...
};

class GgufFile : public ModelSource {
 public:
  // Opens `path` read-only and parses and validates its header; tensor data is read on demand.
  static Result<GgufFile> open(const std::string& path, const GgufLimits& limits = {});

  GgufFile(GgufFile&& other) noexcept;
  GgufFile& operator=(GgufFile&& other) noexcept;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  ~GgufFile() override;

  const std::string& path() const override { return path_; }
  uint32_t version() const { return version_; }  // 1, 2 or 3 as stored
  bool byte_swapped_magic() const { return byte_swapped_magic_; }  // the 2023 "FUGG" files
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return file_size_; }  // when opened
  uint64_t input_bytes() const override { return file_size_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute start of the data section
  uint64_t header_size() const { return header_size_; }  // end of the tensor infos (before padding)

  const std::vector<KeyValue>& metadata() const override { return metadata_; }
  const Value* find(std::string_view key) const override;

  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const override;

  // Positioned reads (no mmap, so a file truncated underneath gives an error, never SIGBUS).
  Status read_tensor(const TensorInfo& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const override;

 private:
  GgufFile() = default;
  friend class GgufParser;

  std::string path_;
  int fd_ = -1;
  uint32_t version_ = 0;
  bool byte_swapped_magic_ = false;
  uint64_t alignment_ = 32;
  uint64_t file_size_ = 0;
  uint64_t header_size_ = 0;
  uint64_t data_offset_ = 0;
  std::shared_ptr<const std::vector<uint8_t>> header_bytes_;
  std::vector<KeyValue> metadata_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> key_index_;     // views into metadata_[i].key
  std::unordered_map<std::string_view, size_t> tensor_index_;  // views into tensors_[i].name
};

struct WriterOptions {
  uint64_t alignment = 32;  // used when no general.alignment key is added (then one is added if not 32)
  // fsync the file when it is finished (and, in commit(), its directory after the rename): survives power loss,
  // costs a disk flush.
  bool fsync = false;
  // Hash every byte as it is written, so sha256_hex() gives the file's digest after commit without reading the
  // file again. On by default (a report pins its output by this digest); with SHA-NI it costs about 0.6 ms of
  // CPU per MB, worth saving only for large throwaway files.
  bool sha256 = true;
};

// Writes a GGUF v3 file in one pass without holding tensor data: declare metadata and tensors, begin() writes
// the header, then the tensors' bytes are streamed in declared order, then commit() places the temporary file
// `.<name>.tmp-<pid>` (an AtomicFile, quant/atomic_file.h) at its final path. Until commit succeeds no output
// exists; destroying an uncommitted writer (or any error) removes the temporary file. Several writers (the
// outputs of one conversion, the shards of a split model) are committed together, all or nothing: finish()
// each, then commit_files() on their file()s.
class GgufWriter {
  enum class Stage { declaring, writing, finished, committed, failed };

 public:
  static Result<GgufWriter> create(const std::string& final_path, const WriterOptions& options = {});

  GgufWriter(GgufWriter&& other) noexcept;
  GgufWriter& operator=(GgufWriter&& other) noexcept;
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;
  ~GgufWriter();

  // Before begin(): metadata in the order added (an empty or duplicate key, or a general.alignment that is not
  // a u32 power of two, is an error), then tensors in the order their data will come (a bad name, shape or
  // type is an error).
  Status add_metadata(std::string key, Value value);
  Status add_tensor(std::string name, TypeId type, std::vector<int64_t> shape);
  // Writes header, metadata, tensor infos and padding; tensors() then holds the final offsets.
  Status begin();
  // Starts the next tensor's data: `name` must be the next declared tensor and the previous one complete.
  Status begin_tensor(std::string_view name);
  // Appends bytes of the current tensor, in chunks of any size; more bytes than it holds is an error. Zero
  // padding is written when the tensor completes.
  Status write_tensor_data(std::span<const uint8_t> bytes);
  // begin_tensor(name) then write_tensor_data(bytes), which must be the whole tensor.
  Status write_tensor(std::string_view name, std::span<const uint8_t> bytes);
  // Checks every tensor got exactly its bytes and closes the file (fsync if asked): it is complete, not placed.
  Status finish();
  // finish(), then places the file under `policy` (commit_files; WriterOptions::fsync also syncs).
  Status commit(const OutputPolicy& policy = {});
  // The temporary file, for commit_files() after finish().
  AtomicFile& file() { return file_; }

  const std::string& final_path() const { return final_path_; }
  const std::string& temp_path() const { return temp_path_; }  // still the name after commit or failure
  uint64_t alignment() const { return alignment_; }
  const std::vector<KeyValue>& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // offsets as they will be written
  // Bytes written to the file so far; after commit, the file's size.
  uint64_t bytes_written() const { return bytes_written_; }
  // Once the file is placed (by commit() or commit_files()) with WriterOptions::sha256, the lower-case hex
  // SHA-256 of exactly the file's bytes (header, data, padding); empty before, after any failure, or when
  // hashing was off.
  const std::string& sha256_hex() const;

 private:
  GgufWriter() = default;
  Status fail(Error error);  // removes the temp file, remembers the failure
  Status write_bytes(const uint8_t* data, size_t size);
  Status finish_current_tensor();  // checks its size, writes its padding
  Status check_stage(Stage expected, std::string_view operation);
  void discard();

  std::string final_path_;
  std::string temp_path_;
  AtomicFile file_;
  WriterOptions options_;
  Stage stage_ = Stage::declaring;
  uint64_t alignment_ = 32;
  bool alignment_from_metadata_ = false;
  std::vector<KeyValue> metadata_;
  std::vector<TensorInfo> tensors_;
  size_t next_tensor_ = 0;       // index of the next tensor begin_tensor() expects
  bool in_tensor_ = false;       // tensors_[next_tensor_ - 1] is being written
  uint64_t written_in_tensor_ = 0;
  uint64_t bytes_written_ = 0;
  Sha256 hasher_;            // fed every byte written when options_.sha256
  std::string sha256_hex_;   // set by finish(), offered once the file is placed
};

// The exact size of the file a GgufWriter writes for this metadata (in order), these tensors (name, type and shape;
// offset and size_bytes are ignored) and WriterOptions::alignment: header, padding and tensor data. For a dry run
// that predicts an output without writing it. A usage error for what the writer would refuse (a general.alignment
// that is not a u32 power of two, a shape a type's blocks do not fit, sizes that overflow).
Result<uint64_t> gguf_file_size(std::span<const KeyValue> metadata, std::span<const TensorInfo> tensors,
                                uint64_t alignment = 32);

// The temporary-file name GgufWriter uses for final_path and a process id: "<dir>/.<name>.tmp-<pid>".
std::string writer_temp_path(const std::string& final_path, long pid);
// Removes temporary files left for final_path by writers whose process no longer exists (killed, crashed);
// returns how many were removed. Files of live processes are left alone. A replaced output such a process kept
// aside (".<name>.old-<pid>", quant/atomic_file.h) is put back when the final path is free, removed otherwise.
Result<int> remove_stale_temp_files(const std::string& final_path);

}  // namespace quant
