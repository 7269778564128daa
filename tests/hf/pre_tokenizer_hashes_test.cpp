// The converter's pre-tokenizer naming (conversion/base.py get_vocab_base_pre): its fixed text, the hash of an
// id list as Python's sha256(str(ids).encode()) computes it, and the table's last-match-wins lookup. Expected
// digests were computed with Python's hashlib from the converter's own source text.
#include "hf/pre_tokenizer_hashes.h"

#include <gtest/gtest.h>

#include "hf/tokenizer_pipeline.h"
#include "quant/sha256.h"

namespace quant::hf {
namespace {

TEST(PreTokenizerHashes, CheckTextIsTheConvertersText) {
  const std::string_view text = pre_tokenizer_check_text();
  EXPECT_EQ(text.size(), 431u);  // UTF-8 bytes of its 350 characters
  EXPECT_EQ(sha256_hex(text.data(), text.size()), "a36179c1e2b1cfcfbfad1dc779addad2ffc778201e4cf0d538bddeafa2c526da");
}

TEST(PreTokenizerHashes, HashIsOfPythonsTextOfTheList) {
  EXPECT_EQ(pre_tokenizer_hash({1, 22, 333}), "276d8737d9d5a80805e0731e8d5ae18972a8e3ba721f4988f67151c6e9159068");
  EXPECT_EQ(pre_tokenizer_hash({}), "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945");
}

TEST(PreTokenizerHashes, LaterEntriesWinAsInTheConvertersChainOfIfs) {
  EXPECT_EQ(pre_tokenizer_for_hash("0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5"), "llama-bpe");
  // Listed for bert-bge, then jina-v2-en; for mpt, then olmo.
  EXPECT_EQ(pre_tokenizer_for_hash("0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f"), "jina-v2-en");
  EXPECT_EQ(pre_tokenizer_for_hash("b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166"), "olmo");
  EXPECT_EQ(pre_tokenizer_for_hash("0000000000000000000000000000000000000000000000000000000000000000"), "");
}

// GPT-2's byte-level alphabet: printable Latin-1 stands for itself, the rest from U+0100 in byte order.
TEST(PreTokenizerHashes, ByteLevelAlphabetIsGpt2s) {
  EXPECT_EQ(byte_level_char('a'), uint32_t('a'));
  EXPECT_EQ(byte_level_char(0x00), 0x100u);
  EXPECT_EQ(byte_level_char(' '), 0x120u);   // 'Ġ'
  EXPECT_EQ(byte_level_char('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(byte_level_char(0xAD), 0x143u);  // the soft hyphen is not printable
  for (int b = 0; b < 256; ++b) EXPECT_EQ(byte_level_byte(byte_level_char(uint8_t(b))), b);
  EXPECT_EQ(byte_level_byte(0x20), -1);
}

}  // namespace
}  // namespace quant::hf
