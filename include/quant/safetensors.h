// safetensors: the one parser of the format for the whole project (dataset files, Hugging Face checkpoints).
//
// A file is: u64 little-endian N | N bytes of UTF-8 JSON (often padded with trailing spaces) | the data section.
// The JSON object maps each tensor name to {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
// (offsets relative to the data section, shape outermost dimension first, row-major) and may hold one
// "__metadata__" object of string values. As the format requires (and the safetensors library checks), the
// tensors' byte ranges tile the data section exactly: no overlaps, no gaps, nothing after the last one, and each
// range holds exactly shape x dtype bytes. Every count is checked before it is used, so a hostile header fails
// with an error naming the file, tensor and offset before anything is allocated for it.
//
// A checkpoint split into shards has `model.safetensors.index.json`: {"metadata": {...}, "weight_map":
// {"tensor": "model-00001-of-00002.safetensors", ...}}. parse_safetensors_index reads it; check_shards then
// checks the shards' headers against it (every listed shard present, every tensor in the shard the index
// names and in no other).
//
// No I/O happens here: callers read the header bytes (read_safetensors_header takes a positioned-read function)
// and the tensor bytes themselves, so the dataset reader and the checkpoint reader keep their own files.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quant/error.h"

namespace quant {

// Every dtype of the safetensors specification.
enum class SafetensorsDtype : uint8_t {
  boolean, u8, i8, i16, u16, i32, u32, i64, u64,
  f16, bf16, f32, f64, c64,
  f8_e5m2, f8_e4m3, f8_e8m0, f6_e2m3, f6_e3m2, f4,
};

struct SafetensorsDtypeInfo {
  SafetensorsDtype dtype;
  std::string_view name;  // as the header spells it: "BOOL", "F32", "F8_E4M3"...
  uint32_t bits;          // per element; sub-byte dtypes (F4, F6_*) pack elements, so a tensor's bits must fill bytes
};

std::span<const SafetensorsDtypeInfo> all_safetensors_dtypes();
const SafetensorsDtypeInfo& dtype_info(SafetensorsDtype dtype);
// The dtype a header names (exact, case-sensitive), or nullopt.
std::optional<SafetensorsDtype> parse_safetensors_dtype(std::string_view name);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::f32;
  std::vector<uint64_t> shape;  // outermost first; empty for a scalar
  uint64_t element_count = 1;
  uint64_t begin = 0;           // data_offsets, relative to the data section
  uint64_t end = 0;
  uint64_t file_offset = 0;     // where the first byte lies in the file (data section start + begin)

  uint64_t byte_size() const { return end - begin; }
  // "[2, 3]"
  std::string shape_string() const;
};

struct SafetensorsLimits {
  uint64_t max_header_bytes = uint64_t(100) << 20;  // the JSON header (the safetensors library refuses above 100 MB)
  uint64_t max_tensors = uint64_t(1) << 20;         // entries in one header
  uint64_t max_name_bytes = 4096;                   // one tensor name
  uint64_t max_rank = 64;                           // dimensions of one tensor
};

struct SafetensorsHeader {
  std::vector<SafetensorsTensor> tensors;                     // in the order of their bytes in the data section
  std::vector<std::pair<std::string, std::string>> metadata;  // "__metadata__", in header order
  uint64_t header_bytes = 0;                                  // N
  uint64_t data_start = 0;                                    // 8 + N
  uint64_t data_bytes = 0;                                    // file size - data_start

  const SafetensorsTensor* find(std::string_view name) const;
  // The tensors sorted by name (byte order), as the safetensors library and llama.cpp's converter list them.
  std::vector<const SafetensorsTensor*> by_name() const;
};

// Bytes before the JSON: the u64 header length.
inline constexpr uint64_t kSafetensorsLengthBytes = 8;

// Parses the JSON header `json` (the N bytes after the length) of a file of `file_size` bytes. Errors are
// invalid_input naming `path`, the tensor and the file offset where known.
Result<SafetensorsHeader> parse_safetensors_header(std::span<const uint8_t> json, uint64_t file_size,
                                                   const std::string& path, const SafetensorsLimits& limits = {});

// Fills `out` with the file's bytes at `offset` (the caller's file; errors name it).
using ReadAtFunction = std::function<Status(uint64_t offset, std::span<uint8_t> out)>;
// Reads the length and the header of a file of `file_size` bytes through `read_at` (checking the length against
// the limit and the file before allocating) and parses it.
Result<SafetensorsHeader> read_safetensors_header(const ReadAtFunction& read_at, uint64_t file_size,
                                                  const std::string& path, const SafetensorsLimits& limits = {});

// model.safetensors.index.json.
struct SafetensorsIndex {
  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor -> shard file name, in index order
  std::vector<std::string> shards;                              // the distinct shard names, sorted
  std::optional<uint64_t> total_size;                           // metadata.total_size when given
};

// Parses an index file's text. Shard names must be plain file names (no directories, not "." or "..").
Result<SafetensorsIndex> parse_safetensors_index(std::string_view json, const std::string& path,
                                                 const SafetensorsLimits& limits = {});

// Checks the shards' headers (shard_headers[i] belongs to index.shards[i]) against the index: every tensor of a
// shard is listed for that shard, every listed tensor is in its shard, no tensor is in two shards. Errors name
// the index or shard file (paths from shard_paths) and the tensor.
Status check_shards(const SafetensorsIndex& index, const std::string& index_path,
                    std::span<const std::string> shard_paths, std::span<const SafetensorsHeader* const> shard_headers);

}  // namespace quant
