// The split-set reader: finds every shard of a split model by llama.cpp's naming rule, checks that they belong
// together, and serves their tensors as one model.
//
// llama.cpp's loader (llama-model-loader.cpp) checks the shard index of each file and that the tensor total
// equals split.tensors.count, and refuses a tensor name seen twice. We check that too, and more, since a shard
// copied from another model or another run is easy to pick up by mistake: every shard's split.count and
// split.tensors.count must equal the first's, and any other key a shard repeats from the first shard (some
// writers copy metadata into every shard; a `--shard` run writes quantize.shard.plan into each) must hold the same
// value.
#include <fmt/format.h>

#include <limits>

#include "quant/split.h"

namespace quant {
namespace {

// An integer split key as a number in [minimum, maximum]; invalid_input naming the shard otherwise.
Result<uint64_t> split_key(const GgufFile& shard, std::string_view key, uint64_t minimum, uint64_t maximum) {
  const Value* value = shard.find(key);
  if (value == nullptr) {
    return invalid_input(fmt::format("metadata key '{}' is missing: this file is not a shard of a split model", key))
        .in_file(shard.path());
  }
  uint64_t number = 0;
  if (!value->to_uint64(&number)) {
    return invalid_input(fmt::format("metadata key '{}' is {}, expected an integer", key,
                                     value_type_name(value->type())))
        .in_file(shard.path());
  }
  if (number < minimum || number > maximum) {
    return invalid_input(fmt::format("metadata key '{}' is {}, outside {}..{}", key, number, minimum, maximum))
        .in_file(shard.path());
  }
  return number;
}

// Prepends "shard I of N: " to an error from opening or checking that shard, keeping where it happened.
Error about_shard(Error error, uint32_t index, uint32_t count) {
  Error out(error.kind(), fmt::format("shard {} of {}: {}", index + 1, count, error.reason()));
  out.in_file(error.file());
  if (error.offset()) out.at_offset(*error.offset());
  if (!error.tensor().empty()) out.in_tensor(error.tensor());
  return out;
}

// The checks of shard `index` against the first shard (the one that holds the model's metadata).
Status check_belongs(const GgufFile& shard, uint32_t index, const GgufFile& first, uint32_t count,
                     uint64_t total_tensors) {
  QUANT_ASSIGN_OR_RETURN(const uint64_t no, split_key(shard, kSplitNoKey, 0, kMaxShards - 1));
  if (no != index) {
    return invalid_input(fmt::format("its split.no is {} (shard {}) but its name makes it shard {}: it belongs to "
                                     "another set of shards",
                                     no, no + 1, index + 1))
        .in_file(shard.path());
  }
  QUANT_ASSIGN_OR_RETURN(const uint64_t shards, split_key(shard, kSplitCountKey, 1, kMaxShards));
  if (shards != count) {
    return invalid_input(fmt::format("its split.count is {} but {} says {}: the shards come from different splits",
                                     shards, first.path(), count))
        .in_file(shard.path());
  }
  if (shard.find(kSplitTensorsCountKey) != nullptr) {
    QUANT_ASSIGN_OR_RETURN(const uint64_t tensors,
                           split_key(shard, kSplitTensorsCountKey, 0, std::numeric_limits<int32_t>::max()));
    if (tensors != total_tensors) {
      return invalid_input(fmt::format("its split.tensors.count is {} but {} says {}: the shards come from "
                                       "different models",
                                       tensors, first.path(), total_tensors))
          .in_file(shard.path());
    }
  }
  if (&shard == &first) return Status::success();
  for (const KeyValue& kv : shard.metadata()) {
    if (kv.key == kSplitNoKey) continue;
    const Value* in_first = first.find(kv.key);
    if (in_first != nullptr && !(*in_first == kv.value)) {
      return invalid_input(fmt::format("metadata key '{}' differs from {}'s: the shards come from different models "
                                       "or runs",
                                       kv.key, first.path()))
          .in_file(shard.path());
    }
  }
  return Status::success();
}

}  // namespace

Result<std::unique_ptr<SplitModel>> SplitModel::open(const std::string& path, const GgufLimits& limits) {
  QUANT_ASSIGN_OR_RETURN(GgufFile named, GgufFile::open(path, limits));
  return open(std::move(named), limits);
}

Result<std::unique_ptr<SplitModel>> SplitModel::open(GgufFile named_shard, const GgufLimits& limits) {
  QUANT_ASSIGN_OR_RETURN(const uint64_t count, split_key(named_shard, kSplitCountKey, 1, kMaxShards));
  QUANT_ASSIGN_OR_RETURN(const uint64_t named_index, split_key(named_shard, kSplitNoKey, 0, count - 1));
  const std::optional<SplitName> name = parse_split_path(named_shard.path());
  if (!name || name->index != named_index || name->count != count) {
    return invalid_input(fmt::format("this is shard {} of {} of a split model, so its name must end in \"{}\" for "
                                     "the other shards to be found (llama.cpp's naming rule)",
                                     named_index + 1, count,
                                     split_path("", uint32_t(named_index), uint32_t(count))))
        .in_file(named_shard.path());
  }

  std::unique_ptr<SplitModel> model(new SplitModel());
  model->path_ = named_shard.path();
  model->prefix_ = name->prefix;
  model->shards_.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    if (i == named_index) {
      model->shards_.push_back(std::move(named_shard));
      continue;
    }
    const std::string shard_path = split_path(model->prefix_, i, uint32_t(count));
    Result<GgufFile> shard = GgufFile::open(shard_path, limits);
    if (!shard) {
      Error error = std::move(shard).error();
      if (error.file().empty()) error.in_file(shard_path);
      return about_shard(std::move(error), i, uint32_t(count));
    }
    model->shards_.push_back(std::move(shard).value());
  }

  const GgufFile& first = model->shards_[0];
  QUANT_ASSIGN_OR_RETURN(const uint64_t total_tensors,
                         split_key(first, kSplitTensorsCountKey, 0, std::numeric_limits<int32_t>::max()));
  uint64_t tensors_seen = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const GgufFile& shard = model->shards_[i];
    Status belongs = check_belongs(shard, i, first, uint32_t(count), total_tensors);
    if (!belongs) return about_shard(std::move(belongs).error(), i, uint32_t(count));
    model->input_bytes_ += shard.file_size();
    tensors_seen += shard.tensors().size();
  }
  if (tensors_seen != total_tensors) {
    return invalid_input(fmt::format("the {} shards hold {} tensors but split.tensors.count says {}: a shard is "
                                     "missing tensors or comes from another model",
                                     count, tensors_seen, total_tensors))
        .in_file(first.path());
  }

  model->tensors_.reserve(tensors_seen);
  model->locations_.reserve(tensors_seen);
  for (uint32_t i = 0; i < count; ++i) {
    const std::vector<TensorInfo>& shard_tensors = model->shards_[i].tensors();
    for (uint32_t t = 0; t < shard_tensors.size(); ++t) {
      model->tensors_.push_back(shard_tensors[t]);
      model->locations_.push_back(Location{i, t});
    }
  }
  for (size_t t = 0; t < model->tensors_.size(); ++t) {
    const auto [it, inserted] = model->tensor_index_.emplace(model->tensors_[t].name, t);
    if (!inserted) {
      const uint32_t earlier = model->locations_[it->second].shard;
      const uint32_t later = model->locations_[t].shard;
      return about_shard(invalid_input(fmt::format("tensor '{}' is also in shard {} ({}): the shards overlap",
                                                   model->tensors_[t].name, earlier + 1,
                                                   model->shards_[earlier].path()))
                             .in_file(model->shards_[later].path()),
                         later, uint32_t(count));
    }
  }
  return model;
}

const TensorInfo* SplitModel::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const SplitModel::Location& SplitModel::location_of(const TensorInfo& tensor) const {
  // Callers pass one of tensors(); a copy is found by its name.
  if (&tensor >= tensors_.data() && &tensor < tensors_.data() + tensors_.size()) {
    return locations_[size_t(&tensor - tensors_.data())];
  }
  const auto it = tensor_index_.find(tensor.name);
  return it == tensor_index_.end() ? locations_.front() : locations_[it->second];
}

Status SplitModel::read_tensor(const TensorInfo& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const {
  if (find_tensor(tensor.name) == nullptr) {
    return usage_error("read of a tensor this model does not have").in_file(path_).in_tensor(tensor.name);
  }
  const Location& where = location_of(tensor);
  const GgufFile& shard = shards_[where.shard];
  return shard.read_tensor(shard.tensors()[where.index], offset_in_tensor, out);
}

const std::string& SplitModel::file_of(const TensorInfo& tensor) const {
  if (find_tensor(tensor.name) == nullptr) return path_;
  return shards_[location_of(tensor).shard].path();
}

std::vector<std::string> SplitModel::files() const {
  std::vector<std::string> paths;
  for (const GgufFile& shard : shards_) paths.push_back(shard.path());
  return paths;
}

uint32_t SplitModel::split_index_of(const TensorInfo& tensor) const {
  if (find_tensor(tensor.name) == nullptr) return 0;
  return location_of(tensor).shard;
}

}  // namespace quant
