// The files of a checkpoint folder: JSON files, and the safetensors shards in convert_hf_to_gguf.py's order.
#include "core/json_error_text.h"
#include "hf/checkpoint_files.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "gguf/file_io.h"

namespace quant::hf {
namespace {

std::string join_path(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

bool is_regular_file(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The folder's entries named PREFIX*SUFFIX, sorted (the converter's get_model_part_names).
Result<std::vector<std::string>> part_names(const std::string& dir, std::string_view prefix, std::string_view suffix) {
  DIR* listing = ::opendir(dir.c_str());
  if (listing == nullptr) return io_error(fmt::format("cannot list: {}", std::strerror(errno))).in_file(dir);
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(listing)) {
    const std::string_view name(entry->d_name);
    if (name.size() >= prefix.size() + suffix.size() && name.starts_with(prefix) && name.ends_with(suffix)) {
      names.emplace_back(name);
    }
  }
  ::closedir(listing);
  std::sort(names.begin(), names.end());
  return names;
}

Result<Shard> open_shard(const std::string& path) {
  Shard shard;
  shard.path = path;
  if (!is_regular_file(path)) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return io_error("shard file is missing").in_file(path);
    return io_error("not a regular file").in_file(path);
  }
  QUANT_ASSIGN_OR_RETURN(shard.fd, open_read_only(path));
  auto size = file_size_of(shard.fd, path);
  if (!size) {
    ::close(shard.fd);
    return std::move(size).error();
  }
  shard.size = *size;
  const int fd = shard.fd;
  auto read_at = [fd, &path](uint64_t offset, std::span<uint8_t> out) { return read_exact_at(fd, path, offset, out); };
  auto header = read_safetensors_header(read_at, shard.size, path);
  if (!header) {
    ::close(shard.fd);
    return std::move(header).error();
  }
  shard.header = std::move(header).value();
  return shard;
}

}  // namespace

Result<std::optional<std::string>> read_small_file(const std::string& dir, const std::string& name,
                                                   uint64_t max_bytes) {
  const std::string path = join_path(dir, name);
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::optional<std::string>();
    return io_error(fmt::format("cannot stat: {}", std::strerror(errno))).in_file(path);
  }
  if (!S_ISREG(st.st_mode)) return io_error("not a regular file").in_file(path);
  QUANT_ASSIGN_OR_RETURN(const int fd, open_read_only(path));
  auto size = file_size_of(fd, path);
  if (!size) {
    ::close(fd);
    return std::move(size).error();
  }
  if (*size > max_bytes) {
    ::close(fd);
    return invalid_input(fmt::format("file of {} bytes is over the cap of {} bytes", *size, max_bytes)).in_file(path);
  }
  std::string text(size_t(*size), '\0');
  Status read = read_exact_at(fd, path, 0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(text.data()), text.size()));
  ::close(fd);
  if (!read) return std::move(read).error();
  return std::optional<std::string>(std::move(text));
}

Result<std::optional<Json>> read_json_file(const std::string& dir, const std::string& name, uint64_t max_bytes) {
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> text, read_small_file(dir, name, max_bytes));
  if (!text) return std::optional<Json>();
  try {
    return std::optional<Json>(Json::parse(*text));
  } catch (const Json::parse_error& e) {
    return Error(invalid_input(fmt::format("not valid JSON: {}", json_error_text(e))))
        .in_file(join_path(dir, name))
        .at_offset(e.byte == 0 ? 0 : e.byte - 1);
  } catch (const Json::exception& e) {
    return Error(invalid_input(fmt::format("holds a value that cannot be read: {}", json_error_text(e))))
        .in_file(join_path(dir, name));
  }
}

Result<std::optional<Json>> read_tokenizer_json(const std::string& dir) {
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> text, read_small_file(dir, "tokenizer.json", uint64_t(256) << 20));
  if (!text) return std::optional<Json>();
  try {
    nlohmann::json plain = nlohmann::json::parse(*text);
    text.reset();
    if (plain.is_object() && plain.contains("model") && plain["model"].is_object()) plain["model"].erase("vocab");
    return std::optional<Json>(Json::parse(plain.dump()));
  } catch (const nlohmann::json::parse_error& e) {
    return Error(invalid_input(fmt::format("not valid JSON: {}", json_error_text(e))))
        .in_file(join_path(dir, "tokenizer.json"))
        .at_offset(e.byte == 0 ? 0 : e.byte - 1);
  } catch (const nlohmann::json::exception& e) {
    return Error(invalid_input(fmt::format("holds a value that cannot be read: {}", json_error_text(e))))
        .in_file(join_path(dir, "tokenizer.json"));
  }
}

bool truthy(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return false;
    case Json::value_t::boolean: return value.get<bool>();
    case Json::value_t::number_integer: return value.get<int64_t>() != 0;
    case Json::value_t::number_unsigned: return value.get<uint64_t>() != 0;
    case Json::value_t::number_float: return value.get<double>() != 0.0;
    case Json::value_t::string: return !value.get_ref<const std::string&>().empty();
    case Json::value_t::array:
    case Json::value_t::object: return !value.empty();
    default: return true;
  }
}

Result<std::unique_ptr<CheckpointFiles>> CheckpointFiles::open(const std::string& dir) {
  std::unique_ptr<CheckpointFiles> files(new CheckpointFiles());
  QUANT_ASSIGN_OR_RETURN(std::vector<std::string> names, part_names(dir, "model", ".safetensors"));
  const std::string index_path = join_path(dir, "model.safetensors.index.json");
  std::optional<SafetensorsIndex> index;
  if (is_regular_file(index_path)) {
    QUANT_ASSIGN_OR_RETURN(std::optional<std::string> text, read_small_file(dir, "model.safetensors.index.json"));
    QUANT_ASSIGN_OR_RETURN(index, parse_safetensors_index(*text, index_path));
    names = index->shards;  // sorted
  } else if (names.empty()) {
    QUANT_ASSIGN_OR_RETURN(std::vector<std::string> bins, part_names(dir, "pytorch_model", ".bin"));
    if (!bins.empty()) {
      return Error(impossible("PyTorch pickle checkpoints (pytorch_model*.bin) are not read; convert them to "
                              "safetensors first"))
          .in_file(dir);
    }
    return Error(invalid_input("no model*.safetensors file in the checkpoint folder")).in_file(dir);
  }
  for (const std::string& name : names) {
    auto shard = open_shard(join_path(dir, name));
    if (!shard && index && shard.error().reason() == "shard file is missing") {
      return Error(invalid_input(fmt::format("the index names shard '{}', which is missing", name)))
          .in_file(index_path);
    }
    if (!shard) return std::move(shard).error();
    files->shards_.push_back(std::move(shard).value());
  }
  if (index) {
    std::vector<std::string> paths;
    std::vector<const SafetensorsHeader*> headers;
    for (const Shard& shard : files->shards_) {
      paths.push_back(shard.path);
      headers.push_back(&shard.header);
    }
    QUANT_TRY(check_shards(*index, index_path, paths, headers));
  }
  std::set<std::string_view> seen;
  for (size_t s = 0; s < files->shards_.size(); ++s) {
    for (const SafetensorsTensor* entry : files->shards_[s].header.by_name()) {
      if (!seen.insert(entry->name).second) {
        return Error(invalid_input("tensor is stored in two files")).in_file(files->shards_[s].path).in_tensor(entry->name);
      }
      files->tensors_.push_back(CheckpointTensor{entry->name, s, entry});
    }
  }
  return files;
}

CheckpointFiles::~CheckpointFiles() {
  for (Shard& shard : shards_) {
    if (shard.fd >= 0) ::close(shard.fd);
  }
}

uint64_t CheckpointFiles::total_bytes() const {
  uint64_t total = 0;
  for (const Shard& shard : shards_) total += shard.size;
  return total;
}

Status CheckpointFiles::read(const CheckpointTensor& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const {
  const Shard& shard = shards_[tensor.shard];
  Status read = read_exact_at(shard.fd, shard.path, tensor.entry->file_offset + offset_in_tensor, out);
  if (!read) return std::move(read).error().in_tensor(tensor.name);
  return read;
}

}  // namespace quant::hf
