// The architecture table and the reading of hyper-parameters and tensor layout, as llama.cpp's loader
// (src/llama-model.cpp load_hparams, src/models/{llama,qwen2,qwen3}.cpp, create_tensor_qkv) reads them.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "model/layout.h"
#include "quant/model.h"

namespace quant {
namespace {

using P = Presence;

// name, rope, qkv bias, q/k norm, attn_output bias, ffn bias, output bias, rope_freqs, n_rot == head size
constexpr std::array<ArchitectureInfo, 3> kArchitectures{{
    {"llama", RopeKind::normal, P::optional, P::absent, P::optional, P::optional, P::absent, P::optional, true},
    {"qwen2", RopeKind::neox, P::optional, P::absent, P::absent, P::absent, P::optional, P::absent, false},
    {"qwen3", RopeKind::neox, P::optional, P::required, P::absent, P::absent, P::absent, P::absent, false},
}};

// Dimensions are capped so every product of two of them fits in int64 with room to spare.
constexpr int64_t kMaxDimension = int64_t(1) << 24;

class KeyReader {
 public:
  KeyReader(const ModelSource& source, std::string_view arch) : source_(source), arch_(arch) {}

  std::string key(std::string_view suffix) const { return fmt::format("{}.{}", arch_, suffix); }

  Error error(const std::string& key, const std::string& reason) const {
    return Error(invalid_input(fmt::format("metadata key '{}' {}", key, reason))).in_file(source_.path());
  }

  // An integer key of any integer type (llama.cpp's loader converts between them); nullopt when absent.
  Result<std::optional<int64_t>> integer(const std::string& name) const {
    const Value* value = source_.find(name);
    if (value == nullptr) return std::optional<int64_t>();
    int64_t out = 0;
    if (value->is_array() || !value->to_int64(&out)) {
      return error(name, fmt::format("is {}, expected an integer", value_type_name(value->type())));
    }
    return std::optional<int64_t>(out);
  }

  // A key that may be one integer or an array with one per layer (llama.cpp's get_key_or_arr); per-layer values
  // must all be equal here, since the forward pass has one shape for every layer.
  Result<std::optional<int64_t>> integer_or_per_layer(const std::string& name, int64_t n_layer) const {
    const Value* value = source_.find(name);
    if (value == nullptr || !value->is_array()) return integer(name);
    if (int64_t(value->size()) != n_layer) {
      return error(name, fmt::format("has {} values for {} layers", value->size(), n_layer));
    }
    std::optional<int64_t> first;
    for (uint64_t i = 0; i < value->size(); ++i) {
      int64_t item = 0;
      if (!value->element(i).to_int64(&item)) return error(name, "holds a value that is not an integer");
      if (first && *first != item) {
        return Error(impossible(fmt::format("metadata key '{}' gives layers different sizes ({} and {}); the forward "
                                            "pass supports one size for every layer",
                                            name, *first, item)))
            .in_file(source_.path());
      }
      first = item;
    }
    return first;
  }

  Result<int64_t> dimension(const std::string& name, std::optional<int64_t> fallback, int64_t min = 1) const {
    QUANT_ASSIGN_OR_RETURN(std::optional<int64_t> value, integer(name));
    if (!value) {
      if (!fallback) return error(name, "is missing");
      value = fallback;
    }
    if (*value < min || *value > kMaxDimension) {
      return error(name, fmt::format("is {}, outside {}..{}", *value, min, kMaxDimension));
    }
    return *value;
  }

  // A float key stored as f32 (or f64); nullopt when absent.
  Result<std::optional<float>> real(const std::string& name) const {
    const Value* value = source_.find(name);
    if (value == nullptr) return std::optional<float>();
    float out;
    if (value->holds<float>()) {
      out = value->as<float>();
    } else if (value->holds<double>()) {
      out = float(value->as<double>());
    } else {
      return error(name, fmt::format("is {}, expected f32", value_type_name(value->type())));
    }
    if (!std::isfinite(out)) return error(name, "is not a finite number");
    return std::optional<float>(out);
  }

 private:
  const ModelSource& source_;
  std::string_view arch_;
};

// YaRN's magnitude correction (llama-context.cpp get_mscale).
float yarn_mscale(float scale, float mscale) { return scale <= 1.0f ? 1.0f : (0.1f * mscale * logf(scale) + 1.0f); }

Result<ModelHyperparameters> read_keys(const ModelSource& source, const ArchitectureInfo& arch) {
  const KeyReader keys(source, arch.name);
  ModelHyperparameters hp;
  hp.architecture = &arch;

  QUANT_ASSIGN_OR_RETURN(std::optional<int64_t> experts, keys.integer(keys.key("expert_count")));
  if (experts && *experts > 0) {
    return Error(impossible(fmt::format("mixture-of-experts models ({} experts) are not supported by the forward pass "
                                        "yet", *experts)))
        .in_file(source.path());
  }
  QUANT_ASSIGN_OR_RETURN(hp.n_ctx_train, keys.dimension(keys.key("context_length"), std::nullopt));
  QUANT_ASSIGN_OR_RETURN(hp.n_embd, keys.dimension(keys.key("embedding_length"), std::nullopt));
  QUANT_ASSIGN_OR_RETURN(hp.n_layer, keys.dimension(keys.key("block_count"), std::nullopt));
  if (hp.n_layer > 512) return keys.error(keys.key("block_count"), "is above llama.cpp's 512 layers");

  QUANT_ASSIGN_OR_RETURN(std::optional<int64_t> n_ff, keys.integer_or_per_layer(keys.key("feed_forward_length"), hp.n_layer));
  QUANT_ASSIGN_OR_RETURN(std::optional<int64_t> n_head,
                         keys.integer_or_per_layer(keys.key("attention.head_count"), hp.n_layer));
  QUANT_ASSIGN_OR_RETURN(std::optional<int64_t> n_head_kv,
                         keys.integer_or_per_layer(keys.key("attention.head_count_kv"), hp.n_layer));
  if (!n_ff) return keys.error(keys.key("feed_forward_length"), "is missing");
  if (!n_head) return keys.error(keys.key("attention.head_count"), "is missing");
  hp.n_ff = *n_ff;
  hp.n_head = *n_head;
  hp.n_head_kv = n_head_kv ? *n_head_kv : hp.n_head;
  if (hp.n_ff < 1 || hp.n_ff > kMaxDimension) return keys.error(keys.key("feed_forward_length"), "is out of range");
  if (hp.n_head < 1 || hp.n_head > hp.n_embd) return keys.error(keys.key("attention.head_count"), "is out of range");
  if (hp.n_head_kv < 1 || hp.n_head % hp.n_head_kv != 0) {
    return keys.error(keys.key("attention.head_count_kv"),
                      fmt::format("is {}, which does not divide the {} query heads", hp.n_head_kv, hp.n_head));
  }

  QUANT_ASSIGN_OR_RETURN(std::optional<float> eps, keys.real(keys.key("attention.layer_norm_rms_epsilon")));
  if (!eps) return keys.error(keys.key("attention.layer_norm_rms_epsilon"), "is missing");
  if (*eps < 0) return keys.error(keys.key("attention.layer_norm_rms_epsilon"), "is negative");
  hp.rms_norm_eps = *eps;

  QUANT_ASSIGN_OR_RETURN(hp.head_dim_k, keys.dimension(keys.key("attention.key_length"), hp.n_embd / hp.n_head));
  QUANT_ASSIGN_OR_RETURN(hp.head_dim_v, keys.dimension(keys.key("attention.value_length"), hp.n_embd / hp.n_head));
  if (hp.head_dim_k != hp.head_dim_v) {
    return Error(impossible(fmt::format("key length {} differs from value length {}; the forward pass supports equal "
                                        "head sizes (as llama.cpp's graphs for these architectures do)",
                                        hp.head_dim_k, hp.head_dim_v)))
        .in_file(source.path());
  }
  QUANT_ASSIGN_OR_RETURN(hp.n_rot, keys.dimension(keys.key("rope.dimension_count"), hp.head_dim_k));
  if (hp.n_rot % 2 != 0 || hp.n_rot > hp.head_dim_k) {
    return keys.error(keys.key("rope.dimension_count"),
                      fmt::format("is {}; it must be even and at most the head size {}", hp.n_rot, hp.head_dim_k));
  }
  if (arch.rope_dims_equal_head_dim && hp.n_rot != hp.head_dim_k) {
    return keys.error(keys.key("rope.dimension_count"),
                      fmt::format("is {}; {} needs it equal to the head size {}", hp.n_rot, arch.name, hp.head_dim_k));
  }
  hp.attention_scale = 1.0f / sqrtf(float(hp.head_dim_k));

  // Rope: llama_model_base::load_hparams and the context's yarn settings (llama-context.cpp).
  QUANT_ASSIGN_OR_RETURN(std::optional<float> base, keys.real(keys.key("rope.freq_base")));
  hp.rope_freq_base = base ? *base : 10000.0f;
  if (!(hp.rope_freq_base > 0)) return keys.error(keys.key("rope.freq_base"), "is not positive");
  hp.rope_scaling = RopeScaling::linear;
  if (const Value* type = source.find(keys.key("rope.scaling.type")); type != nullptr) {
    QUANT_ASSIGN_OR_RETURN(std::string_view name, source.get<std::string_view>(keys.key("rope.scaling.type")));
    if (name == "none") {
      hp.rope_scaling = RopeScaling::none;
    } else if (name == "linear") {
      hp.rope_scaling = RopeScaling::linear;
    } else if (name == "yarn") {
      hp.rope_scaling = RopeScaling::yarn;
    } else {
      return Error(impossible(fmt::format("rope scaling '{}' is not supported by the forward pass (none, linear, "
                                          "yarn are)", name)))
          .in_file(source.path());
    }
  }
  QUANT_ASSIGN_OR_RETURN(std::optional<float> factor, keys.real(keys.key("rope.scaling.factor")));
  if (!factor) {
    QUANT_ASSIGN_OR_RETURN(factor, keys.real(keys.key("rope.scale_linear")));
  }
  if (factor && *factor < 0) return keys.error(keys.key("rope.scaling.factor"), "is negative");
  hp.rope_freq_scale = (!factor || *factor == 0.0f) ? 1.0f : 1.0f / *factor;
  if (hp.rope_scaling == RopeScaling::none) hp.rope_freq_scale = 1.0f;
  QUANT_ASSIGN_OR_RETURN(hp.rope_original_context,
                         keys.dimension(keys.key("rope.scaling.original_context_length"), hp.n_ctx_train));
  QUANT_ASSIGN_OR_RETURN(std::optional<float> rope_attn_factor, keys.real(keys.key("rope.scaling.attn_factor")));
  hp.yarn_ext_factor = hp.rope_scaling == RopeScaling::yarn ? 1.0f : 0.0f;
  hp.yarn_attn_factor = 1.0f;
  if (hp.yarn_ext_factor != 0) {
    const float scale = 1.0f / hp.rope_freq_scale;
    hp.yarn_attn_factor = yarn_mscale(scale, 1.0f);
    // ggml's rope multiplies by this again when ext_factor != 0; llama.cpp cancels it here.
    hp.yarn_attn_factor *= 1.0f / (1.0f + 0.1f * logf(scale));
  }
  if (rope_attn_factor) hp.yarn_attn_factor *= *rope_attn_factor;
  return hp;
}

}  // namespace

std::span<const ArchitectureInfo> supported_architectures() { return kArchitectures; }

const ArchitectureInfo* find_architecture(std::string_view name) {
  for (const ArchitectureInfo& arch : kArchitectures) {
    if (arch.name == name) return &arch;
  }
  return nullptr;
}

std::optional<TypeId> activation_type_for(TypeId weight) {
  // ggml-cpu's type_traits_cpu[].vec_dot_type at llama.cpp 34af94c.
  switch (weight) {
    case TypeId::f32: return TypeId::f32;
    case TypeId::f16: return TypeId::f16;
    case TypeId::bf16: return TypeId::bf16;
    case TypeId::q4_0: case TypeId::q5_0: case TypeId::q8_0: case TypeId::iq4_nl: case TypeId::mxfp4:
    case TypeId::nvfp4: case TypeId::q1_0: case TypeId::q2_0:
      return TypeId::q8_0;
    case TypeId::q4_1: case TypeId::q5_1: case TypeId::q8_1:
      return TypeId::q8_1;
    case TypeId::q2_K: case TypeId::q3_K: case TypeId::q4_K: case TypeId::q5_K: case TypeId::q6_K:
    case TypeId::iq2_xxs: case TypeId::iq2_xs: case TypeId::iq3_xxs: case TypeId::iq3_s: case TypeId::iq2_s:
    case TypeId::iq1_s: case TypeId::iq1_m: case TypeId::iq4_xs: case TypeId::tq1_0: case TypeId::tq2_0:
      return TypeId::q8_K;
    default:
      return std::nullopt;
  }
}

Result<ModelHyperparameters> read_hyperparameters(const ModelSource& source) {
  QUANT_ASSIGN_OR_RETURN(std::string_view arch_name, source.get<std::string_view>("general.architecture"));
  const ArchitectureInfo* arch = find_architecture(arch_name);
  if (arch == nullptr) {
    std::string names;
    for (const ArchitectureInfo& known : kArchitectures) names += (names.empty() ? "" : ", ") + std::string(known.name);
    return Error(impossible(fmt::format("architecture '{}' is not supported by the forward pass (supported: {})",
                                        arch_name, names)))
        .in_file(source.path());
  }
  QUANT_ASSIGN_OR_RETURN(ModelHyperparameters hp, read_keys(source, *arch));
  QUANT_TRY(model::check_layout(source, hp));
  return hp;
}

}  // namespace quant
