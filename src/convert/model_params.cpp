#include "convert/model_params.h"

#include <fmt/format.h>

namespace quant::convert_internal {
namespace {

// An integer hyper-parameter: a scalar, or the first element of a per-layer array. Absent: 0.
Result<int64_t> read_count(const ModelSource& file, const std::string& key) {
  const Value* value = file.find(key);
  if (value == nullptr) return int64_t{0};
  int64_t out = 0;
  if (value->is_array()) {
    if (value->size() == 0) return int64_t{0};
    if (value->element(0).to_int64(&out)) return out;
  } else if (value->to_int64(&out)) {
    return out;
  }
  return Error(invalid_input(fmt::format("metadata key '{}' is {}, expected an integer", key,
                                         value_type_name(value->type()))))
      .in_file(file.path());
}

}  // namespace

Result<ModelParams> read_model_params(const ModelSource& file) {
  ModelParams params;
  if (const Value* arch = file.find("general.architecture"); arch != nullptr) {
    if (arch->type() != ValueType::string) {
      return Error(invalid_input("metadata key 'general.architecture' is not a string")).in_file(file.path());
    }
    params.arch = std::string(arch->as_string());
  }
  const std::string prefix = params.arch + ".";
  QUANT_ASSIGN_OR_RETURN(params.n_layer, read_count(file, prefix + "block_count"));
  QUANT_ASSIGN_OR_RETURN(params.n_head, read_count(file, prefix + "attention.head_count"));
  QUANT_ASSIGN_OR_RETURN(params.n_head_kv, read_count(file, prefix + "attention.head_count_kv"));
  QUANT_ASSIGN_OR_RETURN(params.n_expert, read_count(file, prefix + "expert_count"));
  // llama.cpp reads an absent head_count_kv as "no grouping": as many KV heads as heads.
  if (file.find(prefix + "attention.head_count_kv") == nullptr) params.n_head_kv = params.n_head;
  params.is_70b_class = infers_70b_class(params.arch, params.n_layer, params.n_head, params.n_head_kv);
  return params;
}

std::vector<PlanTensor> plan_tensors(const ModelSource& file) {
  std::vector<PlanTensor> tensors;
  tensors.reserve(file.tensors().size());
  for (const TensorInfo& info : file.tensors()) tensors.push_back(PlanTensor{info.name, info.shape, info.type});
  return tensors;
}

}  // namespace quant::convert_internal
