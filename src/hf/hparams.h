// Internal: the model's hyper-parameters from config.json, and the {arch}.* keys convert_hf_to_gguf.py writes
// from them (its set_gguf_parameters for each parameter set, in its order).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hf/architectures.h"
#include "hf/checkpoint_files.h"
#include "hf/metadata_list.h"

namespace quant::hf {

struct HParams {
  std::string path;  // config.json, for errors
  Json config;       // with text_config's keys merged in, as TextModel does
  Json rope;         // rope_parameters (or rope_scaling) with the global values mirrored in, as TextModel does
  int64_t block_count = 0;

  // The first of `keys` present (its value may be null), or nullptr (the converter's find_hparam).
  const Json* find(std::initializer_list<std::string_view> keys) const;
  // "config.json: 'key'" for messages.
  std::string where(std::string_view key) const;
  // The rope parameters that apply to full attention.
  const Json& full_attention_rope() const;
};

Result<HParams> load_hparams(const Json& config, const std::string& path);

// Appends the architecture's {arch}.* keys (general.file_type among them, set to `file_type`).
Status add_model_parameters(const Architecture& arch, const HParams& hparams, uint32_t file_type,
                            MetadataList& metadata);

// Phi-3's rope.scaling.attn_factor, written while the converter prepares the long-context factor tensors.
Status add_phi3_attention_factor(const HParams& hparams, MetadataList& metadata);

// Llama 3 rope scaling: the rope_freqs.weight values, or nullopt when the model has no such scaling.
Result<std::optional<std::vector<float>>> llama3_rope_factors(const HParams& hparams);

}  // namespace quant::hf
