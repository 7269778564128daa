// quantize eval and --eval-text / --max-kld, run as a user runs them: results, exit codes, and every class of bad
// input (docs/eval.md).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "cli/cli_harness.h"
#include "quant/gguf.h"

namespace quant {
namespace {

using testing::data_path;
using testing::run_quantize;

const std::string kModel = data_path("models/tiny-llama-f16.gguf");
const std::string kBaseFile = data_path("eval/f16-code-calib-c256-16chunks.kld");

// Some lines of Python (tiny-llama was trained on code): any text serves these tests.
std::string code_text(size_t lines) {
  std::string text;
  for (size_t i = 0; i < lines; ++i) {
    text += "def function_" + std::to_string(i) + "(value, count=3):\n    return [value * k for k in range(count)]\n\n";
  }
  return text;
}

// Copies tiny-llama with its metadata edited: `edit` may change or drop (return false) each key.
void write_edited_model(const std::string& path, const std::function<bool(KeyValue&)>& edit) {
  auto in = GgufFile::open(kModel);
  ASSERT_TRUE(in) << in.error().message();
  auto out = GgufWriter::create(path);
  ASSERT_TRUE(out) << out.error().message();
  for (KeyValue kv : in->metadata()) {
    if (edit(kv)) {
      ASSERT_TRUE(out->add_metadata(kv.key, kv.value));
    }
  }
  for (const TensorInfo& t : in->tensors()) ASSERT_TRUE(out->add_tensor(t.name, t.type, t.shape));
  ASSERT_TRUE(out->begin());
  for (const TensorInfo& t : in->tensors()) {
    auto bytes = in->read_tensor_data(t);
    ASSERT_TRUE(bytes);
    ASSERT_TRUE(out->write_tensor(t.name, *bytes));
  }
  ASSERT_TRUE(out->commit());
}

TEST(EvalCli, PerplexityJsonKeys) {
  testing::ScratchDir dir;
  const std::string text = dir.path().string() + "/code.txt";
  testing::write_text(text, code_text(60));
  auto run = run_quantize({"eval", kModel, "--text", text, "--ctx", "128", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto json = nlohmann::json::parse(run.out);
  EXPECT_GT(json["perplexity"]["value"].get<double>(), 1.0);
  EXPECT_GT(json["perplexity"]["uncertainty"].get<double>(), 0.0);
  EXPECT_GE(json["chunks"].get<int>(), 2);
  EXPECT_EQ(json["tokens_scored"].get<int>(), json["chunks"].get<int>() * 63);
  EXPECT_TRUE(json.contains("seconds"));
  EXPECT_TRUE(json.contains("tokens_per_second"));
  EXPECT_FALSE(json.contains("kl_divergence"));  // no base: perplexity only
}

TEST(EvalCli, KlBaseFileAndSaveRoundTrip) {
  testing::ScratchDir dir;
  // llama-perplexity's own base file, scored with the model that wrote it.
  auto run = run_quantize({"eval", kModel, "--kl-base", kBaseFile, "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["chunks"].get<int>(), 16);
  EXPECT_LT(json["kl_divergence"]["mean"].get<double>(), 1e-4);
  EXPECT_GT(json["same_top_fraction"].get<double>(), 0.99);
  for (const char* p : {"99.9", "99", "95", "90", "10", "5", "1", "0.1"}) {
    EXPECT_TRUE(json["kl_divergence"]["percentiles"].contains(p)) << p;
  }
  EXPECT_TRUE(json["delta_p"].contains("rms"));
  // A file we write from the same tokens is read back and gives the same base perplexity as llama.cpp's file
  // within the model's float differences.
  const std::string saved = dir.path().string() + "/saved.kld";
  const std::string text = dir.path().string() + "/code.txt";
  testing::write_text(text, code_text(60));
  run = run_quantize({"eval", kModel, "--text", text, "--ctx", "128", "--save-kl-base", saved});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  run = run_quantize({"eval", kModel, "--kl-base", saved, "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["n_ctx"].get<int>(), 128);
  EXPECT_LT(json["kl_divergence"]["mean"].get<double>(), 1e-5);  // the model against itself
}

TEST(EvalCli, UnsupportedArchitectureExits4NamingIt) {
  testing::ScratchDir dir;
  const std::string path = dir.path().string() + "/mamba.gguf";
  write_edited_model(path, [](KeyValue& kv) {
    if (kv.key == "general.architecture") kv.value = Value::string("mamba");
    return true;
  });
  auto run = run_quantize({"eval", path, "--kl-base", kBaseFile});
  EXPECT_EQ(run.exit_code, 4) << run.err;
  EXPECT_NE(run.err.find("'mamba' is not supported"), std::string::npos) << run.err;
}

TEST(EvalCli, MissingOrInconsistentHyperParametersExit3) {
  testing::ScratchDir dir;
  const std::string missing = dir.path().string() + "/missing.gguf";
  write_edited_model(missing, [](KeyValue& kv) { return kv.key != "llama.attention.layer_norm_rms_epsilon"; });
  auto run = run_quantize({"eval", missing, "--kl-base", kBaseFile});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("llama.attention.layer_norm_rms_epsilon' is missing"), std::string::npos) << run.err;

  const std::string heads = dir.path().string() + "/heads.gguf";
  write_edited_model(heads, [](KeyValue& kv) {
    if (kv.key == "llama.attention.head_count_kv") kv.value = Value::u32(3);
    return true;
  });
  run = run_quantize({"eval", heads, "--kl-base", kBaseFile});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("head_count_kv"), std::string::npos) << run.err;
}

TEST(EvalCli, TensorOfTheWrongShapeExits3NamingIt) {
  testing::ScratchDir dir;
  const std::string path = dir.path().string() + "/ffn.gguf";
  write_edited_model(path, [](KeyValue& kv) {
    if (kv.key == "llama.feed_forward_length") kv.value = Value::u32(512);
    return true;
  });
  auto run = run_quantize({"eval", path, "--kl-base", kBaseFile});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("tensor 'blk.0.ffn_down.weight': has shape [768, 256], expected [512, 256]"),
            std::string::npos) << run.err;
}

TEST(EvalCli, TextShorterThanTwoContextsExits4) {
  testing::ScratchDir dir;
  const std::string text = dir.path().string() + "/short.txt";
  testing::write_text(text, code_text(3));
  auto run = run_quantize({"eval", kModel, "--text", text, "--ctx", "512"});
  EXPECT_EQ(run.exit_code, 4) << run.err;
  EXPECT_NE(run.err.find("needs at least 1024"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(text + ": the text has"), std::string::npos) << run.err;  // the message names the text
}

TEST(EvalCli, BaseFileForAnotherVocabularyOrContextOrTruncatedExits3) {
  testing::ScratchDir dir;
  std::vector<uint8_t> bytes = testing::read_bytes(kBaseFile);
  // A well-formed file for a vocabulary of 2000 tokens: 2 chunks of 256 of the same tokens, rows of zeros.
  const int32_t n_vocab = 2000, n_chunk = 2;
  std::vector<uint8_t> vocab(bytes.begin(), bytes.begin() + 20 + 2 * 256 * 4);
  std::memcpy(vocab.data() + 12, &n_vocab, 4);
  std::memcpy(vocab.data() + 16, &n_chunk, 4);
  vocab.resize(vocab.size() + 2 * 127 * (2000 + 4) * 2, 0);
  const std::string vocab_path = dir.path().string() + "/vocab.kld";
  testing::write_text(vocab_path, std::string(vocab.begin(), vocab.end()));
  auto run = run_quantize({"eval", kModel, "--kl-base", vocab_path});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("vocab.kld"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("offset 0xc"), std::string::npos) << run.err;

  // Another context than asked for.
  run = run_quantize({"eval", kModel, "--kl-base", kBaseFile, "--ctx", "512"});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("context of 256, not 512"), std::string::npos) << run.err;

  // Truncated inside chunk 5's rows.
  const size_t rows_offset = 20 + 16 * 256 * 4, chunk_bytes = 127 * (1024 + 4) * 2;
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(rows_offset + 5 * chunk_bytes + 100));
  const std::string cut_path = dir.path().string() + "/cut.kld";
  testing::write_text(cut_path, std::string(cut.begin(), cut.end()));
  run = run_quantize({"eval", kModel, "--kl-base", cut_path});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("cut.kld"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("truncated: chunk 5 of 16"), std::string::npos) << run.err;
  char offset[32];
  std::snprintf(offset, sizeof(offset), "at offset %#zx", rows_offset + 5 * chunk_bytes);
  EXPECT_NE(run.err.find(offset), std::string::npos) << run.err;
}

TEST(ConvertEvalText, MaxKldExits5WithOutputsWritten) {
  testing::ScratchDir dir;
  const std::string text = dir.path().string() + "/code.txt";
  testing::write_text(text, code_text(60));
  const std::string q4 = dir.path().string() + "/q4.gguf";
  auto run = run_quantize({kModel, "--to", "Q4_K_M", "-o", q4, "--eval-text", text, "--eval-ctx", "128", "--json",
                           "--max-kld", "0.000001"});
  EXPECT_EQ(run.exit_code, 5) << run.err;
  EXPECT_TRUE(std::filesystem::exists(q4));
  const auto json = nlohmann::json::parse(run.out);
  EXPECT_GT(json["model"]["kl_divergence"]["mean"].get<double>(), 0.000001);
  EXPECT_GT(json["model"]["same_top_fraction"].get<double>(), 0.5);
  run = run_quantize({kModel, "--to", "Q4_K_M", "-o", q4, "-f", "--eval-text", text, "--eval-ctx", "128",
                      "--max-kld", "1"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("  model       PPL"), std::string::npos) << run.out;
  run = run_quantize({kModel, "--to", "Q4_K_M", "-o", q4, "-f", "--max-kld", "1"});
  EXPECT_EQ(run.exit_code, 2) << run.err;  // --max-kld needs --eval-text
}

// A text that cannot score the outputs is refused before anything is converted: nothing is written.
TEST(ConvertEvalText, AnUnusableTextIsRefusedBeforeTheConversion) {
  testing::ScratchDir dir;
  const std::string short_text = dir.path().string() + "/short.txt";
  testing::write_text(short_text, code_text(3));
  const std::string q4 = dir.path().string() + "/q4.gguf";
  struct Case {
    std::string text;
    int exit_code;
    std::string message;
  };
  const Case cases[] = {
      {short_text, 4, short_text + ": the text has"},                         // under two chunks of 512
      {dir.path().string() + "/missing.txt", 1, "missing.txt: cannot open"},  // no such file
      {dir.path().string(), 1, dir.path().string()},                           // a directory
  };
  for (const Case& c : cases) {
    auto run = run_quantize({kModel, "--to", "Q4_K_M", "-o", q4, "--eval-text", c.text});
    EXPECT_EQ(run.exit_code, c.exit_code) << c.text << ": " << run.err;
    EXPECT_NE(run.err.find(c.message), std::string::npos) << run.err;
    EXPECT_FALSE(std::filesystem::exists(q4)) << c.text;
  }
  // Options the scoring would refuse, or a gate nothing passes: usage errors before the conversion.
  const std::string text = dir.path().string() + "/code.txt";
  testing::write_text(text, code_text(60));
  const std::vector<std::vector<std::string>> usages = {
      {"--eval-ctx", "-1"}, {"--eval-ctx", "2"}, {"--eval-chunks", "0"}, {"--eval-chunks", "-3"},
      {"--max-kld", "-1"},  {"--max-kld", "nan"},
  };
  for (const std::vector<std::string>& usage : usages) {
    std::vector<std::string> args = {kModel, "--to", "Q4_K_M", "-o", q4, "--eval-text", text};
    args.insert(args.end(), usage.begin(), usage.end());
    auto run = run_quantize(args);
    EXPECT_EQ(run.exit_code, 2) << usage[0] << " " << usage[1] << ": " << run.err;
    EXPECT_FALSE(std::filesystem::exists(q4)) << usage[0] << " " << usage[1];
  }
}

}  // namespace
}  // namespace quant
