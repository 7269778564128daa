// Whole-program tests of split models: `quantize split`, `quantize merge`, conversions of split inputs, split
// outputs (--keep-split, --split-max-size, --split-max-tensors) and sharded runs (--shard I/N).
//
// References: tests/data/split/references.tsv holds the sha256 of every file llama.cpp's llama-gguf-split and
// llama-quantize wrote for the commands listed there (tests/data/split/make_references.sh ran them). The inputs
// of the later commands are shards, which the tests make with our own `quantize split` after checking each
// against the reference's sha256, so the repository carries no shard files.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/cli_harness.h"
#include "quant/gguf.h"
#include "quant/imatrix.h"
#include "quant/split.h"
#include "test_data.h"

namespace {

namespace fs = std::filesystem;
using quant::testing::data_path;
using quant::testing::file_sha256;
using quant::testing::ProgramRun;
using quant::testing::run_quantize;
using quant::testing::ScratchDir;

// file name -> sha256 of what llama.cpp's tools wrote.
const std::map<std::string, std::string>& references() {
  static const std::map<std::string, std::string> table = [] {
    std::map<std::string, std::string> out;
    const auto rows = quant::testing::read_tsv(data_path("split/references.tsv"));
    for (size_t i = 1; i < rows.size(); ++i) out[rows[i].at(0)] = rows[i].at(1);
    return out;
  }();
  return table;
}

// The reference files whose names start with `prefix` followed by the shard suffix.
std::vector<std::string> reference_shards(const std::string& prefix) {
  std::vector<std::string> names;
  for (const auto& [name, sha] : references()) {
    const std::optional<quant::SplitName> parsed = quant::parse_split_path(name);
    if (parsed && parsed->prefix == prefix) names.push_back(name);
  }
  return names;
}

// The names of the files in `dir`.
std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

// Asserts that `dir` holds every reference shard of `prefix`, each byte-identical, and no other shard of it.
void expect_reference_shards(const std::string& dir, const std::string& prefix) {
  const std::vector<std::string> expected = reference_shards(prefix);
  ASSERT_FALSE(expected.empty()) << "no reference shards for " << prefix;
  for (const std::string& name : expected) {
    EXPECT_EQ(file_sha256(dir + "/" + name), references().at(name)) << name;
  }
  for (const std::string& name : files_in(dir)) {
    const std::optional<quant::SplitName> parsed = quant::parse_split_path(name);
    if (parsed && parsed->prefix == prefix) {
      EXPECT_TRUE(std::count(expected.begin(), expected.end(), name)) << "extra shard " << name;
    }
  }
}

void expect_reference(const std::string& path, const std::string& reference_name) {
  EXPECT_EQ(file_sha256(path), references().at(reference_name)) << path << " vs " << reference_name;
}

ProgramRun quantize(const std::vector<std::string>& args, const std::string& cwd = "") {
  return run_quantize(args, cwd);
}

// A scratch folder holding the test inputs and the shards of them the tests need, made once by our `quantize
// split` and checked against llama-gguf-split's.
class SplitInputs {
 public:
  static const SplitInputs& get() {
    static const SplitInputs inputs;
    return inputs;
  }
  const std::string& dir() const { return dir_; }
  std::string operator/(const std::string& name) const { return dir_ + "/" + name; }
  bool ok() const { return ok_; }

 private:
  SplitInputs() : dir_(quant::testing::empty_dir("split-inputs")) {
    fs::copy_file(data_path("models/tiny-llama-f16.gguf"), dir_ + "/tiny-llama-f16.gguf");
    fs::copy_file(data_path("gguf/stories260K.gguf"), dir_ + "/stories260K.gguf");
    fs::copy_file(data_path("imatrix/tiny-llama.imatrix.gguf"), dir_ + "/tiny-llama.imatrix.gguf");
    ok_ = split("tiny-llama-f16.gguf", "tl-f16-t12", "--split-max-tensors", "12") &&
          split("tiny-llama-f16.gguf", "tl-f16-s2M", "--split-max-size", "2M") &&
          split("stories260K.gguf", "st-t20", "--split-max-tensors", "20") &&
          split("stories260K.gguf", "st-s1M", "--split-max-size", "1M");
  }
  bool split(const std::string& input, const std::string& prefix, const std::string& option,
             const std::string& value) {
    const ProgramRun run = quantize({"split", input, prefix, option, value, "-q"}, dir_);
    if (run.exit_code != 0) return false;
    for (const std::string& name : reference_shards(prefix)) {
      if (file_sha256(dir_ + "/" + name) != references().at(name)) return false;
    }
    return true;
  }

  std::string dir_;
  bool ok_ = false;
};

// ---------------------------------------------------------------------------------------------------------
// llama-gguf-split's bytes.

TEST(SplitCommand, ShardsEqualLlamaGgufSplitsByTensorCountAndBySize) {
  ScratchDir dir;
  fs::copy_file(data_path("models/tiny-llama-f16.gguf"), dir / "tiny-llama-f16.gguf");
  fs::copy_file(data_path("gguf/stories260K.gguf"), dir / "stories260K.gguf");
  const std::string d = dir.path().string();
  ASSERT_EQ(quantize({"split", "tiny-llama-f16.gguf", "tl-f16-t12", "--split-max-tensors", "12", "-q"}, d).exit_code, 0);
  ASSERT_EQ(quantize({"split", "tiny-llama-f16.gguf", "tl-f16-s2M", "--split-max-size", "2M", "-q"}, d).exit_code, 0);
  ASSERT_EQ(quantize({"split", "stories260K.gguf", "st-t20", "--split-max-tensors", "20", "-q"}, d).exit_code, 0);
  ASSERT_EQ(quantize({"split", "stories260K.gguf", "st-s1M", "--split-max-size", "1M", "-q"}, d).exit_code, 0);
  ASSERT_EQ(quantize({"split", "stories260K.gguf", "st-default", "-q"}, d).exit_code, 0);  // 128 tensors a shard
  for (const char* prefix : {"tl-f16-t12", "tl-f16-s2M", "st-t20", "st-s1M", "st-default"}) {
    SCOPED_TRACE(prefix);
    expect_reference_shards(d, prefix);
  }
}

TEST(SplitCommand, DryRunPlansAndWritesNothing) {
  ScratchDir dir;
  const ProgramRun run = quantize({"--json", "split", data_path("models/tiny-llama-f16.gguf"), dir / "tl",
                                   "--split-max-size", "2M", "--dry-run"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json doc = nlohmann::json::parse(run.out);
  ASSERT_EQ(doc["files"].size(), 4u);
  EXPECT_EQ(doc["files"][3]["path"], dir / "tl-00004-of-00004.gguf");
  uint64_t tensors = 0;
  for (const auto& file : doc["files"]) tensors += file["tensors"].get<uint64_t>();
  EXPECT_EQ(tensors, 39u);
  EXPECT_TRUE(files_in(dir.path().string()).empty());
  // The planned sizes are the sizes llama-gguf-split's shards have.
  const SplitInputs& inputs = SplitInputs::get();
  ASSERT_TRUE(inputs.ok());
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(doc["files"][i]["file_bytes"].get<uint64_t>(),
              fs::file_size(inputs / quant::split_path("tl-f16-s2M", uint32_t(i), 4)));
  }
}

TEST(MergeCommand, EqualsLlamaGgufSplitsMergeFromAnyShard) {
  const SplitInputs& inputs = SplitInputs::get();
  ASSERT_TRUE(inputs.ok());
  ScratchDir dir;
  ASSERT_EQ(quantize({"merge", inputs / "tl-f16-s2M-00003-of-00004.gguf", dir / "tl-f16-s2M-merged.gguf", "-q"}).exit_code, 0);
  expect_reference(dir / "tl-f16-s2M-merged.gguf", "tl-f16-s2M-merged.gguf");
  ASSERT_EQ(quantize({"merge", inputs / "st-t20-00001-of-00003.gguf", dir / "st-t20-merged.gguf", "-q"}).exit_code, 0);
  expect_reference(dir / "st-t20-merged.gguf", "st-t20-merged.gguf");
}

// ---------------------------------------------------------------------------------------------------------
// Conversions of split inputs: llama-quantize's bytes, one file or one shard per input shard.

TEST(SplitInput, WholeFileEqualsLlamaQuantizesFromTheSplitAndTheUnsplitModel) {
  const SplitInputs& inputs = SplitInputs::get();
  ASSERT_TRUE(inputs.ok());
  ScratchDir dir;
  ASSERT_EQ(quantize({inputs / "tl-f16-t12-00002-of-00004.gguf", "--to", "Q4_K_M", "-o", dir / "q4.gguf", "-q"}).exit_code, 0);
  // llama-quantize writes the same file from the split and the unsplit model.
  expect_reference(dir / "q4.gguf", "tl-Q4_K_M.gguf");
  ASSERT_EQ(quantize({inputs / "tl-f16-s2M-00001-of-00004.gguf", "--to", "Q8_0", "-o", dir / "q8.gguf", "-q"}).exit_code, 0);
  expect_reference(dir / "q8.gguf", "tl-f16-s2M-Q8_0.gguf");
  ASSERT_EQ(quantize({inputs / "st-t20-00003-of-00003.gguf", "--to", "Q6_K", "-o", dir / "q6.gguf", "-q"}).exit_code, 0);
  expect_reference(dir / "q6.gguf", "st-t20-Q6_K.gguf");
}

TEST(SplitInput, KeepSplitEqualsLlamaQuantizesShards) {
  const SplitInputs& inputs = SplitInputs::get();
  ASSERT_TRUE(inputs.ok());
  const std::string d = quant::testing::empty_dir("keep-split");
  struct Job {
    std::string input, type, output, prefix;
  };
  const Job jobs[] = {{"tl-f16-t12-00001-of-00004.gguf", "Q4_K_M", "tl-Q4_K_M-keep.gguf", "tl-Q4_K_M-keep"},
                      {"tl-f16-s2M-00002-of-00004.gguf", "Q8_0", "tl-Q8_0-s2M-keep.gguf", "tl-Q8_0-s2M-keep"},
                      {"tl-f16-s2M-00001-of-00004.gguf", "Q6_K", "tl-Q6_K-s2M-keep.gguf", "tl-Q6_K-s2M-keep"},
                      {"st-t20-00001-of-00003.gguf", "Q4_K_M", "st-Q4_K_M-keep.gguf", "st-Q4_K_M-keep"}};
  for (const Job& job : jobs) {
    SCOPED_TRACE(job.prefix);
    const ProgramRun run = quantize({inputs / job.input, "--to", job.type, "--keep-split", "-o", d + "/" + job.output, "-q"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    expect_reference_shards(d, job.prefix);
  }
  // With an importance matrix, named as typed (llama-quantize records the path as given): run beside it.
  const ProgramRun run = quantize({"tl-f16-s2M-00001-of-00004.gguf", "--to", "Q4_K_M", "--keep-split", "--imatrix",
                                   "tiny-llama.imatrix.gguf", "-o", d + "/tl-Q4_K_M-imat-s2M-keep.gguf", "-q"},
                                  inputs.dir());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  expect_reference_shards(d, "tl-Q4_K_M-imat-s2M-keep");
}

TEST(SplitOutput, MaxSizeAndMaxTensorsEqualLlamaGgufSplitOfLlamaQuantizesFile) {
  ScratchDir dir;
  const std::string model = data_path("models/tiny-llama-f16.gguf");
  ASSERT_EQ(quantize({model, "--to", "Q4_K_M", "--split-max-size", "1M", "-o", dir / "tl-Q4_K_M-s1M.gguf", "-q"}).exit_code, 0);
  expect_reference_shards(dir.path().string(), "tl-Q4_K_M-s1M");
  ASSERT_EQ(quantize({model, "--to", "Q6_K", "--split-max-tensors", "7", "-o", dir / "tl-Q6_K-t7.gguf", "-q"}).exit_code, 0);
  expect_reference_shards(dir.path().string(), "tl-Q6_K-t7");
  // Several targets from one read, each cut on its own.
  ScratchDir both;
  ASSERT_EQ(quantize({model, "--to", "Q6_K,Q4_K_M", "--split-max-tensors", "7", "-o", both / "tl-Q6_K-t7.gguf", "-o",
                      both / "q4.gguf", "-q"})
                .exit_code,
            0);
  expect_reference_shards(both.path().string(), "tl-Q6_K-t7");
  EXPECT_EQ(files_in(both.path().string()).size(), 12u);  // 6 shards each
}

TEST(SplitInput, InfoDescribesTheWholeModel) {
  const SplitInputs& inputs = SplitInputs::get();
  ASSERT_TRUE(inputs.ok());
  const ProgramRun split = quantize({"--json", "info", inputs / "tl-f16-t12-00003-of-00004.gguf"});
  const ProgramRun whole = quantize({"--json", "info", inputs / "tiny-llama-f16.gguf"});
  ASSERT_EQ(split.exit_code, 0) << split.err;
  ASSERT_EQ(whole.exit_code, 0);
  const nlohmann::json s = nlohmann::json::parse(split.out);
  const nlohmann::json w = nlohmann::json::parse(whole.out);
  EXPECT_EQ(s["split"]["count"], 4);
  ASSERT_EQ(s["split"]["shards"].size(), 4u);
  EXPECT_EQ(s["split"]["shards"][2]["file"], inputs / "tl-f16-t12-00003-of-00004.gguf");
  EXPECT_EQ(s["totals"], w["totals"]);
  ASSERT_EQ(s["tensors"].size(), 39u);
  EXPECT_EQ(s["tensors"][38]["shard"], 3);
  // The model's metadata is the first shard's: the unsplit file's keys, then the split keys.
  EXPECT_EQ(s["metadata"].size(), w["metadata"].size() + 3);
}

// `imatrix --model` checks activations against the weights of the whole model, wherever their shard: the
// activations of blk.0.attn_q.weight (64 features, stories260K's row length) are checked against the last shard's
// model, which does not hold that weight, and the imatrix written equals the one checked against the unsplit file.
TEST(SplitInput, ImatrixChecksTheWeightsOfEveryShard) {
  const SplitInputs& inputs = SplitInputs::get();
  ASSERT_TRUE(inputs.ok());
  const std::string last = inputs / "st-t20-00003-of-00003.gguf";
  auto last_shard = quant::GgufFile::open(last);
  ASSERT_TRUE(last_shard);
  ASSERT_EQ(last_shard->find_tensor("blk.0.attn_q.weight"), nullptr);
  std::vector<std::string> data;
  for (int i = 0; i < 4; ++i) data.push_back(data_path("safetensors/imatrix-batch" + std::to_string(i) + ".safetensors"));
  auto imatrix = [&](const std::string& model, const std::string& out) {
    std::vector<std::string> args = {"imatrix", "--model", model, "-o", out, "-q", "--data"};
    args.insert(args.end(), data.begin(), data.end());
    return quantize(args);
  };
  ScratchDir dir;
  const ProgramRun split = imatrix(last, dir / "split.imatrix.gguf");
  ASSERT_EQ(split.exit_code, 0) << split.err;
  ASSERT_EQ(imatrix(inputs / "stories260K.gguf", dir / "whole.imatrix.gguf").exit_code, 0);
  EXPECT_EQ(file_sha256(dir / "split.imatrix.gguf"), file_sha256(dir / "whole.imatrix.gguf"));
  // A model whose row length differs (tiny-llama) is refused through its shards too.
  const ProgramRun other = imatrix(inputs / "tl-f16-t12-00002-of-00004.gguf", dir / "other.imatrix.gguf");
  EXPECT_EQ(other.exit_code, 3);
  EXPECT_NE(other.err.find("activations have 64 features but the weight takes"), std::string::npos) << other.err;
  // A damaged set is refused naming the shard, and nothing is written.
  const std::string damaged = quant::testing::empty_dir("imatrix-missing-shard");
  for (const std::string& name : reference_shards("st-t20")) fs::copy_file(inputs / name, damaged + "/" + name);
  fs::remove(damaged + "/st-t20-00002-of-00003.gguf");
  const ProgramRun missing = imatrix(damaged + "/st-t20-00001-of-00003.gguf", dir / "missing.imatrix.gguf");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("st-t20-00002-of-00003.gguf"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(dir / "missing.imatrix.gguf"));
  EXPECT_FALSE(fs::exists(dir / "other.imatrix.gguf"));
  // The output may not be one of the model's other shards.
  const std::string over = damaged + "/st-t20-00003-of-00003.gguf";
  fs::copy_file(inputs / "st-t20-00002-of-00003.gguf", damaged + "/st-t20-00002-of-00003.gguf");
  const ProgramRun over_shard = imatrix(damaged + "/st-t20-00001-of-00003.gguf", over);
  EXPECT_EQ(over_shard.exit_code, 2) << over_shard.err;
  EXPECT_NE(over_shard.err.find("is the input file"), std::string::npos) << over_shard.err;
  EXPECT_EQ(file_sha256(over), references().at("st-t20-00003-of-00003.gguf"));
}

// `quantize imatrix MODEL --text` runs the forward pass over a split model named by any shard: the same imatrix,
// byte for byte, as from the unsplit file.
TEST(SplitInput, TextImatrixOfTheSplitModelIsTheWholeFiles) {
  const SplitInputs& inputs = SplitInputs::get();
  ASSERT_TRUE(inputs.ok());
  ScratchDir dir;
  {
    std::ofstream text(dir / "code.txt");
    for (int i = 0; i < 60; ++i) {
      text << "def function_" << i << "(value, count=3):\n    return [value * k for k in range(count)]\n\n";
    }
  }
  auto imatrix = [&](const std::string& model, const std::string& out) {
    return quantize({"imatrix", model, "--text", dir / "code.txt", "--ctx", "128", "--chunks", "3", "-o", out, "-q"});
  };
  const ProgramRun split = imatrix(inputs / "tl-f16-t12-00004-of-00004.gguf", dir / "split.imatrix.gguf");
  const ProgramRun whole = imatrix(inputs / "tiny-llama-f16.gguf", dir / "whole.imatrix.gguf");
  ASSERT_EQ(split.exit_code, 0) << split.err;
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  auto read = quant::read_imatrix(dir / "split.imatrix.gguf");
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read->chunk_count, 3);
  EXPECT_GT(read->entries.size(), 20u);
  EXPECT_EQ(file_sha256(dir / "split.imatrix.gguf"), file_sha256(dir / "whole.imatrix.gguf"));
}

// `quantize eval` reads a split model from any shard: against llama-perplexity's KL-divergence base file of the
// unsplit f16 model (tests/data/eval), the split f16 scores exactly as the unsplit file does.
TEST(SplitInput, EvalScoresTheSplitModelAsTheWholeFile) {
  const SplitInputs& inputs = SplitInputs::get();
  ASSERT_TRUE(inputs.ok());
  const std::string base = data_path("eval/f16-code-calib-c256-16chunks.kld");
  const ProgramRun split = quantize({"--json", "eval", inputs / "tl-f16-t12-00003-of-00004.gguf", "--kl-base", base});
  const ProgramRun whole = quantize({"--json", "eval", inputs / "tiny-llama-f16.gguf", "--kl-base", base});
  ASSERT_EQ(split.exit_code, 0) << split.err;
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  nlohmann::json s = nlohmann::json::parse(split.out);
  nlohmann::json w = nlohmann::json::parse(whole.out);
  EXPECT_EQ(s["chunks"], 16);
  EXPECT_LT(s["kl_divergence"]["mean"].get<double>(), 1e-4);  // the model that wrote the base file
  for (nlohmann::json* doc : {&s, &w}) {
    for (const char* varies : {"model", "seconds", "tokens_per_second", "peak_rss_bytes"}) doc->erase(varies);
  }
  EXPECT_EQ(s, w);
}

// A conversion scores a split output as the one model it makes (--eval-text), and a --shard job, which writes one
// shard, cannot score it: exit 2 before anything is written.
TEST(SplitOutput, EvalTextScoresTheWholeSplitOutput) {
  ScratchDir dir;
  const std::string model = data_path("models/tiny-llama-f16.gguf");
  {
    std::ofstream text(dir / "code.txt");
    for (int i = 0; i < 60; ++i) {
      text << "def function_" << i << "(value, count=3):\n    return [value * k for k in range(count)]\n\n";
    }
  }
  auto score = [&](const std::vector<std::string>& cut, const std::string& out) {
    std::vector<std::string> args = {"--json", model, "--to", "Q4_K_M", "-o", out, "--eval-text", dir / "code.txt",
                                     "--eval-ctx", "128"};
    args.insert(args.end(), cut.begin(), cut.end());
    return quantize(args);
  };
  const ProgramRun split = score({"--split-max-size", "1M"}, dir / "cut.gguf");
  const ProgramRun whole = score({}, dir / "whole.gguf");
  ASSERT_EQ(split.exit_code, 0) << split.err;
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  nlohmann::json s = nlohmann::json::parse(split.out)["model"];
  nlohmann::json w = nlohmann::json::parse(whole.out)["model"];
  ASSERT_TRUE(s.is_object()) << split.out;
  EXPECT_GT(s["kl_divergence"]["mean"].get<double>(), 0.0);
  s.erase("seconds");
  w.erase("seconds");
  EXPECT_EQ(s, w);
  const std::set<std::string> before = files_in(dir.path().string());
  const ProgramRun sharded = score({"--shard", "1/3"}, dir / "job.gguf");
  EXPECT_EQ(sharded.exit_code, 2) << sharded.err;
  EXPECT_NE(sharded.err.find("not with --shard"), std::string::npos) << sharded.err;
  EXPECT_EQ(files_in(dir.path().string()), before);
}

// ---------------------------------------------------------------------------------------------------------
// Sharded runs: --shard I/N.

// The tensors of a GGUF file (or split model), with their data.
std::map<std::string, std::pair<quant::TensorInfo, std::vector<uint8_t>>> tensors_of(const std::string& path) {
  std::map<std::string, std::pair<quant::TensorInfo, std::vector<uint8_t>>> out;
  auto model = quant::open_model(path);
  if (!model) throw std::runtime_error(model.error().message());
  for (const quant::TensorInfo& t : (*model)->tensors()) {
    auto data = (*model)->read_tensor_data(t);
    if (!data) throw std::runtime_error(data.error().message());
    out[t.name] = {t, std::move(data).value()};
  }
  return out;
}

TEST(ShardedRun, ThreeJobsMakeOneModelWithTheSingleRunsTensors) {
  ScratchDir dir;
  const std::string model = data_path("models/tiny-llama-f16.gguf");
  // Each job plans alone (dry run), then writes only its shard.
  std::set<std::string> planned;
  std::vector<uint64_t> planned_file_bytes;
  for (int i = 1; i <= 3; ++i) {
    const std::string shard = std::to_string(i) + "/3";
    const std::set<std::string> before = files_in(dir.path().string());
    const ProgramRun plan = quantize({"--json", model, "--to", "Q4_K_M", "--shard", shard, "-o", dir / "tl.gguf", "--dry-run"});
    ASSERT_EQ(plan.exit_code, 0) << plan.err;
    const nlohmann::json doc = nlohmann::json::parse(plan.out);
    ASSERT_EQ(doc["shards"].size(), 1u);
    EXPECT_EQ(doc["shard_count"], 3);
    EXPECT_EQ(doc["shards"][0]["path"], dir / quant::split_path("tl", uint32_t(i - 1), 3));
    EXPECT_EQ(doc["shards"][0]["tensors"].get<size_t>(), doc["tensors"].size());
    for (const auto& t : doc["tensors"]) EXPECT_TRUE(planned.insert(t["name"].get<std::string>()).second);
    planned_file_bytes.push_back(doc["shards"][0]["file_bytes"].get<uint64_t>());
    EXPECT_EQ(files_in(dir.path().string()), before);  // a dry run writes nothing
    const ProgramRun run = quantize({model, "--to", "Q4_K_M", "--shard", shard, "-o", dir / "tl.gguf", "-q"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
  }
  EXPECT_EQ(planned.size(), 39u);
  EXPECT_EQ(files_in(dir.path().string()),
            (std::set<std::string>{"tl-00001-of-00003.gguf", "tl-00002-of-00003.gguf", "tl-00003-of-00003.gguf"}));
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(fs::file_size(dir / quant::split_path("tl", i, 3)), planned_file_bytes[i]) << "shard " << i + 1;
  }

  // The single run: llama-quantize's file.
  ASSERT_EQ(quantize({model, "--to", "Q4_K_M", "-o", dir / "single.gguf", "-q"}).exit_code, 0);
  expect_reference(dir / "single.gguf", "tl-Q4_K_M.gguf");
  const auto single = tensors_of(dir / "single.gguf");
  // Read as one model from any shard, and merged into one file: the single run's tensors, in its order.
  for (const std::string& path : {dir / "tl-00002-of-00003.gguf", dir / "merged.gguf"}) {
    if (path == dir / "merged.gguf") {
      ASSERT_EQ(quantize({"merge", dir / "tl-00001-of-00003.gguf", path, "-q"}).exit_code, 0);
    }
    SCOPED_TRACE(path);
    const auto sharded = tensors_of(path);
    ASSERT_EQ(sharded.size(), single.size());
    for (const auto& [name, entry] : single) {
      ASSERT_TRUE(sharded.count(name)) << name;
      EXPECT_EQ(sharded.at(name).first.type, entry.first.type) << name;
      EXPECT_EQ(sharded.at(name).first.shape, entry.first.shape) << name;
      EXPECT_TRUE(sharded.at(name).second == entry.second) << name;
    }
  }
  // The merged file is the single run's with the split keys llama-gguf-split --merge leaves and the plan digest.
  auto merged = quant::GgufFile::open(dir / "merged.gguf");
  auto reference = quant::GgufFile::open(dir / "single.gguf");
  ASSERT_TRUE(merged && reference);
  for (size_t i = 0; i < reference->tensors().size(); ++i) {
    EXPECT_EQ(merged->tensors()[i].name, reference->tensors()[i].name);
    EXPECT_EQ(merged->tensors()[i].offset, reference->tensors()[i].offset);
  }
  std::vector<std::string> extra;
  for (const quant::KeyValue& kv : merged->metadata()) {
    if (reference->find(kv.key) == nullptr) extra.push_back(kv.key);
  }
  EXPECT_EQ(extra, (std::vector<std::string>{"split.no", "split.tensors.count", "quantize.shard.plan", "split.count"}));
}

// A job reads only the tensors of its shard: a NaN in an f16 weight of shard 3 stops job 3 and the single run
// (naming the tensor), while jobs 1 and 2, which never read it, write their shards.
TEST(ShardedRun, AJobReadsOnlyTheTensorsOfItsShard) {
  ScratchDir dir;
  const std::string model = dir / "tl-f16.gguf";
  fs::copy_file(data_path("models/tiny-llama-f16.gguf"), model);
  const ProgramRun plan = quantize({"--json", model, "--to", "Q4_K_M", "--shard", "3/3", "--dry-run"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  auto input = quant::GgufFile::open(model);
  ASSERT_TRUE(input);
  const quant::TensorInfo* poisoned = nullptr;
  const nlohmann::json planned = nlohmann::json::parse(plan.out);
  for (const auto& t : planned["tensors"]) {
    const quant::TensorInfo* info = input->find_tensor(t["name"].get<std::string>());
    ASSERT_NE(info, nullptr);
    if (info->type == quant::TypeId::f16) poisoned = info;
  }
  ASSERT_NE(poisoned, nullptr);
  {
    std::fstream file(model, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(std::streamoff(input->data_offset() + poisoned->offset));
    const unsigned char nan_f16[2] = {0x00, 0x7e};  // 0x7e00, little-endian
    file.write(reinterpret_cast<const char*>(nan_f16), 2);
    ASSERT_TRUE(file.good());
  }
  for (const char* shard : {"1/3", "2/3"}) {
    const ProgramRun run = quantize({model, "--to", "Q4_K_M", "--shard", shard, "-o", dir / "tl.gguf", "-q"});
    EXPECT_EQ(run.exit_code, 0) << shard << ": " << run.err;
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--shard", "3/3", "-o", dir / "tl.gguf"}, {"-o", dir / "single.gguf"}}) {
    std::vector<std::string> command = {model, "--to", "Q4_K_M"};
    command.insert(command.end(), args.begin(), args.end());
    const ProgramRun run = quantize(command);
    EXPECT_EQ(run.exit_code, 3) << run.err;
    EXPECT_NE(run.err.find(poisoned->name), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("NaN"), std::string::npos) << run.err;
  }
  EXPECT_EQ(files_in(dir.path().string()),
            (std::set<std::string>{"tl-f16.gguf", "tl-00001-of-00003.gguf", "tl-00002-of-00003.gguf"}));
}

TEST(ShardedRun, DeterministicAndBalancedByOutputBytes) {
  ScratchDir dir;
  const std::string model = data_path("models/tiny-llama-f16.gguf");
  ASSERT_EQ(quantize({model, "--to", "Q6_K", "--shard", "2/4", "-o", dir / "a.gguf", "-t", "1", "-q"}).exit_code, 0);
  ASSERT_EQ(quantize({model, "--to", "Q6_K", "--shard", "2/4", "-o", dir / "b.gguf", "-t", "2", "-q"}).exit_code, 0);
  EXPECT_EQ(file_sha256(dir / "a-00002-of-00004.gguf"), file_sha256(dir / "b-00002-of-00004.gguf"));

  // The whole output's tensors, in order, and the bytes of its metadata (shard 1 carries them).
  ASSERT_EQ(quantize({model, "--to", "Q6_K", "-o", dir / "whole.gguf", "-q"}).exit_code, 0);
  auto whole = quant::GgufFile::open(dir / "whole.gguf");
  ASSERT_TRUE(whole);
  std::vector<uint64_t> padded;
  for (const quant::TensorInfo& t : whole->tensors()) padded.push_back((t.size_bytes + 31) / 32 * 32);
  uint64_t metadata_bytes = 24;  // magic, version, the two counts
  for (const quant::KeyValue& kv : whole->metadata()) metadata_bytes += 8 + kv.key.size() + 4 + kv.value.encoded_size_v3();
  // Each job's plan: its tensors, a contiguous run of the whole output's.
  std::vector<uint64_t> shard_bytes;
  size_t next = 0;
  for (int i = 1; i <= 4; ++i) {
    const ProgramRun run = quantize({"--json", model, "--to", "Q6_K", "--shard", std::to_string(i) + "/4", "--dry-run"});
    ASSERT_EQ(run.exit_code, 0);
    const nlohmann::json plan = nlohmann::json::parse(run.out);
    uint64_t bytes = i == 1 ? metadata_bytes : 0;
    for (const auto& t : plan["tensors"]) {
      ASSERT_LT(next, padded.size());
      EXPECT_EQ(t["name"], whole->tensors()[next].name);
      bytes += padded[next++];
    }
    shard_bytes.push_back(bytes);
  }
  EXPECT_EQ(next, padded.size());
  // No cut into 4 contiguous shards has a smaller largest shard.
  const uint64_t largest = *std::max_element(shard_bytes.begin(), shard_bytes.end());
  std::vector<uint64_t> prefix = {0};
  for (uint64_t p : padded) prefix.push_back(prefix.back() + p);
  const size_t n = padded.size();
  uint64_t best = UINT64_MAX;
  for (size_t a = 1; a < n; ++a) {
    for (size_t b = a + 1; b < n; ++b) {
      for (size_t c = b + 1; c < n; ++c) {
        const uint64_t worst = std::max({metadata_bytes + prefix[a], prefix[b] - prefix[a], prefix[c] - prefix[b],
                                         prefix[n] - prefix[c]});
        best = std::min(best, worst);
      }
    }
  }
  EXPECT_EQ(largest, best);
}

TEST(ShardedRun, ShardsOfRunsWithDifferentOptionsAreRefused) {
  ScratchDir dir;
  const std::string model = data_path("models/tiny-llama-f16.gguf");
  for (const char* shard : {"1/3", "2/3"}) {
    ASSERT_EQ(quantize({model, "--to", "Q4_K_M", "--shard", shard, "-o", dir / "tl.gguf", "-q"}).exit_code, 0);
  }
  // The third job was given another option: its shard does not belong with the others.
  ASSERT_EQ(quantize({model, "--to", "Q4_K_M", "--shard", "3/3", "--override-kv", "general.name=str:other", "-o",
                      dir / "tl.gguf", "-q"})
                .exit_code,
            0);
  const ProgramRun merge = quantize({"merge", dir / "tl-00001-of-00003.gguf", dir / "merged.gguf"});
  EXPECT_EQ(merge.exit_code, 3);
  EXPECT_NE(merge.err.find("tl-00003-of-00003.gguf"), std::string::npos) << merge.err;
  EXPECT_NE(merge.err.find("quantize.shard.plan"), std::string::npos) << merge.err;
  EXPECT_FALSE(fs::exists(dir / "merged.gguf"));
}

// ---------------------------------------------------------------------------------------------------------
// Bad input: a clear error naming the shard, and nothing written.

// Copies the shards of `prefix` from the prepared inputs into `dir`.
void copy_shards(const std::string& prefix, const std::string& dir) {
  for (const std::string& name : reference_shards(prefix)) fs::copy_file(SplitInputs::get() / name, dir + "/" + name);
}

// Runs a conversion, info and merge on the set named by `shard` and checks each fails with `exit_code`, names
// `culprit`, and leaves `dir` as it was.
void expect_refused(const std::string& dir, const std::string& shard, int exit_code, const std::string& culprit,
                    const std::string& reason) {
  const std::set<std::string> before = files_in(dir);
  const std::vector<std::vector<std::string>> commands = {
      {shard, "--to", "Q8_0", "-o", dir + "/out.gguf"},
      {shard, "--to", "Q8_0", "--keep-split", "-o", dir + "/out.gguf"},
      {"info", shard},
      {"merge", shard, dir + "/merged.gguf"},
      {"split", shard, dir + "/again", "--split-max-tensors", "5"}};
  for (const auto& command : commands) {
    SCOPED_TRACE(command[0] + " " + command[1]);
    const ProgramRun run = quantize(command);
    EXPECT_EQ(run.exit_code, exit_code) << run.err;
    EXPECT_NE(run.err.find(culprit), std::string::npos) << run.err;
    EXPECT_NE(run.err.find(reason), std::string::npos) << run.err;
    EXPECT_EQ(files_in(dir), before);
  }
}

TEST(SplitBadInput, MissingShard) {
  ASSERT_TRUE(SplitInputs::get().ok());
  const std::string dir = quant::testing::empty_dir("bad-missing");
  copy_shards("tl-f16-t12", dir);
  fs::remove(dir + "/tl-f16-t12-00003-of-00004.gguf");
  expect_refused(dir, dir + "/tl-f16-t12-00001-of-00004.gguf", 1, "tl-f16-t12-00003-of-00004.gguf",
                 "shard 3 of 4: cannot open");
}

TEST(SplitBadInput, ShardsOfTwoDifferentModels) {
  ASSERT_TRUE(SplitInputs::get().ok());
  // Three shards each: tiny-llama by 13 tensors, stories260K by 20; the second shard swapped.
  const std::string dir = quant::testing::empty_dir("bad-models");
  ASSERT_EQ(quantize({"split", data_path("models/tiny-llama-f16.gguf"), dir + "/m", "--split-max-tensors", "13", "-q"}).exit_code, 0);
  fs::copy_file(SplitInputs::get() / "st-t20-00002-of-00003.gguf", dir + "/m-00002-of-00003.gguf",
                fs::copy_options::overwrite_existing);
  expect_refused(dir, dir + "/m-00001-of-00003.gguf", 3, "m-00002-of-00003.gguf",
                 "its split.tensors.count is 48 but");
}

TEST(SplitBadInput, ShardCountMismatch) {
  ASSERT_TRUE(SplitInputs::get().ok());
  // The fourth shard of a 4-shard set replaced by the fourth of a 5-shard split of the same model, renamed to fit.
  const std::string dir = quant::testing::empty_dir("bad-count");
  copy_shards("tl-f16-t12", dir);
  ASSERT_EQ(quantize({"split", data_path("models/tiny-llama-f16.gguf"), dir + "/x", "--split-max-tensors", "8", "-q"}).exit_code, 0);
  fs::rename(dir + "/x-00004-of-00005.gguf", dir + "/tl-f16-t12-00004-of-00004.gguf");
  for (uint32_t i : {0u, 1u, 2u, 4u}) fs::remove(dir + "/" + quant::split_path("x", i, 5));
  expect_refused(dir, dir + "/tl-f16-t12-00002-of-00004.gguf", 3, "tl-f16-t12-00004-of-00004.gguf",
                 "its split.count is 5 but");
}

TEST(SplitBadInput, OverlappingTensorNames) {
  ASSERT_TRUE(SplitInputs::get().ok());
  // The last shard rewritten to hold three tensors of the first shard instead of its own three.
  const std::string dir = quant::testing::empty_dir("bad-overlap");
  copy_shards("tl-f16-t12", dir);
  auto first = quant::GgufFile::open(dir + "/tl-f16-t12-00001-of-00004.gguf");
  ASSERT_TRUE(first);
  const std::string last = dir + "/tl-f16-t12-00004-of-00004.gguf";
  fs::remove(last);
  auto writer = quant::GgufWriter::create(last);
  ASSERT_TRUE(writer);
  for (const quant::KeyValue& kv : quant::shard_metadata({}, 3, 4, 39, quant::SplitKeyOrder::gguf_split)) {
    ASSERT_TRUE(writer->add_metadata(kv.key, kv.value));
  }
  for (size_t i = 0; i < 3; ++i) {
    const quant::TensorInfo& t = first->tensors()[i];
    ASSERT_TRUE(writer->add_tensor(t.name, t.type, t.shape));
  }
  ASSERT_TRUE(writer->begin());
  for (size_t i = 0; i < 3; ++i) {
    auto data = first->read_tensor_data(first->tensors()[i]);
    ASSERT_TRUE(data);
    ASSERT_TRUE(writer->write_tensor(first->tensors()[i].name, *data));
  }
  ASSERT_TRUE(writer->commit());
  expect_refused(dir, dir + "/tl-f16-t12-00001-of-00004.gguf", 3, "tl-f16-t12-00004-of-00004.gguf",
                 "is also in shard 1");
}

TEST(SplitBadInput, ShardOptionOutOfRange) {
  ScratchDir dir;
  const std::string model = data_path("models/tiny-llama-f16.gguf");
  ProgramRun run = quantize({model, "--to", "Q4_K_M", "--shard", "4/3", "-o", dir / "tl.gguf"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("--shard 4/3: there is no shard 4 of 3"), std::string::npos) << run.err;
  run = quantize({model, "--to", "Q4_K_M", "--shard", "40/40", "-o", dir / "tl.gguf"});
  EXPECT_EQ(run.exit_code, 4);
  EXPECT_NE(run.err.find("too few for 40 shards"), std::string::npos) << run.err;
  run = quantize({model, "--to", "Q4_K_M", "--shard", "1/2", "--keep-split", "-o", dir / "tl.gguf"});
  EXPECT_EQ(run.exit_code, 2);
  run = quantize({model, "--to", "Q4_K_M", "--split-max-size", "1.5G", "-o", dir / "tl.gguf"});
  EXPECT_EQ(run.exit_code, 2);
  // No limit of 0 tensors (llama-gguf-split divides by it): a usage error, not "unsplit" or the default 128.
  run = quantize({model, "--to", "Q4_K_M", "--split-max-tensors", "0", "-o", dir / "tl.gguf"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("--split-max-tensors"), std::string::npos) << run.err;
  run = quantize({"split", model, dir / "sp", "--split-max-tensors", "0"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("--split-max-tensors"), std::string::npos) << run.err;
  // CLI11 alone would read -3 into the unsigned count as 2^64 - 3: one unsplit shard.
  run = quantize({model, "--to", "Q4_K_M", "--split-max-tensors=-3", "-o", dir / "tl.gguf"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("'-3' is not a count"), std::string::npos) << run.err;
  EXPECT_TRUE(files_in(dir.path().string()).empty());
}

TEST(SplitBadInput, OutputsNeverReplaceInputsOrExistingFiles) {
  ASSERT_TRUE(SplitInputs::get().ok());
  const std::string dir = quant::testing::empty_dir("bad-outputs");
  copy_shards("tl-f16-t12", dir);
  const std::set<std::string> before = files_in(dir);
  // Cutting a split model again under its own prefix would write over the shards it reads.
  ProgramRun run = quantize({"split", dir + "/tl-f16-t12-00001-of-00004.gguf", dir + "/tl-f16-t12",
                             "--split-max-tensors", "12", "--force"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("is the input file"), std::string::npos) << run.err;
  run = quantize({"merge", dir + "/tl-f16-t12-00001-of-00004.gguf", dir + "/tl-f16-t12-00003-of-00004.gguf", "--force"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  // Nor may any other command's output: eval's base-logits file, an imatrix, a conversion, onto another shard.
  const std::string base = data_path("eval/f16-code-calib-c256-16chunks.kld");
  const std::string text = data_path("text/code-calib.txt");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"eval", dir + "/tl-f16-t12-00001-of-00004.gguf", "--kl-base", base, "--save-kl-base",
                                 dir + "/tl-f16-t12-00002-of-00004.gguf", "--force"},
        std::vector<std::string>{"imatrix", dir + "/tl-f16-t12-00004-of-00004.gguf", "--text", text, "-o",
                                 dir + "/tl-f16-t12-00001-of-00004.gguf", "--force"},
        std::vector<std::string>{dir + "/tl-f16-t12-00003-of-00004.gguf", "--to", "Q8_0", "-o",
                                 dir + "/tl-f16-t12-00004-of-00004.gguf", "--force"}}) {
    SCOPED_TRACE(args[0]);
    run = quantize(args);
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_NE(run.err.find("is the input file"), std::string::npos) << run.err;
  }
  // An existing file is replaced only with --force.
  ASSERT_EQ(quantize({"merge", dir + "/tl-f16-t12-00001-of-00004.gguf", dir + "/merged.gguf", "-q"}).exit_code, 0);
  run = quantize({"merge", dir + "/tl-f16-t12-00001-of-00004.gguf", dir + "/merged.gguf"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(quantize({"merge", dir + "/tl-f16-t12-00001-of-00004.gguf", dir + "/merged.gguf", "-f", "-q"}).exit_code, 0);
  // A file that is not a shard cannot be merged.
  run = quantize({"merge", data_path("gguf/stories260K.gguf"), dir + "/x.gguf"});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.err.find("not a shard of a split model"), std::string::npos) << run.err;
  std::set<std::string> after = before;
  after.insert("merged.gguf");
  EXPECT_EQ(files_in(dir), after);
  for (const std::string& name : before) EXPECT_EQ(file_sha256(dir + "/" + name), references().at(name));
}

// ---------------------------------------------------------------------------------------------------------
// All or nothing: shards are placed together at the end, or none.

// Waits for `pid` to stop (true) or end (false).
bool stopped(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, WUNTRACED) < 0 && errno == EINTR) {
  }
  return WIFSTOPPED(status);
}

// The exit code of `pid`, or -signal.
int ended(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// Names in `dir` that are not temporary files (".NAME.tmp-PID").
std::set<std::string> final_files(const std::string& dir) {
  std::set<std::string> names;
  for (const std::string& name : files_in(dir)) {
    if (name.find(".tmp-") == std::string::npos) names.insert(name);
  }
  return names;
}

TEST(SplitAllOrNothing, InterruptedOrKilledRunsPlaceNoShard) {
  const std::string model = data_path("models/tiny-llama-f16.gguf");
  // Stopped inside the second of four shards (the first, 2.6 MB, complete), then interrupted: exit 130, no shard
  // placed, no temporary file left.
  const std::vector<std::vector<std::string>> jobs = {
      {"split", model, "tl", "--split-max-tensors", "12"},
      {model, "--to", "F16", "--split-max-tensors", "12", "-o", "tl.gguf"},
      {model, "--to", "F16", "--shard", "1/2", "-o", "tl.gguf"}};
  for (const auto& job : jobs) {
    SCOPED_TRACE(job[0] + " " + job[1]);
    const std::string dir = quant::testing::empty_dir("all-or-nothing");
    const pid_t pid = quant::testing::spawn_quantize(job, {"QUANT_FAULT_STOP_AFTER_BYTES=3000000"}, dir + "/out",
                                                     dir + "/err", dir);
    ASSERT_TRUE(stopped(pid));
    ::kill(pid, SIGINT);
    ::kill(pid, SIGCONT);
    EXPECT_EQ(ended(pid), 130) << quant::testing::read_text(dir + "/err");
    EXPECT_EQ(files_in(dir), (std::set<std::string>{"err", "out"}));
  }
  // Killed there: the temporary files stay (nothing can clean up after SIGKILL) but no shard is placed, and the
  // next run removes them and writes llama-gguf-split's shards.
  const std::string dir = quant::testing::empty_dir("killed");
  const pid_t pid = quant::testing::spawn_quantize(jobs[0], {"QUANT_FAULT_KILL_AFTER_BYTES=3000000"}, dir + "/out",
                                                   dir + "/err", dir);
  EXPECT_EQ(ended(pid), -SIGKILL);
  EXPECT_EQ(final_files(dir), (std::set<std::string>{"err", "out"}));
  EXPECT_GE(files_in(dir).size(), 4u);  // the first shard's and the second's temporary files
  ASSERT_EQ(quantize({"split", model, "tl-f16-t12", "--split-max-tensors", "12", "-q"}, dir).exit_code, 0);
  expect_reference_shards(dir, "tl-f16-t12");
  ASSERT_EQ(quantize({"split", model, "tl", "--split-max-tensors", "12", "-q"}, dir).exit_code, 0);
  for (const std::string& name : files_in(dir)) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
}

}  // namespace
