// Vocabulary metadata: every class of damaged or unsupported tokenizer.ggml.* metadata gets its exact error
// (one row per class), and the metadata written back reads the same.
#include <gtest/gtest.h>

#include <functional>

#include "quant/gguf.h"
#include "quant/tokenizer.h"
#include "test_data.h"

namespace quant {
namespace {

// A small valid byte-level BPE vocabulary: "a", "b", "ab", "Ġ", "Ġab", "<|endoftext|>".
std::vector<KeyValue> small_bpe() {
  const std::vector<std::string> tokens = {"a", "b", "ab", "\xC4\xA0", "\xC4\xA0" "ab", "<|endoftext|>"};
  const std::vector<std::string> merges = {"a b", "\xC4\xA0 ab"};
  return {
      {"general.architecture", Value::string("gpt2")},
      {"tokenizer.ggml.model", Value::string("gpt2")},
      {"tokenizer.ggml.pre", Value::string("gpt-2")},
      {"tokenizer.ggml.tokens", Value::array_of_strings(std::span<const std::string>(tokens))},
      {"tokenizer.ggml.token_type", Value::array_of<int32_t>(std::vector<int32_t>{1, 1, 1, 1, 1, 3})},
      {"tokenizer.ggml.merges", Value::array_of_strings(std::span<const std::string>(merges))},
      {"tokenizer.ggml.bos_token_id", Value::u32(5)},
      {"tokenizer.ggml.eos_token_id", Value::u32(5)},
  };
}

void set(std::vector<KeyValue>& metadata, const std::string& key, Value value) {
  for (KeyValue& kv : metadata) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  metadata.push_back({key, std::move(value)});
}

void erase_key(std::vector<KeyValue>& metadata, const std::string& key) {
  std::erase_if(metadata, [&](const KeyValue& kv) { return kv.key == key; });
}

TEST(Vocabulary, SmallBpeWorks) {
  auto vocab = load_vocabulary(small_bpe(), "small.gguf");
  ASSERT_TRUE(vocab) << vocab.error().message();
  EXPECT_EQ(vocab->model, "gpt2");
  EXPECT_EQ(vocab->tokens.size(), 6u);
  EXPECT_EQ(vocab->special.bos, 5u);
  EXPECT_FALSE(vocab->add_bos.has_value());
  auto tokenizer = Tokenizer::create(*vocab);
  ASSERT_TRUE(tokenizer) << tokenizer.error().message();
  auto ids = tokenizer->tokenize("ab ab", false);
  ASSERT_TRUE(ids);
  EXPECT_EQ(*ids, (std::vector<TokenId>{2, 4}));  // "ab", "Ġab"
  auto special = tokenizer->tokenize("ab<|endoftext|>", false, true);
  ASSERT_TRUE(special);
  EXPECT_EQ(*special, (std::vector<TokenId>{2, 5}));
}

TEST(Vocabulary, MetadataRoundTrips) {
  for (const std::string path : {"gguf/vocab/ggml-vocab-llama-spm.gguf", "tokenizer/ggml-vocab-gpt-2.gguf",
                                 "gguf/vocab/ggml-vocab-bert-bge.gguf", "tokenizer/ggml-vocab-phi-3.gguf"}) {
    auto file = GgufFile::open(testing::data_path(path));
    ASSERT_TRUE(file);
    auto vocab = load_vocabulary(*file);
    ASSERT_TRUE(vocab) << vocab.error().message();
    const std::vector<KeyValue> written = vocabulary_metadata(*vocab);
    for (const KeyValue& kv : written) {
      const Value* original = file->find(kv.key);
      ASSERT_NE(original, nullptr) << path << ": wrote " << kv.key;
      EXPECT_TRUE(*original == kv.value) << path << ": " << kv.key;
    }
    auto again = load_vocabulary(written, path);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->tokens, vocab->tokens);
    EXPECT_EQ(again->merges, vocab->merges);
    EXPECT_EQ(again->scores, vocab->scores);
    EXPECT_EQ(again->token_types, vocab->token_types);
  }
}

struct BadCase {
  std::string name;
  std::function<void(std::vector<KeyValue>&)> damage;
  ErrorKind kind;
  std::string message_part;  // besides the file name
};

std::vector<BadCase> bad_cases() {
  const std::vector<std::string> six = {"a", "b", "ab", "x", "y", "z"};
  return {
      {"model missing", [](auto& m) { erase_key(m, "tokenizer.ggml.model"); }, ErrorKind::invalid_input,
       "'tokenizer.ggml.model' missing"},
      {"model not a string", [](auto& m) { set(m, "tokenizer.ggml.model", Value::u32(2)); }, ErrorKind::invalid_input,
       "'tokenizer.ggml.model' is u32, expected string"},
      {"pre not a string", [](auto& m) { set(m, "tokenizer.ggml.pre", Value::i32(1)); }, ErrorKind::invalid_input,
       "'tokenizer.ggml.pre' is i32, expected string"},
      {"tokens missing", [](auto& m) { erase_key(m, "tokenizer.ggml.tokens"); }, ErrorKind::invalid_input,
       "'tokenizer.ggml.tokens' missing"},
      {"tokens not strings",
       [](auto& m) { set(m, "tokenizer.ggml.tokens", Value::array_of<int32_t>(std::vector<int32_t>{1, 2})); },
       ErrorKind::invalid_input, "'tokenizer.ggml.tokens' is array[i32], expected array[string]"},
      {"tokens empty",
       [](auto& m) {
         set(m, "tokenizer.ggml.tokens", Value::array_of_strings(std::span<const std::string>()));
         erase_key(m, "tokenizer.ggml.token_type");
         erase_key(m, "tokenizer.ggml.bos_token_id");
         erase_key(m, "tokenizer.ggml.eos_token_id");
       },
       ErrorKind::invalid_input, "'tokenizer.ggml.tokens' is empty"},
      {"scores shorter",
       [](auto& m) { set(m, "tokenizer.ggml.scores", Value::array_of<float>(std::vector<float>{0, 0, 0})); },
       ErrorKind::invalid_input, "'tokenizer.ggml.scores' has 3 entries but tokenizer.ggml.tokens has 6"},
      {"scores longer",
       [](auto& m) { set(m, "tokenizer.ggml.scores", Value::array_of<float>(std::vector<float>(7, 0.0f))); },
       ErrorKind::invalid_input, "'tokenizer.ggml.scores' has 7 entries but tokenizer.ggml.tokens has 6"},
      {"scores not f32",
       [](auto& m) { set(m, "tokenizer.ggml.scores", Value::array_of<double>(std::vector<double>(6, 0.0))); },
       ErrorKind::invalid_input, "'tokenizer.ggml.scores' is array[f64], expected array[f32]"},
      {"token types shorter",
       [](auto& m) { set(m, "tokenizer.ggml.token_type", Value::array_of<int32_t>(std::vector<int32_t>{1})); },
       ErrorKind::invalid_input, "'tokenizer.ggml.token_type' has 1 entries but tokenizer.ggml.tokens has 6"},
      {"token types not i32",
       [](auto& m) { set(m, "tokenizer.ggml.token_type", Value::array_of<uint32_t>(std::vector<uint32_t>(6, 1))); },
       ErrorKind::invalid_input, "'tokenizer.ggml.token_type' is array[u32], expected array[i32]"},
      {"merges not strings", [](auto& m) { set(m, "tokenizer.ggml.merges", Value::string("a b")); },
       ErrorKind::invalid_input, "'tokenizer.ggml.merges' is string, expected array[string]"},
      {"eos id not u32", [](auto& m) { set(m, "tokenizer.ggml.eos_token_id", Value::i32(1)); },
       ErrorKind::invalid_input, "'tokenizer.ggml.eos_token_id' is i32, expected u32"},
      {"add_bos not bool", [](auto& m) { set(m, "tokenizer.ggml.add_bos_token", Value::u8(1)); },
       ErrorKind::invalid_input, "'tokenizer.ggml.add_bos_token' is u8, expected bool"},
      {"charsmap not bytes", [](auto& m) { set(m, "tokenizer.ggml.precompiled_charsmap", Value::string("x")); },
       ErrorKind::invalid_input, "'tokenizer.ggml.precompiled_charsmap' is string, expected array[u8]"},
      // Found when the tokenizer is built:
      {"duplicate token",
       [six](auto& m) {
         std::vector<std::string> tokens = six;
         tokens[4] = "a";
         set(m, "tokenizer.ggml.tokens", Value::array_of_strings(std::span<const std::string>(tokens)));
       },
       ErrorKind::invalid_input, "'tokenizer.ggml.tokens' holds 'a' twice (ids 0 and 4)"},
      {"merge without space",
       [](auto& m) {
         const std::vector<std::string> merges = {"a b", "ab"};
         set(m, "tokenizer.ggml.merges", Value::array_of_strings(std::span<const std::string>(merges)));
       },
       ErrorKind::invalid_input, "'tokenizer.ggml.merges' entry 1 ('ab') is not two pieces"},
      {"merge naming an unknown token",
       [](auto& m) {
         const std::vector<std::string> merges = {"a b", "ab c"};
         set(m, "tokenizer.ggml.merges", Value::array_of_strings(std::span<const std::string>(merges)));
       },
       ErrorKind::invalid_input, "'tokenizer.ggml.merges' entry 1 ('ab c') names 'c', which is not a token"},
      {"BPE without merges", [](auto& m) { erase_key(m, "tokenizer.ggml.merges"); }, ErrorKind::invalid_input,
       "'tokenizer.ggml.merges' missing"},
      {"unknown tokenizer model", [](auto& m) { set(m, "tokenizer.ggml.model", Value::string("sentencepiece2")); },
       ErrorKind::impossible, "unknown tokenizer model 'sentencepiece2'"},
      {"PLaMo-2 model", [](auto& m) { set(m, "tokenizer.ggml.model", Value::string("plamo2")); },
       ErrorKind::impossible, "tokenizer model 'plamo2' (PLaMo-2) is not supported"},
      {"no vocabulary", [](auto& m) { set(m, "tokenizer.ggml.model", Value::string("none")); }, ErrorKind::impossible,
       "tokenizer model 'none': the model has no vocabulary"},
      {"unknown pre-tokenizer", [](auto& m) { set(m, "tokenizer.ggml.pre", Value::string("qwen9")); },
       ErrorKind::impossible, "unknown pre-tokenizer type 'qwen9' (tokenizer.ggml.pre)"},
      {"UGM charsmap too small",
       [](auto& m) {
         set(m, "tokenizer.ggml.model", Value::string("t5"));
         set(m, "tokenizer.ggml.precompiled_charsmap", Value::array_of<uint8_t>(std::vector<uint8_t>{1, 0}));
       },
       ErrorKind::invalid_input, "'tokenizer.ggml.precompiled_charsmap' is too small"},
      {"UGM charsmap announcing more than it holds",
       [](auto& m) {
         set(m, "tokenizer.ggml.model", Value::string("t5"));
         set(m, "tokenizer.ggml.precompiled_charsmap", Value::array_of<uint8_t>(std::vector<uint8_t>{8, 0, 0, 0, 1}));
       },
       ErrorKind::invalid_input, "announces 8 bytes of XCDA entries but holds 1 bytes"},
      {"phi-3 name without its tokens", [](auto& m) { set(m, "general.name", Value::string("Phi-3 mini")); },
       ErrorKind::invalid_input, "selects llama.cpp's phi-3 token rules, which need the token '</s>'"},
  };
}

TEST(Vocabulary, EveryClassOfBadMetadataHasItsError) {
  for (const BadCase& bad : bad_cases()) {
    std::vector<KeyValue> metadata = small_bpe();
    bad.damage(metadata);
    auto vocab = load_vocabulary(metadata, "damaged.gguf");
    std::optional<Error> error;
    if (!vocab) {
      error = vocab.error();
    } else {
      auto tokenizer = Tokenizer::create(std::move(vocab).value());
      if (!tokenizer) error = tokenizer.error();
    }
    ASSERT_TRUE(error.has_value()) << bad.name << ": accepted";
    EXPECT_EQ(error->kind(), bad.kind) << bad.name << ": " << error->message();
    EXPECT_EQ(error->file(), "damaged.gguf") << bad.name;
    EXPECT_NE(error->message().find(bad.message_part), std::string::npos)
        << bad.name << ": '" << error->message() << "' lacks '" << bad.message_part << "'";
  }
}

TEST(Vocabulary, HandBuiltVocabulariesGetTheSameChecks) {
  Vocabulary vocab;
  vocab.source = "hand-built";
  vocab.model = "llama";
  vocab.tokens = {"<unk>", "<s>", "</s>", "a"};
  vocab.scores = {0, 0};
  auto tokenizer = Tokenizer::create(vocab);
  ASSERT_FALSE(tokenizer);
  EXPECT_EQ(tokenizer.error().kind(), ErrorKind::invalid_input);
  EXPECT_NE(tokenizer.error().message().find("tokenizer.ggml.scores' has 2 entries"), std::string::npos);

  // A special id outside the vocabulary: llama.cpp's llama_vocab::impl::load warns "bad special token" and keeps
  // its default (SPM: EOS 2).
  vocab.scores.clear();
  vocab.special.eos = 9;
  tokenizer = Tokenizer::create(vocab);
  ASSERT_TRUE(tokenizer) << tokenizer.error().message();
  EXPECT_EQ(tokenizer->eos(), 2);
  ASSERT_EQ(tokenizer->warnings().size(), 1u);
  EXPECT_NE(tokenizer->warnings()[0].find("tokenizer.ggml.eos_token_id = 9 is outside the vocabulary of 4 tokens"),
            std::string::npos)
      << tokenizer->warnings()[0];
}

// Real files carry special ids outside the vocabulary (llama.cpp's llama2.c converter writes 4294967295 for "no
// separator"): they are read as stored, and the tokenizer keeps llama.cpp's default with a warning.
TEST(Vocabulary, SpecialIdOutsideTheVocabularyKeepsTheDefault) {
  std::vector<KeyValue> metadata = small_bpe();
  set(metadata, "tokenizer.ggml.bos_token_id", Value::u32(6));
  set(metadata, "tokenizer.ggml.padding_token_id", Value::u32(4000000000u));
  auto vocab = load_vocabulary(metadata, "outside.gguf");
  ASSERT_TRUE(vocab) << vocab.error().message();
  EXPECT_EQ(vocab->special.bos, 6u);
  EXPECT_EQ(vocab->special.pad, 4000000000u);
  auto tokenizer = Tokenizer::create(std::move(vocab).value());
  ASSERT_TRUE(tokenizer) << tokenizer.error().message();
  // BPE's default BOS is 11, outside these 6 tokens too: no BOS at all.
  EXPECT_EQ(tokenizer->bos(), kNoToken);
  std::string warnings;
  for (const std::string& warning : tokenizer->warnings()) warnings += warning + "\n";
  EXPECT_NE(warnings.find("tokenizer.ggml.bos_token_id = 6 is outside the vocabulary of 6 tokens"), std::string::npos)
      << warnings;
  EXPECT_NE(warnings.find("tokenizer.ggml.padding_token_id = 4000000000 is outside the vocabulary"),
            std::string::npos)
      << warnings;
  auto ids = tokenizer->tokenize("ab ab", false);
  ASSERT_TRUE(ids);
  EXPECT_EQ(*ids, (std::vector<TokenId>{2, 4}));
}

// Where llama.cpp aborts while tokenizing, we return an error.
TEST(Vocabulary, TokenizingWhereLlamaCppAbortsIsAnError) {
  // SPM without byte tokens: a character outside the vocabulary has no fallback.
  Vocabulary spm;
  spm.source = "no-bytes.gguf";
  spm.model = "llama";
  spm.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a"};
  auto tokenizer = Tokenizer::create(spm);
  ASSERT_TRUE(tokenizer) << tokenizer.error().message();
  auto ok = tokenizer->tokenize("a a");
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, (std::vector<TokenId>{1, 3, 4, 3, 4}));
  auto missing = tokenizer->tokenize("ab");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("byte 0x62"), std::string::npos);

  // BPE: a code point beyond U+10FFFF (lead byte 0xF5..0xF7) cannot be encoded back.
  auto bpe_vocab = load_vocabulary(small_bpe(), "small.gguf");
  ASSERT_TRUE(bpe_vocab);
  auto bpe = Tokenizer::create(*bpe_vocab);
  ASSERT_TRUE(bpe);
  auto beyond = bpe->tokenize("ab \xF5\x80\x80\x80");
  ASSERT_FALSE(beyond);
  EXPECT_NE(beyond.error().message().find("U+140000"), std::string::npos);
  auto invalid = bpe->tokenize("ab \xFF\xC3 \x80");  // other invalid bytes become U+FFFD, as in llama.cpp
  EXPECT_TRUE(invalid);

  // ChatGLM's pre-tokenizer clears the default BOS; asking for it is an error, not a crash.
  std::vector<KeyValue> glm = small_bpe();
  set(glm, "tokenizer.ggml.pre", Value::string("chatglm-bpe"));
  erase_key(glm, "tokenizer.ggml.bos_token_id");
  set(glm, "tokenizer.ggml.add_bos_token", Value::boolean(true));
  auto glm_vocab = load_vocabulary(glm, "glm.gguf");
  ASSERT_TRUE(glm_vocab);
  auto glm_tokenizer = Tokenizer::create(*glm_vocab);
  ASSERT_TRUE(glm_tokenizer);
  EXPECT_EQ(glm_tokenizer->bos(), kNoToken);
  auto no_bos = glm_tokenizer->tokenize("ab", true);
  ASSERT_FALSE(no_bos);
  EXPECT_NE(no_bos.error().message().find("BOS"), std::string::npos);
  EXPECT_TRUE(glm_tokenizer->tokenize("ab", false));
}

}  // namespace
}  // namespace quant
