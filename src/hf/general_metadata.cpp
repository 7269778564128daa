// general.* keys as gguf-py's Metadata class builds them (load, apply_metadata_heuristic, set_gguf_meta_model).
#include "hf/general_metadata.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <regex>

#include "hf/model_card.h"

namespace quant::hf {
namespace {

bool is_cased(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }

// Python's str.islower() for ASCII text: some cased character and no upper-case one.
bool py_islower(const std::string& s) {
  bool cased = false;
  for (char c : s) {
    if (std::isupper(static_cast<unsigned char>(c))) return false;
    cased = cased || is_cased(c);
  }
  return cased;
}

// Python's str.title() for ASCII text: a cased character after an uncased one is upper-cased, others lowered.
std::string py_title(const std::string& s) {
  std::string out;
  bool previous_cased = false;
  for (char c : s) {
    if (is_cased(c)) {
      out += char(previous_cased ? std::tolower(static_cast<unsigned char>(c)) : std::toupper(static_cast<unsigned char>(c)));
      previous_cased = true;
    } else {
      out += c;
      previous_cased = false;
    }
  }
  return out;
}

std::vector<std::string> split_whitespace(const std::string& s) {
  std::vector<std::string> words;
  std::string word;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

bool is_decimal(char c) { return c >= '0' && c <= '9'; }

// Sampling keys from generation_config.json: (its key, our key, writer).
enum class SamplingKind { string, i32, f32 };
struct SamplingKey {
  const char* source;
  const char* key;
  SamplingKind kind;
};
constexpr SamplingKey kSampling[] = {
    {"sequence", "general.sampling.sequence", SamplingKind::string},
    {"top_k", "general.sampling.top_k", SamplingKind::i32},
    {"top_p", "general.sampling.top_p", SamplingKind::f32},
    {"min_p", "general.sampling.min_p", SamplingKind::f32},
    {"xtc_probability", "general.sampling.xtc_probability", SamplingKind::f32},
    {"xtc_threshold", "general.sampling.xtc_threshold", SamplingKind::f32},
    {"temperature", "general.sampling.temp", SamplingKind::f32},
    {"penalty_last_n", "general.sampling.penalty_last_n", SamplingKind::i32},
    {"penalty_repeat", "general.sampling.penalty_repeat", SamplingKind::f32},
    {"mirostat", "general.sampling.mirostat", SamplingKind::i32},
    {"mirostat_tau", "general.sampling.mirostat_tau", SamplingKind::f32},
    {"mirostat_eta", "general.sampling.mirostat_eta", SamplingKind::f32},
};

// gguf-py's add_string skips empty strings.
void set_string(MetadataList& out, const std::string& key, const std::optional<std::string>& value) {
  if (value && !value->empty()) out.set(key, Value::string(*value));
}

}  // namespace

std::string id_to_title(const std::string& text) {
  std::string spaced = text;
  for (char& c : spaced) {
    if (c == '-') c = ' ';
  }
  static const std::regex kKeep(R"(^(v\d+(?:\.\d+)*|\d.*)$)");
  std::string out;
  for (const std::string& word : split_whitespace(spaced)) {
    if (!out.empty()) out += ' ';
    out += py_islower(word) && !std::regex_search(word, kKeep) ? py_title(word) : word;
  }
  return out;
}

std::string size_label(int64_t total_params) {
  const double n = double(total_params < 0 ? -total_params : total_params);
  double scaled;
  const char* suffix;
  if (n > 1e12) {
    scaled = n * 1e-12;
    suffix = "T";
  } else if (n > 1e9) {
    scaled = n * 1e-9;
    suffix = "B";
  } else if (n > 1e6) {
    scaled = n * 1e-6;
    suffix = "M";
  } else {
    scaled = n * 1e-3;
    suffix = "K";
  }
  // len(str(round(scaled)).lstrip('0')): Python rounds half to even.
  std::string digits = fmt::format("{}", int64_t(std::nearbyint(scaled)));
  digits.erase(0, digits.find_first_not_of('0') == std::string::npos ? digits.size() : digits.find_first_not_of('0'));
  const int fix = std::max(2 - int(digits.size()), 0);
  return fmt::format("{:.{}f}{}", scaled, fix, suffix);
}

ModelIdParts model_id_components(const std::string& model_id, int64_t total_params) {
  ModelIdParts parts;
  if (model_id.find(' ') != std::string::npos) {
    parts.full_name = model_id;
    return parts;
  }
  std::string full = model_id;
  if (const size_t slash = model_id.find('/'); slash != std::string::npos) {
    parts.organization = model_id.substr(0, slash);
    full = model_id.substr(slash + 1);
    if (!parts.organization->empty() && (*parts.organization)[0] == '.') parts.organization.reset();
  }
  parts.full_name = full;

  std::vector<std::string> names;
  for (size_t start = 0;;) {
    const size_t dash = full.find('-', start);
    std::string piece = full.substr(start, dash == std::string::npos ? std::string::npos : dash - start);
    if (!piece.empty()) names.push_back(std::move(piece));
    if (dash == std::string::npos) break;
    start = dash + 1;
  }
  enum Tag { basename = 1, size = 2, finetune = 4, version = 8, type = 16 };
  std::vector<int> tags(names.size(), 0);
  static const std::regex kVersion(R"((v|iter)?\d+([.]\d+)*)", std::regex::icase);
  static const std::regex kType(R"(i?q\d(_\w)*|b?fp?(16|32))", std::regex::icase);
  static const std::regex kSize(R"((([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl))",
                                std::regex::icase);
  static const std::regex kFinetune(R"(chat|instruct|vision|lora)", std::regex::icase);
  for (size_t i = 0; i < names.size(); ++i) {
    std::string& part = names[i];
    if (std::regex_match(part, kVersion)) {
      tags[i] |= version;
    } else if (std::regex_match(part, kType)) {
      tags[i] |= type;
      for (char& c : part) c = char(std::toupper(static_cast<unsigned char>(c)));
    } else if (i > 0 && std::regex_match(part, kSize)) {
      for (char& c : part) {
        if (c == '_') c = '.';
      }
      if (is_decimal(part.back())) {  // bloom-7b1 -> 7.1b
        part = part.substr(0, part.size() - 2) + "." + part.back() + part[part.size() - 2];
      }
      if (part.size() > 1 && is_decimal(part[part.size() - 2]) && std::string_view("kmbt").find(part.back()) != std::string_view::npos) {
        part.back() = char(std::toupper(static_cast<unsigned char>(part.back())));
      }
      if (total_params != 0) {
        const std::string number = part.substr(0, part.size() - 1);
        char* end = nullptr;
        const double value = number.empty() ? 0.0 : std::strtod(number.c_str(), &end);
        // Python's float() accepts what strtod reads whole (no hex: the regex leaves none).
        if (!number.empty() && end == number.c_str() + number.size() &&
            number.find_first_of("xXpP") == std::string::npos) {
          const int scale = int(std::string_view(" KMBT").find(part.back()));
          const double label = value * std::pow(1000.0, double(scale));
          const double total = double(total_params);
          const bool far = total_params < 0 ? label < double(std::abs(total_params) / 8)
                                             : std::abs(label - total) > double(7 * total_params / 8);
          if (far) {
            tags[i] |= finetune;  // likely a context length
            part.back() = char(std::tolower(static_cast<unsigned char>(part.back())));
          }
        }
      }
      if (tags[i] == 0) tags[i] |= size;
    } else if (i > 0 && std::regex_match(part, kFinetune)) {
      tags[i] |= (total_params < 0 && part == "lora") ? type : finetune;
    }
  }
  // Word-based size labels give way to a number-based one.
  bool numeric_size = false;
  for (size_t i = 0; i < names.size(); ++i) {
    if (tags[i] & size) {
      for (char c : names[i]) numeric_size = numeric_size || is_decimal(c);
    }
  }
  if (numeric_size) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (!(tags[i] & size)) continue;
      bool all_alpha = !names[i].empty();
      for (char c : names[i]) all_alpha = all_alpha && std::isalpha(static_cast<unsigned char>(c));
      if (all_alpha) tags[i] &= ~size;
    }
  }
  bool at_start = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (at_start && ((tags[i] == 0 && std::isalpha(static_cast<unsigned char>(names[i][0]))) || (tags[i] & version))) {
      tags[i] |= basename;
    } else {
      at_start = false;
      if (tags[i] == 0) tags[i] |= finetune;
    }
  }
  for (size_t i = names.size(); i-- > 0;) {
    if ((tags[i] & basename) && tags[i] != basename) {
      tags[i] &= ~basename;
    } else {
      break;
    }
  }
  auto joined = [&](int tag, bool exclude_basename, bool unique) -> std::optional<std::string> {
    std::string out;
    std::vector<std::string> used;
    for (size_t i = 0; i < names.size(); ++i) {
      if (!(tags[i] & tag) || (exclude_basename && (tags[i] & basename))) continue;
      if (unique && std::find(used.begin(), used.end(), names[i]) != used.end()) continue;
      used.push_back(names[i]);
      if (!out.empty()) out += '-';
      out += names[i];
    }
    if (out.empty()) return std::nullopt;
    return out;
  };
  parts.basename = joined(basename, false, false);
  parts.size_label = joined(size, false, true);
  parts.finetune = joined(finetune, false, false);
  parts.version = joined(version, true, false);
  if (!parts.size_label && !parts.finetune && !parts.version) parts.basename.reset();  // too ambiguous
  return parts;
}

Status add_general_metadata(const std::string& dir, const std::string& folder_name, const Json& config,
                            int64_t total_params, MetadataList& out) {
  QUANT_ASSIGN_OR_RETURN(ModelCard card, load_model_card(dir, total_params));

  // Hugging Face parameters, then the folder's name, fill what the model card left unset.
  auto fill_from_id = [&](const std::string& model_id) {
    const ModelIdParts parts = model_id_components(model_id, total_params);
    if (!card.name) card.name = id_to_title(parts.full_name);
    if (!card.organization && parts.organization) card.organization = id_to_title(*parts.organization);
    if (!card.basename && parts.basename) card.basename = parts.basename;
    if (!card.finetune && parts.finetune) card.finetune = parts.finetune;
    if (!card.version && parts.version) card.version = parts.version;
    if (!card.size_label && parts.size_label) card.size_label = parts.size_label;
  };
  if (const auto name_or_path = config.find("_name_or_path");
      name_or_path != config.end() && name_or_path->is_string()) {
    const std::string id = name_or_path->get<std::string>();
    if (std::count(id.begin(), id.end(), '/') <= 1) fill_from_id(id);
  }
  fill_from_id(folder_name);
  if (!card.size_label && total_params > 0) card.size_label = size_label(total_params);

  // generation_config.json: an unreadable one is ignored, as the converter does.
  auto generation = read_json_file(dir, "generation_config.json");
  if (generation && *generation && (*generation)->is_object()) {
    const Json& gen = **generation;
    for (const SamplingKey& s : kSampling) {
      const auto it = gen.find(s.source);
      if (it == gen.end() || it->is_null()) continue;
      const std::string what = fmt::format("generation_config.json '{}'", s.source);
      if (s.kind == SamplingKind::string) {
        if (!it->is_string()) return Error(impossible(fmt::format("{} is not a string", what))).in_file(dir);
        set_string(out, s.key, it->get<std::string>());
      } else {
        Result<Value> value = s.kind == SamplingKind::i32 ? i32_value(*it, what) : f32_value(*it, what);
        if (!value) return std::move(value).error().in_file(dir);
        out.set(s.key, std::move(value).value());
      }
    }
  }

  out.set("general.name", Value::string(card.name.value_or("")));
  if (card.name->empty()) out.remove("general.name");
  set_string(out, "general.author", card.author);
  set_string(out, "general.version", card.version);
  set_string(out, "general.organization", card.organization);
  set_string(out, "general.finetune", card.finetune);
  set_string(out, "general.basename", card.basename);
  set_string(out, "general.description", card.description);
  set_string(out, "general.size_label", card.size_label);
  set_string(out, "general.license", card.license);
  set_string(out, "general.license.name", card.license_name);
  set_string(out, "general.license.link", card.license_link);
  set_string(out, "general.source.url", card.source_url);
  set_string(out, "general.source.doi", card.source_doi);
  set_string(out, "general.source.uuid", card.source_uuid);
  set_string(out, "general.source.repo_url", card.source_repo_url);
  auto add_entries = [&](const char* group, const std::vector<ModelCard::Entry>& entries) {
    out.set(fmt::format("general.{}.count", group), Value::u32(uint32_t(entries.size())));
    for (size_t i = 0; i < entries.size(); ++i) {
      for (const auto& [field, value] : entries[i].fields) {
        set_string(out, fmt::format("general.{}.{}.{}", group, i, field), value);
      }
    }
  };
  if (card.base_models) add_entries("base_model", *card.base_models);
  if (card.datasets) add_entries("dataset", *card.datasets);
  if (card.tags && !card.tags->empty()) out.set("general.tags", Value::array_of_strings(std::span<const std::string>(*card.tags)));
  if (card.languages && !card.languages->empty()) {
    out.set("general.languages", Value::array_of_strings(std::span<const std::string>(*card.languages)));
  }
  return Status::success();
}

}  // namespace quant::hf
