// make_plan: walks the tensors in output order and applies the precedence of llama-quantize
// (llama_tensor_get_type in llama.cpp's src/llama-quant.cpp): never-quantized tensors, explicit embedding and
// output types, --tensor-type patterns, the mix rules, then the shape fallback; and afterwards the checks
// llama-quantize makes before and while converting (imatrix requirement, requantizing, convertible input).
#include <regex>
#include <unordered_set>

#include <fmt/format.h>

#include "plan/mix_rules.h"
#include "plan/shape_fallback.h"
#include "plan/tensor_roles.h"
#include "quant/plan.h"

namespace quant {
namespace {

using plan_detail::TensorRole;

Status check_tensor_list(std::span<const PlanTensor> tensors) {
  std::unordered_set<std::string_view> names;
  for (const PlanTensor& tensor : tensors) {
    if (tensor.name.empty()) return invalid_input("a tensor has an empty name");
    if (!names.insert(tensor.name).second) {
      return Error(invalid_input("the tensor name appears twice")).in_tensor(tensor.name);
    }
    if (tensor.shape.empty() || tensor.shape.size() > 4) {
      return Error(invalid_input(fmt::format("a tensor has 1 to 4 dimensions, not {}", tensor.shape.size())))
          .in_tensor(tensor.name);
    }
    for (int64_t extent : tensor.shape) {
      if (extent < 0) {
        return Error(invalid_input(fmt::format("negative dimension {}", extent))).in_tensor(tensor.name);
      }
    }
    if (!find_format(tensor.type)) {
      return Error(invalid_input(fmt::format("unknown tensor type id {}", static_cast<uint32_t>(tensor.type))))
          .in_tensor(tensor.name);
    }
  }
  return Status::success();
}

struct CompiledOverride {
  std::regex regex;
  const TensorTypeOverride* source;
};

Result<std::vector<CompiledOverride>> compile_overrides(const std::vector<TensorTypeOverride>& overrides) {
  std::vector<CompiledOverride> compiled;
  for (const TensorTypeOverride& entry : overrides) {
    try {
      compiled.push_back({std::regex(entry.pattern), &entry});
    } catch (const std::regex_error& error) {
      return usage_error(fmt::format("invalid --tensor-type pattern '{}': {}", entry.pattern, error.what()));
    }
  }
  return compiled;
}

// llama-quantize refuses these without importance data; the embeddings and the output never need it.
bool requires_imatrix(std::string_view name, TypeId target, FileType file_type) {
  const TensorRole role = plan_detail::role_of(name);
  if (role == TensorRole::token_embedding || role == TensorRole::output) return false;
  switch (target) {
    case TypeId::iq3_xxs:
    case TypeId::iq2_xxs:
    case TypeId::iq2_xs:
    case TypeId::iq2_s:
    case TypeId::iq1_m:
    case TypeId::iq1_s: return true;
    // The k-quants need none, except q2_K inside a Q2_K_S file.
    case TypeId::q2_K: return file_type == FileType::q2_K_S;
    default: return false;
  }
}

// An explicitly requested type is used as given, without fallback; a row that does not fill its blocks cannot
// be written at all.
Status check_explicit_type_fits(const PlanTensor& tensor, TypeId target) {
  const FormatInfo& format = format_of(target);
  const int64_t row_length = tensor.shape[0];
  if (target != tensor.type && row_length % format.block_size != 0) {
    return Error(impossible(fmt::format("rows of {} values are not a multiple of {}'s block of {}", row_length,
                                        format.name, format.block_size)))
        .in_tensor(tensor.name);
  }
  return Status::success();
}

// The type of one quantizable tensor and why, before the imatrix and input checks.
Result<TensorPlan> choose_type(const plan_detail::MixContext& context, plan_detail::MixCounters& counters,
                               const std::vector<CompiledOverride>& overrides, const PlanOptions& options,
                               const PlanTensor& tensor, TypeId default_type) {
  TensorPlan plan{tensor.name, tensor.shape, tensor.type, default_type, PlanRule::pure_default, "", {}, false};
  const TensorRole role = plan_detail::role_of(tensor.name);
  if (options.types.token_embedding_type && role == TensorRole::token_embedding) {
    plan.target_type = *options.types.token_embedding_type;
    plan.rule = PlanRule::token_embedding_type;
    plan.why = fmt::format("--token-embedding-type {}", format_of(plan.target_type).name);
    QUANT_TRY(check_explicit_type_fits(tensor, plan.target_type));
    return plan;
  }
  if (options.types.output_tensor_type && role == TensorRole::output) {
    plan.target_type = *options.types.output_tensor_type;
    plan.rule = PlanRule::output_tensor_type;
    plan.why = fmt::format("--output-tensor-type {}", format_of(plan.target_type).name);
    QUANT_TRY(check_explicit_type_fits(tensor, plan.target_type));
    return plan;
  }
  if (!format_of(default_type).quantized) {
    // Float file types (F32, F16, BF16) convert every quantizable tensor, with no mixes and no patterns.
    plan.why = fmt::format("default type {}", format_of(default_type).name);
    return plan;
  }
  bool manual = false;
  for (const CompiledOverride& entry : overrides) {
    if (std::regex_search(tensor.name, entry.regex)) {
      plan.target_type = entry.source->type;
      plan.rule = PlanRule::tensor_type_override;
      plan.why = fmt::format("--tensor-type {}={}", entry.source->pattern, format_of(plan.target_type).name);
      manual = true;
      break;
    }
  }
  if (!manual && options.types.pure) {
    plan.why = fmt::format("--pure: default type {}", format_of(default_type).name);
  } else if (!manual) {
    QUANT_ASSIGN_OR_RETURN(plan_detail::MixChoice choice,
                           plan_detail::choose_mix_type(context, counters, tensor, role, default_type));
    plan.target_type = choice.type;
    plan.rule = choice.why.empty() ? PlanRule::mix_default : PlanRule::mix_rule;
    plan.why = choice.why.empty() ? fmt::format("mix default {}", format_of(default_type).name) : choice.why;
  }
  QUANT_ASSIGN_OR_RETURN(const TypeId fitted, plan_detail::fall_back_for_shape(tensor, plan.target_type));
  if (fitted != plan.target_type) {
    plan.why += fmt::format("; rows of {} values do not fill {} blocks, falling back to {}", tensor.shape[0],
                            format_of(plan.target_type).name, format_of(fitted).name);
    plan.fallback_from = plan.target_type;
    plan.target_type = fitted;
  }
  return plan;
}

// What llama-quantize checks when it reads the input tensor to convert it.
Status check_source_convertible(const TensorPlan& plan, bool allow_requantize) {
  if (plan.keeps_type() || plan.source_type == TypeId::f32) return Status::success();
  const FormatInfo& source = format_of(plan.source_type);
  if (source.quantized) {
    if (!allow_requantize) {
      return Error(impossible(fmt::format("requantizing from type {} is disabled (see --allow-requantize)",
                                          source.name)))
          .in_tensor(plan.name);
    }
    if (!source.dequantize) {
      return Error(impossible(fmt::format("type {} has no float form to requantize from", source.name)))
          .in_tensor(plan.name);
    }
    return Status::success();
  }
  if (plan.source_type == TypeId::f16 || plan.source_type == TypeId::bf16) return Status::success();
  return Error(impossible(fmt::format("cannot convert tensor type {} to {}", source.name,
                                      format_of(plan.target_type).name)))
      .in_tensor(plan.name);
}

}  // namespace

bool infers_70b_class(std::string_view arch, int64_t n_layer, int64_t n_head, int64_t n_head_kv) {
  if (arch == "llama") return n_layer == 80 && n_head != n_head_kv;  // equal heads make it the 65B
  if (arch == "deci" || arch == "qwen2") return n_layer == 80;
  if (arch == "jais2") return n_layer == 68;
  return false;
}

Result<Plan> make_plan(const ModelParams& model, std::span<const PlanTensor> tensors, const PlanOptions& options) {
  QUANT_TRY(check_tensor_list(tensors));
  const FileTypeInfo* file_type = find_file_type(options.file_type);
  if (!file_type) {
    return usage_error(fmt::format("unknown file type id {}", static_cast<uint32_t>(options.file_type)));
  }
  // llama.cpp compiles every pattern up front, so a bad one fails even where patterns do not apply.
  QUANT_ASSIGN_OR_RETURN(const std::vector<CompiledOverride> overrides, compile_overrides(options.types.tensor_types));

  int attn_v_count = 0;
  bool has_output = false;
  for (const PlanTensor& tensor : tensors) {
    const TensorRole role = plan_detail::role_of(tensor.name);
    attn_v_count += plan_detail::counts_as_attn_v(role) ? 1 : 0;
    has_output = has_output || role == TensorRole::output;
  }
  const plan_detail::MixContext context{
      model,
      options.file_type,
      options.has_imatrix,
      !has_output,
      options.types.output_tensor_type,
      attn_v_count,
      model.n_head_kv == 0 ? 0 : model.n_head / model.n_head_kv,
  };
  plan_detail::MixCounters counters;

  Plan plan;
  plan.file_type = options.copy_only ? options.input_file_type.value_or(guess_file_type(tensors))
                                     : static_cast<uint32_t>(options.file_type);
  std::vector<size_t> order(tensors.size());
  if (options.input_order) {
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  } else {
    order = plan_detail::output_order(tensors);
  }
  for (size_t index : order) {
    const PlanTensor& tensor = tensors[index];
    const std::optional<std::string_view> excluded =
        options.copy_only ? std::optional<std::string_view>("COPY")
                          : plan_detail::never_quantized_reason(tensor, options.types.leave_output_tensor);
    if (excluded) {
      plan.tensors.push_back(TensorPlan{tensor.name, tensor.shape, tensor.type, tensor.type,
                                        PlanRule::not_quantized, std::string(*excluded), {}, false});
      continue;
    }
    QUANT_ASSIGN_OR_RETURN(TensorPlan entry,
                           choose_type(context, counters, overrides, options, tensor, file_type->default_type));
    entry.requires_imatrix = requires_imatrix(entry.name, entry.target_type, options.file_type);
    plan.fallback_count += entry.fallback_from ? 1 : 0;
    plan.imatrix_required = plan.imatrix_required || entry.requires_imatrix;
    // llama-quantize checks this for every tensor before converting any, even one already in the target type.
    if (entry.requires_imatrix && !options.has_imatrix && !options.dry_run) {
      return Error(impossible(fmt::format("this quantization requires an importance matrix (target type {}); "
                                          "give one with --imatrix",
                                          format_of(entry.target_type).name)))
          .in_tensor(entry.name);
    }
    plan.tensors.push_back(std::move(entry));
  }
  // A dry run never reads tensor data, so llama-quantize does not reach these checks then.
  if (!options.dry_run) {
    for (const TensorPlan& entry : plan.tensors) QUANT_TRY(check_source_convertible(entry, options.types.allow_requantize));
  }
  return plan;
}

}  // namespace quant
