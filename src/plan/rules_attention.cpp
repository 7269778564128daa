// Mix rules for the attention projections, and for the very-low-bit i-quant family that has its own (facts of
// llama_tensor_get_type_impl in llama.cpp's src/llama-quant.cpp).
#include <fmt/format.h>

#include "plan/mix_rules.h"

namespace quant::plan_detail {
namespace {

// attn_v is the tensor llama.cpp protects most: with grouped-query attention it is small and shared by many heads.
TypeId attn_v_type(const MixContext& context, int attn_v_index, TypeId default_type) {
  const FileType f = context.file_type;
  const bool grouped = context.gqa >= 4;
  switch (f) {
    case FileType::q2_K: return grouped ? TypeId::q4_K : TypeId::q3_K;
    case FileType::q2_K_S: return grouped ? TypeId::q4_K : default_type;
    case FileType::iq3_xxs:
      return grouped ? TypeId::q4_K : !context.has_imatrix ? TypeId::iq3_s : TypeId::iq3_xxs;
    case FileType::iq3_xs:
    case FileType::iq3_s: return grouped ? TypeId::q4_K : default_type;
    case FileType::iq3_m: return TypeId::q4_K;
    case FileType::q3_K_M: return attn_v_index < 2 ? TypeId::q5_K : TypeId::q4_K;
    case FileType::q3_K_L: return TypeId::q5_K;
    case FileType::iq4_nl:
    case FileType::iq4_xs: return grouped ? TypeId::q5_K : default_type;
    case FileType::q4_K_M:
    case FileType::q5_K_M:
      return more_bits_layer(attn_v_index, context.attn_v_count) ? TypeId::q6_K : default_type;
    case FileType::q4_K_S: return attn_v_index < 4 ? TypeId::q5_K : default_type;
    default: return default_type;
  }
}

}  // namespace

MixChoice attention_rule(const MixContext& context, MixCounters& counters, TensorRole role, TypeId default_type) {
  const FileType f = context.file_type;
  const int64_t n_expert = context.model.n_expert;
  if (counts_as_attn_v(role)) {
    const int index = counters.attn_v++;
    TypeId type = attn_v_type(context, index, default_type);
    std::string what = fmt::format("{} #{} of {}", role_name(role), index, context.attn_v_count);
    if (context.model.is_70b_class && (type == TypeId::q3_K || type == TypeId::q4_K)) {
      // In the 70B models 8 heads share each attn_v, so more bits there cost little.
      type = TypeId::q5_K;
      what += " (70B class)";
    }
    if (n_expert == 8) {
      type = TypeId::q8_0;
      what += " (8 experts)";
    }
    if (type == default_type) return {default_type, ""};
    return {type, mix_reason(context, what, type)};
  }
  TypeId type = default_type;
  if (role == TensorRole::attn_k) {
    if (n_expert == 8) type = TypeId::q8_0;
    else if (f == FileType::iq3_xs) type = TypeId::iq3_xxs;
    else if (f == FileType::iq3_xxs) type = TypeId::iq2_s;
  } else if (role == TensorRole::attn_q) {
    if (f == FileType::iq3_xs) type = TypeId::iq3_xxs;
    else if (f == FileType::iq3_xxs) type = TypeId::iq2_s;
  } else if (role == TensorRole::attn_output) {
    if (context.model.arch == "falcon") {
      if (f == FileType::q3_K_L) type = TypeId::q4_K;
    } else if (n_expert == 8) {
      if (is_one_of(f, {FileType::q2_K, FileType::iq3_xs, FileType::iq3_xxs, FileType::q3_K_S, FileType::q3_K_M,
                        FileType::iq4_nl, FileType::q4_K_S, FileType::q4_K_M, FileType::iq3_s, FileType::iq3_m,
                        FileType::iq4_xs})) {
        type = TypeId::q5_K;
      }
    } else if (f == FileType::q2_K) {
      type = TypeId::q3_K;
    } else if (f == FileType::iq3_xxs) {
      type = TypeId::iq3_s;
    } else if (f == FileType::q3_K_M || f == FileType::iq3_m) {
      type = TypeId::q4_K;
    } else if (f == FileType::q3_K_L) {
      type = TypeId::q5_K;
    }
  }
  if (type == default_type) return {default_type, ""};
  return {type, mix_reason(context, role_name(role), type)};
}

MixChoice very_low_bit_rule(const MixContext& context, MixCounters& counters, TensorRole role,
                            TypeId default_type) {
  const FileType f = context.file_type;
  const bool two_bit_s_or_m = f == FileType::iq2_s || f == FileType::iq2_m;
  const int64_t n_expert = context.model.n_expert;
  TypeId type = default_type;
  std::string what{role_name(role)};
  if (counts_as_attn_v(role)) {
    ++counters.attn_v;
    if (context.gqa >= 4 || n_expert >= 4) type = TypeId::q4_K;
    else type = two_bit_s_or_m ? TypeId::iq3_s : TypeId::q2_K;
  } else if (n_expert == 8 && role == TensorRole::attn_k) {
    type = TypeId::q4_K;
  } else if (role == TensorRole::ffn_down) {
    // This family counts ffn_down tensors even with experts (where a layer may hold several of them).
    const int index = counters.ffn_down++;
    if (index < static_cast<int>(context.model.n_layer) / 8) {
      type = two_bit_s_or_m ? TypeId::iq3_s : TypeId::q2_K;
      what = fmt::format("ffn_down #{} (first eighth)", index);
    }
  } else if (role == TensorRole::attn_output) {
    if (n_expert == 8) type = TypeId::q5_K;
    else if (f == FileType::iq1_s || f == FileType::iq1_m) type = TypeId::iq2_xxs;
    else if (two_bit_s_or_m) type = TypeId::iq3_s;
  }
  if (type == default_type) return {default_type, ""};
  return {type, mix_reason(context, what, type)};
}

}  // namespace quant::plan_detail
