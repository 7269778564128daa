// The converter's tensor list (conversion/base.py prepare_tensors and each model's modify_tensors and
// generate_extra_tensors): generated tensors first, then the checkpoint's in index order, filtered and renamed.
#include "hf/tensor_plan.h"
#include "hf/strings.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <set>

namespace quant::hf {
namespace {

// TextModel.filter_tensors: multimodal parts are not converted.
bool is_multimodal(std::string_view name) {
  for (std::string_view prefix : {"mlp", "vit.", "vpm.", "siglip2.", "conformer.", "merger.", "resampler.",
                                  "sound_encoder.", "sound_projection.", "speech_embeddings."}) {
    if (name.starts_with(prefix)) return true;
  }
  for (std::string_view part : {"visual.", "vision.", "audio.", "talker.", "vision_", "audio_", "token2wav.",
                                "code2wav.", "projector.", "pre_mm_projector_norm", "image_newline", "view_seperator",
                                "patch_embed", "patch_embedding", "patch_merger.", "patch_merge_mlp.",
                                "model.connector."}) {
    if (name.find(part) != std::string_view::npos) return true;
  }
  return false;
}

Result<int64_t> positive_count(const HParams& h, std::initializer_list<std::string_view> keys) {
  const Json* value = h.find(keys);
  if (value == nullptr || !value->is_number_unsigned() || value->get<uint64_t>() == 0 ||
      value->get<uint64_t>() > (1u << 20)) {
    return Error(invalid_input(fmt::format("config.json needs '{}' as a positive integer", *keys.begin())))
        .in_file(h.path);
  }
  return int64_t(value->get<uint64_t>());
}

PlannedTensor generated_tensor(std::string name, std::vector<float> values) {
  PlannedTensor t;
  t.name = std::move(name);
  t.shape = {int64_t(values.size())};
  t.units = int64_t(values.size());
  t.generated = std::move(values);
  t.keeps_f32 = true;
  return t;
}

// Phi-3 long-context rope factors (Phi3MiniModel.generate_extra_tensors).
Status add_phi3_factors(const HParams& h, std::vector<PlannedTensor>& out) {
  const Json& rope = h.rope;
  const auto long_it = rope.find("long_factor");
  if (long_it == rope.end() || !truthy(*long_it)) return Status::success();
  const auto short_it = rope.find("short_factor");
  if (short_it == rope.end() || !long_it->is_array() || !short_it->is_array()) {
    return Error(invalid_input("rope scaling needs long_factor and short_factor lists")).in_file(h.path);
  }
  auto to_floats = [&](const Json& list) -> Result<std::vector<float>> {
    std::vector<float> values;
    for (const Json& v : list) {
      QUANT_ASSIGN_OR_RETURN(const double d, number_value(v, "a rope factor"));
      values.push_back(float(d));
    }
    return values;
  };
  QUANT_ASSIGN_OR_RETURN(std::vector<float> long_factors, to_floats(*long_it));
  QUANT_ASSIGN_OR_RETURN(std::vector<float> short_factors, to_floats(*short_it));
  if (long_factors.size() != short_factors.size() || long_factors.empty()) {
    return Error(invalid_input("long_factor and short_factor differ in length")).in_file(h.path);
  }
  out.push_back(generated_tensor("rope_factors_long.weight", std::move(long_factors)));
  out.push_back(generated_tensor("rope_factors_short.weight", std::move(short_factors)));
  return Status::success();
}

// The shapes llama.cpp will expect, checked against hidden_size where the role fixes one dimension: a tensor
// that contradicts config.json would give a file llama.cpp refuses (or misreads), so it is refused here.
Status check_shape(const PlannedTensor& t, const HParams& h, const std::string& file, const std::string& name) {
  const Json* hidden_json = h.find({"hidden_size", "n_embd", "dim"});
  if (hidden_json == nullptr || !hidden_json->is_number_unsigned()) return Status::success();
  const int64_t hidden = int64_t(hidden_json->get<uint64_t>());
  // The role: the name without "blk.N." (block tensors) or the whole name.
  std::string_view role(t.name);
  if (role.starts_with("blk.")) role = role.substr(std::min(role.size(), role.find('.', 4) + 1));
  const auto role_is = [&](std::initializer_list<std::string_view> roles) {
    for (std::string_view r : roles) {
      if (role == r) return true;
    }
    return false;
  };
  std::string expected;
  if (role_is({"attn_norm.weight", "ffn_norm.weight", "output_norm.weight", "post_attention_norm.weight",
               "post_ffw_norm.weight"})) {
    if (t.shape.size() != 1 || t.shape[0] != hidden) expected = fmt::format("[{}]", hidden);
  } else if (role_is({"token_embd.weight", "output.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                      "attn_qkv.weight", "ffn_gate.weight", "ffn_up.weight"})) {
    if (t.shape.size() != 2 || t.shape[0] != hidden) expected = fmt::format("[rows, {}]", hidden);
  } else if (role_is({"attn_output.weight", "ffn_down.weight"})) {
    if (t.shape.size() != 2 || t.shape[1] != hidden) expected = fmt::format("[{}, columns]", hidden);
  }
  if (expected.empty()) return Status::success();
  std::vector<int64_t> stored(t.shape.rbegin(), t.shape.rend());
  return Error(invalid_input(fmt::format("shape [{}] contradicts config.json's hidden_size {} (expected {})",
                                         fmt::join(stored, ", "), hidden, expected)))
      .in_file(file)
      .in_tensor(name);
}

}  // namespace

int64_t PlannedTensor::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

TypeId PlannedTensor::target_type(uint32_t file_type) const {
  if (keeps_f32) return TypeId::f32;
  const bool ternary = file_type == 36 || file_type == 37;
  if (ternary && embedding_or_output) return TypeId::f16;
  TypeId type = TypeId::f16;
  int64_t block = 1;
  switch (file_type) {
    case 0: type = TypeId::f32; break;
    case 32: type = TypeId::bf16; break;
    case 7: type = TypeId::q8_0; block = 32; break;
    case 36: type = TypeId::tq1_0; block = 256; break;
    case 37: type = TypeId::tq2_0; block = 256; break;
    default: type = TypeId::f16; break;
  }
  // gguf-py raises QuantError when rows do not fill the blocks; the converter falls back to f16.
  if (shape[0] % block != 0) return TypeId::f16;
  return type;
}

int64_t PlannedTensor::source_unit(int64_t unit) const {
  if (transform != Transform::permute_heads) return unit;
  // reshape(n_head, 2, units / n_head / 2, ...).swapaxes(1, 2): output (h, i, j) holds input (h, j, i).
  const int64_t per_head = units / permute_heads;
  const int64_t half = per_head / 2;
  const int64_t h = unit / per_head;
  const int64_t within = unit % per_head;
  const int64_t i = within / 2;
  const int64_t j = within % 2;
  return h * per_head + j * half + i;
}

Result<TensorPlanResult> plan_tensors(const Architecture& arch, const HParams& h, const CheckpointFiles& files) {
  TensorPlanResult result;
  std::vector<PlannedTensor>& out = result.tensors;
  if (arch.llama_parameters) {
    QUANT_ASSIGN_OR_RETURN(std::optional<std::vector<float>> factors, llama3_rope_factors(h));
    if (factors) out.push_back(generated_tensor("rope_freqs.weight", std::move(*factors)));
  }
  if (arch.phi3_rope_factors) QUANT_TRY(add_phi3_factors(h, out));

  int64_t n_head = 0, n_head_kv = 0;
  if (arch.permute_qk) {
    QUANT_ASSIGN_OR_RETURN(n_head, positive_count(h, {"n_heads", "num_attention_heads"}));
    QUANT_ASSIGN_OR_RETURN(n_head_kv, positive_count(h, {"n_kv_heads", "num_key_value_heads"}));
  }
  bool auto_decided = false;
  std::set<std::string> names;
  for (const CheckpointTensor& tensor : files.tensors()) {
    // filter_tensors: LlamaModel, then TextModel, then ModelBase.
    std::string name = tensor.name;
    if (arch.strips_text_model) name = replace_all(name, "text_model.", "");
    if (is_multimodal(name)) continue;
    if (name.ends_with("e_score_correction_bias")) name = replace_all(name, "e_score_correction_bias", "e_score_correction.bias");
    name = replace_all(name, "language_model.", "");
    if (arch.skip_lm_head && name == "lm_head.weight") continue;
    const std::string& file = files.shard(tensor.shard).path;
    if (!names.insert(name).second) {
      return Error(invalid_input("two checkpoint tensors have this name once prefixes are removed"))
          .in_file(file).in_tensor(tensor.name);
    }
    const SafetensorsTensor& entry = *tensor.entry;
    const SafetensorsDtype dtype = entry.dtype;
    const bool float_like = dtype == SafetensorsDtype::f32 || dtype == SafetensorsDtype::f16 ||
                            dtype == SafetensorsDtype::bf16 || dtype == SafetensorsDtype::f64;
    if (!float_like) {
      return Error(impossible(fmt::format("dtype {} is not converted (F32, F16, BF16 and F64 are)",
                                          dtype_info(dtype).name)))
          .in_file(file).in_tensor(tensor.name);
    }
    // The --outtype auto heuristic: the first tensor of two or more dimensions that is bf16 or f16 decides.
    if (!auto_decided && entry.shape.size() >= 2) {
      if (dtype == SafetensorsDtype::bf16) {
        result.auto_file_type = 32;
        auto_decided = true;
      } else if (dtype == SafetensorsDtype::f16) {
        result.auto_file_type = 1;
        auto_decided = true;
      }
    }
    // Skipped by prepare_tensors, after the heuristic saw them.
    if (name.ends_with(".attention.masked_bias") || name.ends_with(".attention.bias") ||
        name.ends_with(".rotary_emb.inv_freq")) {
      continue;
    }
    PlannedTensor t;
    t.source = &tensor;
    t.name = map_tensor_name(arch, name, h.block_count);
    if (t.name.empty()) {
      return Error(impossible(fmt::format("no {} tensor is called this; cannot map it", arch.hf_name)))
          .in_file(file).in_tensor(tensor.name);
    }
    if (entry.shape.empty() || entry.shape.size() > 4) {
      return Error(impossible(fmt::format("tensor of {} dimensions cannot be written to GGUF", entry.shape.size())))
          .in_file(file).in_tensor(tensor.name);
    }
    for (auto it = entry.shape.rbegin(); it != entry.shape.rend(); ++it) t.shape.push_back(int64_t(*it));
    t.units = int64_t(entry.shape[0]);
    t.unit_elements = entry.shape[0] == 0 ? 0 : int64_t(entry.element_count / entry.shape[0]);
    t.data_type = dtype == SafetensorsDtype::f16 ? TypeId::f16 : TypeId::f32;
    if (arch.permute_qk) {
      const bool q = name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias");
      const bool k = name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias");
      if (q || k) {
        const int64_t heads = k && n_head != n_head_kv ? n_head_kv : n_head;
        if (t.units % (heads * 2) != 0) {
          return Error(invalid_input(fmt::format("{} rows cannot be split into {} heads of two halves", t.units, heads)))
              .in_file(file).in_tensor(tensor.name);
        }
        t.transform = Transform::permute_heads;
        t.permute_heads = heads;
      }
    }
    if (arch.norm_plus_one && name.ends_with("norm.weight")) t.transform = Transform::plus_one;
    QUANT_TRY(check_shape(t, h, file, tensor.name));
    t.keeps_f32 = entry.shape.size() <= 1 || t.name.ends_with("_norm.weight") || !t.name.ends_with(".weight");
    t.embedding_or_output = t.name == "token_embd.weight" || t.name == "output.weight";
    out.push_back(std::move(t));
  }
  if (out.empty()) return Error(invalid_input("the checkpoint holds no tensors to convert")).in_file(h.path);
  return result;
}

}  // namespace quant::hf
