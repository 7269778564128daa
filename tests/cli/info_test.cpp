// Whole-program tests of `quantize info`: exit codes, the text view, and the --json document (it must parse
// and list every metadata key and every tensor). Expected counts come from tests/gguf/dump_gguf.py.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "cli/cli_harness.h"
#include "quant/gguf.h"
#include "test_data.h"

namespace {

using quant::testing::data_path;
using quant::testing::ProgramRun;
using quant::testing::run_quantize_line;

struct Expected {
  const char* path;
  size_t n_kv;
  size_t n_tensors;
  uint32_t version;
};

const Expected kFiles[] = {
    {"gguf/stories260K.gguf", 19, 48, 3},
    {"gguf/stories260K-v1.gguf", 18, 48, 1},
    {"gguf/stories260K-rows256-F32.gguf", 19, 48, 3},
    {"gguf/mnist-fc-f32.gguf", 1, 4, 3},
    {"gguf/historic/ggml-vocab-llama-v1-FUGG.gguf", 12, 0, 1},
    {"gguf/historic/ggml-vocab-llama-v1.gguf", 13, 0, 1},
    {"gguf/vocab/ggml-vocab-llama-spm.gguf", 22, 0, 3},
    {"gguf/vocab/ggml-vocab-bert-bge.gguf", 20, 0, 3},
};

TEST(InfoCommand, JsonListsEveryKeyAndTensor) {
  for (const Expected& expected : kFiles) {
    SCOPED_TRACE(expected.path);
    const ProgramRun run = run_quantize_line("--json info " + data_path(expected.path));
    ASSERT_EQ(run.exit_code, 0);
    const nlohmann::json doc = nlohmann::json::parse(run.out);
    EXPECT_EQ(doc["version"], expected.version);
    EXPECT_EQ(doc["alignment"], 32);
    ASSERT_EQ(doc["metadata"].size(), expected.n_kv);
    ASSERT_EQ(doc["tensors"].size(), expected.n_tensors);
    EXPECT_EQ(doc["totals"]["tensors"], expected.n_tensors);

    auto file = quant::GgufFile::open(data_path(expected.path));
    ASSERT_TRUE(file);
    std::set<std::string> keys, tensors;
    for (const auto& entry : doc["metadata"]) keys.insert(entry["key"].get<std::string>());
    for (const auto& entry : doc["tensors"]) tensors.insert(entry["name"].get<std::string>());
    for (const quant::KeyValue& kv : file->metadata()) EXPECT_TRUE(keys.count(kv.key)) << kv.key;
    for (const quant::TensorInfo& t : file->tensors()) EXPECT_TRUE(tensors.count(t.name)) << t.name;
  }
}

TEST(InfoCommand, JsonValuesOfStories260K) {
  const ProgramRun run = run_quantize_line("--json info " + data_path("gguf/stories260K.gguf"));
  ASSERT_EQ(run.exit_code, 0);
  const nlohmann::json doc = nlohmann::json::parse(run.out);
  EXPECT_EQ(doc["data_offset"], 14176);
  EXPECT_EQ(doc["file_size"], 1185376);
  const nlohmann::json& tokens = doc["metadata"][0];
  EXPECT_EQ(tokens["key"], "tokenizer.ggml.tokens");
  EXPECT_EQ(tokens["type"], "array");
  EXPECT_EQ(tokens["element_type"], "string");
  EXPECT_EQ(tokens["count"], 512);
  EXPECT_EQ(tokens["head"][1], "<s>");
  const nlohmann::json& blocks = doc["metadata"][16];
  EXPECT_EQ(blocks["key"], "llama.block_count");
  EXPECT_EQ(blocks["type"], "u32");
  EXPECT_EQ(blocks["value"], 5);
  const nlohmann::json& down = doc["tensors"][9];
  EXPECT_EQ(down["name"], "blk.0.ffn_down.weight");
  EXPECT_EQ(down["type"], "f32");
  EXPECT_EQ(down["shape"], nlohmann::json({172, 64}));
  EXPECT_EQ(down["bytes"], 44032);
  EXPECT_EQ(down["offset"], 355840);
  // 48 f32 tensors of 1171200 bytes (the file size minus the data offset, less no padding: all sizes are
  // multiples of 32) hold 292800 parameters.
  EXPECT_EQ(doc["totals"]["parameters"], 292800);
  EXPECT_EQ(doc["totals"]["bytes"], 1171200);
  EXPECT_EQ(doc["totals"]["bits_per_weight"], 32.0);
  EXPECT_EQ(doc["totals"]["by_type"][0]["type"], "f32");
}

TEST(InfoCommand, TextView) {
  const ProgramRun run = run_quantize_line("info " + data_path("gguf/mnist-fc-f32.gguf"));
  ASSERT_EQ(run.exit_code, 0);
  EXPECT_NE(run.out.find("GGUF version 3, alignment 32, 1590336 bytes"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("general.architecture  string \"mnist-fc\""), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("fc1.weight"), std::string::npos);
  EXPECT_NE(run.out.find("[784, 500]"), std::string::npos);
  EXPECT_NE(run.out.find("totals: 4 tensors, 397510 parameters"), std::string::npos) << run.out;
}

TEST(InfoCommand, ExitCodesAndErrorsOnStderr) {
  const ProgramRun malformed = run_quantize_line("info " + data_path("gguf/malformed/unknown-value-type-13.gguf"));
  EXPECT_EQ(malformed.exit_code, 3);
  EXPECT_TRUE(malformed.out.empty());
  EXPECT_NE(malformed.err.find("at offset 0xcc: key 'dict1': unknown value type 13"), std::string::npos)
      << malformed.err;

  const ProgramRun missing = run_quantize_line("--json info " + data_path("gguf/no-such-file.gguf"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(missing.out.empty());
  EXPECT_NE(missing.err.find("cannot open for reading"), std::string::npos);

  const ProgramRun no_file = run_quantize_line("info");
  EXPECT_EQ(no_file.exit_code, 2);
}

}  // namespace
