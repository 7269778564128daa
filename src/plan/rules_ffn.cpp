// Mix rules for the feed-forward projections (facts of llama_tensor_get_type_impl in llama.cpp's
// src/llama-quant.cpp). Layers are counted 0..n_layer-1; "more bits" layers are the first and last eighth and
// every third layer between them.
#include <fmt/format.h>

#include "plan/mix_rules.h"

namespace quant::plan_detail {
namespace {

TypeId ffn_down_type(const MixContext& context, int layer, int n, TypeId default_type) {
  const bool falcon = context.model.arch == "falcon";
  const bool more_bits = more_bits_layer(layer, n);
  const bool first_eighth = layer < n / 8;
  const bool first_sixteenth = layer < n / 16;
  switch (context.file_type) {
    case FileType::q2_K: return TypeId::q3_K;
    case FileType::q2_K_S: return first_eighth ? TypeId::q4_K : default_type;
    case FileType::iq3_xxs:
      if (context.has_imatrix) return default_type;
      return first_eighth ? TypeId::q4_K : TypeId::q3_K;
    case FileType::q3_K_M:
      if (first_sixteenth) return TypeId::q5_K;
      return !falcon || more_bits ? TypeId::q4_K : TypeId::q3_K;
    case FileType::iq3_m:
      return first_eighth || (context.model.n_expert == 8 && more_bits) ? TypeId::q4_K : default_type;
    case FileType::q3_K_L: return falcon ? TypeId::q4_K : TypeId::q5_K;
    case FileType::q4_K_M:
      if (falcon) return first_sixteenth ? TypeId::q6_K : more_bits ? TypeId::q5_K : TypeId::q4_K;
      return more_bits ? TypeId::q6_K : default_type;
    case FileType::iq4_nl:
    case FileType::iq4_xs:
      return first_eighth && !context.has_imatrix ? TypeId::q5_K : default_type;
    case FileType::q5_K_M: return more_bits ? TypeId::q6_K : default_type;
    case FileType::q4_K_S: return !falcon && first_eighth ? TypeId::q5_K : default_type;
    // Only with an imatrix, so that the plain Q4_0/Q5_0 files stay what they always were.
    case FileType::q4_0: return context.has_imatrix && first_eighth ? TypeId::q4_1 : default_type;
    case FileType::q5_0: return context.has_imatrix && first_eighth ? TypeId::q5_1 : default_type;
    default: return default_type;
  }
}

}  // namespace

MixChoice feed_forward_rule(const MixContext& context, TensorRole role, int layer, TypeId default_type) {
  const int n = static_cast<int>(context.model.n_layer);
  TypeId type = default_type;
  if (role == TensorRole::ffn_down) {
    type = ffn_down_type(context, layer, n, default_type);
  } else if (context.file_type == FileType::iq3_xs && layer >= n / 8 && layer < 7 * n / 8) {
    // ffn_gate and ffn_up: the middle layers of IQ3_XS drop to iq3_xxs.
    type = TypeId::iq3_xxs;
  }
  if (type == default_type) return {default_type, ""};
  const std::string what = fmt::format("{} in layer {} of {}{}", role_name(role), layer, n,
                                       more_bits_layer(layer, n) ? " (a more-bits layer)" : "");
  return {type, mix_reason(context, what, type)};
}

}  // namespace quant::plan_detail
