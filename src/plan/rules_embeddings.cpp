// Mix rules for the output projection and the token embeddings, and the MXFP4_MOE split (facts of
// llama_tensor_get_type_impl in llama.cpp's src/llama-quant.cpp).
#include <fmt/format.h>

#include "plan/mix_rules.h"

namespace quant::plan_detail {

MixChoice output_rule(const MixContext& context, const PlanTensor& tensor, TypeId default_type) {
  // With tied embeddings token_embd doubles as the output projection, so it follows the output's rules and
  // --output-tensor-type.
  if (context.output_tensor_type) {
    return {*context.output_tensor_type,
            fmt::format("--output-tensor-type {} (tied embeddings)", format_of(*context.output_tensor_type).name)};
  }
  const std::string_view what = context.tied_embeddings ? "output (tied token_embd)" : "output";
  const FileType file_type = context.file_type;
  if (file_type == FileType::mxfp4_moe) return {TypeId::q8_0, mix_reason(context, what, TypeId::q8_0)};
  const int64_t row_length = tensor.shape.empty() ? 0 : tensor.shape[0];
  // The row test uses the default type's block, before any fallback.
  if (context.model.arch == "falcon" || row_length % format_of(default_type).block_size != 0) {
    return {TypeId::q8_0, mix_reason(context, fmt::format("{} (falcon, or rows not a multiple of the block)", what),
                                     TypeId::q8_0)};
  }
  if (is_one_of(file_type, {FileType::iq2_xxs, FileType::iq2_xs, FileType::iq3_xxs, FileType::iq1_s,
                            FileType::iq2_s, FileType::iq2_m, FileType::iq1_m})) {
    return {TypeId::q5_K, mix_reason(context, what, TypeId::q5_K)};
  }
  if (default_type != TypeId::q8_0) return {TypeId::q6_K, mix_reason(context, what, TypeId::q6_K)};
  return {default_type, ""};
}

MixChoice token_embedding_rule(const MixContext& context, TypeId default_type) {
  const FileType file_type = context.file_type;
  TypeId type = default_type;
  if (is_one_of(file_type, {FileType::iq2_xxs, FileType::iq2_xs, FileType::iq1_s, FileType::iq1_m})) {
    type = TypeId::q2_K;
  } else if (is_one_of(file_type, {FileType::iq2_s, FileType::iq2_m, FileType::iq3_xxs})) {
    type = TypeId::iq3_s;
  } else if (is_one_of(file_type, {FileType::tq1_0, FileType::tq2_0, FileType::q2_0})) {
    type = TypeId::q4_K;
  }
  if (type == default_type) return {default_type, ""};
  return {type, mix_reason(context, "token_embd", type)};
}

MixChoice mxfp4_moe_rule(const MixContext& context, const PlanTensor& tensor, TensorRole role) {
  // Expert weights are stacked along the third dimension; everything else is dense and gets q8_0. bailingmoe3
  // also has 3-D attention projections (MLA), so there only the feed-forward roles count as experts.
  bool experts = tensor.shape.size() > 2 && tensor.shape[2] > 1;
  if (context.model.arch == "bailingmoe3") {
    experts = experts && (role == TensorRole::ffn_up || role == TensorRole::ffn_gate || role == TensorRole::ffn_down);
  }
  if (experts) return {TypeId::mxfp4, "mix MXFP4_MOE: expert tensor -> mxfp4"};
  return {TypeId::q8_0, "mix MXFP4_MOE: not an expert tensor -> q8_0"};
}

}  // namespace quant::plan_detail
