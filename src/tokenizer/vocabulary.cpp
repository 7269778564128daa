// Reading and writing the `tokenizer.ggml.*` metadata (llama.cpp's llama_vocab::impl::load and gguf-py's
// writer). Types are checked as strictly as llama.cpp's model loader checks them (a u32 id stored as i32 is
// refused there too); consistency is checked more strictly than llama.cpp does: it accepts score or type arrays
// longer than the token list, which we refuse. A special id outside the vocabulary is kept as stored: llama.cpp
// warns and keeps its default (Tokenizer::create does the same), and real files carry one (llama.cpp's llama2.c
// converter writes 4294967295 for "no separator").
#include <fmt/format.h>

#include <unordered_map>

#include "quant/tokenizer.h"

namespace quant {
namespace {

constexpr std::string_view kModelKey = "tokenizer.ggml.model";
constexpr std::string_view kPreKey = "tokenizer.ggml.pre";
constexpr std::string_view kTokensKey = "tokenizer.ggml.tokens";
constexpr std::string_view kScoresKey = "tokenizer.ggml.scores";
constexpr std::string_view kTokenTypeKey = "tokenizer.ggml.token_type";
constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";
constexpr std::string_view kCharsmapKey = "tokenizer.ggml.precompiled_charsmap";

using SpecialField = std::optional<uint32_t> Vocabulary::SpecialIds::*;
struct SpecialKey {
  std::string_view key;
  SpecialField field;
};
// In llama.cpp's order: the deprecated prefix/suffix/middle keys come last and win over fim_pre/suf/mid.
constexpr SpecialKey kSpecialKeys[] = {
    {"tokenizer.ggml.bos_token_id", &Vocabulary::SpecialIds::bos},
    {"tokenizer.ggml.eos_token_id", &Vocabulary::SpecialIds::eos},
    {"tokenizer.ggml.eot_token_id", &Vocabulary::SpecialIds::eot},
    {"tokenizer.ggml.eom_token_id", &Vocabulary::SpecialIds::eom},
    {"tokenizer.ggml.unknown_token_id", &Vocabulary::SpecialIds::unk},
    {"tokenizer.ggml.seperator_token_id", &Vocabulary::SpecialIds::sep},
    {"tokenizer.ggml.padding_token_id", &Vocabulary::SpecialIds::pad},
    {"tokenizer.ggml.mask_token_id", &Vocabulary::SpecialIds::mask},
    {"tokenizer.ggml.fim_pre_token_id", &Vocabulary::SpecialIds::fim_pre},
    {"tokenizer.ggml.fim_suf_token_id", &Vocabulary::SpecialIds::fim_suf},
    {"tokenizer.ggml.fim_mid_token_id", &Vocabulary::SpecialIds::fim_mid},
    {"tokenizer.ggml.fim_pad_token_id", &Vocabulary::SpecialIds::fim_pad},
    {"tokenizer.ggml.fim_rep_token_id", &Vocabulary::SpecialIds::fim_rep},
    {"tokenizer.ggml.fim_sep_token_id", &Vocabulary::SpecialIds::fim_sep},
    {"tokenizer.ggml.prefix_token_id", &Vocabulary::SpecialIds::fim_pre},
    {"tokenizer.ggml.suffix_token_id", &Vocabulary::SpecialIds::fim_suf},
    {"tokenizer.ggml.middle_token_id", &Vocabulary::SpecialIds::fim_mid},
};
// The keys written back, once each (without the deprecated aliases).
constexpr size_t kWrittenSpecialKeys = 14;

using FlagField = std::optional<bool> Vocabulary::*;
struct FlagKey {
  std::string_view key;
  FlagField field;
};
constexpr FlagKey kFlagKeys[] = {
    {"tokenizer.ggml.add_bos_token", &Vocabulary::add_bos},
    {"tokenizer.ggml.add_eos_token", &Vocabulary::add_eos},
    {"tokenizer.ggml.add_sep_token", &Vocabulary::add_sep},
    {"tokenizer.ggml.add_space_prefix", &Vocabulary::add_space_prefix},
    {"tokenizer.ggml.remove_extra_whitespaces", &Vocabulary::remove_extra_whitespaces},
    {"tokenizer.ggml.normalizer.lowercase", &Vocabulary::normalizer_lowercase},
    {"tokenizer.ggml.normalizer.strip_accents", &Vocabulary::normalizer_strip_accents},
};

std::string type_name(const Value& value) {
  if (value.is_array()) return fmt::format("array[{}]", value_type_name(value.element_type()));
  return std::string(value_type_name(value.type()));
}

class MetadataReader {
 public:
  MetadataReader(std::span<const KeyValue> metadata, std::string_view source) : source_(source) {
    // The first of duplicate keys wins (the GGUF reader refuses duplicates anyway).
    for (const KeyValue& kv : metadata) entries_.emplace(kv.key, &kv.value);
  }

  const Value* find(std::string_view key) const {
    const auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : it->second;
  }

  Error error(std::string_view key, std::string reason) const {
    return invalid_input(fmt::format("metadata key '{}' {}", key, reason)).in_file(source_);
  }
  Error wrong_type(std::string_view key, const Value& value, std::string_view expected) const {
    return error(key, fmt::format("is {}, expected {}", type_name(value), expected));
  }

  Result<std::optional<std::string>> string(std::string_view key) const {
    const Value* value = find(key);
    if (value == nullptr) return std::optional<std::string>();
    if (value->type() != ValueType::string) return wrong_type(key, *value, "string");
    return std::optional<std::string>(std::string(value->as_string()));
  }
  Result<std::optional<bool>> boolean(std::string_view key) const {
    const Value* value = find(key);
    if (value == nullptr) return std::optional<bool>();
    if (!value->holds<bool>()) return wrong_type(key, *value, "bool");
    return std::optional<bool>(value->as<bool>());
  }
  Result<std::optional<uint32_t>> u32(std::string_view key) const {
    const Value* value = find(key);
    if (value == nullptr) return std::optional<uint32_t>();
    if (!value->holds<uint32_t>()) return wrong_type(key, *value, "u32");
    return std::optional<uint32_t>(value->as<uint32_t>());
  }
  // An array of `element` values; null when absent.
  Result<const Value*> array(std::string_view key, ValueType element) const {
    const Value* value = find(key);
    if (value == nullptr) return static_cast<const Value*>(nullptr);
    if (!value->is_array() || value->element_type() != element) {
      return wrong_type(key, *value, fmt::format("array[{}]", value_type_name(element)));
    }
    return value;
  }

 private:
  std::string source_;
  std::unordered_map<std::string_view, const Value*> entries_;
};

Status check_length(const MetadataReader& reader, std::string_view key, uint64_t size, uint64_t n_tokens) {
  if (size == n_tokens) return Status::success();
  return reader.error(key, fmt::format("has {} entries but {} has {}", size, kTokensKey, n_tokens));
}

}  // namespace

Result<Vocabulary> load_vocabulary(std::span<const KeyValue> metadata, std::string_view source) {
  const MetadataReader reader(metadata, source);
  Vocabulary vocab;
  vocab.source = std::string(source);

  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> model, reader.string(kModelKey));
  if (!model) return invalid_input(fmt::format("metadata key '{}' missing: no tokenizer", kModelKey)).in_file(vocab.source);
  vocab.model = std::move(*model);
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> pre, reader.string(kPreKey));
  vocab.pre = pre.value_or("");
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> name, reader.string("general.name"));
  vocab.name = name.value_or("");
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> architecture, reader.string("general.architecture"));
  vocab.architecture = architecture.value_or("");

  QUANT_ASSIGN_OR_RETURN(const Value* tokens, reader.array(kTokensKey, ValueType::string));
  if (tokens == nullptr) return reader.error(kTokensKey, "missing: no token list");
  const uint64_t n_tokens = tokens->size();
  if (n_tokens >= uint64_t(INT32_MAX)) return reader.error(kTokensKey, fmt::format("has {} tokens, more than token ids can number", n_tokens));
  vocab.tokens.reserve(n_tokens);
  for (uint64_t i = 0; i < n_tokens; ++i) vocab.tokens.emplace_back(tokens->string_at(i));

  QUANT_ASSIGN_OR_RETURN(const Value* scores, reader.array(kScoresKey, ValueType::f32));
  if (scores != nullptr) {
    QUANT_TRY(check_length(reader, kScoresKey, scores->size(), n_tokens));
    vocab.scores.resize(n_tokens);
    for (uint64_t i = 0; i < n_tokens; ++i) vocab.scores[i] = scores->scalar_at<float>(i);
  }
  QUANT_ASSIGN_OR_RETURN(const Value* types, reader.array(kTokenTypeKey, ValueType::i32));
  if (types != nullptr) {
    QUANT_TRY(check_length(reader, kTokenTypeKey, types->size(), n_tokens));
    vocab.token_types.resize(n_tokens);
    for (uint64_t i = 0; i < n_tokens; ++i) vocab.token_types[i] = types->scalar_at<int32_t>(i);
  }
  QUANT_ASSIGN_OR_RETURN(const Value* merges, reader.array(kMergesKey, ValueType::string));
  if (merges != nullptr) {
    vocab.merges.reserve(merges->size());
    for (uint64_t i = 0; i < merges->size(); ++i) vocab.merges.emplace_back(merges->string_at(i));
  }
  if (const Value* charsmap = reader.find(kCharsmapKey)) {
    // llama.cpp accepts u8 or i8 elements (gguf-py writes u8).
    if (!charsmap->is_array() || (charsmap->element_type() != ValueType::u8 && charsmap->element_type() != ValueType::i8)) {
      return reader.wrong_type(kCharsmapKey, *charsmap, "array[u8]");
    }
    const std::span<const uint8_t> bytes = charsmap->raw_elements();
    vocab.precompiled_charsmap.assign(bytes.begin(), bytes.end());
  }

  for (const SpecialKey& special : kSpecialKeys) {
    QUANT_ASSIGN_OR_RETURN(std::optional<uint32_t> id, reader.u32(special.key));
    if (!id) continue;
    vocab.special.*special.field = id;
  }
  for (const FlagKey& flag : kFlagKeys) {
    QUANT_ASSIGN_OR_RETURN(std::optional<bool> value, reader.boolean(flag.key));
    vocab.*flag.field = value;
  }
  return vocab;
}

Result<Vocabulary> load_vocabulary(const ModelSource& model) {
  return load_vocabulary(std::span<const KeyValue>(model.metadata()), model.path());
}

std::vector<KeyValue> vocabulary_metadata(const Vocabulary& vocab) {
  std::vector<KeyValue> out;
  auto add = [&](std::string_view key, Value value) { out.push_back(KeyValue{std::string(key), std::move(value)}); };
  if (!vocab.architecture.empty()) add("general.architecture", Value::string(vocab.architecture));
  if (!vocab.name.empty()) add("general.name", Value::string(vocab.name));
  add(kModelKey, Value::string(vocab.model));
  if (!vocab.pre.empty()) add(kPreKey, Value::string(vocab.pre));
  add(kTokensKey, Value::array_of_strings(std::span<const std::string>(vocab.tokens)));
  if (!vocab.scores.empty()) add(kScoresKey, Value::array_of<float>(vocab.scores));
  if (!vocab.token_types.empty()) add(kTokenTypeKey, Value::array_of<int32_t>(vocab.token_types));
  if (!vocab.merges.empty()) add(kMergesKey, Value::array_of_strings(std::span<const std::string>(vocab.merges)));
  if (!vocab.precompiled_charsmap.empty()) add(kCharsmapKey, Value::array_of<uint8_t>(vocab.precompiled_charsmap));
  for (size_t i = 0; i < kWrittenSpecialKeys; ++i) {
    const std::optional<uint32_t>& id = vocab.special.*kSpecialKeys[i].field;
    if (id) add(kSpecialKeys[i].key, Value::u32(*id));
  }
  for (const FlagKey& flag : kFlagKeys) {
    if (const std::optional<bool>& value = vocab.*flag.field) add(flag.key, Value::boolean(*value));
  }
  return out;
}

}  // namespace quant
