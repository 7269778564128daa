// Internal: the general.* keys convert_hf_to_gguf.py writes (gguf-py/gguf/metadata.py): sampling defaults from
// generation_config.json, and the model's name, organization, base name, fine-tune, version and size label from
// the README's front matter, config.json's _name_or_path and the folder's name.
#pragma once

#include <cstdint>
#include <string>

#include "hf/checkpoint_files.h"
#include "hf/metadata_list.h"

namespace quant::hf {

// Appends the keys of Metadata.set_gguf_meta_model. `total_params` is the element count of every tensor written.
Status add_general_metadata(const std::string& dir, const std::string& folder_name, const Json& config,
                            int64_t total_params, MetadataList& metadata);

// gguf-py's size label: "3.7M", "8.0B" (model_weight_count_rounded_notation with two digits).
std::string size_label(int64_t total_params);

struct ModelIdParts {
  std::string full_name;
  std::optional<std::string> organization, basename, finetune, version, size_label;
};
// gguf-py's Metadata.get_model_id_components for a model id ("org/Name-7B-Instruct-v0.2" or a folder name).
ModelIdParts model_id_components(const std::string& model_id, int64_t total_params);
// gguf-py's Metadata.id_to_title.
std::string id_to_title(const std::string& text);

}  // namespace quant::hf
