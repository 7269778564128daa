// Internal: the README's YAML front matter as gguf-py's Metadata reads it (the model card keys it knows).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "quant/error.h"

namespace quant::hf {

struct ModelCard {
  // A base model or dataset entry: its fields in the order set_gguf_meta_model writes them.
  struct Entry {
    std::vector<std::pair<std::string, std::string>> fields;
  };
  std::optional<std::string> name, author, version, organization, description, finetune, basename, size_label;
  std::optional<std::string> source_url, source_doi, source_uuid, source_repo_url;
  std::optional<std::string> license, license_name, license_link;
  std::optional<std::vector<Entry>> base_models, datasets;
  std::optional<std::vector<std::string>> tags, languages;
};

// Reads dir/README.md. No file, or no front matter: an empty card.
Result<ModelCard> load_model_card(const std::string& dir, int64_t total_params);

}  // namespace quant::hf
