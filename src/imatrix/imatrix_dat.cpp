// The legacy .dat imatrix format (llama-imatrix --output-format dat), little-endian:
//   i32 n_entries | n_entries x { i32 name length | name | i32 ncall | i32 nval | f32 v[nval] }
//   [ i32 chunk_count | i32 dataset length | dataset name ]   (optional trailer)
// with v = (in_sum2 / count) * ncall and ncall = ceil(largest count / chunk_size), entries sorted by name.
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "core/checked_math.h"
#include "dataset/byte_stream.h"
#include "quant/atomic_file.h"
#include "quant/imatrix.h"

namespace quant {
namespace {

// Reads little-endian fields from the file, counting the bytes left before every read.
class DatCursor {
 public:
  explicit DatCursor(const dataset::InputFile& file) : file_(file) {}

  uint64_t offset() const { return offset_; }
  uint64_t left() const { return file_.size() - offset_; }
  Error error(std::string reason, uint64_t at) const {
    return invalid_input(std::move(reason)).in_file(file_.path()).at_offset(at);
  }
  Result<int32_t> i32(const char* what) {
    uint8_t bytes[4];
    QUANT_TRY(file_.read_at(offset_, bytes, what));
    offset_ += 4;
    return static_cast<int32_t>(dataset::load_u32(bytes));
  }
  Status bytes(std::span<uint8_t> out, const char* what) {
    QUANT_TRY(file_.read_at(offset_, out, what));
    offset_ += out.size();
    return Status::success();
  }

 private:
  const dataset::InputFile& file_;
  uint64_t offset_ = 0;
};

}  // namespace

Result<ImportanceMatrix> read_imatrix_dat(const std::string& path, const ImatrixLimits& limits) {
  QUANT_ASSIGN_OR_RETURN(dataset::InputFile file, dataset::InputFile::open(path));
  DatCursor in(file);
  ImportanceMatrix imatrix;
  imatrix.format = ImatrixFormat::dat;
  QUANT_ASSIGN_OR_RETURN(int32_t n_entries, in.i32("entry count"));
  // Each entry takes at least 17 bytes (three i32 fields, a 1-byte name, one value).
  if (n_entries < 1) return in.error(fmt::format("entry count {} (a .dat imatrix has at least one entry)", n_entries), 0);
  if (uint64_t(n_entries) > limits.max_entries || uint64_t(n_entries) * 17 > in.left()) {
    return in.error(fmt::format("entry count {} does not fit the file ({} bytes left, cap {})", n_entries, in.left(),
                                limits.max_entries), 0);
  }
  for (int32_t i = 0; i < n_entries; ++i) {
    const uint64_t entry_offset = in.offset();
    QUANT_ASSIGN_OR_RETURN(int32_t name_length, in.i32("entry name length"));
    if (name_length < 1 || uint64_t(name_length) > limits.max_name_bytes || uint64_t(name_length) > in.left()) {
      return in.error(fmt::format("entry {}: name length {} is outside 1..{} or past the end of the file", i,
                                  name_length, std::min<uint64_t>(limits.max_name_bytes, in.left())), entry_offset);
    }
    std::string name(static_cast<size_t>(name_length), '\0');
    QUANT_TRY(in.bytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(name.data()), name.size()), "entry name"));
    auto fail = [&](std::string reason, uint64_t at) {
      return invalid_input(std::move(reason)).in_file(path).in_tensor(name).at_offset(at);
    };
    const uint64_t ncall_offset = in.offset();
    QUANT_ASSIGN_OR_RETURN(int32_t ncall, in.i32("ncall"));
    if (ncall < 0) return fail(fmt::format("negative call count {}", ncall), ncall_offset);
    QUANT_ASSIGN_OR_RETURN(int32_t nval, in.i32("value count"));
    if (nval < 1 || uint64_t(nval) > limits.max_values_per_entry || uint64_t(nval) * 4 > in.left()) {
      return fail(fmt::format("value count {} is outside 1..{} or past the end of the file ({} bytes left)", nval,
                              limits.max_values_per_entry, in.left()), ncall_offset + 4);
    }
    if (imatrix.entries.count(name) != 0) return fail("entry appears twice", entry_offset);
    ImportanceEntry entry;
    entry.n_per_row = nval;
    entry.n_expert = 1;
    entry.stored_sums.resize(static_cast<size_t>(nval));
    const uint64_t values_offset = in.offset();
    QUANT_TRY(in.bytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(entry.stored_sums.data()), size_t(nval) * 4),
                       "entry values"));
    entry.stored_counts = {static_cast<float>(ncall)};
    entry.values.resize(entry.stored_sums.size());
    for (size_t k = 0; k < entry.values.size(); ++k) {
      const float v = entry.stored_sums[k];
      if (!std::isfinite(v)) return fail(fmt::format("value {} is not finite ({})", k, v), values_offset + 4 * k);
      // llama-quantize divides by the call count when there is one and keeps v as it is otherwise.
      entry.values[k] = ncall > 0 ? v / static_cast<float>(ncall) : v;
    }
    imatrix.entries.emplace(std::move(name), std::move(entry));
  }

  if (in.left() > 0) {
    const uint64_t trailer_offset = in.offset();
    if (in.left() < 8) return in.error(fmt::format("truncated trailer ({} bytes, needs 8)", in.left()), trailer_offset);
    QUANT_ASSIGN_OR_RETURN(int32_t chunk_count, in.i32("chunk count"));
    QUANT_ASSIGN_OR_RETURN(int32_t dataset_length, in.i32("dataset name length"));
    if (chunk_count < 0) return in.error(fmt::format("negative chunk count {}", chunk_count), trailer_offset);
    if (dataset_length < 0 || uint64_t(dataset_length) != in.left()) {
      return in.error(fmt::format("dataset name length {} does not match the {} bytes left", dataset_length, in.left()),
                      trailer_offset + 4);
    }
    imatrix.chunk_count = chunk_count;
    if (dataset_length > 0) {
      std::string dataset(static_cast<size_t>(dataset_length), '\0');
      QUANT_TRY(in.bytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(dataset.data()), dataset.size()), "dataset name"));
      imatrix.datasets.push_back(std::move(dataset));
    }
  }
  return imatrix;
}

namespace {

void put_i32(std::vector<uint8_t>& out, int64_t value) {
  const uint32_t v = static_cast<uint32_t>(static_cast<int32_t>(value));
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

}  // namespace

Status write_imatrix_dat(const std::string& path, const std::map<std::string, ImatrixAccumulator::Sums>& sums,
                         const ImatrixMetadata& metadata, const OutputPolicy& policy) {
  constexpr int64_t kI32Max = INT32_MAX;
  if (metadata.chunk_size < 1) return usage_error("a .dat imatrix needs a chunk size of at least 1").in_file(path);
  if (metadata.chunk_count > kI32Max) return impossible("chunk count does not fit the .dat format's i32").in_file(path);
  std::vector<uint8_t> out;
  int64_t n_entries = 0;
  for (const auto& [name, s] : sums) n_entries += s.max_count() > 0 ? 1 : 0;
  if (n_entries == 0) return impossible("no weight received a batch of at least 16 tokens: nothing to write").in_file(path);
  put_i32(out, n_entries);
  for (const auto& [name, s] : sums) {
    if (s.max_count() == 0) continue;  // llama-imatrix leaves weights without data out of .dat files
    if (name.size() > size_t(kI32Max) || s.in_sum2.size() > size_t(kI32Max) || s.in_sum2.size() % s.counts.size() != 0) {
      return impossible("entry too large for the .dat format").in_file(path).in_tensor(name);
    }
    // Ceiling division of the largest count, so a weight seen at all has ncall >= 1.
    const int64_t ncall = (s.max_count() + metadata.chunk_size - 1) / metadata.chunk_size;
    if (ncall > kI32Max) return impossible("call count does not fit the .dat format's i32").in_file(path).in_tensor(name);
    put_i32(out, int64_t(name.size()));
    out.insert(out.end(), name.begin(), name.end());
    put_i32(out, ncall);
    put_i32(out, int64_t(s.in_sum2.size()));
    const size_t per_expert = s.in_sum2.size() / s.counts.size();
    for (size_t i = 0; i < s.in_sum2.size(); ++i) {
      float count = static_cast<float>(s.counts[i / per_expert]);
      float sum = s.in_sum2[i];
      if (count == 0.0f) sum = count = 1.0f;  // llama-imatrix stores 1 for an expert without data
      const float v = (sum / count) * static_cast<float>(ncall);  // llama-imatrix's order of operations
      uint8_t bytes[4];
      std::memcpy(bytes, &v, 4);
      out.insert(out.end(), bytes, bytes + 4);
    }
  }
  put_i32(out, metadata.chunk_count);
  // llama-imatrix names the text it read, or without one the last dataset of the files it merged.
  const std::string dataset = metadata.datasets.empty() ? std::string() : metadata.datasets.back();
  put_i32(out, int64_t(dataset.size()));
  out.insert(out.end(), dataset.begin(), dataset.end());
  return write_file_atomically(path, out, policy);
}

}  // namespace quant
