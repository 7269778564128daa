// open_model(): which kind of model a path names, and the source that reads it.
#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "quant/gguf.h"
#include "quant/hf.h"
#include "quant/model_source.h"
#include "quant/split.h"

namespace quant {

Result<std::unique_ptr<ModelSource>> open_model(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return Error(io_error(fmt::format("cannot open for reading: {}", std::strerror(errno)))).in_file(path);
  }
  if (S_ISDIR(st.st_mode)) return open_hf_checkpoint(path);
  QUANT_ASSIGN_OR_RETURN(GgufFile file, GgufFile::open(path));
  // Any shard of a split model stands for the whole model, as in llama.cpp's tools.
  if (is_split_shard(file)) {
    QUANT_ASSIGN_OR_RETURN(std::unique_ptr<SplitModel> model, SplitModel::open(std::move(file)));
    return std::unique_ptr<ModelSource>(std::move(model));
  }
  return std::unique_ptr<ModelSource>(std::make_unique<GgufFile>(std::move(file)));
}

std::vector<std::string> model_files(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return hf_checkpoint_files(path);
  std::vector<std::string> files;
  if (const std::optional<SplitName> shard = parse_split_path(path); shard) {
    for (uint32_t i = 0; i < shard->count; ++i) files.push_back(split_path(shard->prefix, i, shard->count));
    return files;
  }
  return {path};
}

}  // namespace quant
