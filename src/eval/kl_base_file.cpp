// llama-perplexity's base-logits file (`--kl-divergence-base`), read and written: layout in quant/eval.h.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "core/checked_math.h"
#include "gguf/file_io.h"
#include "quant/eval.h"
#include "quant/gguf.h"

namespace quant {
namespace {

constexpr char kMagic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};
constexpr uint64_t kHeaderBytes = 8 + 4 + 4 + 4;
// Larger than any real vocabulary or context, small enough that products of them cannot overflow.
constexpr int64_t kMaxDimension = int64_t(1) << 24;

Error file_error(const std::string& path, uint64_t offset, std::string reason) {
  return Error(invalid_input(std::move(reason))).in_file(path).at_offset(offset);
}

}  // namespace

Result<KlBaseReader> KlBaseReader::open(const std::string& path) {
  KlBaseReader reader;
  reader.path_ = path;
  QUANT_ASSIGN_OR_RETURN(reader.fd_, open_read_only(path));
  QUANT_ASSIGN_OR_RETURN(reader.file_size_, file_size_of(reader.fd_, path));
  if (reader.file_size_ < kHeaderBytes) {
    return file_error(path, 0, fmt::format("not a base-logits file: {} bytes, the header alone takes {}",
                                           reader.file_size_, kHeaderBytes));
  }
  uint8_t header[kHeaderBytes];
  QUANT_TRY(read_exact_at(reader.fd_, path, 0, header));
  if (std::memcmp(header, kMagic, sizeof(kMagic)) != 0) {
    return file_error(path, 0, "not a base-logits file (llama-perplexity's start with \"_logits_\")");
  }
  KlBaseHeader& h = reader.header_;
  std::memcpy(&h.n_ctx, header + 8, 4);
  std::memcpy(&h.n_vocab, header + 12, 4);
  std::memcpy(&h.n_chunk, header + 16, 4);
  if (h.n_ctx < 3 || int64_t(h.n_ctx) > kMaxDimension) {
    return file_error(path, 8, fmt::format("context {} is outside 3..{}", h.n_ctx, kMaxDimension));
  }
  if (h.n_vocab < 1 || h.n_vocab > kMaxDimension) {
    return file_error(path, 12, fmt::format("vocabulary size {} is outside 1..{}", h.n_vocab, kMaxDimension));
  }
  if (h.n_chunk < 1) return file_error(path, 16, fmt::format("chunk count {} is not positive", h.n_chunk));

  const uint64_t token_count = uint64_t(h.n_chunk) * h.n_ctx;  // < 2^55: cannot overflow
  const uint64_t token_bytes = token_count * 4;
  if (token_bytes > reader.file_size_ - kHeaderBytes) {
    return file_error(path, kHeaderBytes, fmt::format("truncated: {} tokens need {} bytes, {} left", token_count,
                                                      token_bytes, reader.file_size_ - kHeaderBytes));
  }
  h.tokens.resize(size_t(token_count));
  QUANT_TRY(read_exact_at(reader.fd_, path, kHeaderBytes,
                          std::span(reinterpret_cast<uint8_t*>(h.tokens.data()), size_t(token_bytes))));
  for (size_t i = 0; i < h.tokens.size(); ++i) {
    if (h.tokens[i] < 0 || h.tokens[i] >= h.n_vocab) {
      return file_error(path, kHeaderBytes + 4 * i, fmt::format("token {} is outside the vocabulary of {} tokens",
                                                                h.tokens[i], h.n_vocab));
    }
  }
  h.rows_offset = kHeaderBytes + token_bytes;
  const uint64_t chunk_bytes = uint64_t(h.rows_per_chunk()) * uint64_t(kl_row_values(h.n_vocab)) * 2;
  const std::optional<uint64_t> all_rows = checked_mul(chunk_bytes, uint64_t(h.n_chunk));
  if (!all_rows || *all_rows > reader.file_size_ - h.rows_offset) {
    const uint64_t whole_chunks = (reader.file_size_ - h.rows_offset) / chunk_bytes;
    const uint64_t at = h.rows_offset + whole_chunks * chunk_bytes;
    return file_error(path, at, fmt::format("truncated: chunk {} of {} needs {} bytes of log-probabilities, {} left",
                                            whole_chunks, h.n_chunk, chunk_bytes, reader.file_size_ - at));
  }
  return reader;
}

KlBaseReader::KlBaseReader(KlBaseReader&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), file_size_(other.file_size_),
      header_(std::move(other.header_)) {}

KlBaseReader& KlBaseReader::operator=(KlBaseReader&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    file_size_ = other.file_size_;
    header_ = std::move(other.header_);
  }
  return *this;
}

KlBaseReader::~KlBaseReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status KlBaseReader::read_chunk(int64_t chunk, std::vector<uint16_t>& rows) const {
  if (chunk < 0 || chunk >= header_.n_chunk) {
    return Error(usage_error(fmt::format("chunk {} of {}", chunk, header_.n_chunk))).in_file(path_);
  }
  const uint64_t values = uint64_t(header_.rows_per_chunk()) * uint64_t(kl_row_values(header_.n_vocab));
  rows.resize(size_t(values));
  return read_exact_at(fd_, path_, header_.rows_offset + uint64_t(chunk) * values * 2,
                       std::span(reinterpret_cast<uint8_t*>(rows.data()), size_t(values * 2)));
}

Result<KlBaseWriter> KlBaseWriter::create(const std::string& path, uint32_t n_ctx, int32_t n_vocab,
                                          std::span<const int32_t> tokens, const OutputPolicy& policy) {
  if (n_ctx == 0 || tokens.size() % n_ctx != 0) {
    return Error(usage_error("base-logits file: the tokens are not whole chunks")).in_file(path);
  }
  QUANT_TRY(check_output_path(path, policy));  // before the work, so a refusal costs nothing
  KlBaseWriter writer;
  writer.policy_ = policy;
  QUANT_ASSIGN_OR_RETURN(writer.file_, AtomicFile::create(path));
  const int32_t n_chunk = int32_t(tokens.size() / n_ctx);
  QUANT_TRY(writer.write_bytes(kMagic, sizeof(kMagic)));
  QUANT_TRY(writer.write_bytes(&n_ctx, 4));
  QUANT_TRY(writer.write_bytes(&n_vocab, 4));
  QUANT_TRY(writer.write_bytes(&n_chunk, 4));
  QUANT_TRY(writer.write_bytes(tokens.data(), tokens.size() * sizeof(int32_t)));
  return writer;
}

Status KlBaseWriter::write_bytes(const void* data, size_t size) {
  return file_.write(std::span(static_cast<const uint8_t*>(data), size));
}

Status KlBaseWriter::write_chunk(std::span<const uint16_t> rows) { return write_bytes(rows.data(), rows.size_bytes()); }

Status KlBaseWriter::commit() {
  if (file_.placed() || file_.temp_path().empty()) {
    return Error(usage_error("base-logits file already committed or failed")).in_file(file_.final_path());
  }
  AtomicFile* files[] = {&file_};
  QUANT_TRY(commit_files(files, policy_));
  return Status::success();
}

}  // namespace quant
