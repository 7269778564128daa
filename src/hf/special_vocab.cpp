// SpecialVocab, as gguf-py 34af94c reads it. The Python reads JSON values of any type; here they stay JSON
// values, compared with Python's == (values of different types are unequal) and tested for Python truthiness.
#include "hf/special_vocab.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "tokenizer/unicode.h"

namespace quant::hf {
namespace {

// The gguf-py writer method for each special id, or "" where it has none (the converter then skips it).
std::string id_key(const std::string& type) {
  static const std::map<std::string, std::string> kKeys = {
      {"bos", "tokenizer.ggml.bos_token_id"},       {"eos", "tokenizer.ggml.eos_token_id"},
      {"unk", "tokenizer.ggml.unknown_token_id"},   {"sep", "tokenizer.ggml.seperator_token_id"},
      {"pad", "tokenizer.ggml.padding_token_id"},   {"mask", "tokenizer.ggml.mask_token_id"},
      {"eot", "tokenizer.ggml.eot_token_id"},       {"eom", "tokenizer.ggml.eom_token_id"},
  };
  const auto it = kKeys.find(type);
  return it == kKeys.end() ? std::string() : it->second;
}

std::string add_key(const std::string& type) {
  if (type == "bos" || type == "eos" || type == "sep") return "tokenizer.ggml.add_" + type + "_token";
  return {};
}

const Json& get_or_null(const Json& object, const char* key) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

// processor.get('SpecialToken', {}).get('id') for one template item.
Json special_token_id(const Json& item) {
  if (!item.is_object()) return Json();
  const Json& token = get_or_null(item, "SpecialToken");
  return get_or_null(token, "id");
}
Json sequence_id(const Json& item) {
  if (!item.is_object()) return Json();
  return get_or_null(get_or_null(item, "Sequence"), "id");
}

bool one_of(const Json& value, const Json& a, const Json& b) { return value == a || value == b; }

bool is_file(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

Result<SpecialVocab> SpecialVocab::load(const std::string& dir, std::vector<std::string> special_token_types,
                                        std::optional<int64_t> n_vocab, bool with_merges) {
  SpecialVocab vocab;
  vocab.types_ = std::move(special_token_types);
  vocab.n_vocab_ = n_vocab;
  vocab.load_merges_ = with_merges;
  QUANT_TRY(vocab.load_from_tokenizer_json(dir));
  QUANT_TRY(vocab.load_from_config_json(dir));
  if (with_merges && vocab.merges_.empty()) QUANT_TRY(vocab.load_merges_txt(dir));
  return vocab;
}

Status SpecialVocab::load_merges(const Json& tokenizer, const std::string& file) {
  const Json& merges = get_or_null(get_or_null(tokenizer, "model"), "merges");
  if (!merges.is_array() || merges.empty()) return Status::success();
  if (merges[0].is_string()) {
    // Taken as they are; gguf-py's writer then needs every one to be a string.
    for (const Json& merge : merges) {
      if (!merge.is_string()) return Error(invalid_input("model.merges mixes strings with other values")).in_file(file);
      merges_.push_back(merge.get<std::string>());
    }
    return Status::success();
  }
  if (!(merges[0].is_array() && merges[0].size() == 2 && merges[0][0].is_string())) {
    return Error(invalid_input("model.merges is in an unknown format")).in_file(file);
  }
  // The pair format (transformers 4.45+): joined with a space, a space inside a part written as U+0120.
  for (const Json& pair : merges) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
      return Error(invalid_input(fmt::format("model.merges holds {}, not a pair of tokens", pair.dump()))).in_file(file);
    }
    std::string joined;
    for (size_t i = 0; i < 2; ++i) {
      if (i == 1) joined += ' ';
      for (char c : pair[i].get_ref<const std::string&>()) {
        if (c == ' ') {
          joined += "\xc4\xa0";
        } else {
          joined += c;
        }
      }
    }
    merges_.push_back(std::move(joined));
  }
  return Status::success();
}

namespace {

// Python's str.isspace() for one code point.
bool python_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// The words of a line as Python's str.split(None) finds them (runs of whitespace separate, none kept).
std::vector<std::string> python_words(const std::string& line) {
  std::vector<std::string> words;
  std::string current;
  for (size_t at = 0; at < line.size();) {
    const size_t start = at;
    const uint32_t c = text::decode_utf8_at(line, at);
    if (python_space(c)) {
      if (!current.empty()) words.push_back(std::move(current));
      current.clear();
    } else {
      current.append(line, start, at - start);
    }
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
}

}  // namespace

Status SpecialVocab::load_merges_txt(const std::string& dir) {
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> text, read_small_file(dir, "merges.txt", uint64_t(256) << 20));
  if (!text) return Status::success();
  // Python's text mode: \r\n, \r and \n all end a line; a first line starting with '#' is a header.
  std::vector<std::string> lines;
  std::string current;
  for (size_t i = 0; i < text->size(); ++i) {
    const char c = (*text)[i];
    if (c == '\n' || c == '\r') {
      lines.push_back(std::move(current));
      current.clear();
      if (c == '\r' && i + 1 < text->size() && (*text)[i + 1] == '\n') ++i;
    } else {
      current += c;
    }
  }
  if (!current.empty()) lines.push_back(std::move(current));
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::vector<std::string> words = python_words(lines[i]);
    if (i == 0 && !words.empty() && words[0].starts_with('#')) continue;
    if (words.size() != 2) continue;  // empty, or malformed: the converter skips it
    merges_.push_back(words[0] + " " + words[1]);
  }
  return Status::success();
}

void SpecialVocab::set_add_flag(const std::string& type, bool value) {
  for (auto& [t, v] : add_flags_) {
    if (t == type) {
      v = value;
      return;
    }
  }
  add_flags_.emplace_back(type, value);
}

Status SpecialVocab::set_special_token(const std::string& type, const Json& id) {
  // isinstance(tid, int): Python's bool is an int too.
  int64_t value = 0;
  if (id.is_boolean()) {
    value = id.get<bool>() ? 1 : 0;
  } else if (id.is_number_integer()) {
    if (id.is_number_unsigned() && id.get<uint64_t>() > uint64_t(INT64_MAX)) return Status::success();
    value = id.get<int64_t>();
  } else {
    return Status::success();
  }
  if (value < 0) return impossible(fmt::format("special token {} has the negative id {}", type, value));
  if (n_vocab_ && value >= *n_vocab_) return Status::success();  // the converter warns and skips it
  for (const auto& [t, v] : ids_) {
    if (t == type) return Status::success();
  }
  ids_.emplace_back(type, value);
  return Status::success();
}

Status SpecialVocab::load_from_tokenizer_json(const std::string& dir) {
  QUANT_ASSIGN_OR_RETURN(std::optional<Json> tokenizer, read_tokenizer_json(dir));
  Json added_tokens = Json::array();
  if (tokenizer) {
    if (load_merges_) QUANT_TRY(load_merges(*tokenizer, dir + "/tokenizer.json"));
    if (const Json& normalizer = get_or_null(*tokenizer, "normalizer"); truthy(normalizer)) {
      // _parse_normalizer, recursively through Sequence.
      auto parse = [&](auto&& self, const Json& n) -> void {
        if (!n.is_object()) return;
        const Json& type = get_or_null(n, "type");
        if (type == "Lowercase") {
          normalizer_lowercase_ = Json(true);
        } else if (type == "StripAccents") {
          normalizer_strip_accents_ = Json(true);
        } else if (type == "BertNormalizer") {
          if (n.contains("lowercase")) normalizer_lowercase_ = n["lowercase"];
          if (n.contains("strip_accents")) normalizer_strip_accents_ = n["strip_accents"];
        } else if (type == "Sequence") {
          const Json& list = get_or_null(n, "normalizers");
          if (list.is_array()) {
            for (const Json& child : list) self(self, child);
          }
        }
      };
      parse(parse, normalizer);
    }
    if (tokenizer->is_object() && tokenizer->contains("added_tokens")) added_tokens = (*tokenizer)["added_tokens"];
  }
  QUANT_ASSIGN_OR_RETURN(std::optional<Json> config, read_json_file(dir, "tokenizer_config.json"));
  const bool have_config = config && truthy(*config);
  if (config && !config->is_object()) return Error(invalid_input("not a JSON object")).in_file(dir + "/tokenizer_config.json");

  if (tokenizer && truthy(*tokenizer)) {
    const Json empty = Json::object();
    const Json& tc = have_config ? *config : empty;
    Json special_bos = get_or_null(tc, "bos_token");
    Json special_cls = get_or_null(tc, "cls_token");
    Json special_eos = get_or_null(tc, "eos_token");
    Json special_sep = get_or_null(tc, "sep_token");
    if (!truthy(special_bos) && truthy(special_cls) && have_config) (*config)["bos_token"] = special_bos = special_cls;
    if (!truthy(special_eos) && truthy(special_sep) && have_config) (*config)["eos_token"] = special_eos = special_sep;
    const Json& post = get_or_null(*tokenizer, "post_processor");
    if (truthy(post)) {
      if (!post.is_object()) return Error(invalid_input("post_processor is not an object")).in_file(dir + "/tokenizer.json");
      const Json processors = post.contains("processors") ? post["processors"] : Json::array({post});
      if (!processors.is_array()) return Error(invalid_input("processors is not a list")).in_file(dir + "/tokenizer.json");
      for (const Json& processor : processors) {
        const Json& type = get_or_null(processor, "type");
        if (type == "RobertaProcessing") {
          set_add_flag("bos", true);
          set_add_flag("eos", true);
          set_add_flag("sep", true);
          if (!truthy(special_cls) && have_config) {
            const Json& cls = get_or_null(processor, "cls");
            special_cls = cls.is_array() && !cls.empty() ? cls[0] : special_bos;
            (*config)["cls_token"] = special_cls;
          }
          if (!truthy(special_sep) && have_config) {
            const Json& sep = get_or_null(processor, "sep");
            special_sep = sep.is_array() && !sep.empty() ? sep[0] : special_eos;
            (*config)["sep_token"] = special_sep;
          }
          continue;
        }
        if (type != "TemplateProcessing") continue;
        const Json& single = get_or_null(processor, "single");
        Json pair = get_or_null(processor, "pair");
        const Json empty_list = Json::array();
        const Json& tmpl_single = single.is_array() ? single : empty_list;
        Json special_first, special_last;
        if (tmpl_single.size() > 1) {
          special_first = special_token_id(tmpl_single.front());
          if (truthy(special_first)) {
            if (!have_config) {
              special_bos = special_first;
            } else if (!one_of(special_first, special_bos, special_cls)) {
              if (!truthy(special_bos)) (*config)["bos_token"] = special_bos = special_first;
              if (!truthy(special_cls)) (*config)["cls_token"] = special_cls = special_first;
            }
            set_add_flag("bos", one_of(special_first, special_bos, special_cls));
          }
          special_last = special_token_id(tmpl_single.back());
          if (truthy(special_last)) {
            if (!have_config) {
              special_eos = special_last;
            } else if (special_last != special_eos) {
              if (std::find(types_.begin(), types_.end(), "eot") == types_.end()) {
                types_.push_back("eot");
                (*config)["eot_token"] = special_eos;
              } else if (std::find(types_.begin(), types_.end(), "eom") == types_.end()) {
                types_.push_back("eom");
                (*config)["eom_token"] = special_eos;
              }
              (*config)["eos_token"] = special_eos = special_last;
            }
            set_add_flag("eos", special_last == special_eos);
          }
        }
        if (pair.is_array() && !pair.empty()) {
          const size_t seq_start =
              truthy(special_first) && special_token_id(pair.front()) == special_first ? 1 : 0;
          const bool drop_last = truthy(special_last) && special_token_id(pair.back()) == special_last;
          const size_t stop = drop_last ? pair.size() - 1 : pair.size();
          Json middle = Json::array();
          for (size_t i = seq_start; i < stop; ++i) middle.push_back(pair[i]);
          if (!middle.empty()) {
            const Json tmpl_a = sequence_id(middle.front());
            const Json tmpl_b = sequence_id(middle.back());
            if (tmpl_a == "A" && tmpl_b == "B" && middle.size() > 2) {
              bool add_sep = false;
              const Json first_entry = special_token_id(middle[1]);
              if (truthy(first_entry) && one_of(first_entry, special_sep, special_eos) && !truthy(special_last)) {
                add_sep = true;
              }
              if (middle.size() - 2 == 2) {
                const Json second_entry = special_token_id(middle[2]);
                if (truthy(second_entry) && one_of(second_entry, special_sep, special_eos)) add_sep = true;
              }
              set_add_flag("sep", add_sep);
              if (add_sep && !truthy(special_sep) && have_config) (*config)["sep_token"] = special_eos;
            }
          }
        }
      }
    }
  }
  if (!have_config) return Status::success();

  // Chat template: tokenizer_config's own key wins (even when null), else chat_template.jinja, else
  // chat_template.json.
  std::optional<Json> alternative;
  const std::string jinja = dir + "/chat_template.jinja";
  if (is_file(jinja)) {
    QUANT_ASSIGN_OR_RETURN(std::optional<std::string> text, read_small_file(dir, "chat_template.jinja"));
    alternative = Json(*text);
    std::vector<std::string> extra;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir + "/additional_chat_templates", ec)) {
      if (entry.path().extension() == ".jinja") extra.push_back(entry.path().filename().string());
    }
    if (!extra.empty()) {
      return Error(impossible("additional_chat_templates/ is not supported (the converter's order of named "
                              "templates is not deterministic)"))
          .in_file(dir);
    }
  } else {
    QUANT_ASSIGN_OR_RETURN(std::optional<Json> json, read_json_file(dir, "chat_template.json"));
    if (json) alternative = get_or_null(*json, "chat_template");
  }
  const Json chosen = config->contains("chat_template") ? (*config)["chat_template"] : alternative.value_or(Json());
  if (chosen.is_string()) {
    chat_template_ = chosen;
    chat_template_set_ = true;
  } else if (chosen.is_array()) {
    return Error(impossible("a list of named chat templates is not supported (the converter writes their names in "
                            "a non-deterministic order)"))
        .in_file(dir + "/tokenizer_config.json");
  }

  for (const std::string& type : types_) {
    const Json& add_entry = get_or_null(*config, ("add_" + type + "_token").c_str());
    if (add_entry.is_boolean()) set_add_flag(type, add_entry.get<bool>());
    const Json& entry = get_or_null(*config, (type + "_token").c_str());
    Json content;
    if (entry.is_string()) {
      content = entry;
    } else if (entry.is_object()) {
      content = get_or_null(entry, "content");
      if (!content.is_string()) continue;
    } else {
      continue;
    }
    Json found;
    if (added_tokens.is_array()) {
      for (const Json& token : added_tokens) {
        if (!token.is_object()) {
          return Error(invalid_input("added_tokens holds a non-object")).in_file(dir + "/tokenizer.json");
        }
        if (get_or_null(token, "content") == content) {
          found = get_or_null(token, "id");
          break;
        }
      }
    }
    QUANT_TRY(set_special_token(type, found));
  }
  return Status::success();
}

Status SpecialVocab::load_from_config_json(const std::string& dir) {
  QUANT_ASSIGN_OR_RETURN(std::optional<Json> config, read_json_file(dir, "config.json"));
  if (!config) return Status::success();
  for (const std::string& type : types_) {
    Json id = get_or_null(*config, (type + "_token_id").c_str());
    if (id.is_null() && config->contains("text_config")) id = get_or_null((*config)["text_config"], (type + "_token_id").c_str());
    QUANT_TRY(set_special_token(type, id));
  }
  return Status::success();
}

void SpecialVocab::add_to(MetadataList& out) const {
  if (!merges_.empty()) out.set("tokenizer.ggml.merges", Value::array_of_strings(std::span<const std::string>(merges_)));
  for (const auto& [type, id] : ids_) {
    const std::string key = id_key(type);
    if (!key.empty()) out.set(key, Value::u32(uint32_t(id)));
  }
  for (const auto& [type, value] : add_flags_) {
    const std::string key = add_key(type);
    if (!key.empty()) out.set(key, Value::boolean(value));
  }
  if (chat_template_set_ && chat_template_ && chat_template_->is_string()) {
    const std::string& text = chat_template_->get_ref<const std::string&>();
    if (!text.empty()) out.set("tokenizer.chat_template", Value::string(text));
  }
  if (normalizer_lowercase_ && !normalizer_lowercase_->is_null()) {
    out.set("tokenizer.ggml.normalizer.lowercase", Value::boolean(truthy(*normalizer_lowercase_)));
  }
  if (normalizer_strip_accents_ && !normalizer_strip_accents_->is_null()) {
    out.set("tokenizer.ggml.normalizer.strip_accents", Value::boolean(truthy(*normalizer_strip_accents_)));
  }
}

}  // namespace quant::hf
