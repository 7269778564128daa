// The order in which llama-quantize's rule families apply (src/llama-quant.cpp, llama_tensor_get_type_impl):
// output first, then MXFP4_MOE, token embeddings, the very-low-bit family, and finally the per-role rules.
#include "plan/mix_rules.h"

#include <algorithm>

#include <fmt/format.h>

namespace quant::plan_detail {
namespace {

// The layer index the feed-forward rules use. Dense models count ffn tensors as they go; with experts the
// tensors of one layer need not be consecutive, so llama.cpp reads the layer from the name instead.
Result<int> layer_for(const MixContext& context, int running_count, const PlanTensor& tensor) {
  if (context.model.n_expert <= 1) return running_count;
  const std::optional<int> layer = block_number(tensor.name);
  if (!layer) {
    return Error(invalid_input("cannot determine the layer of this feed-forward tensor")).in_tensor(tensor.name);
  }
  if (*layer < 0 || *layer >= context.model.n_layer) {
    return Error(invalid_input(
                     fmt::format("layer {} is outside the model's {} blocks", *layer, context.model.n_layer)))
        .in_tensor(tensor.name);
  }
  return *layer;
}

}  // namespace

bool more_bits_layer(int layer, int layer_count) {
  return layer < layer_count / 8 || layer >= 7 * layer_count / 8 || (layer - layer_count / 8) % 3 == 2;
}

bool is_one_of(FileType type, std::initializer_list<FileType> types) {
  return std::find(types.begin(), types.end(), type) != types.end();
}

std::string mix_reason(const MixContext& context, std::string_view what, TypeId type) {
  const FileTypeInfo* info = find_file_type(context.file_type);
  return fmt::format("mix {}: {} -> {}", info ? info->name : "?", what, format_of(type).name);
}

Result<MixChoice> choose_mix_type(const MixContext& context, MixCounters& counters, const PlanTensor& tensor,
                                  TensorRole role, TypeId default_type) {
  const FileType file_type = context.file_type;
  if (role == TensorRole::output || (context.tied_embeddings && role == TensorRole::token_embedding)) {
    return output_rule(context, tensor, default_type);
  }
  if (file_type == FileType::mxfp4_moe) return mxfp4_moe_rule(context, tensor, role);
  if (role == TensorRole::token_embedding) return token_embedding_rule(context, default_type);
  if (is_one_of(file_type, {FileType::iq2_xxs, FileType::iq2_xs, FileType::iq1_s, FileType::iq2_s,
                            FileType::iq2_m, FileType::iq1_m})) {
    return very_low_bit_rule(context, counters, role, default_type);
  }
  switch (role) {
    case TensorRole::attn_v:
    case TensorRole::attn_qkv:
    case TensorRole::attn_kv_b:
    case TensorRole::attn_k:
    case TensorRole::attn_q:
    case TensorRole::attn_output:
      return attention_rule(context, counters, role, default_type);
    case TensorRole::ffn_down:
    case TensorRole::ffn_gate:
    case TensorRole::ffn_up: {
      int& counter = role == TensorRole::ffn_down ? counters.ffn_down
                     : role == TensorRole::ffn_gate ? counters.ffn_gate
                                                    : counters.ffn_up;
      QUANT_ASSIGN_OR_RETURN(const int layer, layer_for(context, counter, tensor));
      ++counter;
      return feed_forward_rule(context, role, layer, default_type);
    }
    default:
      return MixChoice{default_type, ""};
  }
}

}  // namespace quant::plan_detail
