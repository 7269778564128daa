// Token ids against llama.cpp's, table-driven over reference files (tests/data/tokenizer/README lines in
// tests/data/README.md): llama.cpp's own test cases (.inp/.out), llama-tokenize's ids of code-calib.txt, and
// llama-tokenize's ids of varied texts for vocabulary variants covering every pre-tokenizer llama.cpp accepts.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "quant/gguf.h"
#include "quant/tokenizer.h"
#include "test_data.h"

namespace quant {
namespace {

using testing::data_path;
using testing::read_bytes;

std::string read_file(const std::string& path) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

std::string vocab_path(const std::string& name) {
  if (name == "llama-spm" || name == "bert-bge") return data_path("gguf/vocab/ggml-vocab-" + name + ".gguf");
  if (name == "tiny-llama-f16") return data_path("models/tiny-llama-f16.gguf");
  return data_path("tokenizer/ggml-vocab-" + name + ".gguf");
}

// The GGUF's metadata, kept for variants.
const std::vector<KeyValue>& vocab_metadata(const std::string& name) {
  static std::map<std::string, std::vector<KeyValue>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    auto file = GgufFile::open(vocab_path(name));
    if (!file) throw std::runtime_error(file.error().message());
    it = cache.emplace(name, file->metadata()).first;
  }
  return it->second;
}

Tokenizer tokenizer_for(const std::string& name) {
  auto vocab = load_vocabulary(vocab_metadata(name), name);
  if (!vocab) throw std::runtime_error(vocab.error().message());
  auto tokenizer = Tokenizer::create(std::move(vocab).value());
  if (!tokenizer) throw std::runtime_error(tokenizer.error().message());
  return std::move(tokenizer).value();
}

std::vector<TokenId> parse_ids(std::string_view text) {
  std::vector<TokenId> ids;
  std::string number;
  for (const char c : text) {
    if ((c >= '0' && c <= '9') || c == '-') {
      number += c;
    } else if (!number.empty()) {
      ids.push_back(std::stoi(number));
      number.clear();
    }
  }
  if (!number.empty()) ids.push_back(std::stoi(number));
  return ids;
}

// llama.cpp's tests/test-tokenizer-0: inputs separated by "\n__ggml_vocab_test__\n", one line of ids per input,
// tokenized without BOS/EOS and without parsing special tokens.
class LlamaCppTestCases : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCppTestCases, IdsEqualLlamaCpp) {
  const std::string base = data_path("tokenizer/ggml-vocab-" + GetParam() + ".gguf");
  const std::string inputs = read_file(base + ".inp");
  std::vector<std::string> cases;
  const std::string separator = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0; pos < inputs.size();) {
    const size_t next = inputs.find(separator, pos);
    if (next == std::string::npos) {
      cases.push_back(inputs.substr(pos));
      break;
    }
    cases.push_back(inputs.substr(pos, next - pos));
    pos = next + separator.size();
  }
  std::istringstream outputs(read_file(base + ".out"));
  std::vector<std::string> expected;
  for (std::string line; std::getline(outputs, line);) expected.push_back(line);
  ASSERT_EQ(cases.size(), expected.size());
  ASSERT_GE(cases.size(), 40u);

  const Tokenizer tokenizer = tokenizer_for(GetParam());
  for (size_t i = 0; i < cases.size(); ++i) {
    auto ids = tokenizer.tokenize(cases[i], /*add_special=*/false, /*parse_special=*/false);
    ASSERT_TRUE(ids) << ids.error().message();
    EXPECT_EQ(*ids, parse_ids(expected[i])) << "case " << i << ": '" << cases[i] << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, LlamaCppTestCases, ::testing::Values("gpt-2", "llama-spm", "phi-3", "bert-bge"));

// llama-tokenize -f code-calib.txt --ids --no-escape: the file's bytes verbatim, BOS as the vocabulary says,
// special tokens parsed (llama-tokenize's default).
class CodeCalibIds : public ::testing::TestWithParam<std::string> {};

TEST_P(CodeCalibIds, IdsEqualLlamaTokenize) {
  const std::string reference = GetParam() == "tiny-llama-f16" ? "tokenizer/tiny-llama-f16.code-calib.ids"
                                                               : "tokenizer/ggml-vocab-" + GetParam() + ".code-calib.ids";
  const std::vector<TokenId> expected = parse_ids(read_file(data_path(reference)));
  ASSERT_GT(expected.size(), 10000u);
  auto text = read_text_file(data_path("tokenizer/texts/code-calib.txt"), TextFileMode::verbatim);
  ASSERT_TRUE(text) << text.error().message();
  const Tokenizer tokenizer = tokenizer_for(GetParam());
  auto ids = tokenizer.tokenize(*text, tokenizer.add_bos(), /*parse_special=*/true);
  ASSERT_TRUE(ids) << ids.error().message();
  EXPECT_EQ(*ids, expected);
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, CodeCalibIds,
                         ::testing::Values("gpt-2", "gpt-neox", "llama-spm", "phi-3", "bert-bge", "tiny-llama-f16"));

// llama-tokenize on vocabulary variants (make_references.py): every pre-tokenizer on the GPT-2 vocabulary,
// UGM/RWKV/flag variants of the SPM one, WPM normalizer options; varied texts, special tokens parsed or not.
TEST(LlamaTokenizeCases, EveryVariantEqualsLlamaTokenize) {
  const nlohmann::json doc = nlohmann::json::parse(read_file(data_path("tokenizer/llama-tokenize-cases.json")));
  const nlohmann::json& cases = doc.at("cases");
  ASSERT_GT(cases.size(), 1000u);
  std::map<std::string, std::string> texts;
  std::set<std::string> pre_tokenizers_seen;
  size_t compared = 0, refused = 0;
  std::string last_variant;
  std::unique_ptr<Tokenizer> tokenizer;  // (std::optional trips g++ 12's -Wmaybe-uninitialized)
  for (const nlohmann::json& c : cases) {
    const std::string vocab = c.at("vocab");
    const nlohmann::json& overrides = c.at("overrides");
    const std::string variant = vocab + overrides.dump();
    if (variant != last_variant) {
      std::vector<KeyValue> metadata;
      for (const KeyValue& kv : vocab_metadata(vocab)) {
        if (!overrides.contains(kv.key)) metadata.push_back(kv);
      }
      for (const auto& [key, value] : overrides.items()) {
        if (value.is_boolean()) metadata.push_back({key, Value::boolean(value.get<bool>())});
        if (value.is_string()) metadata.push_back({key, Value::string(value.get<std::string>())});
      }
      auto loaded = load_vocabulary(metadata, variant);
      ASSERT_TRUE(loaded) << loaded.error().message();
      auto created = Tokenizer::create(std::move(loaded).value());
      tokenizer.reset();
      if (created) tokenizer = std::make_unique<Tokenizer>(std::move(created).value());
      last_variant = variant;
      if (tokenizer && overrides.contains("tokenizer.ggml.pre")) pre_tokenizers_seen.insert(tokenizer->pre_tokenizer());
    }
    if (!tokenizer) {
      // llama.cpp fails to load this variant too (e.g. phi-3's token rules on a vocabulary without <|endoftext|>).
      EXPECT_TRUE(c.contains("llama_tokenize_fails")) << variant << ": we refuse a vocabulary llama.cpp loads";
      ++refused;
      continue;
    }
    const std::string name = c.at("text");
    if (!texts.count(name)) texts[name] = read_file(data_path("tokenizer/texts/" + name));
    auto ids = tokenizer->tokenize(texts[name], tokenizer->add_bos(), c.at("parse_special").get<bool>());
    if (c.contains("llama_tokenize_fails")) {
      EXPECT_FALSE(ids) << variant << " " << name << ": llama.cpp aborts here, we must refuse";
      ++refused;
      continue;
    }
    ASSERT_TRUE(ids) << variant << " " << name << ": " << ids.error().message();
    EXPECT_EQ(*ids, c.at("ids").get<std::vector<TokenId>>())
        << variant << " " << name << " parse_special=" << c.at("parse_special");
    ++compared;
  }
  EXPECT_GT(compared, 1000u);
  EXPECT_GT(refused, 0u);
  // Every pre-tokenizer name llama.cpp accepts was run.
  for (const std::string_view name : supported_pre_tokenizers()) {
    EXPECT_TRUE(pre_tokenizers_seen.count(std::string(name))) << "no reference cases for pre-tokenizer " << name;
  }
}

// llama-tokenize without --ids prints each id and its piece; our pieces equal its, byte for byte.
TEST(TokenPieces, MatchLlamaTokenizeListing) {
  for (const std::string vocab : {"gpt-2", "llama-spm", "bert-bge", "phi-3"}) {
    const std::string listing = read_file(data_path("tokenizer/pieces/" + vocab + ".multilingual.txt"));
    const Tokenizer tokenizer = tokenizer_for(vocab);
    const std::string text = read_file(data_path("tokenizer/texts/multilingual.txt"));
    auto ids = tokenizer.tokenize(text, tokenizer.add_bos(), true);
    ASSERT_TRUE(ids);
    std::string ours;
    for (const TokenId id : *ids) {
      char number[16];
      std::snprintf(number, sizeof number, "%6d", id);
      ours += std::string(number) + " -> '" + tokenizer.token_to_piece(id) + "'\n";
    }
    EXPECT_EQ(ours, listing) << vocab;
  }
}

TEST(Tokenizer, ReportsLlamaCppDefaults) {
  const Tokenizer spm = tokenizer_for("llama-spm");
  EXPECT_EQ(spm.kind(), TokenizerKind::spm);
  EXPECT_EQ(spm.kind_name(), "SPM");
  EXPECT_EQ(spm.n_vocab(), 32000);
  EXPECT_EQ(spm.bos(), 1);
  EXPECT_EQ(spm.eos(), 2);
  EXPECT_TRUE(spm.add_bos());
  EXPECT_FALSE(spm.add_eos());
  EXPECT_EQ(spm.newline(), 13);  // <0x0A>
  EXPECT_EQ(spm.token_to_piece(13), "\n");
  EXPECT_EQ(spm.token_to_piece(-1), "");
  EXPECT_EQ(spm.token_to_piece(32000), "");

  const Tokenizer neox = tokenizer_for("gpt-neox");  // no tokenizer.ggml.pre: llama.cpp's "default", with a warning
  EXPECT_EQ(neox.pre_tokenizer(), "default");
  ASSERT_EQ(neox.warnings().size(), 1u);
  EXPECT_NE(neox.warnings()[0].find("missing pre-tokenizer"), std::string::npos);

  const Tokenizer bert = tokenizer_for("bert-bge");
  EXPECT_EQ(bert.kind(), TokenizerKind::wpm);
  EXPECT_EQ(bert.bos(), 101);  // [CLS], llama.cpp's default
  EXPECT_EQ(bert.sep(), 102);
  auto empty = bert.tokenize("", true);
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, (std::vector<TokenId>{101, 102}));
}

TEST(Tokenizer, IsCopyableAndThreadSafe) {
  const Tokenizer tokenizer = tokenizer_for("gpt-2");
  const std::string text = read_file(data_path("tokenizer/texts/multilingual.txt"));
  auto expected = tokenizer.tokenize(text);
  ASSERT_TRUE(expected);
  std::vector<std::thread> threads;
  std::vector<int> same(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t, copy = tokenizer]() {
      for (int i = 0; i < 20; ++i) {
        auto ids = copy.tokenize(text);
        same[size_t(t)] += ids && *ids == *expected;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const int count : same) EXPECT_EQ(count, 20);
}

TEST(TextFile, ReadsAsLlamaCppTools) {
  const std::string path = data_path("tokenizer/texts/code-calib.txt");
  auto verbatim = read_text_file(path, TextFileMode::verbatim);
  auto prompt = read_text_file(path);
  ASSERT_TRUE(verbatim);
  ASSERT_TRUE(prompt);
  ASSERT_EQ(verbatim->back(), '\n');
  EXPECT_EQ(*prompt, verbatim->substr(0, verbatim->size() - 1));  // one trailing newline removed, no more
  auto missing = read_text_file(data_path("tokenizer/texts/no-such-file.txt"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::io);
  EXPECT_NE(missing.error().message().find("no-such-file.txt"), std::string::npos);
}

}  // namespace
}  // namespace quant
