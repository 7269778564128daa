// The tokenizer's state once built from a Vocabulary, shared by the model files (spm.cpp, bpe.cpp, wpm.cpp,
// ugm.cpp, rwkv.cpp) and the special-token logic (special_tokens.cpp). Immutable after create().
#pragma once

#include <array>
#include <deque>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "quant/tokenizer.h"
#include "tokenizer/flat_index.h"
#include "tokenizer/pre_tokenizer.h"

namespace quant {

// A piece of the text between special tokens, or a special token (llama.cpp's fragment_buffer_variant).
struct Fragment {
  TokenId token = kNoToken;  // kNoToken: raw text
  size_t offset = 0;
  size_t length = 0;
  bool is_text() const { return token == kNoToken; }
};

// A byte trie (llama.cpp's naive_trie), for UGM and RWKV.
class ByteTrie {
 public:
  ByteTrie() : nodes_(1) {}
  void insert(std::string_view key, TokenId value);
  // The child of `node` for `byte`, or -1. The root is node 0.
  int32_t child(int32_t node, uint8_t byte) const;
  bool has_value(int32_t node) const { return nodes_[node].value != kNoToken; }
  TokenId value(int32_t node) const { return nodes_[node].value; }

 private:
  struct Node {
    TokenId value = kNoToken;
  };
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, int32_t> edges_;  // (node << 8 | byte) -> child
};

// BPE merges over "pieces": every token is the piece with its id; merge results that are not tokens get ids
// from n_vocab on. A merge is then a lookup of two integers.
struct BpeMerges {
  text::PairIndex by_pair;               // (left, right) -> (rank, piece id of left + right)
  std::deque<std::string> extra_pieces;  // texts of pieces that are not tokens
  text::StringIndex extra_ids;           // views into extra_pieces
};

class TokenizerImpl {
 public:
  Vocabulary vocab;
  TokenizerKind kind = TokenizerKind::spm;
  std::string pre_name;  // resolved pre-tokenizer ("default" for an absent tokenizer.ggml.pre)
  const text::PreTokenizerSpec* pre_spec = nullptr;
  text::PreTokenizer pre_tokenizer;  // BPE
  enum class BpeSession { plain, hybrid_dna, whitespace } bpe_session = BpeSession::plain;

  std::vector<std::string_view> texts;  // token texts (views into vocab.tokens or renamed_texts)
  std::deque<std::string> renamed_texts;  // llama.cpp renames empty tokens "[EMPTY_<id>]"
  std::vector<float> scores;
  std::vector<uint32_t> attributes;  // TokenAttribute bits
  std::vector<std::string> pieces;   // token_to_piece(special = true)
  text::StringIndex ids;  // text -> id (views into texts)
  size_t max_token_length = 0;
  // The token each byte falls back to, kNoToken where the vocabulary has none: SPM's byte_to_token ("<0xXX>",
  // else the byte itself), BPE's (the byte itself when byte-level encoded, else "<0xXX>").
  std::array<TokenId, 256> byte_tokens{};

  TokenId bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken, unk = kNoToken, sep = kNoToken,
          pad = kNoToken, mask = kNoToken, newline = kNoToken;
  TokenId fim_pre = kNoToken, fim_suf = kNoToken, fim_mid = kNoToken, fim_pad = kNoToken, fim_rep = kNoToken,
          fim_sep = kNoToken;
  bool add_bos = false, add_eos = false, add_sep = false;
  bool add_space_prefix = false, remove_extra_whitespaces = false, escape_whitespaces = true;
  bool ignore_merges = false, byte_encode = true;
  bool gemma4_newlines = false;  // Gemma 4's pre-tokenizer: a newline run that is a token is taken whole
  bool lowercase = true, strip_accents = true;  // WPM / whitespace normalizer
  std::set<TokenId> end_of_generation;
  std::vector<TokenId> special_tokens;  // control / user-defined / unknown, longest first (llama.cpp's order)
  ByteTrie special_trie;                // their texts
  std::array<bool, 256> special_first_bytes{};  // bytes some special token starts with
  std::vector<std::string> warnings;

  BpeMerges merges;
  // UGM
  ByteTrie ugm_tokens, ugm_user_defined;
  float ugm_unknown_score = 0;
  std::vector<uint32_t> charsmap_nodes;  // XCDA entries
  std::string charsmap_replacements;
  // RWKV
  ByteTrie rwkv_tokens;

  TokenId find(std::string_view text) const { return ids.find(text, kNoToken); }
  bool has_attribute(TokenId id, uint32_t attribute) const { return (attributes[size_t(id)] & attribute) != 0; }

  Result<std::vector<TokenId>> tokenize(std::string_view text, bool add_special, bool parse_special) const;
  // llama.cpp's tokenizer_st_partition: cuts special tokens out of the text fragments.
  void partition_special(std::string_view text, std::vector<Fragment>& fragments, bool parse_special) const;

  // One raw-text fragment through the model (appending to out).
  Status encode_spm(std::string_view text, std::vector<TokenId>& out) const;
  Status encode_bpe(std::string_view text, std::vector<TokenId>& out) const;
  Status encode_wpm(std::string_view text, std::vector<TokenId>& out) const;
  Status encode_ugm(std::string_view text, std::vector<TokenId>& out) const;
  Status encode_rwkv(std::string_view text, std::vector<TokenId>& out) const;

  // Model set-up, called by Tokenizer::create.
  Status build_bpe_merges();
  Status build_ugm();
  Status build_rwkv();
  // llama.cpp's special-token resolution (ids, attributes, EOG set, special-token order, pieces).
  Status resolve_special_tokens();

 private:
  Status encode_bpe_words(std::string_view text, std::vector<TokenId>& out) const;
  Status encode_bpe_word(std::string_view word, std::vector<TokenId>& out) const;
};

// llama.cpp's escape of RWKV token texts (\t \n \r \xNN \<c>).
std::string unescape_rwkv_token(std::string_view escaped);

}  // namespace quant
