// Special tokens as llama.cpp resolves and matches them (llama_vocab::impl::load after the token list, and
// tokenizer_st_partition). Token attributes start from tokenizer.ggml.token_type; llama.cpp then marks tokens
// by their text: end-of-turn / fill-in-the-middle / end-of-generation texts become control tokens, a few
// model-specific fixes follow, and some tokens strip the spaces around them. Control, user-defined and unknown
// tokens are the special tokens; in a text they are matched longest first, before the model sees the rest.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <unordered_map>
#include <unordered_set>

#include "tokenizer/tokenizer_impl.h"

namespace quant {
namespace {

// The texts llama.cpp recognises for each special role when the metadata does not name the id.
constexpr std::array kEotTexts = {
    std::string_view("<|eot_id|>"), std::string_view("<|im_end|>"), std::string_view("<|end|>"),
    std::string_view("<end_of_turn>"), std::string_view("<|endoftext|>"), std::string_view("<|end_of_text|>"),
    std::string_view("<EOT>"), std::string_view("_<EOT>"), std::string_view("[EOT]"),
    std::string_view("<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"),
    std::string_view("<end_of_utterance>")};
constexpr std::array kEomTexts = {std::string_view("<|eom_id|>")};
constexpr std::array kFimPreTexts = {
    std::string_view("<|fim_prefix|>"), std::string_view("<fim-prefix>"), std::string_view("<fim_prefix>"),
    std::string_view("<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>"), std::string_view("<PRE>"),
    std::string_view("\xE2\x96\x81<PRE>"), std::string_view("<|code_prefix|>"), std::string_view("<|prefix|>")};
constexpr std::array kFimSufTexts = {
    std::string_view("<|fim_suffix|>"), std::string_view("<fim-suffix>"), std::string_view("<fim_suffix>"),
    std::string_view("<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>"), std::string_view("<SUF>"),
    std::string_view("\xE2\x96\x81<SUF>"), std::string_view("<|code_suffix|>"), std::string_view("<|suffix|>")};
constexpr std::array kFimMidTexts = {
    std::string_view("<|fim_middle|>"), std::string_view("<fim-middle>"), std::string_view("<fim_middle>"),
    std::string_view("<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>"), std::string_view("<MID>"),
    std::string_view("\xE2\x96\x81<MID>"), std::string_view("<|code_middle|>"), std::string_view("<|middle|>")};
constexpr std::array kFimPadTexts = {std::string_view("<|fim_pad|>"), std::string_view("<fim-pad>"),
                                     std::string_view("<fim_pad>"), std::string_view("<PAD>"),
                                     std::string_view("[PAD]")};
constexpr std::array kFimRepTexts = {std::string_view("<|fim_repo|>"), std::string_view("<|repo_name|>"),
                                     std::string_view("<fim-repo>"), std::string_view("<REPO>"),
                                     std::string_view("<reponame>")};
constexpr std::array kFimSepTexts = {std::string_view("<|file_sep|>")};
// Texts that end generation; llama.cpp makes them control tokens.
constexpr std::array kEndOfGenerationTexts = {
    std::string_view("<|eot_id|>"), std::string_view("<|im_end|>"), std::string_view("<|end|>"),
    std::string_view("<|return|>"), std::string_view("<|call|>"), std::string_view("<|flush|>"),
    std::string_view("<|calls|>"), std::string_view("<end_of_turn>"), std::string_view("<|endoftext|>"),
    std::string_view("</s>"), std::string_view("<|eom_id|>"), std::string_view("<EOT>"), std::string_view("_<EOT>"),
    std::string_view("[EOT]"), std::string_view("[EOS]"), std::string_view("<|end_of_text|>"),
    std::string_view("<end_of_utterance>"), std::string_view("<eos>"), std::string_view("<turn|>"),
    std::string_view("<|tool_response>"),
    std::string_view("<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"), std::string_view("[e~[")};
// gpt-oss: llama.cpp always renders these, as user-defined tokens.
constexpr std::array kAlwaysUserDefinedTexts = {std::string_view("<|channel|>"), std::string_view("<|message|>"),
                                                std::string_view("<|start|>"), std::string_view("<|constrain|>")};

// llama.cpp's isspace() in the C locale.
bool is_c_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

bool contains_any(std::string_view text, std::initializer_list<std::string_view> needles) {
  for (const std::string_view needle : needles) {
    if (text.find(needle) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

Status TokenizerImpl::resolve_special_tokens() {
  const size_t n_tokens = texts.size();
  const std::string& source = vocab.source;

  // Special ids: a default outside the vocabulary is dropped; the metadata's ids override.
  struct Role {
    TokenId* id;
    const std::optional<uint32_t>* stored;
    std::string_view key;
  };
  const Role roles[] = {
      {&bos, &vocab.special.bos, "bos_token_id"}, {&eos, &vocab.special.eos, "eos_token_id"},
      {&eot, &vocab.special.eot, "eot_token_id"}, {&eom, &vocab.special.eom, "eom_token_id"},
      {&unk, &vocab.special.unk, "unknown_token_id"}, {&sep, &vocab.special.sep, "seperator_token_id"},
      {&pad, &vocab.special.pad, "padding_token_id"}, {&mask, &vocab.special.mask, "mask_token_id"},
      {&fim_pre, &vocab.special.fim_pre, "fim_pre_token_id"}, {&fim_suf, &vocab.special.fim_suf, "fim_suf_token_id"},
      {&fim_mid, &vocab.special.fim_mid, "fim_mid_token_id"}, {&fim_pad, &vocab.special.fim_pad, "fim_pad_token_id"},
      {&fim_rep, &vocab.special.fim_rep, "fim_rep_token_id"}, {&fim_sep, &vocab.special.fim_sep, "fim_sep_token_id"},
  };
  for (const Role& role : roles) {
    if (*role.id >= 0 && size_t(*role.id) >= n_tokens) *role.id = kNoToken;
    if (!role.stored->has_value()) continue;
    if (**role.stored >= n_tokens) {
      // llama_vocab::impl::load: "bad special token", and the default stays.
      warnings.push_back(fmt::format("tokenizer.ggml.{} = {} is outside the vocabulary of {} tokens: using the default "
                                     "id {}, as llama.cpp does", role.key, **role.stored, n_tokens, *role.id));
      continue;
    }
    *role.id = TokenId(**role.stored);
  }

  if (vocab.add_bos) add_bos = *vocab.add_bos;
  if (vocab.add_eos) add_eos = *vocab.add_eos;
  if (vocab.add_sep) add_sep = *vocab.add_sep;
  if (pre_spec != nullptr && pre_spec->type == "gemma4" && !add_bos) {
    add_bos = true;
    warnings.push_back("tokenizer.ggml.add_bos_token overridden to true for Gemma 4, as llama.cpp does");
  }
  if (vocab.normalizer_lowercase) lowercase = *vocab.normalizer_lowercase;
  strip_accents = lowercase;
  if (vocab.normalizer_strip_accents) strip_accents = *vocab.normalizer_strip_accents;

  // Roles found by text. llama.cpp walks its text -> id hash map and takes the first match per role; when a
  // vocabulary holds more than one candidate, the same walk order is reproduced with the same container.
  std::vector<TokenId> walk_order;
  auto first_in_walk = [&](const std::vector<TokenId>& candidates) {
    if (candidates.size() == 1) return candidates[0];
    if (walk_order.empty()) {
      std::unordered_map<std::string, int32_t> token_to_id;  // built exactly as llama.cpp builds its own
      for (size_t id = 0; id < n_tokens; ++id) token_to_id[std::string(texts[id])] = int32_t(id);
      for (const auto& entry : token_to_id) walk_order.push_back(entry.second);
    }
    for (const TokenId id : walk_order) {
      if (std::find(candidates.begin(), candidates.end(), id) != candidates.end()) return id;
    }
    return candidates[0];
  };
  auto detect = [&](TokenId& id, auto texts_for_role) {
    if (id != kNoToken) return;
    std::vector<TokenId> candidates;
    for (const std::string_view text : texts_for_role) {
      if (const TokenId found = find(text); found != kNoToken) candidates.push_back(found);
    }
    if (candidates.empty()) return;
    id = first_in_walk(candidates);
    attributes[size_t(id)] |= kTokenAttrControl;
  };
  detect(eot, kEotTexts);
  detect(eom, kEomTexts);
  detect(fim_pre, kFimPreTexts);
  detect(fim_suf, kFimSufTexts);
  detect(fim_mid, kFimMidTexts);
  detect(fim_pad, kFimPadTexts);
  detect(fim_rep, kFimRepTexts);
  detect(fim_sep, kFimSepTexts);

  // Control tokens whose text says "unused" are unused.
  for (size_t id = 0; id < n_tokens; ++id) {
    if ((attributes[id] & kTokenAttrControl) && texts[id].find("unused") != std::string_view::npos) {
      attributes[id] |= kTokenAttrUnused;
    }
  }

  // End of generation.
  for (const TokenId id : {fim_pad, fim_rep, fim_sep}) {
    if (id != kNoToken) end_of_generation.insert(id);
  }
  for (const std::string_view text : kEndOfGenerationTexts) {
    if (const TokenId id = find(text); id != kNoToken) {
      end_of_generation.insert(id);
      attributes[size_t(id)] |= kTokenAttrControl;
    }
  }
  for (const std::string_view text : kAlwaysUserDefinedTexts) {
    if (const TokenId id = find(text); id != kNoToken) attributes[size_t(id)] = kTokenAttrUserDefined;
  }
  for (const TokenId id : {eos, eot, eom}) {
    if (id != kNoToken) end_of_generation.insert(id);
  }
  // o200k_harmony and solar-open: "<|end|>" does not end generation there, and is rendered.
  auto in_generation_set = [&](std::string_view text) {
    const TokenId id = find(text);
    return id != kNoToken && end_of_generation.count(id) ? id : kNoToken;
  };
  const TokenId end_id = in_generation_set("<|end|>");
  const bool has_return = in_generation_set("<|return|>") != kNoToken;
  const bool has_call = in_generation_set("<|call|>") != kNoToken || in_generation_set("<|calls|>") != kNoToken;
  const bool has_flush = in_generation_set("<|flush|>") != kNoToken;
  if (end_id != kNoToken && ((has_return && has_call) || (has_call && has_flush))) {
    end_of_generation.erase(end_id);
    attributes[size_t(end_id)] = kTokenAttrUserDefined;
  }
  // Gemma 4 and PaddleOCR: "</s>" is an ordinary token when "<|tool_response>" exists.
  const TokenId s_id = in_generation_set("</s>");
  if (s_id != kNoToken && in_generation_set("<|tool_response>") != kNoToken) {
    end_of_generation.erase(s_id);
    attributes[size_t(s_id)] = kTokenAttrNormal;
  }

  // The special tokens, longest first. std::sort is not stable: ties are ordered as llama.cpp's libstdc++
  // orders them, which this same call reproduces.
  for (size_t id = 0; id < n_tokens; ++id) {
    if (attributes[id] & (kTokenAttrControl | kTokenAttrUserDefined | kTokenAttrUnknown)) {
      special_tokens.push_back(TokenId(id));
    }
  }
  std::sort(special_tokens.begin(), special_tokens.end(),
            [&](TokenId a, TokenId b) { return texts[size_t(a)].size() > texts[size_t(b)].size(); });
  for (const TokenId id : special_tokens) {
    special_trie.insert(texts[size_t(id)], id);
    special_first_bytes[uint8_t(texts[size_t(id)][0])] = true;
  }

  // Spaces stripped around some special tokens, keyed on the model's names as llama.cpp keys them.
  std::string name = vocab.name;
  for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  auto set_attribute = [&](std::string_view text, uint32_t attribute, bool value, bool required) -> Status {
    const TokenId id = find(text);
    if (id == kNoToken) {
      if (!required) return Status::success();
      return invalid_input(fmt::format("general.name '{}' selects llama.cpp's phi-3 token rules, which need the "
                                       "token '{}' (llama.cpp fails to load this vocabulary)",
                                       vocab.name, text))
          .in_file(source);
    }
    attributes[size_t(id)] = value ? (attributes[size_t(id)] | attribute) : (attributes[size_t(id)] & ~attribute);
    return Status::success();
  };
  if (contains_any(vocab.pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
      contains_any(vocab.architecture, {"nomic-bert-moe", "jina-bert-v3"})) {
    QUANT_TRY(set_attribute("<mask>", kTokenAttrLstrip, true, false));
  } else if (contains_any(name, {"phi-3", "phi3"})) {
    for (const TokenId id : special_tokens) attributes[size_t(id)] |= kTokenAttrRstrip;
    QUANT_TRY(set_attribute("</s>", kTokenAttrRstrip, true, true));
    for (const std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) {
      QUANT_TRY(set_attribute(text, kTokenAttrRstrip, false, true));
    }
  } else if (contains_any(name, {"modern-bert"})) {
    QUANT_TRY(set_attribute("[MASK]", kTokenAttrLstrip, true, false));
  }
  return Status::success();
}

void TokenizerImpl::partition_special(std::string_view text, std::vector<Fragment>& fragments,
                                      bool parse_special) const {
  // Which special tokens occur in the text at all, in one pass over it with their trie: llama.cpp searches the
  // text once per special token (thousands in some vocabularies); one that does not occur splits nothing.
  std::unordered_set<TokenId> present;
  for (size_t start = 0; start < text.size(); ++start) {
    if (!special_first_bytes[uint8_t(text[start])]) continue;
    int32_t node = 0;
    for (size_t end = start; end < text.size(); ++end) {
      node = special_trie.child(node, uint8_t(text[end]));
      if (node < 0) break;
      if (special_trie.has_value(node)) present.insert(special_trie.value(node));
    }
  }
  if (present.empty()) return;
  std::vector<Fragment> next;
  for (const TokenId special : special_tokens) {
    if (!present.count(special)) continue;
    const uint32_t attr = attributes[size_t(special)];
    // Without parse_special, control and unknown tokens stay text; user-defined tokens are still matched
    // (as Hugging Face tokenizers do).
    if (!parse_special && (attr & (kTokenAttrControl | kTokenAttrUnknown))) continue;
    const std::string_view needle = texts[size_t(special)];
    bool changed = false;
    next.clear();
    for (const Fragment& fragment : fragments) {
      if (!fragment.is_text()) {
        next.push_back(fragment);
        continue;
      }
      size_t offset = fragment.offset;
      size_t length = fragment.length;
      while (true) {
        const size_t match = text.substr(0, offset + length).find(needle, offset);
        if (match == std::string_view::npos) {
          if (length > 0) next.push_back(Fragment{kNoToken, offset, length});
          break;
        }
        changed = true;
        size_t left_length = match - offset;
        if (attr & kTokenAttrLstrip) {
          while (left_length > 0 && is_c_space(text[offset + left_length - 1])) --left_length;
        }
        if (left_length > 0) next.push_back(Fragment{kNoToken, offset, left_length});
        next.push_back(Fragment{special, 0, 0});
        size_t right_offset = match + needle.size();
        size_t right_length = offset + length - right_offset;
        if (attr & kTokenAttrRstrip) {
          while (right_length > 0 && is_c_space(text[right_offset])) {
            ++right_offset;
            --right_length;
          }
        }
        offset = right_offset;
        length = right_length;
        if (length == 0) break;
      }
    }
    if (changed) fragments.swap(next);
  }
}

}  // namespace quant
