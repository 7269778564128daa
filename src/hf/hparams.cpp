// The {arch}.* keys, as convert_hf_to_gguf.py (34af94c) writes them: TextModel.set_gguf_parameters
// (conversion/base.py) with LlamaModel's additions (conversion/llama.py), and the Gemma, Gemma 2 and Phi-3 lists
// (conversion/gemma.py, phi.py). Every key is added in the converter's order, with the converter's value type.
#include "hf/hparams.h"

#include <fmt/format.h>

#include <cmath>
#include <numbers>

namespace quant::hf {
namespace {

// One parameter written by add_uint32 / add_float32 / the int-or-list writers, from the first present config key.
enum class Kind { u32, f32, u32_or_array };

struct Writer {
  const HParams& hparams;
  MetadataList& out;
  std::string prefix;  // "llama."

  // Writes `key` from the first of `keys` present with a non-null value; absent or null: nothing (optional) or
  // an error naming the keys (required).
  Status from(std::string_view key, std::initializer_list<std::string_view> keys, Kind kind, bool required) {
    const Json* value = hparams.find(keys);
    if (value == nullptr || value->is_null()) {
      if (!required) return Status::success();
      return Error(invalid_input(fmt::format("config.json lacks '{}', which {} needs", *keys.begin(), key)))
          .in_file(hparams.path);
    }
    return put(key, *value, kind, hparams.where(*keys.begin()));
  }
  Status put(std::string_view key, const Json& value, Kind kind, const std::string& what) {
    Result<Value> converted = kind == Kind::u32   ? u32_value(value, what)
                              : kind == Kind::f32 ? f32_value(value, what)
                                                  : u32_or_array_value(value, what);
    if (!converted) return std::move(converted).error().in_file(hparams.path);
    out.set(prefix + std::string(key), std::move(converted).value());
    return Status::success();
  }
};

Status add_rope_scaling(Writer& w, const Json& rope) {
  const auto type_it = rope.find("rope_type");
  if (type_it == rope.end() || type_it->is_null()) return Status::success();
  if (!type_it->is_string()) {
    return Error(impossible(fmt::format("rope_type {} is not a string", type_it->dump()))).in_file(w.hparams.path);
  }
  const std::string type = type_it->get<std::string>();
  const Json* factor = rope.contains("factor") && !rope["factor"].is_null() ? &rope["factor"] : nullptr;
  if ((type == "linear" || type == "yarn") && factor != nullptr) {
    w.out.set(w.prefix + "rope.scaling.type", Value::string(type));
    QUANT_TRY(w.put("rope.scaling.factor", *factor, Kind::f32, w.hparams.where("factor")));
    if (type == "yarn") {
      if (!rope.contains("original_max_position_embeddings")) {
        return Error(invalid_input("yarn rope scaling needs original_max_position_embeddings")).in_file(w.hparams.path);
      }
      QUANT_TRY(w.put("rope.scaling.original_context_length", rope["original_max_position_embeddings"], Kind::u32,
                      w.hparams.where("original_max_position_embeddings")));
      const std::pair<const char*, std::vector<const char*>> optional[] = {
          {"rope.scaling.yarn_ext_factor", {"extrapolation_factor"}},
          {"rope.scaling.yarn_attn_factor", {"attention_factor", "attn_factor"}},
          {"rope.scaling.yarn_beta_fast", {"beta_fast"}},
          {"rope.scaling.yarn_beta_slow", {"beta_slow"}},
      };
      for (const auto& [key, names] : optional) {
        // rope_params.get(a, rope_params.get(b)): the first name present decides, even when null.
        for (const char* name : names) {
          if (!rope.contains(name)) continue;
          if (!rope[name].is_null()) QUANT_TRY(w.put(key, rope[name], Kind::f32, w.hparams.where(name)));
          break;
        }
      }
    }
  } else if (type == "su" || type == "longrope") {
    w.out.set(w.prefix + "rope.scaling.type", Value::string("longrope"));
  }
  // "dynamic", "llama3" (rope_freqs), "default" and unknown types write nothing here.
  return Status::success();
}

Status add_text_model(Writer& w, uint32_t file_type) {
  const HParams& h = w.hparams;
  w.out.set(w.prefix + "block_count", Value::u32(uint32_t(h.block_count)));
  QUANT_TRY(w.from("context_length", {"max_position_embeddings", "n_ctx", "n_positions", "max_length",
                                      "max_sequence_length", "model_max_length"}, Kind::u32, false));
  QUANT_TRY(w.from("embedding_length", {"hidden_size", "n_embd", "dim"}, Kind::u32, false));
  QUANT_TRY(w.from("feed_forward_length", {"prefix_dense_intermediate_size", "dense_intermediate_size",
                                           "intermediate_size", "n_inner", "hidden_dim"}, Kind::u32_or_array, false));
  QUANT_TRY(w.from("attention.head_count", {"num_attention_heads", "n_head", "n_heads"}, Kind::u32_or_array, false));
  QUANT_TRY(w.from("attention.head_count_kv", {"num_key_value_heads", "n_kv_heads"}, Kind::u32_or_array, false));
  if (const auto causal = h.config.find("is_causal"); causal != h.config.end() && causal->is_boolean() &&
                                                      !causal->get<bool>()) {
    w.out.set(w.prefix + "attention.causal", Value::boolean(false));
  }
  const Json& rope = h.full_attention_rope();
  QUANT_TRY(add_rope_scaling(w, rope));
  if (h.rope.contains("mrope_section")) {
    return Error(impossible("multimodal rope sections (mrope_section) are not supported")).in_file(h.path);
  }
  if (const auto theta = rope.find("rope_theta"); theta != rope.end() && !theta->is_null()) {
    QUANT_TRY(w.put("rope.freq_base", *theta, Kind::f32, h.where("rope_theta")));
  }
  if (const auto swa = h.rope.find("sliding_attention"); swa != h.rope.end() && swa->is_object()) {
    if (const auto theta = swa->find("rope_theta"); theta != swa->end() && !theta->is_null()) {
      QUANT_TRY(w.put("rope.freq_base_swa", *theta, Kind::f32, h.where("rope_theta")));
    }
  }
  QUANT_TRY(w.from("attention.layer_norm_rms_epsilon", {"rms_norm_eps", "norm_eps"}, Kind::f32, false));
  QUANT_TRY(w.from("attention.layer_norm_epsilon", {"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"},
                   Kind::f32, false));
  QUANT_TRY(w.from("expert_count", {"num_local_experts", "num_experts", "n_routed_experts"}, Kind::u32, false));
  QUANT_TRY(w.from("expert_used_count", {"num_experts_per_tok", "num_experts_per_token", "top_k_experts"}, Kind::u32,
                   false));
  QUANT_TRY(w.from("expert_group_count", {"n_group"}, Kind::u32, false));
  QUANT_TRY(w.from("expert_group_used_count", {"topk_group"}, Kind::u32, false));
  if (const Json* score = h.find({"score_function", "scoring_func", "score_func", "moe_router_activation",
                                  "moe_router_activation_func", "expert_selection_fn"});
      score != nullptr && !score->is_null()) {
    const std::string name = score->is_string() ? score->get<std::string>() : score->dump();
    const uint32_t id = name == "softmax" ? 1 : name == "sigmoid" ? 2 : name == "sqrtsoftplus" ? 4 : 0;
    if (id == 0) return Error(impossible(fmt::format("expert gating function {} is not supported", name))).in_file(h.path);
    w.out.set(w.prefix + "expert_gating_func", Value::u32(id));
  }
  if (const auto head_dim = h.config.find("head_dim"); head_dim != h.config.end() && !head_dim->is_null()) {
    QUANT_TRY(w.put("attention.key_length", *head_dim, Kind::u32, h.where("head_dim")));
    QUANT_TRY(w.put("attention.value_length", *head_dim, Kind::u32, h.where("head_dim")));
  }
  w.out.set("general.file_type", Value::u32(file_type));
  return Status::success();
}

// hidden_size // num_attention_heads unless head_dim is given (LlamaModel, and the rope_freqs dimension).
Result<int64_t> llama_head_dim(const HParams& h) {
  if (const auto head_dim = h.config.find("head_dim"); head_dim != h.config.end() && !head_dim->is_null()) {
    if (!head_dim->is_number_unsigned() || head_dim->get<uint64_t>() == 0 || head_dim->get<uint64_t>() > (1u << 20)) {
      return Error(impossible(fmt::format("head_dim {} is not a usable size", head_dim->dump()))).in_file(h.path);
    }
    return int64_t(head_dim->get<uint64_t>());
  }
  const auto hidden = h.config.find("hidden_size");
  const auto heads = h.config.find("num_attention_heads");
  if (hidden == h.config.end() || heads == h.config.end() || !hidden->is_number_unsigned() ||
      !heads->is_number_unsigned() || heads->get<uint64_t>() == 0) {
    return Error(invalid_input("config.json needs hidden_size and num_attention_heads (integers)")).in_file(h.path);
  }
  return int64_t(hidden->get<uint64_t>() / heads->get<uint64_t>());
}

Status add_llama_extras(Writer& w) {
  const HParams& h = w.hparams;
  const auto vocab = h.config.find("vocab_size");
  if (vocab == h.config.end()) return Error(invalid_input("config.json lacks vocab_size")).in_file(h.path);
  QUANT_TRY(w.put("vocab_size", *vocab, Kind::u32, h.where("vocab_size")));
  QUANT_ASSIGN_OR_RETURN(const int64_t rope_dim, llama_head_dim(h));
  w.out.set(w.prefix + "rope.dimension_count", Value::u32(uint32_t(rope_dim)));
  return Status::success();
}

// Gemma and Gemma 2 write a fixed list with required keys (gemma.py).
Status add_gemma(Writer& w, uint32_t file_type, bool gemma2) {
  const HParams& h = w.hparams;
  QUANT_TRY(w.from("context_length", {"max_position_embeddings"}, Kind::u32, true));
  QUANT_TRY(w.from("embedding_length", {"hidden_size"}, Kind::u32, true));
  w.out.set(w.prefix + "block_count", Value::u32(uint32_t(h.block_count)));
  QUANT_TRY(w.from("feed_forward_length", {"intermediate_size"}, Kind::u32_or_array, true));
  QUANT_TRY(w.from("attention.head_count", {"num_attention_heads"}, Kind::u32_or_array, true));
  if (h.config.contains("num_key_value_heads")) {
    QUANT_TRY(w.put("attention.head_count_kv", h.config["num_key_value_heads"], Kind::u32_or_array,
                    h.where("num_key_value_heads")));
  } else {
    QUANT_TRY(w.from("attention.head_count_kv", {"num_attention_heads"}, Kind::u32_or_array, true));
  }
  QUANT_TRY(w.from("attention.layer_norm_rms_epsilon", {"rms_norm_eps"}, Kind::f32, true));
  QUANT_TRY(w.from("attention.key_length", {"head_dim"}, Kind::u32, true));
  QUANT_TRY(w.from("attention.value_length", {"head_dim"}, Kind::u32, true));
  w.out.set("general.file_type", Value::u32(file_type));
  if (gemma2) {
    QUANT_TRY(w.from("attn_logit_softcapping", {"attn_logit_softcapping"}, Kind::f32, true));
    QUANT_TRY(w.from("final_logit_softcapping", {"final_logit_softcapping"}, Kind::f32, true));
    QUANT_TRY(w.from("attention.sliding_window", {"sliding_window"}, Kind::u32, true));
  }
  return Status::success();
}

Status add_phi3(Writer& w, uint32_t file_type) {
  const HParams& h = w.hparams;
  const Json* n_embd = h.find({"hidden_size", "n_embd"});
  const Json* n_head = h.find({"num_attention_heads", "n_head"});
  if (n_embd == nullptr || n_head == nullptr || !n_embd->is_number_unsigned() || !n_head->is_number_unsigned() ||
      n_head->get<uint64_t>() == 0) {
    return Error(invalid_input("config.json needs hidden_size and num_attention_heads (integers)")).in_file(h.path);
  }
  if (!h.rope.contains("original_max_position_embeddings")) {
    return Error(invalid_input("config.json lacks original_max_position_embeddings, which Phi-3 needs"))
        .in_file(h.path);
  }
  double rotary_fraction = 1.0;
  if (h.rope.contains("partial_rotary_factor")) {
    QUANT_ASSIGN_OR_RETURN(rotary_fraction, number_value(h.rope["partial_rotary_factor"], h.where("partial_rotary_factor")));
  }
  // int(rot_pct * n_embd) // n_head, in Python's double arithmetic.
  const double rotary = rotary_fraction * double(n_embd->get<uint64_t>());
  if (!(rotary >= 0 && rotary < 4294967296.0)) {
    return Error(impossible("partial_rotary_factor gives no usable rope dimension")).in_file(h.path);
  }
  const uint64_t rope_dims = uint64_t(std::trunc(rotary)) / n_head->get<uint64_t>();
  QUANT_TRY(w.from("context_length", {"n_positions", "max_position_embeddings"}, Kind::u32, true));
  QUANT_TRY(w.put("rope.scaling.original_context_length", h.rope["original_max_position_embeddings"], Kind::u32,
                  h.where("original_max_position_embeddings")));
  QUANT_TRY(w.put("embedding_length", *n_embd, Kind::u32, h.where("hidden_size")));
  QUANT_TRY(w.from("feed_forward_length", {"intermediate_size"}, Kind::u32_or_array, true));
  w.out.set(w.prefix + "block_count", Value::u32(uint32_t(h.block_count)));
  QUANT_TRY(w.put("attention.head_count", *n_head, Kind::u32_or_array, h.where("num_attention_heads")));
  QUANT_TRY(w.from("attention.head_count_kv", {"num_key_value_heads", "n_head_kv"}, Kind::u32_or_array, true));
  QUANT_TRY(w.from("attention.layer_norm_rms_epsilon", {"rms_norm_eps"}, Kind::f32, true));
  w.out.set(w.prefix + "rope.dimension_count", Value::u32(uint32_t(rope_dims)));
  const Json& rope = h.full_attention_rope();
  if (!rope.contains("rope_theta")) return Error(invalid_input("config.json lacks rope_theta")).in_file(h.path);
  QUANT_TRY(w.put("rope.freq_base", rope["rope_theta"], Kind::f32, h.where("rope_theta")));
  w.out.set("general.file_type", Value::u32(file_type));
  const auto window = h.config.find("sliding_window");
  if (window == h.config.end() || window->is_null()) {
    w.out.set(w.prefix + "attention.sliding_window", Value::u32(0));  // Phi-4 has none
  } else {
    QUANT_TRY(w.put("attention.sliding_window", *window, Kind::u32, h.where("sliding_window")));
  }
  return Status::success();
}

}  // namespace

const Json* HParams::find(std::initializer_list<std::string_view> keys) const {
  for (std::string_view key : keys) {
    const auto it = config.find(std::string(key));
    if (it != config.end()) return &*it;
  }
  return nullptr;
}

std::string HParams::where(std::string_view key) const { return fmt::format("'{}'", key); }

const Json& HParams::full_attention_rope() const {
  if (const auto full = rope.find("full_attention"); full != rope.end() && full->is_object()) return *full;
  return rope;
}

Result<HParams> load_hparams(const Json& config, const std::string& path) {
  HParams h;
  h.path = path;
  if (!config.is_object()) return Error(invalid_input("config.json is not a JSON object")).in_file(path);
  h.config = config;
  // TextModel moves text_config's keys to the top level (they win).
  if (const auto text = config.find("text_config"); text != config.end() && text->is_object()) {
    for (const auto& [key, value] : text->items()) h.config[key] = value;
  }
  const Json* blocks = h.find({"n_layers", "num_hidden_layers", "n_layer", "num_layers"});
  if (blocks == nullptr) return Error(invalid_input("config.json lacks num_hidden_layers")).in_file(path);
  if (!blocks->is_number_unsigned() || blocks->get<uint64_t>() > 65536) {
    return Error(invalid_input(fmt::format("num_hidden_layers {} is not a layer count", blocks->dump()))).in_file(path);
  }
  h.block_count = int64_t(blocks->get<uint64_t>());

  // rope_parameters (transformers 5) or rope_scaling (earlier), with the global values mirrored in.
  const Json* rope = h.find({"rope_parameters"});
  if (rope == nullptr) rope = h.find({"rope_scaling"});
  h.rope = rope != nullptr && rope->is_object() ? *rope : Json::object();
  if (rope != nullptr && !rope->is_null() && !rope->is_object() && truthy(*rope)) {
    return Error(invalid_input(fmt::format("rope_parameters {} is not an object", rope->dump()))).in_file(path);
  }
  if (!h.rope.contains("full_attention") && !h.rope.contains("sliding_attention")) {
    const Json* local = h.find({"local_rope_theta", "rope_local_theta", "rope_theta_local", "swa_rope_theta",
                                "rope_local_base_freq"});
    if (local != nullptr && !local->is_null()) h.rope["sliding_attention"] = Json{{"rope_theta", *local}};
    const Json* theta = h.find({"global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta",
                                "rotary_emb_base"});
    if (!h.rope.contains("rope_theta") && theta != nullptr && !theta->is_null()) h.rope["rope_theta"] = *theta;
    if (!h.rope.contains("rope_type") && h.rope.contains("type") && !h.rope["type"].is_null()) {
      h.rope["rope_type"] = h.rope["type"];
    }
    const Json* partial = h.find({"partial_rotary_factor", "rope_pct", "rope_percent"});
    if (!h.rope.contains("partial_rotary_factor") && partial != nullptr && !partial->is_null()) {
      h.rope["partial_rotary_factor"] = *partial;
    }
    const Json* original = h.find({"original_max_position_embeddings"});
    if (!h.rope.contains("original_max_position_embeddings") && original != nullptr && !original->is_null()) {
      h.rope["original_max_position_embeddings"] = *original;
    }
  }
  return h;
}

Status add_model_parameters(const Architecture& arch, const HParams& hparams, uint32_t file_type,
                            MetadataList& metadata) {
  Writer w{hparams, metadata, std::string(arch.gguf_name) + "."};
  switch (arch.params) {
    case ParamSet::text_model:
      QUANT_TRY(add_text_model(w, file_type));
      if (arch.llama_parameters) QUANT_TRY(add_llama_extras(w));
      return Status::success();
    case ParamSet::gemma: return add_gemma(w, file_type, false);
    case ParamSet::gemma2: return add_gemma(w, file_type, true);
    case ParamSet::phi3: return add_phi3(w, file_type);
  }
  return Status::success();
}

Status add_phi3_attention_factor(const HParams& h, MetadataList& metadata) {
  const Json* max_positions = h.find({"n_positions", "max_position_embeddings"});
  if (max_positions == nullptr || !h.rope.contains("original_max_position_embeddings")) {
    return Error(invalid_input("Phi-3 rope scaling needs max_position_embeddings and "
                               "original_max_position_embeddings")).in_file(h.path);
  }
  QUANT_ASSIGN_OR_RETURN(const double positions, number_value(*max_positions, h.where("max_position_embeddings")));
  QUANT_ASSIGN_OR_RETURN(const double original, number_value(h.rope["original_max_position_embeddings"],
                                                             h.where("original_max_position_embeddings")));
  if (original <= 0) return Error(invalid_input("original_max_position_embeddings must be positive")).in_file(h.path);
  const double scale = positions / original;
  std::string type = h.rope.contains("rope_type") && h.rope["rope_type"].is_string() ? h.rope["rope_type"].get<std::string>() : "";
  for (char& c : type) c = char(std::tolower(static_cast<unsigned char>(c)));
  double factor = 1.0;
  if (type == "su" || type == "longrope") {
    if (scale > 1.0) factor = std::sqrt(1 + std::log(scale) / std::log(original));
  } else if (type == "yarn") {
    if (scale > 1.0) factor = 0.1 * std::log(scale) + 1.0;
  } else {
    return Error(impossible(fmt::format("rope scaling type '{}' is not supported for Phi-3", type))).in_file(h.path);
  }
  metadata.set("phi3.rope.scaling.attn_factor", Value::f32(float(factor)));
  // The factor lists must have rope_dims / 2 entries.
  const Json* n_embd = h.find({"hidden_size", "n_embd"});
  const Json* n_head = h.find({"num_attention_heads", "n_head"});
  if (n_embd != nullptr && n_head != nullptr && n_embd->is_number_unsigned() && n_head->is_number_unsigned() &&
      n_head->get<uint64_t>() > 0) {
    double fraction = 1.0;
    if (h.rope.contains("partial_rotary_factor")) {
      QUANT_ASSIGN_OR_RETURN(fraction, number_value(h.rope["partial_rotary_factor"], h.where("partial_rotary_factor")));
    }
    const double dims = double(uint64_t(std::trunc(fraction * double(n_embd->get<uint64_t>()))) / n_head->get<uint64_t>());
    for (const char* key : {"long_factor", "short_factor"}) {
      if (!h.rope.contains(key) || !h.rope[key].is_array() || double(h.rope[key].size()) != dims / 2) {
        return Error(invalid_input(fmt::format("rope {} must have {} entries", key, dims / 2))).in_file(h.path);
      }
    }
  }
  return Status::success();
}

Result<std::optional<std::vector<float>>> llama3_rope_factors(const HParams& h) {
  const Json& rope = h.full_attention_rope();
  if (rope.empty()) return std::optional<std::vector<float>>();
  const auto type = rope.find("rope_type");
  if (type == rope.end() || !type->is_string()) return std::optional<std::vector<float>>();
  std::string lower = type->get<std::string>();
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (lower != "llama3") return std::optional<std::vector<float>>();

  auto number = [&](const char* key, double fallback) -> Result<double> {
    const auto it = rope.find(key);
    if (it == rope.end()) return fallback;
    return number_value(*it, h.where(key));
  };
  QUANT_ASSIGN_OR_RETURN(const double base, number("rope_theta", 10000.0));
  QUANT_ASSIGN_OR_RETURN(const int64_t dim, llama_head_dim(h));
  QUANT_ASSIGN_OR_RETURN(const double factor, number("factor", 8.0));
  QUANT_ASSIGN_OR_RETURN(const double low_freq_factor, number("low_freq_factor", 1.0));
  QUANT_ASSIGN_OR_RETURN(const double high_freq_factor, number("high_freq_factor", 4.0));
  QUANT_ASSIGN_OR_RETURN(const double old_context_len, number("original_max_position_embeddings", 8192.0));
  if (high_freq_factor == low_freq_factor) {
    return Error(impossible("llama3 rope scaling with equal low and high frequency factors")).in_file(h.path);
  }
  // The converter computes in torch float32: each operation below is one float32 operation (a Python scalar
  // operand is rounded to float32 first); torch's float32 pow rounds like (float)pow(double, double) here, and
  // `scalar / tensor` is tensor.reciprocal() * scalar.
  const double low_freq_wavelen = old_context_len / low_freq_factor;
  const double high_freq_wavelen = old_context_len / high_freq_factor;
  const float base_f = float(base);
  std::vector<float> factors;
  for (int64_t i = 0; i < dim; i += 2) {
    const float exponent = float(i) / float(dim);
    const float power = float(std::pow(double(base_f), double(exponent)));
    const float freq = (1.0f / power) * 1.0f;
    const float wavelen = (1.0f / freq) * float(2.0 * std::numbers::pi);
    if (wavelen < float(high_freq_wavelen)) {
      factors.push_back(1.0f);
    } else if (wavelen > float(low_freq_wavelen)) {
      factors.push_back(float(factor));
    } else {
      const float ratio = (1.0f / wavelen) * float(old_context_len);
      const float smooth = (ratio - float(low_freq_factor)) / float(high_freq_factor - low_freq_factor);
      const float blended = (1.0f - smooth) / float(factor) + smooth;
      factors.push_back((1.0f / blended) * 1.0f);
    }
  }
  return std::optional<std::vector<float>>(std::move(factors));
}

}  // namespace quant::hf
