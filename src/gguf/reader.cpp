// The GGUF reader: parses and validates the header (metadata and tensor infos) of a file opened read-only,
// then serves tensor bytes with positioned reads.
//
// The header is read into one buffer that the parsed Values view. We do not know its size before parsing, so
// we read a prefix of the file, parse, and if the parser runs past the prefix we read more (up to
// GgufLimits::max_header_bytes) and parse again from the start. Every count and length is checked against the
// bytes left in the *file* before anything is allocated, so a hostile count fails before it costs memory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include <fmt/format.h>

#include "core/checked_math.h"
#include "gguf/file_io.h"
#include "gguf/value_builder.h"
#include "quant/gguf.h"

namespace quant {

namespace {

constexpr uint64_t kMaxTensorDims = 4;
constexpr uint64_t kMaxTensorNameBytes = 63;  // ggml's GGML_MAX_NAME is 64 including the terminating NUL
constexpr uint64_t kInitialHeaderRead = uint64_t(1) << 20;
constexpr uint64_t kHeaderSlack = uint64_t(64) << 10;  // a read prefix this much larger than the header is trimmed

// "GGUF" read as a little-endian u32, and the same bytes reversed as one 2023 writer stored them.
constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr char kSwappedMagic[4] = {'F', 'U', 'G', 'G'};

// Printable form of the 4 magic bytes for an error message.
std::string describe_magic(const uint8_t* bytes) {
  std::string out;
  for (int i = 0; i < 4; ++i) {
    const uint8_t c = bytes[i];
    out += (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') ? std::string(1, char(c)) : fmt::format("\\x{:02x}", c);
  }
  return out;
}

}  // namespace

// Parses a GGUF header from `bytes`, a prefix of the file (or all of it). Sets needs_more when it ran past the
// prefix while the file has more; the caller then reads more and parses again.
class GgufParser {
 public:
  GgufParser(GgufFile& file, std::shared_ptr<const std::vector<uint8_t>> bytes, const GgufLimits& limits)
      : file_(file), owner_(bytes), bytes_(*bytes), limits_(limits) {}

  bool needs_more() const { return needs_more_; }

  Status parse() {
    QUANT_TRY(parse_preamble());
    QUANT_TRY(parse_metadata());
    QUANT_TRY(parse_tensor_infos());
    return check_data_section();
  }

 private:
  uint64_t file_size() const { return file_.file_size_; }
  uint64_t bytes_left() const { return file_size() - pos_; }  // pos_ <= file_size() always holds
  bool v1() const { return file_.version_ == 1; }

  Error error_at(uint64_t offset, std::string reason) const {
    return invalid_input(std::move(reason)).in_file(file_.path_).at_offset(offset);
  }

  // Makes n bytes at pos_ available in the buffer, or fails: truncated file, or (needs_more_) a longer prefix.
  Status need(uint64_t n) {
    if (n > bytes_left()) {
      return error_at(pos_, fmt::format("file truncated: needs {} bytes here but only {} are left (file is {} bytes)",
                                        n, bytes_left(), file_size()));
    }
    if (pos_ + n > bytes_.size()) {
      needs_more_ = true;
      return error_at(pos_, fmt::format("metadata and tensor infos exceed the {} MiB limit for headers",
                                        limits_.max_header_bytes >> 20));
    }
    return {};
  }

  template <typename T>
  Result<T> take() {
    QUANT_TRY(need(sizeof(T)));
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // A count or length: u32 in v1, u64 from v2.
  Result<uint64_t> take_count() {
    if (v1()) {
      QUANT_ASSIGN_OR_RETURN(uint32_t n, take<uint32_t>());
      return uint64_t(n);
    }
    return take<uint64_t>();
  }
  uint64_t count_bytes() const { return v1() ? 4 : 8; }

  // A length-prefixed string: its bytes stay in the buffer. `what` names it in errors ("key", "tensor name").
  // `describe` names the string in an error; it is only called on failure (a vocabulary has 100k+ strings).
  template <typename Describe>
  Result<std::string_view> take_string(const Describe& describe) {
    const uint64_t at = pos_;
    QUANT_ASSIGN_OR_RETURN(uint64_t length, take_count());
    if (length > bytes_left()) {
      return error_at(at, fmt::format("{} length {} runs past the end of the file ({} bytes left)", describe(), length,
                                      bytes_left()));
    }
    QUANT_TRY(need(length));
    std::string_view text(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return text;
  }

  Status parse_preamble() {
    QUANT_TRY(need(4));
    const uint8_t* magic = bytes_.data();
    if (std::memcmp(magic, kSwappedMagic, 4) == 0) {
      file_.byte_swapped_magic_ = true;
    } else if (std::memcmp(magic, kMagic, 4) != 0) {
      return error_at(0, fmt::format("bad magic '{}' (not a GGUF file; expected 'GGUF')", describe_magic(magic)));
    }
    pos_ = 4;
    QUANT_ASSIGN_OR_RETURN(file_.version_, take<uint32_t>());
    const uint32_t version = file_.version_;
    if (version != 0 && (version & 0xffffu) == 0) {
      return error_at(4, fmt::format("version field {:#010x} is a byte-swapped small number: this is a big-endian "
                                     "GGUF file, and only little-endian files are supported", version));
    }
    if (version < 1 || version > 3) {
      return error_at(4, fmt::format("unsupported GGUF version {} (supported: 1, 2, 3)", version));
    }
    if (file_.byte_swapped_magic_ && version != 1) {
      return error_at(0, "bad magic 'FUGG': the byte-swapped magic is only known from GGUF v1 files");
    }
    const uint64_t counts_at = pos_;
    uint64_t n_tensors, n_kv;
    if (v1()) {
      QUANT_ASSIGN_OR_RETURN(uint32_t t, take<uint32_t>());
      QUANT_ASSIGN_OR_RETURN(uint32_t k, take<uint32_t>());
      n_tensors = t;
      n_kv = k;
    } else {
      QUANT_ASSIGN_OR_RETURN(int64_t t, take<int64_t>());
      QUANT_ASSIGN_OR_RETURN(int64_t k, take<int64_t>());
      if (t < 0) return error_at(counts_at, fmt::format("tensor count {} is negative", t));
      if (k < 0) return error_at(counts_at + 8, fmt::format("key-value count {} is negative", k));
      n_tensors = uint64_t(t);
      n_kv = uint64_t(k);
    }
    // Smallest possible entries: a KV with a 1-byte key and a 1-byte value; a tensor info with an empty name,
    // no dimensions, a type and an offset.
    const uint64_t min_kv = count_bytes() + 1 + 4 + 1;
    const uint64_t min_tensor = count_bytes() + 4 + 4 + 8;
    const auto needed = checked_add(checked_mul(n_kv, min_kv).value_or(UINT64_MAX),
                                    checked_mul(n_tensors, min_tensor).value_or(UINT64_MAX));
    if (!needed || *needed > bytes_left()) {
      return error_at(counts_at, fmt::format("{} tensors and {} key-value pairs cannot fit in the {} bytes left in "
                                             "the file", n_tensors, n_kv, bytes_left()));
    }
    if (n_kv > limits_.max_kv_count) {
      return error_at(counts_at, fmt::format("{} key-value pairs exceed the limit of {}", n_kv, limits_.max_kv_count));
    }
    if (n_tensors > limits_.max_tensor_count) {
      return error_at(counts_at, fmt::format("{} tensors exceed the limit of {}", n_tensors, limits_.max_tensor_count));
    }
    n_tensors_ = n_tensors;
    n_kv_ = n_kv;
    return {};
  }

  Status parse_metadata() {
    std::unordered_set<std::string_view> seen;
    file_.metadata_.reserve(n_kv_);
    for (uint64_t i = 0; i < n_kv_; ++i) {
      const uint64_t key_at = pos_;
      QUANT_ASSIGN_OR_RETURN(std::string_view key, take_string([] { return "key"; }));
      if (key.empty()) return error_at(key_at, fmt::format("key-value pair {} has an empty key", i));
      if (!seen.insert(key).second) return error_at(key_at, fmt::format("duplicate key '{}'", key));
      const uint64_t type_at = pos_;
      QUANT_ASSIGN_OR_RETURN(uint32_t type, take<uint32_t>());
      if (type >= kValueTypeCount) {
        return error_at(type_at, fmt::format("key '{}': unknown value type {}", key, type));
      }
      QUANT_ASSIGN_OR_RETURN(Value value, parse_value(key, ValueType(type), 0));
      if (key == "general.alignment") QUANT_TRY(set_alignment(key_at, value));
      file_.metadata_.push_back(KeyValue{std::string(key), std::move(value)});
    }
    return {};
  }

  Status set_alignment(uint64_t key_at, const Value& value) {
    if (value.type() != ValueType::u32) {
      return error_at(key_at, fmt::format("general.alignment is {}, expected u32", value_type_name(value.type())));
    }
    const uint32_t alignment = value.as<uint32_t>();
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      return error_at(key_at, fmt::format("general.alignment {} is not a power of two", alignment));
    }
    file_.alignment_ = alignment;
    return {};
  }

  Result<Value> parse_value(std::string_view key, ValueType type, uint32_t depth) {
    if (type == ValueType::string) {
      QUANT_ASSIGN_OR_RETURN(std::string_view text, take_string([&] { return fmt::format("key '{}': string", key); }));
      return ValueBuilder::string_view(owner_, reinterpret_cast<const uint8_t*>(text.data()), text.size());
    }
    if (type != ValueType::array) {
      QUANT_TRY(need(value_type_size(type)));
      Value v = ValueBuilder::scalar(type, bytes_.data() + pos_);
      pos_ += value_type_size(type);
      return v;
    }
    return parse_array(key, depth);
  }

  Result<Value> parse_array(std::string_view key, uint32_t depth) {
    const uint64_t array_at = pos_;
    if (depth >= limits_.max_array_depth) {
      return error_at(array_at, fmt::format("key '{}': arrays nested deeper than {} levels", key,
                                            limits_.max_array_depth));
    }
    QUANT_ASSIGN_OR_RETURN(uint32_t element_type, take<uint32_t>());
    if (element_type >= kValueTypeCount) {
      return error_at(array_at, fmt::format("key '{}': array of unknown value type {}", key, element_type));
    }
    const ValueType type = ValueType(element_type);
    const uint64_t count_at = pos_;
    QUANT_ASSIGN_OR_RETURN(uint64_t count, take_count());
    const uint64_t element_size = value_type_size(type);
    if (element_size != 0) {
      const auto bytes = checked_mul(count, element_size);
      if (!bytes) {
        return error_at(count_at, fmt::format("key '{}': array count {} times element size {} overflows", key,
                                              count, element_size));
      }
      if (*bytes > bytes_left()) {
        return error_at(count_at, fmt::format("key '{}': array of {} {} ({} bytes) runs past the end of the file "
                                              "({} bytes left)", key, count, value_type_name(type), *bytes,
                                              bytes_left()));
      }
      QUANT_TRY(need(*bytes));
      Value v = ValueBuilder::scalar_array_view(owner_, type, bytes_.data() + pos_, count);
      pos_ += *bytes;
      return v;
    }
    // Strings take at least their length prefix, nested arrays their type and count: bound count by that
    // before reserving anything.
    const uint64_t min_element = type == ValueType::string ? count_bytes() : 4 + count_bytes();
    if (count > bytes_left() / min_element) {
      return error_at(count_at, fmt::format("key '{}': array of {} {}s cannot fit in the {} bytes left", key, count,
                                            value_type_name(type), bytes_left()));
    }
    if (type == ValueType::string) {
      const uint64_t start = pos_;
      std::vector<uint64_t> offsets;
      offsets.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        offsets.push_back(pos_ - start);
        QUANT_TRY(take_string([&] { return fmt::format("key '{}': element {}: string", key, i); }));
      }
      return ValueBuilder::string_array_view(owner_, bytes_.data() + start, pos_ - start, uint8_t(count_bytes()),
                                             std::move(offsets));
    }
    if (count > limits_.max_nested_values - nested_values_) {
      return error_at(count_at, fmt::format("key '{}': arrays of arrays hold more than {} arrays in all", key,
                                            limits_.max_nested_values));
    }
    nested_values_ += count;
    std::vector<Value> items;
    items.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      QUANT_ASSIGN_OR_RETURN(Value item, parse_array(key, depth + 1));
      items.push_back(std::move(item));
    }
    return ValueBuilder::nested_array(std::move(items));
  }

  Status parse_tensor_infos() {
    std::unordered_set<std::string_view> seen;
    file_.tensors_.reserve(n_tensors_);
    uint64_t expected_offset = 0;  // running total of padded sizes
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      const uint64_t name_at = pos_;
      QUANT_ASSIGN_OR_RETURN(std::string_view name, take_string([] { return "tensor name"; }));
      if (name.size() > kMaxTensorNameBytes) {
        return error_at(name_at, fmt::format("tensor name of {} bytes is too long (at most {})", name.size(),
                                             kMaxTensorNameBytes));
      }
      if (!seen.insert(name).second) return error_at(name_at, fmt::format("duplicate tensor name '{}'", name));
      TensorInfo info;
      info.name = std::string(name);
      auto tensor_error = [&](uint64_t at, std::string reason) { return error_at(at, reason).in_tensor(info.name); };

      const uint64_t dims_at = pos_;
      QUANT_ASSIGN_OR_RETURN(uint32_t n_dims, take<uint32_t>());
      if (n_dims > kMaxTensorDims) {
        return tensor_error(dims_at, fmt::format("{} dimensions (at most {})", n_dims, kMaxTensorDims));
      }
      int64_t elements = 1;
      // The product with zero-sized dimensions counted as 1 bounds every partial product (rows() multiplies
      // ne1..ne3): a zero ne0 must not hide overflowing other dimensions (found by fuzz/gguf_fuzzer).
      int64_t extent = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t dim_at = pos_;
        int64_t ne;
        if (v1()) {
          QUANT_ASSIGN_OR_RETURN(uint32_t n, take<uint32_t>());
          ne = n;
        } else {
          QUANT_ASSIGN_OR_RETURN(ne, take<int64_t>());
        }
        if (ne < 0) return tensor_error(dim_at, fmt::format("dimension {} is negative ({})", d, ne));
        const auto product = checked_mul_signed(elements, ne);
        if (!product) return tensor_error(dim_at, "element count overflows 64 bits");
        const auto bound = checked_mul_signed(extent, std::max<int64_t>(ne, 1));
        if (!bound) return tensor_error(dim_at, "product of the non-zero dimensions overflows 64 bits");
        elements = *product;
        extent = *bound;
        info.shape.push_back(ne);
      }
      const uint64_t type_at = pos_;
      QUANT_ASSIGN_OR_RETURN(uint32_t type_id, take<uint32_t>());
      const FormatInfo* format = find_format_by_id(type_id);
      if (format == nullptr) {
        return tensor_error(type_at, type_id < kTypeIdCount
                                         ? fmt::format("tensor type {} was removed from ggml", type_id)
                                         : fmt::format("unknown tensor type {}", type_id));
      }
      info.type = format->id;
      const int64_t row_length = info.shape.empty() ? 1 : info.shape[0];
      if (row_length % format->block_size != 0) {
        return tensor_error(dims_at, fmt::format("row length {} is not a multiple of {}'s block size {}", row_length,
                                                 format->name, format->block_size));
      }
      // Bytes = elements / block_size * block_bytes; ggml computes the row size first, so check each step.
      const auto size = checked_mul(uint64_t(elements) / uint64_t(format->block_size), format->block_bytes);
      if (!size) return tensor_error(dims_at, "byte size overflows 64 bits");
      info.size_bytes = *size;
      // A zero dimension empties the tensor, but row and stride sizes are still computed from the others (a
      // writer's row size, ggml's nb[]): their bytes must fit too.
      const uint64_t extent_blocks = (uint64_t(extent) + format->block_size - 1) / format->block_size;
      if (!checked_mul(extent_blocks, format->block_bytes)) {
        return tensor_error(dims_at, "byte size of the non-zero dimensions overflows 64 bits");
      }

      const uint64_t offset_at = pos_;
      QUANT_ASSIGN_OR_RETURN(info.offset, take<uint64_t>());
      if (info.offset != expected_offset) {
        return tensor_error(offset_at, fmt::format("data offset {:#x} is not where the previous tensors end ({:#x}): "
                                                   "tensors must be contiguous and in order", info.offset,
                                                   expected_offset));
      }
      tensors_end_ = checked_add(info.offset, info.size_bytes).value_or(UINT64_MAX);
      const auto next = checked_align_up(tensors_end_, file_.alignment_);
      if (tensors_end_ == UINT64_MAX || !next) return tensor_error(dims_at, "data offsets overflow 64 bits");
      expected_offset = *next;
      file_.tensors_.push_back(std::move(info));
    }
    file_.header_size_ = pos_;
    return {};
  }

  // With tensors, the data section (padded start) and every tensor's bytes must lie inside the file. A file
  // without tensors may end right after its header (gguf-py writes vocabulary files that way).
  Status check_data_section() {
    const auto data_offset = checked_align_up(pos_, file_.alignment_);
    if (!data_offset) return error_at(pos_, "data section offset overflows 64 bits");
    file_.data_offset_ = *data_offset;
    if (n_tensors_ == 0) return {};
    if (*data_offset > file_size()) {
      return error_at(pos_, fmt::format("data section starts at {:#x}, past the end of the file ({} bytes)",
                                        *data_offset, file_size()));
    }
    const uint64_t data_bytes = file_size() - *data_offset;
    for (const TensorInfo& tensor : file_.tensors_) {
      if (tensor.offset > data_bytes || tensor.size_bytes > data_bytes - tensor.offset) {
        const uint64_t at = *data_offset + tensor.offset;
        return invalid_input(fmt::format("data runs past end of file (needs {} bytes, {} left)", tensor.size_bytes,
                                         at > file_size() ? 0 : file_size() - at))
            .in_file(file_.path_)
            .in_tensor(tensor.name)
            .at_offset(at);
      }
    }
    return {};
  }

  GgufFile& file_;
  std::shared_ptr<const void> owner_;
  const std::vector<uint8_t>& bytes_;
  const GgufLimits& limits_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t nested_values_ = 0;
  uint64_t tensors_end_ = 0;
  bool needs_more_ = false;
};

Result<GgufFile> GgufFile::open(const std::string& path, const GgufLimits& limits) {
  GgufFile file;
  file.path_ = path;
  QUANT_ASSIGN_OR_RETURN(file.fd_, open_read_only(path));
  QUANT_ASSIGN_OR_RETURN(file.file_size_, file_size_of(file.fd_, path));

  uint64_t prefix = std::min({file.file_size_, kInitialHeaderRead, limits.max_header_bytes});
  auto buffer = std::make_shared<std::vector<uint8_t>>();
  for (;;) {
    const uint64_t have = buffer->size();
    buffer->resize(prefix);
    QUANT_TRY(read_exact_at(file.fd_, path, have, std::span<uint8_t>(buffer->data() + have, prefix - have)));
    // Start every attempt from a clean slate: the previous one may have filled some fields.
    file.metadata_.clear();
    file.tensors_.clear();
    file.alignment_ = 32;
    file.byte_swapped_magic_ = false;
    GgufParser parser(file, buffer, limits);
    Status status = parser.parse();
    if (status) break;
    const uint64_t limit = std::min(file.file_size_, limits.max_header_bytes);
    if (!parser.needs_more() || prefix >= limit) return std::move(status).error();
    prefix = std::min(limit, prefix > limit / 4 ? limit : prefix * 4);
  }
  // The first read takes up to 1 MiB, most of it tensor data when the header is small. A split model holds one
  // GgufFile per shard, and most shards' headers are a few hundred bytes: keep only the header's bytes (the
  // parsed Values view them, so parse again from the trimmed copy).
  if (buffer->size() > file.header_size_ + kHeaderSlack) {
    auto trimmed = std::make_shared<std::vector<uint8_t>>(buffer->begin(), buffer->begin() + file.header_size_);
    file.metadata_.clear();
    file.tensors_.clear();
    GgufParser parser(file, trimmed, limits);
    QUANT_TRY(parser.parse());
    buffer = std::move(trimmed);
  }
  file.header_bytes_ = std::move(buffer);
  for (size_t i = 0; i < file.metadata_.size(); ++i) file.key_index_.emplace(file.metadata_[i].key, i);
  for (size_t i = 0; i < file.tensors_.size(); ++i) file.tensor_index_.emplace(file.tensors_[i].name, i);
  return file;
}

GgufFile::GgufFile(GgufFile&& other) noexcept { *this = std::move(other); }

GgufFile& GgufFile::operator=(GgufFile&& other) noexcept {
  if (this == &other) return *this;
  if (fd_ >= 0) ::close(fd_);
  path_ = std::move(other.path_);
  fd_ = std::exchange(other.fd_, -1);
  version_ = other.version_;
  byte_swapped_magic_ = other.byte_swapped_magic_;
  alignment_ = other.alignment_;
  file_size_ = other.file_size_;
  header_size_ = other.header_size_;
  data_offset_ = other.data_offset_;
  header_bytes_ = std::move(other.header_bytes_);
  // The indexes view strings inside the vectors' elements; moving a vector keeps its elements in place.
  metadata_ = std::move(other.metadata_);
  tensors_ = std::move(other.tensors_);
  key_index_ = std::move(other.key_index_);
  tensor_index_ = std::move(other.tensor_index_);
  return *this;
}

GgufFile::~GgufFile() {
  if (fd_ >= 0) ::close(fd_);
}

const Value* GgufFile::find(std::string_view key) const {
  const auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Status GgufFile::read_tensor(const TensorInfo& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const {
  if (offset_in_tensor > tensor.size_bytes || out.size() > tensor.size_bytes - offset_in_tensor) {
    return usage_error(fmt::format("read of {} bytes at {} is outside the tensor ({} bytes)", out.size(),
                                   offset_in_tensor, tensor.size_bytes))
        .in_file(path_)
        .in_tensor(tensor.name);
  }
  const uint64_t at = data_offset_ + tensor.offset + offset_in_tensor;  // inside the file, checked at open
  Status status = read_exact_at(fd_, path_, at, out);
  if (!status) return std::move(status).error().in_tensor(tensor.name);
  return {};
}

}  // namespace quant
