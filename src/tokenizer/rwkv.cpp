// RWKV ("rwkv"): greedy longest match of bytes against the vocabulary's tokens, which are stored escaped
// (llm_tokenizer_rwkv_session).
#include <fmt/format.h>

#include "tokenizer/tokenizer_impl.h"

namespace quant {

std::string unescape_rwkv_token(std::string_view escaped) {
  std::string out;
  out.reserve(escaped.size());
  bool escaping = false;
  int hex_remaining = 0;
  uint8_t hex_value = 0;
  for (const char c : escaped) {
    if (hex_remaining > 0) {
      // llama.cpp's digit arithmetic, lower-case hex only (anything else gives what it gives there too).
      const uint8_t digit = (c >= 'a') ? uint8_t(c - 'a' + 10) : uint8_t(c - '0');
      hex_value = uint8_t((hex_value << 4) + digit);
      if (--hex_remaining == 0) {
        out.push_back(char(hex_value));
        hex_value = 0;
      }
      continue;
    }
    if (escaping) {
      if (c == 't') {
        out.push_back('\t');
      } else if (c == 'n') {
        out.push_back('\n');
      } else if (c == 'r') {
        out.push_back('\r');
      } else if (c == 'x') {
        hex_remaining = 2;
      } else {
        out.push_back(c);
      }
      escaping = false;
      continue;
    }
    if (c == '\\') {
      escaping = true;
      continue;
    }
    out.push_back(c);
  }
  return out;
}

Status TokenizerImpl::build_rwkv() {
  for (size_t id = 0; id < texts.size(); ++id) rwkv_tokens.insert(unescape_rwkv_token(texts[id]), TokenId(id));
  return Status::success();
}

Status TokenizerImpl::encode_rwkv(std::string_view text, std::vector<TokenId>& out) const {
  size_t position = 0;
  while (position < text.size()) {
    int32_t node = rwkv_tokens.child(0, uint8_t(text[position]));
    if (node < 0) {
      out.push_back(unk);  // llama.cpp pushes its unknown id, which RWKV vocabularies leave undefined (-1)
      position += 1;
      continue;
    }
    TokenId token = 0;
    size_t token_end = 0;
    const size_t start = position;
    while (node >= 0) {
      if (rwkv_tokens.has_value(node)) {
        token = rwkv_tokens.value(node);
        token_end = position + 1;
      }
      if (position + 1 >= text.size()) break;
      node = rwkv_tokens.child(node, uint8_t(text[++position]));
    }
    if (token_end <= start) {
      // No token ends on this path: llama.cpp would emit token 0 and start over at 0, forever.
      return invalid_input(fmt::format("the text at byte {} starts a token prefix that no token completes (llama.cpp's "
                                       "RWKV tokenizer loops forever here)", start))
          .in_file(vocab.source);
    }
    out.push_back(token);
    position = token_end;
  }
  return Status::success();
}

}  // namespace quant
