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
#include "quant/sha256.h"

namespace quant {

static_assert(std::endian::native == std::endian::little, "GGUF is little-endian; big-endian hosts are not supported");

// The GGUF metadata value types, with their on-disk ids.
enum class ValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
  u64 = 10, i64 = 11, f64 = 12,
};
inline constexpr uint32_t kValueTypeCount = 13;

// "u32", "string", "array"... (the names gguf-py uses, lowercase).
std::string_view value_type_name(ValueType type);
// Bytes of one stored value of a fixed-size type; 0 for string and array.
size_t value_type_size(ValueType type);

// The ValueType a C++ scalar type maps to (bool -> boolean, float -> f32...). Used by the typed accessors.
template <typename T> struct ValueTypeOf;
template <> struct ValueTypeOf<uint8_t> { static constexpr ValueType value = ValueType::u8; };
template <> struct ValueTypeOf<int8_t> { static constexpr ValueType value = ValueType::i8; };
template <> struct ValueTypeOf<uint16_t> { static constexpr ValueType value = ValueType::u16; };
template <> struct ValueTypeOf<int16_t> { static constexpr ValueType value = ValueType::i16; };
template <> struct ValueTypeOf<uint32_t> { static constexpr ValueType value = ValueType::u32; };
template <> struct ValueTypeOf<int32_t> { static constexpr ValueType value = ValueType::i32; };
template <> struct ValueTypeOf<float> { static constexpr ValueType value = ValueType::f32; };
template <> struct ValueTypeOf<bool> { static constexpr ValueType value = ValueType::boolean; };
template <> struct ValueTypeOf<uint64_t> { static constexpr ValueType value = ValueType::u64; };
template <> struct ValueTypeOf<int64_t> { static constexpr ValueType value = ValueType::i64; };
template <> struct ValueTypeOf<double> { static constexpr ValueType value = ValueType::f64; };

// One metadata value: a scalar, a string or an array (of scalars, strings or arrays).
//
// Values read from a file are views into the file's header bytes (kept alive by a shared owner), so a 150k-entry
// vocabulary is one Value with one index, not 150k heap strings; copying a Value shares those bytes. Values
// built with the factories own their bytes the same way. Scalars are stored little-endian as in the file.
class Value {
 public:
  Value() = default;  // a u8 zero; only so containers can default-construct

  static Value u8(uint8_t v) { return scalar(ValueType::u8, v); }
  static Value i8(int8_t v) { return scalar(ValueType::i8, v); }
  static Value u16(uint16_t v) { return scalar(ValueType::u16, v); }
  static Value i16(int16_t v) { return scalar(ValueType::i16, v); }
  static Value u32(uint32_t v) { return scalar(ValueType::u32, v); }
  static Value i32(int32_t v) { return scalar(ValueType::i32, v); }
  static Value f32(float v) { return scalar(ValueType::f32, v); }
  static Value boolean(bool v) { return scalar(ValueType::boolean, uint8_t(v ? 1 : 0)); }
  static Value u64(uint64_t v) { return scalar(ValueType::u64, v); }
  static Value i64(int64_t v) { return scalar(ValueType::i64, v); }
  static Value f64(double v) { return scalar(ValueType::f64, v); }
  static Value string(std::string_view text);
  static Value array_of_strings(std::span<const std::string> items);
  static Value array_of_strings(std::span<const std::string_view> items);
  // An array of a scalar type: Value::array_of<float>(values), Value::array_of<int32_t>(ids).
  template <typename T>
  static Value array_of(std::span<const T> items) {
    return array_of_scalars(ValueTypeOf<T>::value, items.data(), items.size());
  }
  template <typename T>
  static Value array_of(const std::vector<T>& items) { return array_of<T>(std::span<const T>(items)); }
  // An array whose elements are themselves arrays (the spec allows it; ggml does not read it).
  static Value array_of_arrays(std::vector<Value> items);

  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::array; }

  // True when the stored scalar type is exactly T's (no conversions).
  template <typename T>
  bool holds() const { return type_ == ValueTypeOf<T>::value; }
  // The scalar as T; the caller checks holds<T>() first (a wrong T reads zero bytes as T: never UB).
  template <typename T>
  T as() const {
    static_assert(std::is_arithmetic_v<T>);
    if (!holds<T>()) return T{};
    if constexpr (std::is_same_v<T, bool>) {
      return scalar_[0] != 0;
    } else {
      T out;
      std::memcpy(&out, scalar_, sizeof(T));
      return out;
    }
  }
  // Any integer scalar (u8..i64, bool) widened to int64/uint64 when it fits; false for other types.
  bool to_int64(int64_t* out) const;
  bool to_uint64(uint64_t* out) const;
  // The string (empty view unless type() == string).
  std::string_view as_string() const;

  // Arrays: the element type, the number of elements, and element access (i < size()).
  ValueType element_type() const { return element_type_; }
  uint64_t size() const { return count_; }
  std::string_view string_at(uint64_t i) const;  // element_type() == string
  const Value& array_at(uint64_t i) const;       // element_type() == array
  template <typename T>
  T scalar_at(uint64_t i) const {                // element_type() == ValueTypeOf<T>
    T out{};
    if (element_type_ != ValueTypeOf<T>::value || i >= count_) return out;
    if constexpr (std::is_same_v<T, bool>) {
      return bytes_[i] != 0;
    } else {
      std::memcpy(&out, bytes_ + i * sizeof(T), sizeof(T));
      return out;
    }
  }
  // Element i of any array as a standalone Value (a scalar, string or array); allocation-free for scalars.
  Value element(uint64_t i) const;
  // The packed little-endian elements of a fixed-size array (size() * value_type_size(element_type()) bytes).
  std::span<const uint8_t> raw_elements() const;

  // Bytes this value takes when written as GGUF v3 (after the i32 type tag).
  uint64_t encoded_size_v3() const;
  // Appends the v3 encoding (after the type tag) to out.
  void encode_v3(std::vector<uint8_t>& out) const;
  // Same type, same elements, same bytes.
  bool operator==(const Value& other) const;

 private:
  friend class ValueBuilder;  // src/gguf: builds views into parsed header bytes
  template <typename T>
  static Value scalar(ValueType type, T v) {
    Value out;
    out.type_ = type;
    std::memcpy(out.scalar_, &v, sizeof(T));
    return out;
  }
  static Value array_of_scalars(ValueType element_type, const void* data, size_t count);

  ValueType type_ = ValueType::u8;
  ValueType element_type_ = ValueType::u8;  // arrays only
  uint8_t string_length_bytes_ = 8;         // width of each string's length prefix in bytes_ (4 in v1 files)
  uint8_t scalar_[8] = {};                  // scalars, little-endian
  uint64_t count_ = 0;                      // arrays: elements
  const uint8_t* bytes_ = nullptr;          // string: its bytes; arrays of scalars: packed elements;
  uint64_t byte_count_ = 0;                 //   arrays of strings: the length-prefixed strings, back to back
  std::shared_ptr<const void> owner_;       // keeps bytes_ alive
  std::shared_ptr<const std::vector<uint64_t>> string_offsets_;  // arrays of strings: start of element i
  std::shared_ptr<const std::vector<Value>> arrays_;             // arrays of arrays
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  TypeId type = TypeId::f32;
  std::vector<int64_t> shape;  // ne0 (the row length, contiguous) first; 1 to 4 dimensions
  uint64_t offset = 0;         // relative to the data section
  uint64_t size_bytes = 0;     // unpadded

  int64_t element_count() const;
  int64_t row_length() const { return shape.empty() ? 1 : shape[0]; }
  int64_t rows() const;  // product of ne1..ne3
};

// Caps for hostile-but-valid files, so a small file cannot make us allocate gigabytes. Counts and lengths
// are also always checked against the bytes left in the file.
struct GgufLimits {
  uint64_t max_header_bytes = uint64_t(256) << 20;  // metadata + tensor infos, held in memory
  uint64_t max_kv_count = uint64_t(1) << 20;
  uint64_t max_tensor_count = uint64_t(1) << 20;
  uint64_t max_nested_values = uint64_t(1) << 20;   // Values created for arrays of arrays, in total
  uint32_t max_array_depth = 16;                    // arrays of arrays of ...
};

class GgufFile {
 public:
  // Opens `path` read-only and parses and validates its header; tensor data is read on demand.
  static Result<GgufFile> open(const std::string& path, const GgufLimits& limits = {});

  GgufFile(GgufFile&& other) noexcept;
  GgufFile& operator=(GgufFile&& other) noexcept;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  ~GgufFile();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }  // 1, 2 or 3 as stored
  bool byte_swapped_magic() const { return byte_swapped_magic_; }  // the 2023 "FUGG" files
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return file_size_; }  // when opened
  uint64_t data_offset() const { return data_offset_; }  // absolute start of the data section
  uint64_t header_size() const { return header_size_; }  // end of the tensor infos (before padding)

  const std::vector<KeyValue>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;
  // The scalar (or std::string / std::string_view) stored under key; an error naming the file and key if it
  // is missing or holds another type. A string_view points into this file's header bytes.
  template <typename T>
  Result<T> get(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  // Total of every tensor's data (unpadded) and parameters.
  uint64_t total_tensor_bytes() const;
  uint64_t total_elements() const;

  // Reads out.size() bytes of `tensor` from offset_in_tensor with positioned reads (no mmap, so a file
  // truncated underneath gives an error, never SIGBUS).
  Status read_tensor(const TensorInfo& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const;
  // The whole tensor's bytes.
  Result<std::vector<uint8_t>> read_tensor_data(const TensorInfo& tensor) const;

 private:
  GgufFile() = default;
  friend class GgufParser;
  Error key_error(std::string_view key, std::string reason) const;

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

template <typename T>
Result<T> GgufFile::get(std::string_view key) const {
  const Value* value = find(key);
  if (value == nullptr) return key_error(key, "missing");
  if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>) {
    if (value->type() != ValueType::string) {
      return key_error(key, std::string("is ") + std::string(value_type_name(value->type())) + ", expected string");
    }
    return T(value->as_string());
  } else {
    if (!value->holds<T>()) {
      return key_error(key, std::string("is ") + std::string(value_type_name(value->type())) + ", expected " +
                                std::string(value_type_name(ValueTypeOf<T>::value)));
    }
    return value->as<T>();
  }
}

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

// The temporary-file name GgufWriter uses for final_path and a process id: "<dir>/.<name>.tmp-<pid>".
std::string writer_temp_path(const std::string& final_path, long pid);
// Removes temporary files left for final_path by writers whose process no longer exists (killed, crashed);
// returns how many were removed. Files of live processes are left alone. A replaced output such a process kept
// aside (".<name>.old-<pid>", quant/atomic_file.h) is put back when the final path is free, removed otherwise.
Result<int> remove_stale_temp_files(const std::string& final_path);

}  // namespace quant
