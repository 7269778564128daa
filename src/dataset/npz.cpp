// NumPy .npz: a zip archive of .npy members (numpy.savez stores them, numpy.savez_compressed deflates them).
// We read the zip's central directory (the authority on sizes, CRCs and where each member starts), then each
// member's local header to find its data. Zip64 records are understood (numpy asks for zip64 local headers);
// multi-disk archives, encryption and methods other than stored (0) and deflate (8) are refused.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/checked_math.h"
#include "dataset/array_source.h"

namespace quant::dataset {
namespace {

constexpr uint32_t kEndOfCentralDirectory = 0x06054b50;
constexpr uint32_t kZip64EndOfCentralDirectory = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint32_t kCentralEntry = 0x02014b50;
constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint64_t kEndRecordBytes = 22;
constexpr uint64_t kMaxCommentBytes = 0xffff;
constexpr uint64_t kCentralEntryBytes = 46;
constexpr uint64_t kLocalHeaderBytes = 30;

struct CentralDirectory {
  uint64_t entries = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct Member {
  std::string name;
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
  uint64_t data_offset = 0;
};

Error zip_error(const InputFile& file, uint64_t offset, std::string reason) {
  return invalid_input(".npz (zip): " + reason).in_file(file.path()).at_offset(offset);
}

Result<CentralDirectory> find_central_directory(const InputFile& file) {
  if (file.size() < kEndRecordBytes) return zip_error(file, 0, "too short for an end-of-central-directory record");
  const uint64_t tail_size = std::min<uint64_t>(file.size(), kEndRecordBytes + kMaxCommentBytes);
  const uint64_t tail_start = file.size() - tail_size;
  std::vector<uint8_t> tail(static_cast<size_t>(tail_size));
  QUANT_TRY(file.read_at(tail_start, tail, "zip end records"));
  // The record is the last signature whose comment reaches exactly to the end of the file.
  int64_t found = -1;
  for (int64_t i = int64_t(tail_size - kEndRecordBytes); i >= 0; --i) {
    const uint8_t* p = tail.data() + i;
    if (load_u32(p) == kEndOfCentralDirectory && uint64_t(i) + kEndRecordBytes + load_u16(p + 20) == tail_size) {
      found = i;
      break;
    }
  }
  if (found < 0) return zip_error(file, file.size(), "no end-of-central-directory record (not a zip archive?)");
  const uint8_t* end = tail.data() + found;
  const uint64_t end_offset = tail_start + uint64_t(found);
  if (load_u16(end + 4) != 0 || load_u16(end + 6) != 0) return zip_error(file, end_offset, "multi-disk archives are not supported");
  CentralDirectory cd;
  cd.entries = load_u16(end + 10);
  cd.size = load_u32(end + 12);
  cd.offset = load_u32(end + 16);
  uint64_t directory_end_limit = end_offset;  // the central directory must end before the record(s) after it
  if (cd.entries == 0xffff || cd.size == 0xffffffff || cd.offset == 0xffffffff) {
    // Zip64: a locator just before the end record points at the zip64 end record with the real values.
    if (end_offset < 20) return zip_error(file, end_offset, "zip64 values but no room for a zip64 locator");
    uint8_t locator[20];
    QUANT_TRY(file.read_at(end_offset - 20, locator, "zip64 locator"));
    if (load_u32(locator) != kZip64Locator) return zip_error(file, end_offset - 20, "zip64 locator missing");
    const uint64_t record_offset = load_u64(locator + 8);
    if (record_offset > end_offset - 20 || end_offset - 20 - record_offset < 56) {
      return zip_error(file, end_offset - 20, "zip64 end record offset out of range");
    }
    uint8_t record[56];
    QUANT_TRY(file.read_at(record_offset, record, "zip64 end record"));
    if (load_u32(record) != kZip64EndOfCentralDirectory) return zip_error(file, record_offset, "bad zip64 end record signature");
    if (load_u32(record + 16) != 0 || load_u32(record + 20) != 0) {
      return zip_error(file, record_offset, "multi-disk archives are not supported");
    }
    cd.entries = load_u64(record + 32);
    cd.size = load_u64(record + 40);
    cd.offset = load_u64(record + 48);
    directory_end_limit = record_offset;
  }
  const auto cd_end = checked_add(cd.offset, cd.size);
  if (!cd_end || *cd_end > directory_end_limit) {
    return zip_error(file, end_offset, fmt::format("central directory [{}, +{}) runs past its end record", cd.offset, cd.size));
  }
  return cd;
}

// Replaces 0xffffffff sizes and offset with the values of the zip64 extra field (id 1), in its fixed order.
Status apply_zip64_extra(const InputFile& file, uint64_t entry_offset, std::span<const uint8_t> extra, Member& m,
                         bool need_uncompressed, bool need_compressed, bool need_offset) {
  size_t pos = 0;
  while (pos + 4 <= extra.size()) {
    const uint16_t id = load_u16(extra.data() + pos);
    const uint16_t size = load_u16(extra.data() + pos + 2);
    if (pos + 4 + size > extra.size()) break;
    if (id == 1) {
      const uint8_t* field = extra.data() + pos + 4;
      size_t used = 0;
      auto take = [&](uint64_t* out) {
        if (used + 8 > size) return false;
        *out = load_u64(field + used);
        used += 8;
        return true;
      };
      if ((need_uncompressed && !take(&m.uncompressed_size)) || (need_compressed && !take(&m.compressed_size)) ||
          (need_offset && !take(&m.local_header_offset))) {
        return zip_error(file, entry_offset, "zip64 extra field too short for '" + m.name + "'");
      }
      return Status::success();
    }
    pos += 4 + size;
  }
  return zip_error(file, entry_offset, "sizes of '" + m.name + "' need a zip64 extra field, which is missing");
}

Result<std::vector<Member>> read_members(const InputFile& file, const CentralDirectory& cd, const DatasetLimits& limits) {
  if (cd.entries > limits.max_tensors_per_file) {
    return zip_error(file, cd.offset, fmt::format("{} members, over the cap of {}", cd.entries, limits.max_tensors_per_file));
  }
  if (cd.entries * kCentralEntryBytes > cd.size) {
    return zip_error(file, cd.offset, fmt::format("central directory of {} bytes cannot hold {} entries", cd.size, cd.entries));
  }
  if (cd.size > limits.max_header_bytes) {
    return zip_error(file, cd.offset, fmt::format("central directory of {} bytes exceeds the cap of {}", cd.size,
                                                  limits.max_header_bytes));
  }
  std::vector<uint8_t> directory(static_cast<size_t>(cd.size));
  QUANT_TRY(file.read_at(cd.offset, directory, "zip central directory"));
  std::vector<Member> members;
  size_t pos = 0;
  for (uint64_t i = 0; i < cd.entries; ++i) {
    const uint64_t entry_offset = cd.offset + pos;
    if (directory.size() - pos < kCentralEntryBytes) return zip_error(file, entry_offset, "central directory entry truncated");
    const uint8_t* p = directory.data() + pos;
    if (load_u32(p) != kCentralEntry) return zip_error(file, entry_offset, "bad central directory entry signature");
    const uint16_t flags = load_u16(p + 8);
    Member m;
    m.method = load_u16(p + 10);
    m.crc = load_u32(p + 16);
    m.compressed_size = load_u32(p + 20);
    m.uncompressed_size = load_u32(p + 24);
    const uint64_t name_bytes = load_u16(p + 28), extra_bytes = load_u16(p + 30), comment_bytes = load_u16(p + 32);
    const uint16_t disk = load_u16(p + 34);
    m.local_header_offset = load_u32(p + 42);
    const uint64_t entry_bytes = kCentralEntryBytes + name_bytes + extra_bytes + comment_bytes;
    if (directory.size() - pos < entry_bytes) return zip_error(file, entry_offset, "central directory entry truncated");
    m.name.assign(reinterpret_cast<const char*>(p + kCentralEntryBytes), name_bytes);
    if (m.name.size() > limits.max_name_bytes) return zip_error(file, entry_offset, "member name too long");
    const bool need_uncompressed = m.uncompressed_size == 0xffffffff, need_compressed = m.compressed_size == 0xffffffff,
               need_offset = m.local_header_offset == 0xffffffff;
    if (need_uncompressed || need_compressed || need_offset) {
      QUANT_TRY(apply_zip64_extra(file, entry_offset,
                                  std::span<const uint8_t>(p + kCentralEntryBytes + name_bytes, extra_bytes), m,
                                  need_uncompressed, need_compressed, need_offset));
    }
    if (disk != 0 && disk != 0xffff) return zip_error(file, entry_offset, "multi-disk archives are not supported");
    if (flags & 1) return zip_error(file, entry_offset, "member '" + m.name + "' is encrypted");
    if (m.method != 0 && m.method != 8) {
      return zip_error(file, entry_offset, fmt::format("member '{}' uses compression method {} (only stored and "
                                                       "deflate are supported)", m.name, m.method));
    }
    if (m.method == 0 && m.compressed_size != m.uncompressed_size) {
      return zip_error(file, entry_offset, fmt::format("stored member '{}' has compressed size {} != size {}", m.name,
                                                       m.compressed_size, m.uncompressed_size));
    }
    members.push_back(std::move(m));
    pos += static_cast<size_t>(entry_bytes);
  }

  // Locate each member's data through its local header; data must lie before the central directory and
  // members must not overlap.
  for (Member& m : members) {
    uint8_t local[kLocalHeaderBytes];
    if (m.local_header_offset >= cd.offset || cd.offset - m.local_header_offset < kLocalHeaderBytes) {
      return zip_error(file, m.local_header_offset, "local header of '" + m.name + "' lies outside the member area");
    }
    QUANT_TRY(file.read_at(m.local_header_offset, local, "zip local header"));
    if (load_u32(local) != kLocalHeader) return zip_error(file, m.local_header_offset, "bad local header signature for '" + m.name + "'");
    const uint64_t name_bytes = load_u16(local + 26), extra_bytes = load_u16(local + 28);
    m.data_offset = m.local_header_offset + kLocalHeaderBytes + name_bytes + extra_bytes;
    const auto data_end = checked_add(m.data_offset, m.compressed_size);
    if (!data_end || *data_end > cd.offset) {
      return zip_error(file, m.local_header_offset, fmt::format("data of '{}' ({} bytes) runs into the central directory",
                                                                m.name, m.compressed_size));
    }
    std::string local_name(static_cast<size_t>(name_bytes), '\0');
    QUANT_TRY(file.read_at(m.local_header_offset + kLocalHeaderBytes,
                           std::span<uint8_t>(reinterpret_cast<uint8_t*>(local_name.data()), local_name.size()),
                           "zip local header name"));
    if (local_name != m.name) {
      return zip_error(file, m.local_header_offset, "local header names '" + local_name + "', central directory '" + m.name + "'");
    }
  }
  std::vector<const Member*> by_offset;
  for (const Member& m : members) by_offset.push_back(&m);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Member* a, const Member* b) { return a->local_header_offset < b->local_header_offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const Member& previous = *by_offset[k - 1];
    if (by_offset[k]->local_header_offset < previous.data_offset + previous.compressed_size) {
      return zip_error(file, by_offset[k]->local_header_offset,
                       "member '" + by_offset[k]->name + "' overlaps member '" + previous.name + "'");
    }
  }
  return members;
}

}  // namespace

Result<std::vector<ArraySource>> read_npz_arrays(const InputFile& file, const DatasetLimits& limits) {
  QUANT_ASSIGN_OR_RETURN(CentralDirectory cd, find_central_directory(file));
  QUANT_ASSIGN_OR_RETURN(std::vector<Member> members, read_members(file, cd, limits));
  std::vector<ArraySource> arrays;
  std::set<std::string> names;
  for (const Member& m : members) {
    if (m.name.size() < 5 || m.name.compare(m.name.size() - 4, 4, ".npy") != 0) {
      return zip_error(file, m.local_header_offset, "member '" + m.name + "' is not a .npy array");
    }
    ArraySource source;
    source.info.file = file.path();
    source.info.tensor = m.name.substr(0, m.name.size() - 4);
    if (!names.insert(source.info.tensor).second) {
      return zip_error(file, m.local_header_offset, "two members named '" + m.name + "'");
    }
    source.in_zip = true;
    source.method = m.method == 0 ? ZipMethod::stored : ZipMethod::deflated;
    source.data_offset = m.data_offset;
    source.compressed_size = m.compressed_size;
    source.uncompressed_size = m.uncompressed_size;
    source.crc32 = m.crc;
    auto stream = open_zip_member(file, source.method, m.data_offset, m.compressed_size, m.uncompressed_size, m.crc);
    auto header = read_npy_header(*stream, file.path(), limits);
    if (!header) return std::move(header).error().in_tensor(source.info.tensor);
    auto fail = [&](std::string reason) {
      return invalid_input(std::move(reason)).in_file(file.path()).in_tensor(source.info.tensor);
    };
    source.info.dtype = header->descr;
    if (header->fortran_order) return fail("Fortran-order (column-major) arrays are not supported; save in C order");
    auto element = npy_element_type(header->descr);
    if (!element) return std::move(element).error().in_file(file.path()).in_tensor(source.info.tensor);
    source.element = *element;
    QUANT_TRY(set_shape(source, header->shape, limits));
    source.header_bytes = header->header_bytes;
    if (m.uncompressed_size < source.header_bytes || m.uncompressed_size - source.header_bytes != source.value_bytes) {
      return fail(fmt::format("member holds {} bytes but its .npy header ({} bytes) and shape need {}",
                              m.uncompressed_size, source.header_bytes, source.header_bytes + source.value_bytes));
    }
    arrays.push_back(std::move(source));
  }
  // Read members in file order.
  std::stable_sort(arrays.begin(), arrays.end(),
                   [](const ArraySource& a, const ArraySource& b) { return a.data_offset < b.data_offset; });
  return arrays;
}

}  // namespace quant::dataset
