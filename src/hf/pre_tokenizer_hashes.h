// Internal: how convert_hf_to_gguf.py (34af94c, conversion/base.py get_vocab_base_pre) names a BPE
// pre-tokenizer: it tokenizes a fixed text with transformers' tokenizer (special tokens added), hashes the
// Python text of the id list ("[1, 2, 3]") with SHA-256, and looks the hex digest up in a table of known models.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace quant::hf {

// The converter's fixed text (chktxt), UTF-8.
std::string_view pre_tokenizer_check_text();

// The hex SHA-256 of Python's str() of the id list, as the converter computes chkhsh.
std::string pre_tokenizer_hash(const std::vector<int64_t>& ids);

// The tokenizer.ggml.pre name the converter writes for a hash, or "" when its table lacks it. Where the table
// lists a hash twice, the later entry wins, as the converter's chain of `if`s leaves it.
std::string_view pre_tokenizer_for_hash(std::string_view hex_digest);

}  // namespace quant::hf
