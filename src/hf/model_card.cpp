// The README's YAML front matter, read as gguf-py's Metadata.load_model_card and apply_metadata_heuristic read
// it: parsed with libyaml (the library behind PyYAML), plain scalars typed by PyYAML's safe_load rules (YAML 1.1:
// yes/no/on/off are booleans, 1_000 is an int...), then the card keys gguf-py knows, in its order of precedence.
// A value the converter cannot write (a number where it writes a string) is refused rather than guessed at.
#include "hf/model_card.h"

#include <fmt/format.h>
#include <yaml.h>

#include <map>
#include <memory>
#include <regex>

#include "hf/checkpoint_files.h"
#include "hf/general_metadata.h"
#include "hf/strings.h"

namespace quant::hf {
namespace {

struct Node {
  enum class Kind { null, boolean, integer, floating, string, other_scalar, sequence, mapping };
  Kind kind = Kind::null;
  std::string text;                                      // scalars
  std::vector<std::unique_ptr<Node>> items;              // sequences
  std::vector<std::pair<std::unique_ptr<Node>, std::unique_ptr<Node>>> entries;  // mappings, in order

  const Node* get(std::string_view key) const {
    const Node* found = nullptr;
    for (const auto& [k, v] : entries) {
      if (k->kind == Kind::string && k->text == key) found = v.get();  // the last duplicate wins, as in PyYAML
    }
    return found;
  }
  bool contains(std::string_view key) const { return get(key) != nullptr; }
};

// PyYAML's implicit resolvers for a plain scalar (resolver.py, YAML 1.1).
Node::Kind resolve_plain(const std::string& s) {
  static const std::regex kBool("^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$");
  static const std::regex kFloat(
      R"(^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$)");
  static const std::regex kInt(
      R"(^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$)");
  static const std::regex kNull("^(?:~|null|Null|NULL|)$");
  static const std::regex kTimestamp(
      R"(^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$)");
  if (std::regex_match(s, kNull)) return Node::Kind::null;
  if (std::regex_match(s, kBool)) return Node::Kind::boolean;
  if (std::regex_match(s, kInt)) return Node::Kind::integer;
  if (std::regex_match(s, kFloat)) return Node::Kind::floating;
  if (std::regex_match(s, kTimestamp) || s == "<<" || s == "=") return Node::Kind::other_scalar;
  return Node::Kind::string;
}

class YamlReader {
 public:
  explicit YamlReader(const std::string& text) {
    yaml_parser_initialize(&parser_);
    yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  }
  ~YamlReader() { yaml_parser_delete(&parser_); }

  // The first document's root node (null for an empty stream).
  Result<std::unique_ptr<Node>> read_document() {
    yaml_event_t event;
    for (;;) {
      QUANT_TRY(next(event));
      const yaml_event_type_t type = event.type;
      if (type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&event);
        return std::make_unique<Node>();
      }
      if (type == YAML_DOCUMENT_START_EVENT) {
        yaml_event_delete(&event);
        QUANT_TRY(next(event));
        return read_node(event);
      }
      yaml_event_delete(&event);
    }
  }

 private:
  Status next(yaml_event_t& event) {
    if (!yaml_parser_parse(&parser_, &event)) {
      return invalid_input(fmt::format("front matter is not valid YAML: {} at line {}",
                                       parser_.problem != nullptr ? parser_.problem : "error",
                                       parser_.problem_mark.line + 1));
    }
    return Status::success();
  }

  // Builds the node that starts with `event` (which this consumes).
  Result<std::unique_ptr<Node>> read_node(yaml_event_t& event) {
    auto node = std::make_unique<Node>();
    if (++depth_ > 64) {
      yaml_event_delete(&event);
      return invalid_input("front matter nests too deeply");
    }
    switch (event.type) {
      case YAML_ALIAS_EVENT:
        yaml_event_delete(&event);
        return invalid_input("front matter uses YAML aliases, which are not read");
      case YAML_SCALAR_EVENT: {
        node->text.assign(reinterpret_cast<const char*>(event.data.scalar.value), event.data.scalar.length);
        const bool has_tag = event.data.scalar.tag != nullptr;
        const std::string tag = has_tag ? reinterpret_cast<const char*>(event.data.scalar.tag) : "";
        if (has_tag && tag != "tag:yaml.org,2002:str") {
          yaml_event_delete(&event);
          return invalid_input(fmt::format("front matter uses the YAML tag {}, which is not read", tag));
        }
        node->kind = (event.data.scalar.plain_implicit && !has_tag) ? resolve_plain(node->text) : Node::Kind::string;
        yaml_event_delete(&event);
        break;
      }
      case YAML_SEQUENCE_START_EVENT: {
        yaml_event_delete(&event);
        node->kind = Node::Kind::sequence;
        for (;;) {
          yaml_event_t item;
          QUANT_TRY(next(item));
          if (item.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&item);
            break;
          }
          QUANT_ASSIGN_OR_RETURN(std::unique_ptr<Node> child, read_node(item));
          node->items.push_back(std::move(child));
        }
        break;
      }
      case YAML_MAPPING_START_EVENT: {
        yaml_event_delete(&event);
        node->kind = Node::Kind::mapping;
        for (;;) {
          yaml_event_t key;
          QUANT_TRY(next(key));
          if (key.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&key);
            break;
          }
          QUANT_ASSIGN_OR_RETURN(std::unique_ptr<Node> key_node, read_node(key));
          yaml_event_t value;
          QUANT_TRY(next(value));
          QUANT_ASSIGN_OR_RETURN(std::unique_ptr<Node> value_node, read_node(value));
          node->entries.emplace_back(std::move(key_node), std::move(value_node));
        }
        break;
      }
      default:
        yaml_event_delete(&event);
        return invalid_input("unexpected YAML event in front matter");
    }
    --depth_;
    return node;
  }

  yaml_parser_t parser_{};
  int depth_ = 0;
};

// Python's str.splitlines() for the usual line ends.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '\x1c' || c == '\x1d' || c == '\x1e') {
      lines.push_back(std::move(line));
      line.clear();
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      line += c;
    }
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

class CardReader {
 public:
  CardReader(const Node& root, std::string path, int64_t total_params)
      : root_(root), path_(std::move(path)), total_params_(total_params) {}

  Result<ModelCard> read() {
    ModelCard c;
    struct Scalar {
      std::optional<std::string>* field;
      std::vector<const char*> keys;  // in gguf-py's order of precedence
    };
    const Scalar scalars[] = {
        {&c.name, {"name", "model_name"}},
        {&c.author, {"author", "model_author", "model_creator"}},
        {&c.version, {"version", "model_version"}},
        {&c.organization, {"organization", "model_organization"}},
        {&c.description, {"description", "model_description"}},
        {&c.finetune, {"finetune", "model_finetune"}},
        {&c.basename, {"basename", "model_basename", "model_type"}},
        {&c.size_label, {"size_label", "model_size_label"}},
        {&c.source_url, {"url", "model_url"}},
        {&c.source_doi, {"doi", "model_doi"}},
        {&c.source_uuid, {"uuid", "model_uuid"}},
        {&c.source_repo_url, {"repo_url", "model_repo_url"}},
        {&c.license_name, {"license_name"}},
        {&c.license_link, {"license_link"}},
    };
    for (const auto& [field, keys] : scalars) {
      for (const char* key : keys) {
        if (field->has_value()) break;
        QUANT_ASSIGN_OR_RETURN(*field, string_of(key));
      }
    }
    if (const Node* license = root_.get("license"); license != nullptr && license->kind != Node::Kind::null) {
      if (license->kind == Node::Kind::sequence) {
        std::string joined;
        for (const auto& item : license->items) {
          if (item->kind != Node::Kind::string) return refuse("license");
          joined += (joined.empty() ? "" : ",") + item->text;
        }
        c.license = joined;
      } else {
        QUANT_ASSIGN_OR_RETURN(c.license, string_of("license"));
      }
    }
    QUANT_ASSIGN_OR_RETURN(c.base_models, entries({"base_model", "base_models", "base_model_sources"}));
    QUANT_ASSIGN_OR_RETURN(c.datasets, entries({"datasets", "dataset", "dataset_sources"}));
    QUANT_TRY(append_list(c.tags, "tags"));
    QUANT_TRY(append_list(c.tags, "pipeline_tag"));
    QUANT_TRY(append_list(c.languages, "languages"));
    QUANT_TRY(append_list(c.languages, "language"));
    return c;
  }

 private:
  Error refuse(std::string_view key) const {
    return Error(impossible(fmt::format("model card key '{}' holds a value convert_hf_to_gguf.py cannot write as "
                                        "text",
                                        key)))
        .in_file(path_);
  }
  // A string value, nothing for an absent or null key, an error for any other kind.
  Result<std::optional<std::string>> string_of(std::string_view key) const {
    const Node* node = root_.get(key);
    if (node == nullptr || node->kind == Node::Kind::null) return std::optional<std::string>();
    if (node->kind != Node::Kind::string) return refuse(key);
    return std::optional<std::string>(node->text);
  }
  // use_array_model_card_metadata: a string is appended, a list extended (strings only here).
  Status append_list(std::optional<std::vector<std::string>>& out, std::string_view key) const {
    const Node* node = root_.get(key);
    if (node == nullptr || node->kind == Node::Kind::null) return Status::success();
    if (!out) out.emplace();
    if (node->kind == Node::Kind::string) {
      out->push_back(node->text);
    } else if (node->kind == Node::Kind::sequence) {
      for (const auto& item : node->items) {
        if (item->kind != Node::Kind::string) return refuse(key);
        out->push_back(item->text);
      }
    }
    return Status::success();
  }
  // Base models and datasets: ids, URLs or mappings, as apply_metadata_heuristic turns them into entries.
  Result<std::optional<std::vector<ModelCard::Entry>>> entries(std::initializer_list<const char*> keys) const {
    const Node* value = nullptr;
    bool present = false;
    for (const char* key : keys) {
      if (root_.contains(key)) {
        present = true;
        value = root_.get(key);
        break;
      }
    }
    if (!present) return std::optional<std::vector<ModelCard::Entry>>();
    std::vector<const Node*> ids;
    if (value->kind == Node::Kind::string) {
      ids.push_back(value);
    } else if (value->kind == Node::Kind::sequence) {
      for (const auto& item : value->items) ids.push_back(item.get());
    }
    std::vector<ModelCard::Entry> out;
    static const std::regex kHubUrl(R"(^https?://huggingface.co/([^/]+/[^/]+)$)");
    for (const Node* id : ids) {
      std::map<std::string, std::string> fields;
      if (id->kind == Node::Kind::mapping) {
        for (const auto& [k, v] : id->entries) {
          if (k->kind != Node::Kind::string) continue;
          if (v->kind != Node::Kind::string) return refuse(*keys.begin());
          fields[k->text] = v->text;
        }
      } else if (id->kind == Node::Kind::string) {
        const std::string& text = id->text;
        auto components = [&](const std::string& model_id, bool add_repo) {
          const ModelIdParts parts = model_id_components(model_id, total_params_);
          fields["name"] = id_to_title(parts.full_name);
          if (parts.organization) fields["organization"] = id_to_title(*parts.organization);
          if (parts.version) fields["version"] = *parts.version;
          if (add_repo && parts.organization) {
            fields["repo_url"] = "https://huggingface.co/" + *parts.organization + "/" + parts.full_name;
          }
        };
        if (text.starts_with("http://") || text.starts_with("https://") || text.starts_with("ssh://")) {
          fields["repo_url"] = text;
          std::smatch match;
          if (text.find("huggingface.co") != std::string::npos && std::regex_search(text, match, kHubUrl)) {
            components(match[1].str(), false);
          }
        } else {
          components(text, true);
        }
      } else {
        return refuse(*keys.begin());  // the converter logs an error and writes an empty entry
      }
      ModelCard::Entry entry;
      for (const char* field : {"name", "author", "version", "organization", "description", "url", "doi", "uuid",
                                "repo_url"}) {
        if (const auto it = fields.find(field); it != fields.end()) entry.fields.emplace_back(field, it->second);
      }
      out.push_back(std::move(entry));
    }
    return std::optional<std::vector<ModelCard::Entry>>(std::move(out));
  }

  const Node& root_;
  std::string path_;
  int64_t total_params_;
};

}  // namespace

Result<ModelCard> load_model_card(const std::string& dir, int64_t total_params) {
  const std::string path = dir + "/README.md";
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> text, read_small_file(dir, "README.md"));
  if (!text) return ModelCard();
  const std::vector<std::string> lines = split_lines(*text);
  if (lines.empty() || lines[0] != "---") return ModelCard();
  std::string yaml;
  for (size_t i = 1; i < lines.size() && lines[i] != "---"; ++i) yaml += (i > 1 ? "\n" : "") + lines[i];
  yaml += "\n";
  // gguf-py's own fixes before parsing: the "Norway problem" and tabs.
  yaml = replace_all(yaml, "- no\n", "- \"no\"\n");
  yaml = replace_all(yaml, "\t", "  ");
  YamlReader reader(yaml);
  auto root = reader.read_document();
  if (!root) return std::move(root).error().in_file(path);
  if ((*root)->kind != Node::Kind::mapping) return ModelCard();  // the converter logs it and reads nothing
  return CardReader(**root, path, total_params).read();
}

}  // namespace quant::hf
