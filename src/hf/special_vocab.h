// Internal: gguf-py's SpecialVocab (gguf-py/gguf/vocab.py): special token ids, add_*_token flags, chat templates
// and normalizer flags from tokenizer.json, tokenizer_config.json, chat_template.jinja/.json and config.json,
// written in its order with its rules (including its crude reading of TemplateProcessing post-processors).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hf/checkpoint_files.h"
#include "hf/metadata_list.h"

namespace quant::hf {

class SpecialVocab {
 public:
  // Loads from `dir` as SpecialVocab(path, load_merges, special_token_types, n_vocab) does.
  static Result<SpecialVocab> load(const std::string& dir, std::vector<std::string> special_token_types,
                                   std::optional<int64_t> n_vocab, bool with_merges = false);
  static std::vector<std::string> default_types() { return {"bos", "eos", "unk", "sep", "pad", "cls", "mask"}; }

  // _set_special_token: the first id set for a type wins; ids at or past n_vocab are skipped.
  Status set_special_token(const std::string& type, const Json& id);
  void drop_chat_template() { chat_template_.reset(); chat_template_set_ = false; }
  // add_to_gguf.
  void add_to(MetadataList& out) const;

 private:
  Status load_from_tokenizer_json(const std::string& dir);
  Status load_from_config_json(const std::string& dir);
  Status load_merges(const Json& tokenizer, const std::string& file);
  Status load_merges_txt(const std::string& dir);

  std::vector<std::string> types_;
  bool load_merges_ = false;
  std::vector<std::string> merges_;                       // "left right", in rank order
  std::optional<int64_t> n_vocab_;
  std::vector<std::pair<std::string, int64_t>> ids_;      // insertion order
  std::vector<std::pair<std::string, bool>> add_flags_;   // insertion order
  bool chat_template_set_ = false;
  std::optional<Json> chat_template_;                     // a string, or a list of {name, template}
  std::optional<Json> normalizer_lowercase_, normalizer_strip_accents_;
  void set_add_flag(const std::string& type, bool value);
};

}  // namespace quant::hf
