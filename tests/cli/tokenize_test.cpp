// Whole-program tests of `quantize tokenize`: its --ids output is llama-tokenize's byte for byte (references in
// tests/data/tokenizer), its listing shows llama-tokenize's pieces, --json parses, and bad inputs get their exit
// codes: 4 for a tokenizer model or pre-tokenizer we cannot run, 3 for damaged vocabulary metadata or a text
// llama.cpp cannot tokenize, 1 for a missing file, 2 for a malformed request.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_harness.h"
#include "quant/gguf.h"
#include "test_data.h"

namespace {

using quant::testing::data_path;
using quant::testing::ProgramRun;
using quant::testing::read_text;
using quant::testing::run_quantize;
using quant::testing::temp_dir;

const std::string kCodeCalib = data_path("tokenizer/texts/code-calib.txt");

TEST(TokenizeCommand, IdsEqualLlamaTokenizeByteForByte) {
  const std::pair<std::string, std::string> cases[] = {
      {data_path("tokenizer/ggml-vocab-gpt-2.gguf"), "tokenizer/ggml-vocab-gpt-2.code-calib.ids"},
      {data_path("gguf/vocab/ggml-vocab-llama-spm.gguf"), "tokenizer/ggml-vocab-llama-spm.code-calib.ids"},
      {data_path("gguf/vocab/ggml-vocab-bert-bge.gguf"), "tokenizer/ggml-vocab-bert-bge.code-calib.ids"},
      {data_path("models/tiny-llama-f16.gguf"), "tokenizer/tiny-llama-f16.code-calib.ids"},
  };
  for (const auto& [model, reference] : cases) {
    const ProgramRun run = run_quantize({"tokenize", model, "--file", kCodeCalib, "--ids"});
    ASSERT_EQ(run.exit_code, 0) << model << ": " << run.err;
    EXPECT_EQ(run.out, read_text(data_path(reference))) << model;
    EXPECT_EQ(run.err, "") << model;
  }
}

TEST(TokenizeCommand, ListingShowsLlamaTokenizePieces) {
  for (const std::string vocab : {"gpt-2", "llama-spm", "bert-bge", "phi-3"}) {
    const std::string model = vocab == "gpt-2" || vocab == "phi-3"
                                  ? data_path("tokenizer/ggml-vocab-" + vocab + ".gguf")
                                  : data_path("gguf/vocab/ggml-vocab-" + vocab + ".gguf");
    const ProgramRun run = run_quantize({"tokenize", model, "-f", data_path("tokenizer/texts/multilingual.txt")});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out, read_text(data_path("tokenizer/pieces/" + vocab + ".multilingual.txt"))) << vocab;
  }
}

TEST(TokenizeCommand, PromptFlagsAndJson) {
  const std::string spm = data_path("gguf/vocab/ggml-vocab-llama-spm.gguf");
  ProgramRun run = run_quantize({"tokenize", spm, "--prompt", "Hello world", "--ids"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // Expected ids: llama-tokenize -m ggml-vocab-llama-spm.gguf -p TEXT --ids --no-escape [--no-bos]
  // [--no-parse-special] (llama.cpp 34af94c).
  EXPECT_EQ(run.out, "[1, 15043, 3186]\n");
  run = run_quantize({"tokenize", spm, "--prompt", "Hello world", "--ids", "--no-bos"});
  EXPECT_EQ(run.out, "[15043, 3186]\n");
  // Control tokens in the text are matched unless --no-parse-special (llama-tokenize's default and flag).
  run = run_quantize({"tokenize", spm, "--prompt", "<s>", "--ids", "--no-bos"});
  EXPECT_EQ(run.out, "[1]\n");
  run = run_quantize({"tokenize", spm, "--prompt", "<s>", "--ids", "--no-bos", "--no-parse-special"});
  EXPECT_EQ(run.out, "[529, 29879, 29958]\n");

  run = run_quantize({"--json", "tokenize", spm, "--prompt", "Hello world"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json doc = nlohmann::json::parse(run.out);
  EXPECT_EQ(doc.at("ids"), nlohmann::json::array({1, 15043, 3186}));
  EXPECT_EQ(doc.at("count"), 3);
  EXPECT_EQ(doc.at("tokenizer"), "SPM");
  EXPECT_EQ(doc.at("n_vocab"), 32000);
  ASSERT_EQ(doc.at("tokens").size(), 3u);
  EXPECT_EQ(doc.at("tokens")[1].at("piece"), " Hello");
  EXPECT_EQ(doc.at("tokens")[0].at("piece"), "<s>");
}

TEST(TokenizeCommand, InvalidUtf8IsTokenizedNotFatal) {
  const ProgramRun run = run_quantize({"tokenize", data_path("tokenizer/ggml-vocab-gpt-2.gguf"), "-f",
                                       data_path("tokenizer/texts/invalid.bin"), "--ids"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
}

// A copy of `source`'s metadata with `key` set to `value` (or removed when value is null), as a new vocab file.
std::string variant(const std::string& source, const std::string& name, const std::string& key,
                    std::optional<quant::Value> value) {
  auto file = quant::GgufFile::open(source);
  if (!file) throw std::runtime_error(file.error().message());
  const std::string path = temp_dir() + "/" + name;
  auto writer = quant::GgufWriter::create(path);
  if (!writer) throw std::runtime_error(writer.error().message());
  for (const quant::KeyValue& kv : file->metadata()) {
    if (kv.key != key && !writer->add_metadata(kv.key, kv.value)) throw std::runtime_error("add_metadata");
  }
  if (value && !writer->add_metadata(key, *value)) throw std::runtime_error("add_metadata");
  if (!writer->begin() || !writer->commit()) throw std::runtime_error("write " + path);
  return path;
}

// llama-tokenize on this file logs "bad special token: 'tokenizer.ggml.bos_token_id' = 32000, using default id 1" and
// prints [1, 15043, 3186] for "Hello world" (llama.cpp 34af94c).
TEST(TokenizeCommand, SpecialIdOutsideTheVocabularyWarnsAndKeepsTheDefault) {
  const std::string spm = data_path("gguf/vocab/ggml-vocab-llama-spm.gguf");
  const std::string bad_bos = variant(spm, "bad-bos.gguf", "tokenizer.ggml.bos_token_id", quant::Value::u32(32000));
  const ProgramRun run = run_quantize({"tokenize", bad_bos, "-p", "Hello world", "--ids"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "[1, 15043, 3186]\n");
  EXPECT_NE(run.err.find("tokenizer.ggml.bos_token_id = 32000 is outside the vocabulary of 32000 tokens"),
            std::string::npos)
      << run.err;
}

TEST(TokenizeCommand, BadInputsGetTheirExitCodes) {
  const std::string gpt2 = data_path("tokenizer/ggml-vocab-gpt-2.gguf");
  const std::string spm = data_path("gguf/vocab/ggml-vocab-llama-spm.gguf");
  struct Case {
    std::string name;
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const std::string unknown_pre =
      variant(gpt2, "unknown-pre.gguf", "tokenizer.ggml.pre", quant::Value::string("llama5-bpe"));
  const std::string unknown_model =
      variant(spm, "unknown-model.gguf", "tokenizer.ggml.model", quant::Value::string("wordlevel"));
  const std::string bad_scores = variant(spm, "bad-scores.gguf", "tokenizer.ggml.scores",
                                         quant::Value::array_of<float>(std::vector<float>(10, 0.0f)));
  const std::string no_vocab = variant(spm, "no-vocab.gguf", "tokenizer.ggml.model", quant::Value::string("none"));
  const std::string no_tokens = variant(spm, "no-tokens.gguf", "tokenizer.ggml.tokens", std::nullopt);
  const Case cases[] = {
      {"unknown pre-tokenizer", {"tokenize", unknown_pre, "-p", "x"}, 4, "unknown pre-tokenizer type 'llama5-bpe'"},
      {"unknown model", {"tokenize", unknown_model, "-p", "x"}, 4, "unknown tokenizer model 'wordlevel'"},
      {"no vocabulary", {"tokenize", no_vocab, "-p", "x"}, 4, "tokenizer model 'none': the model has no vocabulary"},
      {"scores of another length", {"tokenize", bad_scores, "-p", "x"}, 3,
       "bad-scores.gguf: metadata key 'tokenizer.ggml.scores' has 10 entries but tokenizer.ggml.tokens has 32000"},
      {"no token list", {"tokenize", no_tokens, "-p", "x"}, 3,
       "no-tokens.gguf: metadata key 'tokenizer.ggml.tokens' missing"},
      {"no tokenizer at all", {"tokenize", data_path("gguf/mnist-fc-f32.gguf"), "-p", "x"}, 3,
       "metadata key 'tokenizer.ggml.model' missing"},
      {"text llama.cpp aborts on", {"tokenize", gpt2, "-f", data_path("tokenizer/texts/beyond.bin")}, 3,
       "beyond.bin: the text decodes to code point U+140000, beyond U+10FFFF"},
      {"missing text file", {"tokenize", gpt2, "-f", data_path("tokenizer/texts/none.txt")}, 1, "none.txt"},
      {"missing model", {"tokenize", data_path("tokenizer/none.gguf"), "-p", "x"}, 1, "none.gguf"},
      {"no text", {"tokenize", gpt2}, 2, "--file"},
      {"two texts", {"tokenize", gpt2, "-p", "x", "-f", kCodeCalib}, 2, ""},
  };
  for (const Case& c : cases) {
    const ProgramRun run = run_quantize(c.args);
    EXPECT_EQ(run.exit_code, c.exit_code) << c.name << ": " << run.err;
    EXPECT_NE(run.err.find(c.message), std::string::npos) << c.name << ": " << run.err;
    EXPECT_EQ(run.out, "") << c.name;
  }
}

}  // namespace
