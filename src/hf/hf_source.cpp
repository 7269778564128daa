// The checkpoint as a ModelSource: metadata assembled in the converter's order, tensors converted as read.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "hf/architectures.h"
#include "hf/checkpoint_files.h"
#include "hf/general_metadata.h"
#include "hf/hparams.h"
#include "hf/metadata_list.h"
#include "hf/tensor_plan.h"
#include "hf/vocabulary.h"
#include "quant/half.h"
#include "quant/hf.h"

namespace quant {
namespace hf {
namespace {

// llama_ftype of the converter's outtypes, and the plan's own name for each.
std::optional<std::string_view> outtype_name(uint32_t file_type) {
  switch (file_type) {
    case 0: return "f32";
    case 1: return "f16";
    case 32: return "bf16";
    case 7: return "q8_0";
    case 36: return "tq1_0";
    case 37: return "tq2_0";
    default: return std::nullopt;
  }
}

size_t element_bytes(TypeId type) { return type == TypeId::f32 ? 4 : 2; }

// One checkpoint value as float32, as torch's .to(float32) gives it.
float decode(SafetensorsDtype dtype, const uint8_t* p) {
  switch (dtype) {
    case SafetensorsDtype::f32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case SafetensorsDtype::f16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return fp16_to_fp32(v);
    }
    case SafetensorsDtype::bf16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return bf16_to_fp32(v);
    }
    case SafetensorsDtype::f64: {
      double v;
      std::memcpy(&v, p, 8);
      return static_cast<float>(v);
    }
    default: return 0.0f;  // refused when planned
  }
}

class HfCheckpoint final : public ModelSource {
 public:
  static Result<std::unique_ptr<ModelSource>> open(const std::string& path);

  const std::string& path() const override { return path_; }
  uint64_t input_bytes() const override { return files_->total_bytes(); }
  const std::vector<KeyValue>& metadata() const override { return auto_metadata_; }
  const Value* find(std::string_view key) const override {
    for (const KeyValue& kv : auto_metadata_) {
      if (kv.key == key) return &kv.value;
    }
    return nullptr;
  }
  const std::vector<TensorInfo>& tensors() const override { return auto_tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const override {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &auto_tensors_[it->second];
  }
  Status read_tensor(const TensorInfo& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const override;
  const std::string& file_of(const TensorInfo& tensor) const override {
    const auto it = index_.find(tensor.name);
    if (it == index_.end() || plan_[it->second].source == nullptr) return path_;
    return files_->shard(plan_[it->second].source->shard).path;
  }
  std::vector<std::string> files() const override;
  Result<std::optional<SourcePlan>> source_plan(uint32_t file_type) const override;

 private:
  // The metadata for llama_ftype `file_type` (only general.file_type differs between outtypes).
  std::vector<KeyValue> metadata_for(uint32_t file_type) const;
  TensorInfo info_of(const PlannedTensor& t, TypeId type) const;
  // Writes elements [first, first + count) of `t` as `type` into out.
  Status produce(const PlannedTensor& t, TypeId type, int64_t first, int64_t count, uint8_t* out) const;

  std::string path_;
  std::unique_ptr<CheckpointFiles> files_;
  std::vector<PlannedTensor> plan_;
  std::map<std::string, size_t, std::less<>> index_;
  std::vector<KeyValue> auto_metadata_;
  std::vector<TensorInfo> auto_tensors_;
  uint32_t auto_file_type_ = 1;
};

std::vector<std::string> HfCheckpoint::files() const {
  // The folder's files, and the weight shards in any case, should the listing fail.
  std::vector<std::string> paths = hf_checkpoint_files(path_);
  for (size_t s = 0; s < files_->shard_count(); ++s) {
    if (std::find(paths.begin(), paths.end(), files_->shard(s).path) == paths.end()) paths.push_back(files_->shard(s).path);
  }
  return paths;
}

TensorInfo HfCheckpoint::info_of(const PlannedTensor& t, TypeId type) const {
  TensorInfo info;
  info.name = t.name;
  info.type = type;
  info.shape = t.shape;
  info.size_bytes = uint64_t(t.elements()) * element_bytes(type);
  return info;
}

std::vector<KeyValue> HfCheckpoint::metadata_for(uint32_t file_type) const {
  std::vector<KeyValue> metadata = auto_metadata_;
  for (KeyValue& kv : metadata) {
    if (kv.key == "general.file_type") kv.value = Value::u32(file_type);
  }
  return metadata;
}

Result<std::unique_ptr<ModelSource>> HfCheckpoint::open(const std::string& path) {
  auto source = std::unique_ptr<HfCheckpoint>(new HfCheckpoint());
  source->path_ = path;
  const std::string config_path = path + "/config.json";
  QUANT_ASSIGN_OR_RETURN(std::optional<Json> config, read_json_file(path, "config.json"));
  if (!config) return Error(invalid_input("the checkpoint folder has no config.json")).in_file(path);
  if (!config->is_object()) return Error(invalid_input("config.json is not a JSON object")).in_file(config_path);

  // get_model_architecture: architectures[0], or text_config's.
  std::string arch_name;
  const Json* arches = config->contains("architectures") ? &(*config)["architectures"] : nullptr;
  if (config->contains("text_config") && (*config)["text_config"].is_object() &&
      (*config)["text_config"].contains("architectures")) {
    arches = &(*config)["text_config"]["architectures"];
  }
  if (arches == nullptr || !arches->is_array() || arches->empty() || !(*arches)[0].is_string()) {
    return Error(invalid_input("config.json has no \"architectures\" list naming the model class")).in_file(config_path);
  }
  arch_name = (*arches)[0].get<std::string>();
  const Architecture* arch = find_architecture(arch_name);
  if (arch == nullptr) {
    return Error(impossible(fmt::format("architecture {} is not supported (supported: {})", arch_name,
                                        supported_architecture_names())))
        .in_file(config_path);
  }
  QUANT_ASSIGN_OR_RETURN(const HParams hparams, load_hparams(*config, config_path));
  if (arch->qwen_pooling) {
    QUANT_ASSIGN_OR_RETURN(std::optional<Json> modules, read_json_file(path, "modules.json"));
    if (modules && modules->is_array()) {
      for (const Json& module : *modules) {
        if (module.is_object() && module.contains("type") && module["type"].is_string() &&
            module["type"].get<std::string>().ends_with("Pooling")) {
          return Error(impossible("sentence-transformers pooling models are not converted")).in_file(path);
        }
      }
    }
  }
  if (arch->qwen3_reranker) {
    QUANT_ASSIGN_OR_RETURN(std::optional<std::string> readme, read_small_file(path, "README.md"));
    // Qwen3Model._is_qwen3_reranker: a README heading, or the folder, _name_or_path, model_type or class name.
    auto text_of = [&](const char* key) -> std::string {
      const auto it = hparams.config.find(key);
      return it != hparams.config.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    auto lower = [](std::string text) {
      for (char& c : text) c = char(std::tolower(static_cast<unsigned char>(c)));
      return text;
    };
    const std::string card = lower(readme.value_or(""));
    bool reranker = card.find("# qwen3-reranker") != std::string::npos ||
                    card.find("# qwen3-vl-reranker") != std::string::npos;
    for (const std::string& hint : {checkpoint_folder_name(path), text_of("_name_or_path"), text_of("model_type"),
                                    arch_name}) {
      const std::string h = lower(hint);
      reranker = reranker || h.find("qwen3-reranker") != std::string::npos ||
                 h.find("qwen3-vl-reranker") != std::string::npos;
    }
    if (reranker) {
      return Error(impossible("Qwen3 reranker models are not converted")).in_file(path);
    }
  }
  if (config->contains("quantization_config") && truthy((*config)["quantization_config"])) {
    return Error(impossible("pre-quantized checkpoints (quantization_config) are not converted")).in_file(config_path);
  }

  QUANT_ASSIGN_OR_RETURN(source->files_, CheckpointFiles::open(path));
  QUANT_ASSIGN_OR_RETURN(TensorPlanResult planned, plan_tensors(*arch, hparams, *source->files_));
  source->plan_ = std::move(planned.tensors);
  source->auto_file_type_ = planned.auto_file_type;
  int64_t total_params = 0;
  for (size_t i = 0; i < source->plan_.size(); ++i) {
    const PlannedTensor& t = source->plan_[i];
    if (!source->index_.emplace(t.name, i).second) {
      return Error(invalid_input("two checkpoint tensors map to this GGUF name")).in_file(path).in_tensor(t.name);
    }
    total_params += t.elements();
    source->auto_tensors_.push_back(source->info_of(t, t.target_type(source->auto_file_type_)));
  }

  // The converter's key order: the writer's architecture, keys added while preparing tensors, general.type,
  // the general.* keys, the model's parameters, the quantization version, then the vocabulary.
  MetadataList metadata;
  metadata.set("general.architecture", Value::string(arch->gguf_name));
  if (arch->phi3_rope_factors && source->find_tensor("rope_factors_long.weight") != nullptr) {
    QUANT_TRY(add_phi3_attention_factor(hparams, metadata));
  }
  metadata.set("general.type", Value::string("model"));
  QUANT_TRY(add_general_metadata(path, checkpoint_folder_name(path), hparams.config, total_params, metadata));
  QUANT_TRY(add_model_parameters(*arch, hparams, source->auto_file_type_, metadata));
  metadata.set("general.quantization_version", Value::u32(2));
  QUANT_TRY(add_vocabulary(*arch, path, hparams, metadata));
  source->auto_metadata_ = std::move(metadata.items());
  return std::unique_ptr<ModelSource>(std::move(source));
}

Result<std::optional<SourcePlan>> HfCheckpoint::source_plan(uint32_t file_type) const {
  if (!outtype_name(file_type)) return std::optional<SourcePlan>();
  SourcePlan plan;
  plan.metadata = metadata_for(file_type);
  for (const PlannedTensor& t : plan_) {
    SourcePlanTensor entry;
    entry.source = info_of(t, t.source == nullptr ? TypeId::f32 : t.data_type);
    entry.target = t.target_type(file_type);
    entry.why = fmt::format("convert_hf_to_gguf.py --outtype {}", *outtype_name(file_type));
    plan.tensors.push_back(std::move(entry));
  }
  return std::optional<SourcePlan>(std::move(plan));
}

Status HfCheckpoint::read_tensor(const TensorInfo& tensor, uint64_t offset, std::span<uint8_t> out) const {
  const auto it = index_.find(tensor.name);
  if (it == index_.end()) return Error(invalid_input("no such tensor in the checkpoint")).in_file(path_).in_tensor(tensor.name);
  const PlannedTensor& t = plan_[it->second];
  if (tensor.type != TypeId::f32 && tensor.type != TypeId::f16 && tensor.type != TypeId::bf16) {
    return Error(impossible("checkpoint tensors are read as f32, f16 or bf16 only")).in_file(path_).in_tensor(tensor.name);
  }
  const uint64_t size = element_bytes(tensor.type);
  const uint64_t total = uint64_t(t.elements()) * size;
  if (offset > total || out.size() > total - offset) {
    return Error(invalid_input(fmt::format("read of {} bytes at {} runs past the tensor's {} bytes", out.size(),
                                           offset, total)))
        .in_file(path_)
        .in_tensor(tensor.name);
  }
  const int64_t first = int64_t(offset / size);
  const int64_t last = int64_t((offset + out.size() + size - 1) / size);
  if (offset % size == 0 && out.size() % size == 0) return produce(t, tensor.type, first, last - first, out.data());
  std::vector<uint8_t> whole(size_t(last - first) * size);
  QUANT_TRY(produce(t, tensor.type, first, last - first, whole.data()));
  std::memcpy(out.data(), whole.data() + (offset - uint64_t(first) * size), out.size());
  return Status::success();
}

Status HfCheckpoint::produce(const PlannedTensor& t, TypeId type, int64_t first, int64_t count, uint8_t* out) const {
  if (count == 0) return Status::success();
  const size_t out_size = element_bytes(type);
  auto store = [&](int64_t i, float value) {
    uint8_t* p = out + size_t(i) * out_size;
    if (type == TypeId::f32) {
      std::memcpy(p, &value, 4);
    } else {
      const uint16_t half = type == TypeId::f16 ? fp32_to_fp16(value) : fp32_to_bf16(value);
      std::memcpy(p, &half, 2);
    }
  };
  if (t.source == nullptr) {
    for (int64_t i = 0; i < count; ++i) store(i, t.generated[size_t(first + i)]);
    return Status::success();
  }
  const SafetensorsDtype dtype = t.source->entry->dtype;
  const size_t in_size = dtype_info(dtype).bits / 8;
  const int64_t unit_elements = std::max<int64_t>(t.unit_elements, 1);
  // The output units touched, and the span of source units they come from (a permutation stays within heads).
  const int64_t unit_begin = first / unit_elements;
  const int64_t unit_end = (first + count - 1) / unit_elements + 1;
  int64_t source_lo = INT64_MAX, source_hi = -1;
  for (int64_t u = unit_begin; u < unit_end; ++u) {
    source_lo = std::min(source_lo, t.source_unit(u));
    source_hi = std::max(source_hi, t.source_unit(u));
  }
  std::vector<uint8_t> raw(size_t(source_hi - source_lo + 1) * size_t(unit_elements) * in_size);
  if (t.transform != Transform::permute_heads) {
    // No reordering: read exactly the requested elements.
    raw.resize(size_t(count) * in_size);
    QUANT_TRY(files_->read(*t.source, uint64_t(first) * in_size, raw));
  } else {
    QUANT_TRY(files_->read(*t.source, uint64_t(source_lo) * uint64_t(unit_elements) * in_size, raw));
  }
  const bool f16_identity = dtype == SafetensorsDtype::f16 && type == TypeId::f16 && t.transform != Transform::plus_one;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t e = first + i;
    size_t at;
    if (t.transform == Transform::permute_heads) {
      const int64_t unit = e / unit_elements;
      at = size_t((t.source_unit(unit) - source_lo) * unit_elements + e % unit_elements) * in_size;
    } else {
      at = size_t(i) * in_size;
    }
    if (f16_identity) {
      std::memcpy(out + size_t(i) * 2, raw.data() + at, 2);
      continue;
    }
    float value = decode(dtype, raw.data() + at);
    if (t.transform == Transform::plus_one) {
      // torch adds in the tensor's dtype: an f16 tensor stays f16 (rounded once from the exact float sum).
      value = dtype == SafetensorsDtype::f16 ? fp16_to_fp32(fp32_to_fp16(value + 1.0f)) : value + 1.0f;
    }
    store(i, value);
  }
  return Status::success();
}

}  // namespace
}  // namespace hf

bool is_checkpoint_directory(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string checkpoint_folder_name(const std::string& path) {
  // Python's Path(path).name: "." components and trailing separators do not count.
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!part.empty() && part != ".") parts.push_back(part);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return parts.empty() ? std::string() : parts.back();
}

std::vector<std::string> hf_checkpoint_files(const std::string& path) {
  std::vector<std::string> files;
  std::error_code error;
  for (std::filesystem::directory_iterator it(path, error), end; !error && it != end; it.increment(error)) {
    std::error_code status_error;
    if (std::filesystem::is_regular_file(it->path(), status_error)) files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

Result<std::unique_ptr<ModelSource>> open_hf_checkpoint(const std::string& path) { return hf::HfCheckpoint::open(path); }

}  // namespace quant
