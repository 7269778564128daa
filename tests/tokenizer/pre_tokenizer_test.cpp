// The pre-tokenizer table and machinery. Their ids are checked against llama-tokenize in tokenizer_test.cpp
// (every pre-tokenizer on every reference text); here: the table is complete and well-formed, every regex
// compiles, llama.cpp's hand-written splitters are chosen for exactly the regexes llama.cpp chooses them for, and
// splitting never loses or invents text.
#include "tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#include <set>

#include "quant/tokenizer.h"
#include "test_data.h"
#include "tokenizer/custom_splits.h"
#include "tokenizer/unicode.h"

namespace quant::text {
namespace {

TEST(PreTokenizerTable, NamesAreUniqueAndEveryRegexCompiles) {
  std::set<std::string_view> names;
  for (const std::string_view name : pre_tokenizer_names()) {
    EXPECT_TRUE(names.insert(name).second) << "listed twice: " << name;
    const PreTokenizerSpec* spec = find_pre_tokenizer(name);
    ASSERT_NE(spec, nullptr) << name;
    EXPECT_FALSE(spec->regexes.empty()) << name;
    auto compiled = PreTokenizer::create(spec->regexes);
    EXPECT_TRUE(compiled) << name << ": " << compiled.error().message();
  }
  // A few of the names llama.cpp 34af94c accepts (llama-vocab.cpp), with the flags it sets for them.
  for (const std::string_view name :
       {"default", "llama3", "llama-bpe", "gpt-2", "qwen2", "falcon", "mpt", "starcoder", "refact", "deepseek-coder",
        "deepseek-llm", "command-r", "olmo", "dbrx", "smaug-bpe", "poro-chat", "chatglm-bpe", "viking", "jais",
        "tekken", "smollm", "codeshell", "bloom", "gpt3-finnish", "exaone", "chameleon", "minerva-7b", "deepseek-v3",
        "gpt-4o", "superbpe", "trillion", "bailingmoe", "llama4", "kimi-k2", "hunyuan", "seed-coder", "gemma4"}) {
    EXPECT_TRUE(names.count(name)) << "missing pre-tokenizer " << name;
  }
  EXPECT_EQ(find_pre_tokenizer("qwen9"), nullptr);
  EXPECT_TRUE(find_pre_tokenizer("llama-bpe")->ignore_merges);
  EXPECT_TRUE(find_pre_tokenizer("llama-bpe")->add_bos);
  EXPECT_TRUE(find_pre_tokenizer("chatglm-bpe")->no_bos);
  EXPECT_FALSE(find_pre_tokenizer("gemma4")->byte_encode);
  EXPECT_TRUE(find_pre_tokenizer("roberta-bpe")->add_sep);
  EXPECT_EQ(supported_pre_tokenizers().size(), names.size());
}

TEST(PreTokenizerTable, HandWrittenSplittersWhereLlamaCppUsesThem) {
  auto custom = [](std::string_view name, size_t index) {
    return custom_split_for(find_pre_tokenizer(name)->regexes[index]);
  };
  EXPECT_EQ(custom("gpt-2", 0), CustomSplit::gpt2);
  EXPECT_EQ(custom("starcoder", 0), CustomSplit::none);  // \p{N} runs on the regex engine...
  EXPECT_EQ(custom("starcoder", 1), CustomSplit::gpt2);  // ...then GPT-2's splitter
  EXPECT_EQ(custom("llama3", 0), CustomSplit::llama3);
  EXPECT_EQ(custom("dbrx", 0), CustomSplit::llama3);
  EXPECT_EQ(custom("chatglm-bpe", 0), CustomSplit::llama3);
  EXPECT_EQ(custom("jais-2", 0), CustomSplit::none);  // a Llama 3 variant llama.cpp runs on std::regex
  EXPECT_EQ(custom("qwen2", 0), CustomSplit::qwen2);
  EXPECT_EQ(custom("grok-2", 0), CustomSplit::qwen2);
  EXPECT_EQ(custom("qwen35", 0), CustomSplit::qwen35);
  EXPECT_EQ(custom("kimi-k2", 0), CustomSplit::kimi_k2);
  EXPECT_EQ(custom("afmoe", 0), CustomSplit::digit_groups);
  EXPECT_EQ(custom("tiny_aya", 0), CustomSplit::digit_groups);
  EXPECT_EQ(custom("gemma4", 0), CustomSplit::newlines);
  EXPECT_EQ(custom("laguna", 0), CustomSplit::newlines);
  EXPECT_EQ(custom("laguna", 1), CustomSplit::qwen2);
  EXPECT_EQ(custom("tekken", 0), CustomSplit::none);
  EXPECT_EQ(custom("seed-coder", 0), CustomSplit::none);
}

// Splitting keeps every code point, in order: the words put back together are the (re-encoded) text.
TEST(PreTokenizer, WordsReassembleTheText) {
  std::vector<std::string> texts;
  for (const std::string name : {"multilingual.txt", "whitespace.txt", "digits.txt", "code.txt", "invalid.bin"}) {
    const std::vector<uint8_t> bytes = testing::read_bytes(testing::data_path("tokenizer/texts/" + name));
    texts.emplace_back(bytes.begin(), bytes.end());
  }
  texts.push_back("");
  texts.push_back(std::string(3000, ' ') + "x" + std::string(2000, '\n'));
  for (const std::string_view name : pre_tokenizer_names()) {
    const PreTokenizerSpec* spec = find_pre_tokenizer(name);
    auto pre = PreTokenizer::create(spec->regexes);
    ASSERT_TRUE(pre);
    for (const std::string& text : texts) {
      std::string expected;
      for (const uint32_t cpt : decode_utf8(text)) ASSERT_TRUE(append_utf8(cpt, expected));
      Words words;
      ASSERT_TRUE(pre->split(text, /*byte_encode=*/false, words)) << name;
      EXPECT_EQ(words.bytes, expected) << name;
      std::string joined;
      for (size_t i = 0; i < words.size(); ++i) joined += words[i];
      EXPECT_EQ(joined, expected) << name;
    }
  }
}

}  // namespace
}  // namespace quant::text
