// The SentencePiece vocabulary as convert_hf_to_gguf.py builds it (conversion/base.py
// _create_vocab_sentencepiece, and Phi-3's own variant in conversion/phi.py), read with libsentencepiece, the
// library the converter's Python binding wraps, so pieces, scores and piece kinds are the library's own.
#include "hf/vocabulary.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <sys/stat.h>

#include <cctype>
#include <set>
#include <unordered_map>

#include "hf/hf_tokenizer.h"
#include "hf/special_vocab.h"
#include "hf/strings.h"

namespace quant::hf {
namespace {

// llama.cpp's token types (SentencePieceTokenTypes in the converter).
enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct SpmVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

bool file_exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<std::unique_ptr<sentencepiece::SentencePieceProcessor>> load_processor(const std::string& dir) {
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> model, read_small_file(dir, "tokenizer.model", uint64_t(1) << 30));
  auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = processor->LoadFromSerializedProto(*model);
  if (!status.ok()) {
    return Error(invalid_input(fmt::format("not a SentencePiece model: {}", status.ToString())))
        .in_file(dir + "/tokenizer.model");
  }
  return processor;
}

// Python's int(str) for added_tokens_decoder keys.
Result<int64_t> token_id(const std::string& text, const std::string& file) {
  size_t used = 0;
  int64_t id = 0;
  try {
    id = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || used == 0) return Error(invalid_input(fmt::format("token id '{}' is not an integer", text))).in_file(file);
  return id;
}

// The converter indexes Python lists with these ids: a negative one would count from the end.
Status check_id(int64_t id, const std::string& file) {
  if (id < 0) return Error(impossible(fmt::format("negative token id {}", id))).in_file(file);
  return Status::success();
}

// _create_vocab_sentencepiece (phi3 = false) or Phi3MiniModel.set_vocab's reading (phi3 = true).
Result<SpmVocab> read_spm_vocab(const std::string& dir, const HParams& hparams, bool phi3) {
  QUANT_ASSIGN_OR_RETURN(auto processor, load_processor(dir));
  const int64_t pieces = processor->GetPieceSize();
  int64_t vocab_size = pieces;
  const Json* size = phi3 ? hparams.find({"vocab_size"}) : hparams.find({"vocab_size_per_layer_input", "vocab_size"});
  if (size != nullptr && !size->is_null()) {
    if (!size->is_number_integer() || size->get<int64_t>() < 0 || size->get<int64_t>() > (int64_t(1) << 26)) {
      return Error(impossible(fmt::format("vocab_size {} is not a vocabulary size", size->dump()))).in_file(hparams.path);
    }
    // `find_hparam(...) or tokenizer.vocab_size()`: 0 falls back (Phi-3 uses hparams.get and keeps it).
    if (size->get<int64_t>() != 0 || phi3) vocab_size = size->get<int64_t>();
  }
  SpmVocab v;
  v.tokens.reserve(size_t(vocab_size));
  for (int64_t i = 0; i < vocab_size; ++i) v.tokens.push_back(fmt::format("[PAD{}]", i));
  v.scores.assign(size_t(vocab_size), -10000.0f);
  v.types.assign(size_t(vocab_size), kUnused);
  if (phi3 && pieces > vocab_size) {
    return Error(impossible(fmt::format("tokenizer.model has {} pieces, more than vocab_size {}", pieces, vocab_size)))
        .in_file(hparams.path);
  }
  for (int64_t id = 0; id < std::min(pieces, vocab_size); ++id) {
    const int i = int(id);
    int32_t type = kNormal;
    if (processor->IsUnknown(i)) {
      type = kUnknown;
    } else if (processor->IsControl(i)) {
      type = kControl;
    } else if (processor->IsUnused(i)) {
      type = kUnused;
    } else if (processor->IsByte(i)) {
      type = kByte;
    }
    v.tokens[size_t(id)] = processor->IdToPiece(i);
    v.scores[size_t(id)] = processor->GetScore(i);
    v.types[size_t(id)] = type;
  }

  const std::string added_path = dir + "/added_tokens.json";
  QUANT_ASSIGN_OR_RETURN(std::optional<Json> added, read_json_file(dir, "added_tokens.json"));
  if (added) {
    if (!added->is_object()) return Error(invalid_input("not a JSON object")).in_file(added_path);
    for (const auto& [text, id_json] : added->items()) {
      if (!id_json.is_number_integer()) return Error(invalid_input(fmt::format("id of '{}' is not an integer", text))).in_file(added_path);
      const int64_t id = id_json.get<int64_t>();
      QUANT_TRY(check_id(id, added_path));
      if (id >= vocab_size) continue;  // the converter ignores it
      v.tokens[size_t(id)] = text;
      v.scores[size_t(id)] = -1000.0f;
      v.types[size_t(id)] = kUserDefined;
    }
  }

  const std::string config_path = dir + "/tokenizer_config.json";
  QUANT_ASSIGN_OR_RETURN(std::optional<Json> config, read_json_file(dir, "tokenizer_config.json"));
  auto apply_added = [&](int64_t id, const Json& data, const std::string& file) -> Status {
    QUANT_TRY(check_id(id, file));
    if (!data.is_object() || !data.contains("content") || !data["content"].is_string()) {
      return Error(invalid_input(fmt::format("added token {} has no string content", id))).in_file(file);
    }
    if (id >= vocab_size) {
      if (phi3) return Error(impossible(fmt::format("added token id {} is past vocab_size {}", id, vocab_size))).in_file(file);
      return Status::success();
    }
    std::string text = data["content"].get<std::string>();
    const bool special = data.contains("special") && truthy(data["special"]);
    if (phi3) {
      v.types[size_t(id)] = special ? kControl : kUserDefined;
    } else if (special || looks_special(text)) {
      v.types[size_t(id)] = kControl;
    } else {
      text = replace_all(text, "\xe2\x96\x81", " ");  // pre-normalize user-defined spaces
      v.types[size_t(id)] = kUserDefined;
    }
    v.scores[size_t(id)] = -1000.0f;
    v.tokens[size_t(id)] = std::move(text);
    return Status::success();
  };
  if (config) {
    if (!config->is_object()) return Error(invalid_input("not a JSON object")).in_file(config_path);
    if (const auto decoder = config->find("added_tokens_decoder"); decoder != config->end()) {
      if (!decoder->is_object()) return Error(invalid_input("added_tokens_decoder is not an object")).in_file(config_path);
      for (const auto& [key, data] : decoder->items()) {
        QUANT_ASSIGN_OR_RETURN(const int64_t id, token_id(key, config_path));
        QUANT_TRY(apply_added(id, data, config_path));
      }
    }
  }
  if (phi3) {
    // Phi-3 also takes tokenizer.json's added tokens.
    const std::string json_path = dir + "/tokenizer.json";
    QUANT_ASSIGN_OR_RETURN(std::optional<Json> tokenizer, read_tokenizer_json(dir));
    if (tokenizer && tokenizer->is_object() && tokenizer->contains("added_tokens")) {
      const Json& list = (*tokenizer)["added_tokens"];
      if (!list.is_array()) return Error(invalid_input("added_tokens is not a list")).in_file(json_path);
      for (const Json& data : list) {
        if (!data.is_object() || !data.contains("id") || !data["id"].is_number_integer()) {
          return Error(invalid_input("an added token has no integer id")).in_file(json_path);
        }
        QUANT_TRY(apply_added(data["id"].get<int64_t>(), data, json_path));
      }
    }
  }
  return v;
}

void add_spm_keys(const SpmVocab& v, MetadataList& out) {
  out.set("tokenizer.ggml.model", Value::string("llama"));
  out.set("tokenizer.ggml.pre", Value::string("default"));
  out.set("tokenizer.ggml.tokens", Value::array_of_strings(std::span<const std::string>(v.tokens)));
  out.set("tokenizer.ggml.scores", Value::array_of<float>(v.scores));
  out.set("tokenizer.ggml.token_type", Value::array_of<int32_t>(v.types));
}

Error needs_sentencepiece(const std::string& dir, std::string_view family) {
  return Error(invalid_input(fmt::format("{} needs tokenizer.model: the converter reads no other vocabulary for it", family)))
      .in_file(dir + "/tokenizer.model");
}

// SentencePiece vocabulary and the special tokens for it (_set_vocab_sentencepiece).
Status add_sentencepiece(const std::string& dir, const HParams& hparams, bool phi3, MetadataList& out) {
  QUANT_ASSIGN_OR_RETURN(const SpmVocab v, read_spm_vocab(dir, hparams, phi3));
  add_spm_keys(v, out);
  QUANT_ASSIGN_OR_RETURN(const SpecialVocab special,
                         SpecialVocab::load(dir, SpecialVocab::default_types(), int64_t(v.tokens.size())));
  special.add_to(out);
  return Status::success();
}

// _set_vocab_llama_hf: gguf-py's LlamaHfVocab over transformers' tokenizer. The model's tokens in id order (byte
// tokens <0xXX> typed as bytes, the class's special tokens as control), then the added tokens past the model's
// vocabulary in id order (control when special, else user-defined); every score -1000; no padding to vocab_size.
Status add_llama_hf(const std::string& dir, MetadataList& out) {
  QUANT_ASSIGN_OR_RETURN(std::optional<Json> config, read_json_file(dir, "config.json"));
  QUANT_ASSIGN_OR_RETURN(const HfTokenizer tokenizer,
                         HfTokenizer::load(dir, config.value_or(Json::object()), /*with_pipeline=*/false));
  std::unordered_map<int64_t, const std::string*> by_id;
  for (const auto& [text, id] : tokenizer.vocab()) by_id[id] = &text;
  std::set<int64_t> special_ids;
  for (const std::string& text : tokenizer.special_texts()) {
    if (const auto it = tokenizer.vocab().find(text); it != tokenizer.vocab().end()) special_ids.insert(it->second);
  }
  auto is_byte_token = [](const std::string& text) {
    return text.size() == 6 && text.starts_with("<0x") && text.back() == '>' && std::isxdigit(uint8_t(text[3])) &&
           std::isxdigit(uint8_t(text[4]));
  };
  SpmVocab v;
  for (int64_t id = 0; id < tokenizer.model_size(); ++id) {
    const auto it = by_id.find(id);
    if (it == by_id.end()) {
      return Error(invalid_input(fmt::format("no token has id {} (LlamaHfVocab reads ids 0..{})", id,
                                             tokenizer.model_size() - 1)))
          .in_file(dir + "/tokenizer.json");
    }
    v.tokens.push_back(*it->second);
    v.types.push_back(is_byte_token(*it->second) ? kByte : special_ids.contains(id) ? kControl : kNormal);
  }
  for (const auto& [id, token] : tokenizer.added_tokens()) {
    if (id < tokenizer.model_size()) continue;
    const bool special =
        std::find(tokenizer.special_texts().begin(), tokenizer.special_texts().end(), token.content) !=
        tokenizer.special_texts().end();
    v.tokens.push_back(token.content);
    v.types.push_back(special ? kControl : kUserDefined);
  }
  v.scores.assign(v.tokens.size(), -1000.0f);
  add_spm_keys(v, out);
  QUANT_ASSIGN_OR_RETURN(const SpecialVocab special,
                         SpecialVocab::load(dir, SpecialVocab::default_types(), int64_t(v.tokens.size())));
  special.add_to(out);
  return Status::success();
}

// Whether LlamaModel.set_vocab, lacking tokenizer.model, takes _set_vocab_llama_hf (gguf-py's LlamaHfVocab
// accepts tokenizer.json: a BPE model with byte fallback and a Sequence decoder) rather than _set_vocab_gpt2
// (Llama 3's ignore_merges without byte fallback, or anything else).
Result<bool> takes_llama_hf_path(const std::string& dir) {
  QUANT_ASSIGN_OR_RETURN(std::optional<Json> tokenizer, read_tokenizer_json(dir));
  if (!tokenizer) return false;  // FileNotFoundError: on to _set_vocab_gpt2
  const std::string file = dir + "/tokenizer.json";
  if (!tokenizer->is_object() || !tokenizer->contains("model") || !(*tokenizer)["model"].is_object() ||
      !(*tokenizer)["model"].contains("type")) {
    return Error(invalid_input("has no model type (LlamaHfVocab reads tokenizer_json['model']['type'])")).in_file(file);
  }
  const Json& model = (*tokenizer)["model"];
  auto get = [&](const char* key, bool fallback) { return model.contains(key) ? truthy(model[key]) : fallback; };
  const bool bpe = model["type"] == "BPE";
  if (bpe && get("ignore_merges", false) && !get("byte_fallback", true)) return false;  // Llama 3
  if (!bpe || !get("byte_fallback", false)) return false;
  if (!tokenizer->contains("decoder")) {
    return Error(invalid_input("has no decoder (LlamaHfVocab reads tokenizer_json['decoder'])")).in_file(file);
  }
  const Json& decoder = (*tokenizer)["decoder"];
  if (decoder.is_null()) return false;  // a TypeError, caught: on to _set_vocab_gpt2
  if (!decoder.is_object() || !decoder.contains("type")) {
    return Error(invalid_input("decoder has no type (LlamaHfVocab reads tokenizer_json['decoder']['type'])")).in_file(file);
  }
  return decoder["type"] == "Sequence";
}

}  // namespace

bool looks_special(const std::string& text) {
  if (text == "<pad>" || text == "<mask>" || text == "<2mass>" || text == "[@BOS@]") return true;
  // Python's startswith/endswith may overlap ("<|>" counts).
  if (text.starts_with("<|") && text.ends_with("|>")) return true;
  if (text.starts_with("<\xef\xbd\x9c") && text.ends_with("\xef\xbd\x9c>")) return true;
  return text.starts_with("<unused") && text.ends_with(">");
}

Status add_vocabulary(const Architecture& arch, const std::string& dir, const HParams& hparams, MetadataList& out) {
  const bool has_spm = file_exists(dir + "/tokenizer.model");
  switch (arch.vocab) {
    case VocabPath::llama: {
      if (file_exists(dir + "/tekken.json") && !file_exists(dir + "/tokenizer.json")) {
        return Error(impossible("Mistral tekken tokenizers are not converted")).in_file(dir);
      }
      QUANT_ASSIGN_OR_RETURN(std::optional<Json> config, read_json_file(dir, "tokenizer_config.json"));
      if (config && config->is_object()) {
        if (const auto prefix = config->find("add_prefix_space"); prefix != config->end() && !prefix->is_null()) {
          out.set("tokenizer.ggml.add_space_prefix", Value::boolean(truthy(*prefix)));
        }
        if (const auto cls = config->find("tokenizer_class"); cls != config->end() && *cls == "HybridDNATokenizer") {
          return Error(impossible("HybridDNATokenizer vocabularies are not converted")).in_file(dir);
        }
      }
      if (has_spm) {
        QUANT_TRY(add_sentencepiece(dir, hparams, false, out));
      } else {
        QUANT_ASSIGN_OR_RETURN(const bool llama_hf, takes_llama_hf_path(dir));
        QUANT_TRY(llama_hf ? add_llama_hf(dir, out) : add_gpt2_vocabulary(dir, hparams, out));
      }
      const Json* vocab = hparams.find({"vocab_size"});
      const int64_t size = vocab != nullptr && vocab->is_number_integer() ? vocab->get<int64_t>() : 32000;
      if (size == 32016) {  // CodeLlama's infill tokens
        QUANT_ASSIGN_OR_RETURN(SpecialVocab special, SpecialVocab::load(dir, {"prefix", "suffix", "middle", "eot"}, std::nullopt));
        QUANT_TRY(special.set_special_token("prefix", Json(32007)));
        QUANT_TRY(special.set_special_token("suffix", Json(32008)));
        QUANT_TRY(special.set_special_token("middle", Json(32009)));
        QUANT_TRY(special.set_special_token("eot", Json(32010)));
        special.add_to(out);
      }
      if (size == 49152) out.set("tokenizer.ggml.add_bos_token", Value::boolean(false));  // Granite small models
      return Status::success();
    }
    case VocabPath::qwen2:
      if (!has_spm) return add_gpt2_vocabulary(dir, hparams, out);
      return add_sentencepiece(dir, hparams, false, out);
    case VocabPath::gemma: {
      if (!has_spm) return needs_sentencepiece(dir, "Gemma");
      QUANT_TRY(add_sentencepiece(dir, hparams, false, out));
      // CodeGemma's fill-in-the-middle ids, written for every Gemma (only eot has a GGUF key).
      QUANT_ASSIGN_OR_RETURN(SpecialVocab special,
                             SpecialVocab::load(dir, {"prefix", "suffix", "middle", "fsep", "eot"}, std::nullopt));
      QUANT_TRY(special.set_special_token("prefix", Json(67)));
      QUANT_TRY(special.set_special_token("suffix", Json(69)));
      QUANT_TRY(special.set_special_token("middle", Json(68)));
      QUANT_TRY(special.set_special_token("fsep", Json(70)));
      QUANT_TRY(special.set_special_token("eot", Json(107)));
      special.drop_chat_template();
      special.add_to(out);
      out.set("tokenizer.ggml.add_space_prefix", Value::boolean(false));
      return Status::success();
    }
    case VocabPath::gemma2:
      if (!has_spm) return needs_sentencepiece(dir, "Gemma 2");
      QUANT_TRY(add_sentencepiece(dir, hparams, false, out));
      out.set("tokenizer.ggml.add_space_prefix", Value::boolean(false));
      return Status::success();
    case VocabPath::phi3: {
      QUANT_ASSIGN_OR_RETURN(std::optional<Json> config, read_json_file(dir, "tokenizer_config.json"));
      if (config && config->is_object()) {
        const auto cls = config->find("tokenizer_class");
        if (cls == config->end()) {
          return Error(invalid_input("tokenizer_config.json lacks tokenizer_class, which the converter reads for "
                                     "Phi-3"))
              .in_file(dir + "/tokenizer_config.json");
        }
        if (*cls == "GPT2Tokenizer") return add_gpt2_vocabulary(dir, hparams, out);  // Phi-4
      }
      if (!has_spm) {
        return Error(invalid_input("Phi-3 needs tokenizer.model")).in_file(dir + "/tokenizer.model");
      }
      return add_sentencepiece(dir, hparams, true, out);
    }
  }
  return Status::success();
}

}  // namespace quant::hf
