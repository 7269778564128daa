// Tokenizer: building it from a Vocabulary as llama.cpp's llama_vocab::impl::load does (model type, per-model
// defaults, pre-tokenizer), the top-level tokenize() (llama_vocab::impl::tokenize) and token pieces.
#include <fmt/format.h>

#include <cstdlib>

#include "quant/gguf.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace quant {
namespace {

constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(text, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text, pos, std::string::npos);
  text = std::move(out);
}

// llama.cpp copies GGUF strings through `const char *`, so a string ends at its first NUL byte.
std::string_view until_nul(std::string_view text) { return text.substr(0, text.find('\0')); }

uint32_t attribute_of_type(int32_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::unknown: return kTokenAttrUnknown;
    case TokenType::unused: return kTokenAttrUnused;
    case TokenType::normal: return kTokenAttrNormal;
    case TokenType::control: return kTokenAttrControl;
    case TokenType::user_defined: return kTokenAttrUserDefined;
    case TokenType::byte: return kTokenAttrByte;
    default: return kTokenAttrUndefined;
  }
}

// llama.cpp's token_to_byte: the two characters after "<0x", read by strtol in base 16.
Result<uint8_t> byte_of_token(std::string_view text, const std::string& source) {
  if (text.size() < 3) {
    return invalid_input(fmt::format("byte token '{}' is not of the form <0xXX> (llama.cpp fails to load it)", text))
        .in_file(source);
  }
  const std::string hex(text.substr(3, 2));
  return static_cast<uint8_t>(std::strtol(hex.c_str(), nullptr, 16));
}

// llama.cpp's llama_decode_text: byte-level characters back to bytes; a character that is not one of the 256
// is kept as a visible marker, exactly as llama.cpp writes it.
Result<std::string> decode_byte_level(std::string_view token, const std::string& source) {
  std::string out;
  out.reserve(token.size());
  for (size_t offset = 0; offset < token.size();) {
    const uint32_t cpt = text::decode_utf8_at(token, offset);
    if (const int byte = text::unicode_to_byte(cpt); byte >= 0) {
      out.push_back(char(byte));
      continue;
    }
    std::string utf8;
    if (!text::append_utf8(cpt, utf8)) {
      return invalid_input(fmt::format("token '{}' decodes to a code point beyond U+10FFFF (llama.cpp fails to load "
                                       "it)", token))
          .in_file(source);
    }
    out += "[UNK_BYTE_0x";
    for (const char c : utf8) out += fmt::format("{:02x}", uint8_t(c));
    out += token;
    out += "]";
  }
  return out;
}

}  // namespace

void ByteTrie::insert(std::string_view key, TokenId value) {
  int32_t node = 0;
  for (const char c : key) {
    const uint64_t edge = (uint64_t(node) << 8) | uint8_t(c);
    const auto it = edges_.find(edge);
    if (it != edges_.end()) {
      node = it->second;
    } else {
      const int32_t next = int32_t(nodes_.size());
      nodes_.emplace_back();
      edges_.emplace(edge, next);
      node = next;
    }
  }
  nodes_[size_t(node)].value = value;
}

int32_t ByteTrie::child(int32_t node, uint8_t byte) const {
  const auto it = edges_.find((uint64_t(node) << 8) | byte);
  return it == edges_.end() ? -1 : it->second;
}

Result<Tokenizer> Tokenizer::create(Vocabulary vocabulary) {
  auto impl = std::make_shared<TokenizerImpl>();
  impl->vocab = std::move(vocabulary);
  TokenizerImpl& t = *impl;
  const Vocabulary& v = t.vocab;
  auto key_error = [&](std::string_view key, std::string reason) {
    return invalid_input(fmt::format("metadata key '{}' {}", key, reason)).in_file(v.source);
  };

  // The same consistency checks load_vocabulary() makes, for vocabularies built by code.
  const size_t n_tokens = v.tokens.size();
  if (n_tokens == 0) return key_error("tokenizer.ggml.tokens", "is empty");
  if (n_tokens >= size_t(INT32_MAX)) return key_error("tokenizer.ggml.tokens", "has more tokens than ids can number");
  if (!v.scores.empty() && v.scores.size() != n_tokens) {
    return key_error("tokenizer.ggml.scores", fmt::format("has {} entries but tokenizer.ggml.tokens has {}",
                                                          v.scores.size(), n_tokens));
  }
  if (!v.token_types.empty() && v.token_types.size() != n_tokens) {
    return key_error("tokenizer.ggml.token_type", fmt::format("has {} entries but tokenizer.ggml.tokens has {}",
                                                              v.token_types.size(), n_tokens));
  }

  // The tokenizer model (llama.cpp's tokenizer.ggml.model values).
  const std::string model(until_nul(v.model));
  if (model == "llama") {
    t.kind = TokenizerKind::spm;
  } else if (model == "bert") {
    t.kind = TokenizerKind::wpm;
  } else if (model == "gpt2" || model == "hybriddna" || model == "whitespace" || model == "gemma4") {
    t.kind = TokenizerKind::bpe;
    if (model == "hybriddna") t.bpe_session = TokenizerImpl::BpeSession::hybrid_dna;
    if (model == "whitespace") t.bpe_session = TokenizerImpl::BpeSession::whitespace;
  } else if (model == "t5") {
    t.kind = TokenizerKind::ugm;
  } else if (model == "rwkv") {
    t.kind = TokenizerKind::rwkv;
  } else if (model == "no_vocab" || model == "none") {
    return impossible(fmt::format("tokenizer model '{}': the model has no vocabulary to tokenize with", model))
        .in_file(v.source);
  } else if (model == "plamo2") {
    return impossible("tokenizer model 'plamo2' (PLaMo-2) is not supported").in_file(v.source);
  } else {
    return impossible(fmt::format("unknown tokenizer model '{}' (tokenizer.ggml.model)", model)).in_file(v.source);
  }

  // Token texts and the text -> id index. llama.cpp renames empty tokens and aborts on duplicates.
  t.texts.resize(n_tokens);
  t.scores.assign(n_tokens, 0.0f);
  t.attributes.assign(n_tokens, kTokenAttrNormal);
  for (size_t id = 0; id < n_tokens; ++id) {
    t.texts[id] = until_nul(v.tokens[id]);
    if (t.texts[id].empty()) t.texts[id] = t.renamed_texts.emplace_back(fmt::format("[EMPTY_{}]", id));
    if (!v.scores.empty()) t.scores[id] = v.scores[id];
    if (!v.token_types.empty()) t.attributes[id] = attribute_of_type(v.token_types[id]);
    t.max_token_length = std::max(t.max_token_length, t.texts[id].size());
  }
  t.ids.reserve(n_tokens);
  for (size_t id = 0; id < n_tokens; ++id) {
    const TokenId stored = t.ids.insert(t.texts[id], TokenId(id));
    if (stored != TokenId(id)) {
      return key_error("tokenizer.ggml.tokens", fmt::format("holds '{}' twice (ids {} and {})", t.texts[id],
                                                            stored, id));
    }
  }

  // Per-model defaults (llama_vocab::impl::load).
  switch (t.kind) {
    case TokenizerKind::spm:
      t.bos = 1, t.eos = 2, t.unk = 0;
      t.add_space_prefix = true, t.add_bos = true, t.add_eos = false;
      break;
    case TokenizerKind::wpm:
      t.bos = 101, t.unk = 100, t.sep = 102, t.pad = 0, t.mask = 103;
      t.add_bos = true, t.add_eos = false, t.add_sep = true;
      break;
    case TokenizerKind::bpe: {
      if (model != "gemma4") t.bos = 11, t.eos = 11;  // llama.cpp leaves Gemma 4's to the metadata
      const std::string pre = model == "gemma4" ? "gemma4" : std::string(until_nul(v.pre));  // and forces its
      if (pre.empty()) {
        t.pre_name = "default";
        t.warnings.push_back("missing pre-tokenizer type (tokenizer.ggml.pre), using 'default': llama.cpp warns that "
                             "generation quality will be degraded");
      } else {
        t.pre_name = pre;
      }
      t.pre_spec = text::find_pre_tokenizer(t.pre_name);
      if (t.pre_spec == nullptr) {
        return impossible(fmt::format("unknown pre-tokenizer type '{}' (tokenizer.ggml.pre)", t.pre_name))
            .in_file(v.source);
      }
      t.add_space_prefix = false;
      t.escape_whitespaces = t.pre_spec->escape_whitespaces;
      t.ignore_merges = t.pre_spec->ignore_merges;
      t.gemma4_newlines = t.pre_spec->type == "gemma4";
      t.byte_encode = t.pre_spec->byte_encode;
      t.add_bos = t.pre_spec->add_bos;
      t.add_sep = t.pre_spec->add_sep;
      if (t.pre_spec->no_bos) t.bos = kNoToken;
      if (t.pre_spec->lowercase_default_off) t.lowercase = false;
      QUANT_ASSIGN_OR_RETURN(t.pre_tokenizer, text::PreTokenizer::create(t.pre_spec->regexes));
      QUANT_TRY(t.build_bpe_merges());
      break;
    }
    case TokenizerKind::ugm:
      t.eos = 1, t.unk = 2, t.pad = 0;
      t.add_bos = false, t.add_eos = true;
      break;
    case TokenizerKind::rwkv:
      t.add_bos = false, t.add_eos = false;
      break;
  }
  if (t.kind != TokenizerKind::bpe) t.pre_name = "default";
  for (int byte = 0; byte < 256; ++byte) {
    const char c = char(byte);
    const TokenId hex = t.find(fmt::format("<0x{:02X}>", byte));
    // llama.cpp looks the byte itself up as a C string: byte 0 is never found.
    const TokenId itself = byte == 0 ? kNoToken : t.find(std::string_view(&c, 1));
    if (t.kind == TokenizerKind::bpe) {
      t.byte_tokens[size_t(byte)] = t.byte_encode ? itself : hex;
    } else {
      t.byte_tokens[size_t(byte)] = hex != kNoToken ? hex : itself;
    }
  }  // llama.cpp reads tokenizer.ggml.pre for BPE only
  if (v.add_space_prefix) t.add_space_prefix = *v.add_space_prefix;
  if (v.remove_extra_whitespaces) t.remove_extra_whitespaces = *v.remove_extra_whitespaces;

  if (t.kind == TokenizerKind::ugm) QUANT_TRY(t.build_ugm());
  if (t.kind == TokenizerKind::rwkv) QUANT_TRY(t.build_rwkv());
  QUANT_TRY(t.resolve_special_tokens());

  // Pieces as llama.cpp caches them (token_to_piece with special = true), after the attributes are final.
  t.pieces.resize(n_tokens);
  for (size_t id = 0; id < n_tokens; ++id) {
    const std::string_view text = t.texts[id];
    const uint32_t attr = t.attributes[id];
    std::string& piece = t.pieces[id];
    if (t.kind == TokenizerKind::rwkv) {
      piece = unescape_rwkv_token(text);
    } else if (attr & (kTokenAttrUnknown | kTokenAttrControl | kTokenAttrUserDefined)) {
      piece = text;
    } else if (attr & kTokenAttrNormal) {
      if (t.kind == TokenizerKind::bpe && !t.escape_whitespaces) {
        QUANT_ASSIGN_OR_RETURN(piece, decode_byte_level(text, v.source));
      } else {
        piece = text;
        if (piece.find(kEscapedSpace) != std::string::npos) replace_all(piece, kEscapedSpace, " ");
      }
    } else if (attr & kTokenAttrByte) {
      if (t.kind == TokenizerKind::wpm) {
        return invalid_input(fmt::format("token '{}' is a byte token, which llama.cpp's WPM tokenizer cannot handle",
                                         text))
            .in_file(v.source);
      }
      QUANT_ASSIGN_OR_RETURN(const uint8_t byte, byte_of_token(text, v.source));
      piece.assign(1, char(byte));
    }
  }

  // llama.cpp's linefeed id (only reported, never used for tokenizing).
  if (t.kind == TokenizerKind::spm) {
    t.newline = t.find("<0x0A>");
    if (t.newline == kNoToken) t.newline = t.find("\n");
    if (t.newline == kNoToken) t.newline = t.pad;
  } else if (t.kind == TokenizerKind::wpm) {
    t.newline = t.pad;
  } else {
    std::vector<TokenId> ids;
    const Status status = t.kind == TokenizerKind::bpe   ? t.encode_bpe("\n", ids)
                          : t.kind == TokenizerKind::ugm ? t.encode_ugm("\n", ids)
                                                         : t.encode_rwkv("\n", ids);
    t.newline = status.ok() && !ids.empty() ? ids[0] : t.pad;
  }
  return Tokenizer(std::move(impl));
}

Result<std::vector<TokenId>> TokenizerImpl::tokenize(std::string_view text, bool add_special,
                                                      bool parse_special) const {
  std::vector<Fragment> fragments;
  if (!text.empty()) {
    fragments.push_back(Fragment{kNoToken, 0, text.size()});
    partition_special(text, fragments, parse_special);
  }
  auto missing = [&](std::string_view what) {
    return invalid_input(fmt::format("the vocabulary asks for a {} token but defines none (llama.cpp aborts here)",
                                     what))
        .in_file(vocab.source);
  };
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  const bool with_bos = add_special && (add_bos || kind == TokenizerKind::wpm);  // WPM always starts with [CLS]
  if (with_bos && kind != TokenizerKind::rwkv) {
    if (bos == kNoToken) return missing("BOS");
    out.push_back(bos);
  }
  bool previous_special = true;  // SPM: a text fragment at the start or after a special token gets the space prefix
  for (const Fragment& fragment : fragments) {
    if (!fragment.is_text()) {
      out.push_back(fragment.token);
      previous_special = true;
      continue;
    }
    const std::string_view piece = text.substr(fragment.offset, fragment.length);
    switch (kind) {
      case TokenizerKind::spm: {
        std::string escaped = (add_space_prefix && previous_special) ? " " : "";
        escaped.append(piece);
        replace_all(escaped, " ", kEscapedSpace);
        QUANT_TRY(encode_spm(escaped, out));
        break;
      }
      case TokenizerKind::bpe:
        if (escape_whitespaces) {
          std::string escaped(piece);
          replace_all(escaped, " ", kEscapedSpace);
          QUANT_TRY(encode_bpe(escaped, out));
        } else {
          QUANT_TRY(encode_bpe(piece, out));
        }
        break;
      case TokenizerKind::wpm: QUANT_TRY(encode_wpm(piece, out)); break;
      case TokenizerKind::ugm: QUANT_TRY(encode_ugm(piece, out)); break;
      case TokenizerKind::rwkv: QUANT_TRY(encode_rwkv(piece, out)); break;
    }
    previous_special = false;
  }
  if (add_special) {
    if (kind == TokenizerKind::wpm) {
      if (sep == kNoToken) return missing("SEP");
      out.push_back(sep);
    } else if (add_eos && kind != TokenizerKind::rwkv) {
      if (eos == kNoToken) return missing("EOS");
      out.push_back(eos);
    }
  }
  return out;
}

Result<std::vector<TokenId>> Tokenizer::tokenize(std::string_view text, bool add_special, bool parse_special) const {
  return impl_->tokenize(text, add_special, parse_special);
}

std::string Tokenizer::token_to_piece(TokenId id) const {
  if (id < 0 || size_t(id) >= impl_->pieces.size()) return {};
  return impl_->pieces[size_t(id)];
}

int32_t Tokenizer::n_vocab() const { return int32_t(impl_->texts.size()); }

std::string_view Tokenizer::token_text(TokenId id) const {
  if (id < 0 || size_t(id) >= impl_->texts.size()) return {};
  return impl_->texts[size_t(id)];
}

float Tokenizer::token_score(TokenId id) const {
  if (id < 0 || size_t(id) >= impl_->scores.size()) return 0.0f;
  return impl_->scores[size_t(id)];
}

uint32_t Tokenizer::token_attributes(TokenId id) const {
  if (id < 0 || size_t(id) >= impl_->attributes.size()) return 0;
  return impl_->attributes[size_t(id)];
}

TokenId Tokenizer::bos() const { return impl_->bos; }
TokenId Tokenizer::eos() const { return impl_->eos; }
TokenId Tokenizer::eot() const { return impl_->eot; }
TokenId Tokenizer::unk() const { return impl_->unk; }
TokenId Tokenizer::sep() const { return impl_->sep; }
TokenId Tokenizer::pad() const { return impl_->pad; }
TokenId Tokenizer::newline() const { return impl_->newline; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
bool Tokenizer::is_end_of_generation(TokenId id) const { return impl_->end_of_generation.count(id) > 0; }
TokenizerKind Tokenizer::kind() const { return impl_->kind; }

std::string_view Tokenizer::kind_name() const {
  switch (impl_->kind) {
    case TokenizerKind::spm: return "SPM";
    case TokenizerKind::bpe: return "BPE";
    case TokenizerKind::wpm: return "WPM";
    case TokenizerKind::ugm: return "UGM";
    case TokenizerKind::rwkv: return "RWKV";
  }
  return "?";
}

const std::string& Tokenizer::pre_tokenizer() const { return impl_->pre_name; }
const Vocabulary& Tokenizer::vocabulary() const { return impl_->vocab; }
const std::vector<std::string>& Tokenizer::warnings() const { return impl_->warnings; }

Result<Tokenizer> load_tokenizer(const ModelSource& model) {
  QUANT_ASSIGN_OR_RETURN(Vocabulary vocabulary, load_vocabulary(model));
  return Tokenizer::create(std::move(vocabulary));
}

Result<Tokenizer> load_tokenizer(const std::string& gguf_path) {
  QUANT_ASSIGN_OR_RETURN(GgufFile file, GgufFile::open(gguf_path));
  return load_tokenizer(file);
}

std::vector<std::string_view> supported_pre_tokenizers() { return text::pre_tokenizer_names(); }

}  // namespace quant
