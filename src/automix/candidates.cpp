// Which types a tensor may get in an automatic mix.
#include <algorithm>

#include "plan/tensor_roles.h"
#include "quant/automix.h"

namespace quant {
namespace {

// Types ggml keeps for activations or integers: llama.cpp's CPU backend has no matrix product with them as weights
// (q8_1, q8_K are its dot-product partners), or they are not model weights at all.
bool is_weight_type(TypeId type) {
  switch (type) {
    case TypeId::q8_1:
    case TypeId::q8_K:
    case TypeId::i8:
    case TypeId::i16:
    case TypeId::i32:
    case TypeId::i64:
    case TypeId::f64: return false;
    default: return true;
  }
}

// llama-quantize refuses these without importance data outside the token embeddings and the output (its
// tensor_requires_imatrix); ggml itself refuses iq1_s, iq2_xxs, iq2_xs and iq1_m everywhere (FormatInfo).
bool needs_importance(const PlanTensor& tensor, const FormatInfo& format) {
  if (format.requires_importance) return true;
  const plan_detail::TensorRole role = plan_detail::role_of(tensor.name);
  if (role == plan_detail::TensorRole::token_embedding || role == plan_detail::TensorRole::output) return false;
  switch (format.id) {
    case TypeId::iq3_xxs:
    case TypeId::iq2_s: return true;
    default: return false;
  }
}

}  // namespace

std::vector<TypeId> candidate_types(const PlanTensor& tensor, bool has_importance) {
  std::vector<TypeId> types;
  const FormatInfo* source = find_format(tensor.type);
  if (source == nullptr || tensor.shape.empty()) return types;
  const int64_t row_length = tensor.shape[0];
  for (const FormatInfo& format : all_formats()) {
    if (format.id == tensor.type) {
      types.push_back(format.id);  // keeping the source type is always possible and exact
      continue;
    }
    if (!is_weight_type(format.id) || format.quantize == nullptr) continue;
    if (row_length <= 0 || row_length % format.block_size != 0) continue;
    if (format.bits_per_weight() > source->bits_per_weight()) continue;
    if (needs_importance(tensor, format) && !has_importance) continue;
    types.push_back(format.id);
  }
  std::sort(types.begin(), types.end(), [](TypeId a, TypeId b) {
    const double bits_a = format_of(a).bits_per_weight(), bits_b = format_of(b).bits_per_weight();
    return bits_a != bits_b ? bits_a < bits_b : uint32_t(a) < uint32_t(b);
  });
  return types;
}

}  // namespace quant
