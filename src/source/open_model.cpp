// open_model(): which kind of model a path names, and the source that reads it.
#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "quant/gguf.h"
#include "quant/hf.h"
#include "quant/model_source.h"

namespace quant {

Result<std::unique_ptr<ModelSource>> open_model(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return Error(io_error(fmt::format("cannot open: {}", std::strerror(errno)))).in_file(path);
  }
  if (S_ISDIR(st.st_mode)) return open_hf_checkpoint(path);
  QUANT_ASSIGN_OR_RETURN(GgufFile file, GgufFile::open(path));
  if (const Value* splits = file.find("split.count"); splits != nullptr) {
    uint64_t count = 0;
    if (splits->to_uint64(&count) && count > 1) {
      return Error(impossible(fmt::format("this is one of {} shards of a split model; reading split models is not "
                                          "supported yet (merge the shards first)", count)))
          .in_file(path);
    }
  }
  return std::unique_ptr<ModelSource>(std::make_unique<GgufFile>(std::move(file)));
}

}  // namespace quant
