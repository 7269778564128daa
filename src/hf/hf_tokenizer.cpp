// tokenizer.json loaded as transformers 4.57.6 + tokenizers load it, for the converter's get_vocab_base.
#include "core/json_error_text.h"
#include "hf/hf_tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <optional>
#include <tuple>

#include "tokenizer/unicode.h"

namespace quant::hf {
namespace {

using PlainJson = nlohmann::json;

// A tokenizer class transformers may pick, and what its fast __init__ adds to tokenizer.json.
struct TokenizerClass {
  std::string_view name;                     // without the "Fast" suffix
  std::array<std::string_view, 4> defaults;  // unk, bos, eos, pad defaults ("" = None)
  bool template_from_flags = false;          // update_post_processor(): [bos] $A [eos] from add_*_token
  bool cleanup_off_by_default = false;       // clean_up_tokenization_spaces defaults to False
};

// clang-format off
constexpr TokenizerClass kTokenizerClasses[] = {
    // PreTrainedTokenizerFast: tokenizer.json as it is.
    {"PreTrainedTokenizer", {"", "", "", ""}, false, false},
    // LlamaTokenizerFast: unk <unk>, bos <s>, eos </s>; add_bos_token True, add_eos_token False.
    {"LlamaTokenizer", {"<unk>", "<s>", "</s>", ""}, true, true},
    // Qwen2TokenizerFast: unk, eos and pad <|endoftext|>, no bos.
    {"Qwen2Tokenizer", {"<|endoftext|>", "", "<|endoftext|>", "<|endoftext|>"}, false, false},
    // GPT2TokenizerFast: unk, bos and eos <|endoftext|>.
    {"GPT2Tokenizer", {"<|endoftext|>", "<|endoftext|>", "<|endoftext|>", ""}, false, false},
};

// AutoTokenizer's TOKENIZER_MAPPING for the model types of our architectures.
constexpr std::pair<std::string_view, std::string_view> kClassOfModelType[] = {
    {"llama", "LlamaTokenizer"}, {"mistral", "LlamaTokenizer"}, {"phi3", "LlamaTokenizer"},
    {"qwen2", "Qwen2Tokenizer"}, {"qwen3", "Qwen2Tokenizer"},
};
// clang-format on

const PlainJson& member(const PlainJson& object, const char* key) {
  static const PlainJson kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

bool bool_member(const PlainJson& object, const char* key, bool fallback) {
  const PlainJson& value = member(object, key);
  return value.is_boolean() ? value.get<bool>() : fallback;
}

// Python's truthiness of a JSON value.
bool python_truthy(const PlainJson& value) {
  switch (value.type()) {
    case PlainJson::value_t::null:
      return false;
    case PlainJson::value_t::boolean:
      return value.get<bool>();
    case PlainJson::value_t::number_integer:
    case PlainJson::value_t::number_unsigned:
    case PlainJson::value_t::number_float:
      return value.get<double>() != 0.0;
    case PlainJson::value_t::string:
      return !value.get_ref<const std::string&>().empty();
    case PlainJson::value_t::array:
    case PlainJson::value_t::object:
      return !value.empty();
    default:
      return true;
  }
}

// A token id from JSON: a non-negative integer below 2^31 (the tokenizers crate keeps ids as u32; GGUF and
// llama.cpp as i32).
std::optional<int64_t> id_value(const PlainJson& value) {
  if (!value.is_number_integer()) return std::nullopt;
  if (value.is_number_unsigned()) {
    const uint64_t id = value.get<uint64_t>();
    return id < (uint64_t(1) << 31) ? std::optional<int64_t>(int64_t(id)) : std::nullopt;
  }
  const int64_t id = value.get<int64_t>();
  return id >= 0 && id < (int64_t(1) << 31) ? std::optional<int64_t>(id) : std::nullopt;
}

// A special token as tokenizer_config.json spells it: a string, an AddedToken object, or null.
Result<std::optional<std::string>> special_content(const PlainJson& value, const std::string& what,
                                                   const std::string& file) {
  if (value.is_null()) return std::optional<std::string>();
  if (value.is_string()) return std::optional<std::string>(value.get<std::string>());
  if (value.is_object() && member(value, "content").is_string()) {
    return std::optional<std::string>(member(value, "content").get<std::string>());
  }
  return Error(invalid_input(fmt::format("{} is neither a string nor a token object", what))).in_file(file);
}

Result<PlainJson> parse_plain(const std::string& text, const std::string& file) {
  try {
    return PlainJson::parse(text);
  } catch (const PlainJson::parse_error& e) {
    return Error(invalid_input(fmt::format("not valid JSON: {}", json_error_text(e))))
        .in_file(file)
        .at_offset(e.byte == 0 ? 0 : e.byte - 1);
  } catch (const PlainJson::exception& e) {
    return Error(invalid_input(fmt::format("holds a value that cannot be read: {}", json_error_text(e)))).in_file(file);
  }
}

Json ordered(const PlainJson& value) { return Json::parse(value.dump()); }

// model.merges, in either format ("a b" strings, or [a, b] pairs since transformers 4.45), as the tokenizers
// library reads them: each part and their concatenation must be tokens, and the list must be there.
Status read_merges(const PlainJson& merges, const std::string& file, BpeModel& bpe) {
  if (!merges.is_array()) return Error(invalid_input("model.merges is missing or not a list")).in_file(file);
  bpe.merges.reserve(merges.size());
  const bool pairs = !merges.empty() && merges[0].is_array();
  int64_t rank = 0;
  for (const PlainJson& merge : merges) {
    std::string left, right;
    if (pairs && merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else if (!pairs && merge.is_string()) {
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        return Error(invalid_input(fmt::format("model.merges[{}] {} is not two tokens", rank, merge.dump())))
            .in_file(file);
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else {
      return Error(invalid_input(
                       fmt::format("model.merges[{}] {} is not a merge like the first one", rank, merge.dump())))
          .in_file(file);
    }
    const auto a = bpe.vocab.find(left), b = bpe.vocab.find(right), merged = bpe.vocab.find(left + right);
    if (a == bpe.vocab.end() || b == bpe.vocab.end() || merged == bpe.vocab.end()) {
      const std::string missing = a == bpe.vocab.end() ? left : b == bpe.vocab.end() ? right : left + right;
      return Error(invalid_input(fmt::format("model.merges[{}] {}: {} is not in the vocabulary", rank, merge.dump(),
                                             PlainJson(missing).dump())))
          .in_file(file);
    }
    bpe.merges[(uint64_t(a->second) << 32) | uint64_t(b->second)] = {rank, merged->second};
    ++rank;
  }
  return Status::success();
}

Result<BpeModel> read_bpe_model(const PlainJson& model, const std::string& file) {
  if (!model.is_object()) return Error(invalid_input("has no model object")).in_file(file);
  const PlainJson& type = member(model, "type");
  if (type != "BPE") {
    return Error(
               impossible(fmt::format("model type {} is not converted on the GPT-2 BPE path (only BPE)", type.dump())))
        .in_file(file);
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const PlainJson& value = member(model, key);
    if (!value.is_null() && !(value.is_string() && value.get_ref<const std::string&>().empty())) {
      return Error(impossible(fmt::format("BPE {} {} is not supported", key, value.dump()))).in_file(file);
    }
  }
  if (const PlainJson& dropout = member(model, "dropout");
      !dropout.is_null() && !(dropout.is_number() && dropout.get<double>() == 0.0)) {
    return Error(impossible("BPE dropout makes the tokenization random; the converter's hash would be too"))
        .in_file(file);
  }
  BpeModel bpe;
  const PlainJson& vocab = member(model, "vocab");
  if (!vocab.is_object()) return Error(invalid_input("model.vocab is not an object")).in_file(file);
  bpe.vocab.reserve(vocab.size());
  for (const auto& [token, id_json] : vocab.items()) {
    const std::optional<int64_t> id = id_value(id_json);
    if (!id)
      return Error(invalid_input(fmt::format("model.vocab: token {} has id {}, not an id", PlainJson(token).dump(),
                                             id_json.dump())))
          .in_file(file);
    bpe.vocab.emplace(token, *id);
  }
  QUANT_TRY(read_merges(member(model, "merges"), file, bpe));
  bpe.ignore_merges = bool_member(model, "ignore_merges", false);
  bpe.byte_fallback = bool_member(model, "byte_fallback", false);
  bpe.fuse_unk = bool_member(model, "fuse_unk", false);
  if (const PlainJson& unk = member(model, "unk_token"); unk.is_string()) {
    const auto it = bpe.vocab.find(unk.get<std::string>());
    if (it == bpe.vocab.end())
      return Error(invalid_input(fmt::format("unk_token {} is not in the vocabulary", unk.dump()))).in_file(file);
    bpe.unk_id = it->second;
  }
  return bpe;
}

// The special tokens tokenizer.json's post-processor puts around a single sequence: none for ByteLevel, cls and
// sep for Roberta/Bert, its `single` template for TemplateProcessing, each in turn for a Sequence.
Status read_post_processor(const PlainJson& post, const std::string& file, std::vector<int64_t>& prefix,
                           std::vector<int64_t>& suffix) {
  std::vector<PlainJson> processors;
  if (member(post, "type") == "Sequence") {
    if (!member(post, "processors").is_array())
      return Error(invalid_input("post_processor Sequence has no processors")).in_file(file);
    for (const PlainJson& p : member(post, "processors")) processors.push_back(p);
  } else if (!post.is_null()) {
    processors.push_back(post);
  }
  for (const PlainJson& p : processors) {
    const PlainJson& type = member(p, "type");
    std::vector<int64_t> before, after;
    if (type == "ByteLevel") continue;
    if (type == "RobertaProcessing" || type == "BertProcessing") {
      for (const auto& [key, list] : {std::pair{"cls", &before}, std::pair{"sep", &after}}) {
        const PlainJson& pair = member(p, key);
        const std::optional<int64_t> id = pair.is_array() && pair.size() == 2 ? id_value(pair[1]) : std::nullopt;
        if (!id)
          return Error(invalid_input(fmt::format("post_processor {} has no {} id", type.dump(), key))).in_file(file);
        list->push_back(*id);
      }
    } else if (type == "TemplateProcessing") {
      const PlainJson& single = member(p, "single");
      if (!single.is_array()) return Error(invalid_input("TemplateProcessing has no single template")).in_file(file);
      bool seen_a = false;
      for (const PlainJson& item : single) {
        if (member(member(item, "Sequence"), "id") == "A") {
          if (seen_a) return Error(impossible("TemplateProcessing repeats the sequence")).in_file(file);
          seen_a = true;
          continue;
        }
        const PlainJson& name = member(member(item, "SpecialToken"), "id");
        const PlainJson& ids = member(
            member(member(p, "special_tokens"), name.is_string() ? name.get_ref<const std::string&>().c_str() : ""),
            "ids");
        if (!name.is_string() || !ids.is_array()) {
          return Error(invalid_input(
                           fmt::format("TemplateProcessing item {} is not a known special token or $A", item.dump())))
              .in_file(file);
        }
        for (const PlainJson& id_json : ids) {
          const std::optional<int64_t> id = id_value(id_json);
          if (!id) return Error(invalid_input(fmt::format("special token {} has a bad id", name.dump()))).in_file(file);
          (seen_a ? after : before).push_back(*id);
        }
      }
      if (!seen_a) return Error(impossible("TemplateProcessing without $A")).in_file(file);
    } else {
      return Error(impossible(fmt::format("post_processor {} is not reproduced", type.dump()))).in_file(file);
    }
    prefix.insert(prefix.begin(), before.begin(), before.end());
    suffix.insert(suffix.end(), after.begin(), after.end());
  }
  return Status::success();
}

}  // namespace

Result<HfTokenizer> HfTokenizer::load(const std::string& dir, const Json& config, bool with_pipeline) {
  HfTokenizer t;
  t.file_ = dir + "/tokenizer.json";
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> text, read_small_file(dir, "tokenizer.json", uint64_t(256) << 20));
  if (!text)
    return Error(impossible("no tokenizer.model and no tokenizer.json: no vocabulary to convert")).in_file(dir);
  QUANT_ASSIGN_OR_RETURN(const PlainJson json, parse_plain(*text, t.file_));
  text.reset();
  if (!json.is_object()) return Error(invalid_input("not a JSON object")).in_file(t.file_);
  QUANT_ASSIGN_OR_RETURN(BpeModel model, read_bpe_model(member(json, "model"), t.file_));
  const int64_t model_size = int64_t(model.vocab.size());
  t.model_size_ = model_size;

  // One text per id: the crate keeps a reverse map, and Python's dict of it would keep an arbitrary one.
  std::unordered_map<int64_t, const std::string*> model_text;
  model_text.reserve(model.vocab.size());
  for (const auto& [token, id] : model.vocab) {
    if (!model_text.emplace(id, &token).second) {
      return Error(impossible(fmt::format("model.vocab gives id {} to two tokens", id))).in_file(t.file_);
    }
  }

  // Whether the model's ids are 0..n-1: over a vocabulary with gaps, versions of the tokenizers library number
  // new added tokens differently (one counts from the largest added id, a later one from the vocabulary's size).
  int64_t max_model_id = -1;
  for (const auto& [token, id] : model.vocab) max_model_id = std::max(max_model_id, id);
  const bool dense = max_model_id + 1 == model_size;

  // AddedVocabulary::add_tokens: a text already known keeps its id, a new one takes the next id.
  int64_t max_added = -1;
  auto add_token = [&](HfAddedToken token) -> Result<int64_t> {
    if (token.content.empty() || t.added_ids_.contains(token.content)) return int64_t(-1);
    int64_t id;
    if (const auto it = model.vocab.find(token.content); it != model.vocab.end()) {
      id = it->second;
    } else {
      if (!dense) {
        return Error(impossible(fmt::format("added token {} is not in model.vocab, whose ids have gaps: the id the "
                                            "tokenizers library gives it depends on its version",
                                            PlainJson(token.content).dump())))
            .in_file(t.file_);
      }
      id = max_added < 0 ? model_size : (max_added >= model_size || model_size == 0 ? max_added + 1 : model_size);
      if (model_text.contains(id)) {
        return Error(impossible(fmt::format("added token {} would take id {}, which a vocabulary token has",
                                            PlainJson(token.content).dump(), id)))
            .in_file(t.file_);
      }
    }
    max_added = std::max(max_added, id);
    token.id = id;
    t.added_ids_[token.content] = id;
    t.added_[id] = std::move(token);
    return id;
  };

  const PlainJson& added_list = member(json, "added_tokens");
  if (!added_list.is_null() && !added_list.is_array())
    return Error(invalid_input("added_tokens is not a list")).in_file(t.file_);
  if (added_list.is_array()) {
    for (const PlainJson& entry : added_list) {
      const std::optional<int64_t> id = id_value(member(entry, "id"));
      if (!id || !member(entry, "content").is_string()) {
        return Error(invalid_input("an added token has no id or no text content")).in_file(t.file_);
      }
      HfAddedToken token;
      token.content = member(entry, "content").get<std::string>();
      token.special = bool_member(entry, "special", false);
      token.normalized = bool_member(entry, "normalized", !token.special);
      if (t.added_ids_.contains(token.content)) continue;
      QUANT_ASSIGN_OR_RETURN(const int64_t given, add_token(token));
      if (given != *id) {
        return Error(impossible(
                         fmt::format("added token {} is stored with id {}, but the tokenizers library gives it id {}",
                                     PlainJson(token.content).dump(), *id, given)))
            .in_file(t.file_);
      }
    }
  }

  // The class transformers instantiates, and what its __init__ adds.
  const std::string config_file = dir + "/tokenizer_config.json";
  PlainJson tc = PlainJson::object();
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> tc_text, read_small_file(dir, "tokenizer_config.json"));
  if (tc_text) {
    QUANT_ASSIGN_OR_RETURN(tc, parse_plain(*tc_text, config_file));
    if (!tc.is_object()) return Error(invalid_input("not a JSON object")).in_file(config_file);
  }
  std::string class_name;
  if (member(tc, "tokenizer_class").is_string()) {
    class_name = member(tc, "tokenizer_class").get<std::string>();
  } else if (config.is_object() && config.contains("tokenizer_class") && config["tokenizer_class"].is_string()) {
    class_name = config["tokenizer_class"].get<std::string>();
  } else if (config.is_object() && config.contains("model_type") && config["model_type"].is_string()) {
    for (const auto& [model_type, name] : kClassOfModelType) {
      if (config["model_type"].get<std::string>() == model_type) class_name = name;
    }
  }
  if (class_name.ends_with("Fast")) class_name.resize(class_name.size() - 4);
  const TokenizerClass* cls = nullptr;
  for (const TokenizerClass& row : kTokenizerClasses) {
    if (row.name == class_name) cls = &row;
  }
  if (cls == nullptr) {
    return Error(
               impossible(fmt::format("tokenizer class '{}' is not one this build reproduces (PreTrainedTokenizerFast, "
                                      "LlamaTokenizerFast, Qwen2TokenizerFast, GPT2TokenizerFast)",
                                      class_name)))
        .in_file(config_file);
  }
  if (cls->template_from_flags && !member(tc, "add_prefix_space").is_null()) {
    return Error(impossible("LlamaTokenizerFast with add_prefix_space is rebuilt from tokenizer.model, which the "
                            "folder lacks"))
        .in_file(config_file);
  }
  // A top-level ByteLevel/Metaspace pre-tokenizer's add_prefix_space may be overridden from the config.
  if (const PlainJson& prefix = member(member(json, "pre_tokenizer"), "add_prefix_space");
      with_pipeline && prefix.is_boolean()) {
    const PlainJson& wanted = member(tc, "add_prefix_space");
    if ((wanted.is_boolean() && wanted != prefix) || (!wanted.is_boolean() && prefix.get<bool>())) {
      return Error(impossible("the pre-tokenizer's add_prefix_space and tokenizer_config.json's disagree (transformers "
                              "rewrites it; not reproduced)"))
          .in_file(config_file);
    }
  }

  // Special tokens: tokenizer_config.json's, else the class's defaults.
  static constexpr std::array<const char*, 7> kSpecialKeys = {"unk_token", "bos_token", "eos_token", "pad_token",
                                                              "sep_token", "cls_token", "mask_token"};
  std::map<std::string, std::optional<std::string>> specials;
  for (size_t i = 0; i < kSpecialKeys.size(); ++i) {
    std::optional<std::string> content;
    if (tc.contains(kSpecialKeys[i])) {
      QUANT_ASSIGN_OR_RETURN(content, special_content(tc[kSpecialKeys[i]], kSpecialKeys[i], config_file));
    } else if (i < 4 && !cls->defaults[i].empty()) {
      content = std::string(cls->defaults[i]);
    }
    specials[kSpecialKeys[i]] = content;
  }
  std::vector<std::string> special_texts;
  // all_special_tokens_extended's order: bos, eos, unk, sep, pad, cls, mask, then the additional ones.
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    if (specials[key]) special_texts.push_back(*specials[key]);
  }
  if (const PlainJson& extra = member(tc, "additional_special_tokens"); !extra.is_null()) {
    if (!extra.is_array()) return Error(invalid_input("additional_special_tokens is not a list")).in_file(config_file);
    for (const PlainJson& entry : extra) {
      QUANT_ASSIGN_OR_RETURN(std::optional<std::string> content,
                             special_content(entry, "an additional special token", config_file));
      if (content) special_texts.push_back(*content);
    }
  }
  // PreTrainedTokenizerFast.__init__: added_tokens_decoder entries tokenizer.json lacks (sorted by id), then
  // special tokens not yet known, are added; the crate ignores a text it already has.
  if (const PlainJson& decoder = member(tc, "added_tokens_decoder"); !decoder.is_null()) {
    if (!decoder.is_object()) return Error(invalid_input("added_tokens_decoder is not an object")).in_file(config_file);
    std::map<int64_t, HfAddedToken> entries;
    for (const auto& [key, entry] : decoder.items()) {
      size_t used = 0;
      int64_t id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != key.size() || !member(entry, "content").is_string()) {
        return Error(invalid_input(fmt::format("added_tokens_decoder entry '{}' is not an id with a token", key)))
            .in_file(config_file);
      }
      HfAddedToken token;
      token.content = member(entry, "content").get<std::string>();
      token.special = bool_member(entry, "special", false);
      token.normalized = bool_member(entry, "normalized", !token.special);
      token.id = id;
      entries[id] = token;
    }
    for (auto& [id, token] : entries) {
      if (t.added_ids_.contains(token.content)) continue;
      const bool special =
          token.special || std::find(special_texts.begin(), special_texts.end(), token.content) != special_texts.end();
      token.special = special;
      QUANT_ASSIGN_OR_RETURN(const int64_t given, add_token(token));
      if (given != id) {
        return Error(impossible(fmt::format(
                         "added_tokens_decoder gives {} id {}, but the tokenizers library would give it id {}",
                         PlainJson(token.content).dump(), id, given)))
            .in_file(config_file);
      }
    }
  }
  for (const std::string& content : special_texts) {
    HfAddedToken token;
    token.content = content;
    token.special = true;
    token.normalized = false;
    QUANT_TRY(add_token(token));
  }

  // get_vocab(with_added_tokens=True): the model's vocabulary with the added tokens over it.
  t.vocab_ = model.vocab;
  for (const auto& [id, token] : t.added_) t.vocab_[token.content] = id;
  std::unordered_map<int64_t, int> seen;
  for (const auto& [content, id] : t.vocab_) {
    if (++seen[id] > 1) return Error(impossible(fmt::format("two tokens have id {}", id))).in_file(t.file_);
  }

  // The post-processor: LlamaTokenizerFast rebuilds it; the others keep tokenizer.json's.
  auto id_of = [&](const std::string& content) -> std::optional<int64_t> {
    const auto it = t.vocab_.find(content);
    return it == t.vocab_.end() ? std::nullopt : std::optional<int64_t>(it->second);
  };
  if (cls->template_from_flags) {
    // The keyword arguments as given (None and other values by Python truthiness), else the class defaults.
    auto flag = [&](const char* key, bool fallback) { return tc.contains(key) ? python_truthy(tc[key]) : fallback; };
    const bool add_bos = flag("add_bos_token", true), add_eos = flag("add_eos_token", false);
    for (const auto& [wanted, key, list] :
         {std::tuple{add_bos, "bos_token", &t.prefix_}, std::tuple{add_eos, "eos_token", &t.suffix_}}) {
      if (!wanted) continue;
      const std::optional<std::string>& content = specials[key];
      const std::optional<int64_t> id = content ? id_of(*content) : std::nullopt;
      if (!id)
        return Error(invalid_input(fmt::format("add_{} is set but {} is not a token", key, key))).in_file(config_file);
      list->push_back(*id);
    }
  } else if (with_pipeline) {
    QUANT_TRY(read_post_processor(member(json, "post_processor"), t.file_, t.prefix_, t.suffix_));
  }

  // The decoder, for decode(encode(token)) of added tokens that are not normalized.
  const PlainJson& decoder = member(json, "decoder");
  t.decoder_is_identity_ = decoder.is_null();
  t.byte_level_decoder_ = member(decoder, "type") == "ByteLevel";
  const PlainJson& cleanup = member(tc, "clean_up_tokenization_spaces");
  t.cleanup_may_apply_ = cleanup.is_boolean() ? cleanup.get<bool>() : !cls->cleanup_off_by_default;

  t.special_texts_ = special_texts;
  if (!with_pipeline) return t;
  QUANT_ASSIGN_OR_RETURN(TokenizerPipeline pipeline,
                         TokenizerPipeline::create(ordered(member(json, "normalizer")),
                                                   ordered(member(json, "pre_tokenizer")), std::move(model), t.file_));
  t.pipeline_.emplace(std::move(pipeline));
  return t;
}

Result<std::vector<int64_t>> HfTokenizer::encode(std::string_view text) const {
  if (!pipeline_) return Error(impossible("the tokenizer was loaded without its pipeline")).in_file(file_);
  // The crate cuts the text at added tokens before the pipeline; that matching is not reproduced, so a text
  // holding one is refused.
  QUANT_ASSIGN_OR_RETURN(const std::string normalized, pipeline_->normalize(text));
  for (const auto& [id, token] : added_) {
    if (text.find(token.content) != std::string_view::npos || normalized.find(token.content) != std::string::npos) {
      return Error(impossible(fmt::format("added token {} occurs in the converter's check text: the tokenizers "
                                          "library's added-token matching is not reproduced",
                                          PlainJson(token.content).dump())))
          .in_file(file_);
    }
  }
  QUANT_ASSIGN_OR_RETURN(std::vector<int64_t> body, pipeline_->encode(text));
  std::vector<int64_t> ids = prefix_;
  ids.insert(ids.end(), body.begin(), body.end());
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

Result<std::string> HfTokenizer::decode_added(const HfAddedToken& token) const {
  // encode() of an added token's own text is that token alone; decode() passes its text through the decoder.
  std::string decoded = token.content;
  if (byte_level_decoder_) {
    // ByteLevel: every character of the alphabet back to its byte, or the text unchanged when one is not.
    std::string bytes;
    bool all = true;
    for (size_t at = 0; at < token.content.size() && all;) {
      const uint32_t cpt = text::decode_utf8_at(token.content, at);
      const int b = byte_level_byte(cpt);
      if (b < 0) all = false;
      bytes += char(b);
    }
    if (all) {
      for (size_t at = 0; at < bytes.size();) {
        const size_t length = text::valid_utf8_length(bytes, at);
        if (length == 0) {
          return Error(impossible(fmt::format("added token {} decodes to bytes that are not UTF-8",
                                              PlainJson(token.content).dump())))
              .in_file(file_);
        }
        at += length;
      }
      decoded = bytes;
    }
  } else if (!decoder_is_identity_) {
    for (char c : token.content) {
      if (c < 0x21 || c > 0x7E) {
        return Error(impossible(fmt::format("added token {}: its decoding through this decoder is not reproduced",
                                            PlainJson(token.content).dump())))
            .in_file(file_);
      }
    }
    if (token.content.starts_with("<0x")) {
      return Error(impossible(fmt::format("added token {} would decode as a byte", PlainJson(token.content).dump())))
          .in_file(file_);
    }
  }
  if (cleanup_may_apply_ && decoded.find(' ') != std::string::npos) {
    return Error(impossible(fmt::format("added token {}: transformers' clean-up of spaces is not reproduced",
                                        PlainJson(token.content).dump())))
        .in_file(file_);
  }
  return decoded;
}

}  // namespace quant::hf
