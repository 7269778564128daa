// Whole-program tests of `quantize INPUT --target-size SIZE` / `--target-bpw B`: the file reproduced byte for byte
// by llama.cpp's llama-quantize from the saved plan (when that binary is available locally), a calibration text
// alone as the importance matrix's source, the exit codes and messages for budgets out of range, a cache from
// another model or another importance matrix, a calibration text too short and bad options.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_harness.h"
#include "quant/gguf.h"
#include "test_data.h"

namespace {

namespace fs = std::filesystem;
using quant::testing::data_path;
using quant::testing::file_sha256;
using quant::testing::ProgramRun;
using quant::testing::run_program;
using quant::testing::run_quantize;
using quant::testing::ScratchDir;
using quant::testing::temp_dir;

const std::string kModel = data_path("models/tiny-llama-f16.gguf");
const std::string kImatrixDir = data_path("imatrix");
const std::string kImatrix = "tiny-llama.imatrix.gguf";  // as typed, from inside its folder (recorded in the file)

// llama.cpp's llama-quantize: $LLAMA_QUANTIZE (scripts/test.sh builds it with scripts/peer_llama_quantize.sh),
// else the peer checkout beside this repository; empty when absent. Tests that need it skip without it, unless
// QUANT_REQUIRE_PEER=1 (scripts/test.sh, so CI) makes its absence a failure.
std::string llama_quantize() {
  if (const char* path = std::getenv("LLAMA_QUANTIZE"); path != nullptr && fs::exists(path)) return path;
  const fs::path beside = fs::path(QUANT_TEST_DATA_DIR) / "../../../peer/llama.cpp/build/bin/llama-quantize";
  std::error_code ec;
  return fs::exists(beside, ec) ? fs::canonical(beside).string() : "";
}

bool peer_required() {
  const char* required = std::getenv("QUANT_REQUIRE_PEER");
  return required != nullptr && std::string(required) == "1";
}

// One measurement shared by the tests of this program.
std::string shared_cache() { return temp_dir() + "/automix-cache.json"; }

ProgramRun automix(std::vector<std::string> args) {
  std::vector<std::string> all = {kModel, "--imatrix", kImatrix, "--sensitivity-cache", shared_cache(), "-t", "2"};
  all.insert(all.end(), args.begin(), args.end());
  return run_quantize(all, kImatrixDir);
}

TEST(AutomixCommand, LlamaQuantizeReproducesTheFileFromTheSavedPlan) {
  const std::string peer = llama_quantize();
  if (peer.empty() && peer_required()) FAIL() << "llama-quantize not found and QUANT_REQUIRE_PEER=1";
  if (peer.empty()) GTEST_SKIP() << "llama-quantize not found (set LLAMA_QUANTIZE)";
  ScratchDir dir;
  // The sizes of llama-quantize's Q2_K and Q5_K_M of this model with this imatrix: low-bit i-quants and k-quants.
  for (const std::string budget : {"1486720", "2652544"}) {
    const std::string ours = dir / ("ours-" + budget + ".gguf"), plan = dir / ("plan-" + budget + ".txt");
    const ProgramRun run = automix({"--target-size", budget, "-o", ours, "--save-plan", plan, "--json"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const nlohmann::json report = nlohmann::json::parse(run.out);
    EXPECT_LE(fs::file_size(ours), std::stoull(budget));
    EXPECT_EQ(fs::file_size(ours), report["file_bytes"].get<uint64_t>());
    const std::string base = report["base_file_type"];
    const std::string theirs = dir / ("llama-quantize-" + budget + ".gguf");
    // The command the report prints, run as it says.
    const ProgramRun reference =
        run_program(peer, {"--imatrix", kImatrix, "--tensor-type-file", plan, kModel, theirs, base}, kImatrixDir);
    ASSERT_EQ(reference.exit_code, 0) << reference.err;
    EXPECT_EQ(file_sha256(ours), file_sha256(theirs)) << "budget " << budget;
    EXPECT_NE(report["llama_quantize_command"].get<std::string>().find("--tensor-type-file " + plan), std::string::npos);
  }
}

quant::GgufFile open_gguf(const std::string& path) {
  auto file = quant::GgufFile::open(path);
  if (!file) throw std::runtime_error(file.error().message());
  return std::move(*file);
}

// --calibration-text without --imatrix: the importance matrix is computed from the text, measured with, written
// with and recorded as `--to --calibration-text` records it; the dry run's size is the file's; the computed values
// key the cache; llama-quantize makes the same tensors from the plan and the matrix `quantize imatrix` writes.
TEST(AutomixCommand, ACalibrationTextAloneIsTheImportanceMatrixSource) {
  ScratchDir dir;
  const std::string text = data_path("automix/code-calib-head.txt");
  const std::string cache = dir / "text-cache.json", out = dir / "auto.gguf", plan = dir / "plan.txt";
  const std::string budget = "1877888";  // llama-quantize's Q3_K_M of this model
  // 2 chunks of 128 tokens measured; the matrix from every chunk of 128 of the text.
  const std::vector<std::string> common = {kModel, "--target-size", budget, "--calibration-text", text,
                                           "--calibration-ctx", "128", "--calibration-tokens", "256",
                                           "--sensitivity-cache", cache, "-t", "2", "--json"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> all = common;
    all.insert(all.end(), extra.begin(), extra.end());
    return run_quantize(all);
  };
  const ProgramRun dry = with({"--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  const nlohmann::json planned = nlohmann::json::parse(dry.out);
  EXPECT_FALSE(planned["cache_used"].get<bool>());
  const nlohmann::json& imatrix = planned["imatrix_from_text"];
  ASSERT_TRUE(imatrix.is_object()) << planned;
  EXPECT_EQ(imatrix["text"], text);
  EXPECT_EQ(imatrix["n_ctx"], 128);
  EXPECT_EQ(imatrix["entries"], 28);  // the blk.* weights
  EXPECT_GE(imatrix["chunks"].get<int>(), 30);  // about 4096 tokens
  EXPECT_NE(planned["measurer"].get<std::string>().find("kld/1 ctx=128 max-tokens=256"), std::string::npos);
  const uint64_t predicted = planned["file_bytes"];
  EXPECT_LE(predicted, std::stoull(budget));

  const ProgramRun run = with({"-o", out, "--save-plan", plan});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);
  EXPECT_TRUE(report["cache_used"].get<bool>()) << "the same text gives the same matrix: the cache serves it";
  EXPECT_EQ(fs::file_size(out), predicted) << "the dry run's size counts the quantize.imatrix.* keys";
  EXPECT_EQ(report["file_bytes"].get<uint64_t>(), predicted);
  EXPECT_EQ(report["conversion"]["imatrix_from_text"], report["imatrix_from_text"]);
  for (const char* key : {"chunks", "tokens", "entries", "perplexity"}) {
    EXPECT_EQ(report["imatrix_from_text"][key], imatrix[key]) << key << ": the same matrix as the dry run's";
  }
  const quant::GgufFile file = open_gguf(out);
  EXPECT_EQ(file.find("quantize.imatrix.file"), nullptr);
  EXPECT_EQ(file.get<std::string>("quantize.imatrix.dataset").value(), text);
  EXPECT_EQ(file.get<uint32_t>("quantize.imatrix.entries_count").value(), 28u);
  EXPECT_EQ(file.get<uint32_t>("quantize.imatrix.chunks_count").value(), imatrix["chunks"].get<uint32_t>());
  size_t low_bit = 0;
  for (const nlohmann::json& t : report["tensors"]) {
    const quant::TensorInfo* written = file.find_tensor(t["name"].get<std::string>());
    ASSERT_NE(written, nullptr) << t;
    EXPECT_EQ(quant::format_of(written->type).name, t["type_out"].get<std::string>()) << t;
    if (t["type_out"] == "q2_K" || t["type_out"].get<std::string>().starts_with("iq")) ++low_bit;
  }
  EXPECT_GT(low_bit, 0u) << "a Q3_K_M-sized budget puts some tensors below 3 bits";
  // The file loads and runs, and scores on the measured chunks as the whole mix was measured before writing it
  // (that figure subtracts the base's own 16-bit rounding floor, a few 1e-6).
  const ProgramRun eval = run_quantize({"eval", out, "--base", kModel, "--text", text, "-c", "128", "--chunks", "2",
                                        "-t", "2", "--json"});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const double measured = report["measured"]["kld"];
  EXPECT_GT(measured, 0.0);
  EXPECT_NEAR(nlohmann::json::parse(eval.out)["kl_divergence"]["mean"].get<double>(), measured, 0.02 * measured)
      << eval.out;

  // The cache is keyed by the computed values: the same text and settings with the file imatrix are refused.
  const ProgramRun other = run_quantize({kModel, "--imatrix", kImatrix, "--target-size", budget, "--calibration-text",
                                         text, "--calibration-ctx", "128", "--calibration-tokens", "256",
                                         "--sensitivity-cache", cache, "--dry-run"},
                                        kImatrixDir);
  EXPECT_EQ(other.exit_code, 4) << other.err;
  EXPECT_NE(other.err.find("measured with another importance matrix"), std::string::npos) << other.err;

  // llama-quantize, given the matrix written by `quantize imatrix` with the same text and context and the saved
  // plan (the command the report prints), writes the same tensors.
  const std::string peer = llama_quantize();
  if (peer.empty() && peer_required()) FAIL() << "llama-quantize not found and QUANT_REQUIRE_PEER=1";
  if (peer.empty()) GTEST_SKIP() << "llama-quantize not found (set LLAMA_QUANTIZE)";
  const std::string command = report["llama_quantize_command"];
  EXPECT_NE(command.find("quantize imatrix " + kModel + " --text " + text + " --ctx 128 -o IMATRIX.gguf && "),
            std::string::npos)
      << command;
  const ProgramRun written = run_quantize({"imatrix", kModel, "--text", text, "--ctx", "128", "-o", "IMATRIX.gguf"},
                                          dir.path());
  ASSERT_EQ(written.exit_code, 0) << written.err;
  const std::string theirs = dir / "llama-quantize.gguf";
  const ProgramRun reference = run_program(
      peer, {"--imatrix", "IMATRIX.gguf", "--tensor-type-file", plan, kModel, theirs, report["base_file_type"]},
      dir.path());
  ASSERT_EQ(reference.exit_code, 0) << reference.err;
  const quant::GgufFile reference_file = open_gguf(theirs);
  ASSERT_EQ(reference_file.tensors().size(), file.tensors().size());
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const quant::TensorInfo& a = file.tensors()[i];
    const quant::TensorInfo& b = reference_file.tensors()[i];
    ASSERT_EQ(a.name, b.name);
    EXPECT_EQ(a.type, b.type) << a.name;
    EXPECT_EQ(*file.read_tensor_data(a), *reference_file.read_tensor_data(b)) << a.name;
  }
}

TEST(AutomixCommand, BudgetsOutOfRangeExit4WithTheReachableRange) {
  ScratchDir dir;
  for (const std::string budget : {"100K", "9M"}) {
    const ProgramRun run = automix({"--target-size", budget, "-o", dir / "out.gguf"});
    EXPECT_EQ(run.exit_code, 4) << run.err;
    EXPECT_NE(run.err.find("reachable range is"), std::string::npos) << run.err;
    EXPECT_FALSE(fs::exists(dir / "out.gguf"));
  }
  const ProgramRun bpw = automix({"--target-bpw", "0.5", "--dry-run"});
  EXPECT_EQ(bpw.exit_code, 4) << bpw.err;
  EXPECT_NE(bpw.err.find("bits per weight"), std::string::npos) << bpw.err;
}

TEST(AutomixCommand, ACacheFromAnotherModelIsRefusedNamingWhy) {
  ScratchDir dir;
  const ProgramRun first = automix({"--target-size", "2M", "--dry-run"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_TRUE(fs::exists(shared_cache()));
  const ProgramRun other = run_quantize({data_path("gguf/stories260K.gguf"), "--imatrix",
                                         data_path("imatrix/stories260K.imatrix.gguf"), "--target-size", "900K",
                                         "--sensitivity-cache", shared_cache(), "--dry-run"});
  EXPECT_EQ(other.exit_code, 4) << other.err;
  EXPECT_NE(other.err.find("measured on another model"), std::string::npos) << other.err;
  EXPECT_NE(other.err.find(shared_cache()), std::string::npos) << other.err;
}

TEST(AutomixCommand, ACalibrationTextTooShortToMeasureExits4) {
  ScratchDir dir;
  quant::testing::write_text(dir / "short.txt", "import os\nprint(os.getcwd())\n");
  const ProgramRun run = run_quantize({kModel, "--imatrix", kImatrix, "--target-size", "2M", "--calibration-text",
                                       dir / "short.txt", "-o", dir / "out.gguf"},
                                      kImatrixDir);
  EXPECT_EQ(run.exit_code, 4) << run.err;
  EXPECT_NE(run.err.find("too short to measure"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("short.txt"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(dir / "out.gguf"));
  // Without --imatrix the text is the matrix's source: refused as too short for it, before anything is measured.
  const ProgramRun alone = run_quantize({kModel, "--target-size", "2M", "--calibration-text", dir / "short.txt", "-o",
                                         dir / "out.gguf"});
  EXPECT_EQ(alone.exit_code, 4) << alone.err;
  EXPECT_NE(alone.err.find("two chunks"), std::string::npos) << alone.err;
  EXPECT_NE(alone.err.find("short.txt"), std::string::npos) << alone.err;
  EXPECT_FALSE(fs::exists(dir / "out.gguf"));
}

TEST(AutomixCommand, ReportsTheChoiceAndItsCost) {
  const ProgramRun text = automix({"--target-size", "2283904", "--dry-run"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("automatic mix"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("blk.3.ffn_down.weight"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("reproduce with: llama-quantize --imatrix tiny-llama.imatrix.gguf"), std::string::npos);
  const ProgramRun json = automix({"--target-bpw", "4.5", "--dry-run", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json report = nlohmann::json::parse(json.out);
  EXPECT_LE(report["bits_per_weight"].get<double>(), 4.5);
  EXPECT_TRUE(report["output"].is_null());
  EXPECT_EQ(report["tensors"].size(), 39u);  // 30 weights and 9 norms
  for (const nlohmann::json& t : report["tensors"]) EXPECT_TRUE(t["cost"].is_number()) << t;
}

TEST(AutomixCommand, BadOptionsAreUsageErrors) {
  struct Case {
    std::vector<std::string> args;
    const char* message;
  };
  const Case cases[] = {
      {{"--target-size", "2X"}, "invalid size '2X'"},
      {{"--target-size", "2M", "--to", "Q4_K_M"}, "alternatives"},
      {{"--target-size", "2M", "--target-bpw", "4"}, "alternatives"},
      {{"--target-bpw", "-1"}, "above 0"},
      {{"--target-size", "2M", "--pure"}, "--pure cannot be combined"},
      {{"--target-size", "2M", "--eval-text", "t.txt"}, "--eval-text cannot be combined"},
      {{"--target-size", "2M", "--calibration-chunks", "4"}, "--calibration-chunks cannot be combined"},
      {{"--target-size", "2M", "-o", "a.gguf", "-o", "b.gguf"}, "at most one -o"},
      {{"--target-size", "2M", "--frontier-points", "1", "--frontier", "f"}, "2 or more"},
  };
  for (const Case& c : cases) {
    const ProgramRun run = automix(c.args);
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_NE(run.err.find(c.message), std::string::npos) << run.err;
  }
  const ProgramRun no_imatrix = run_quantize({kModel, "--target-size", "2M"});
  EXPECT_EQ(no_imatrix.exit_code, 2);
  EXPECT_NE(no_imatrix.err.find("need --imatrix FILE, --calibration-text FILE"), std::string::npos) << no_imatrix.err;
}

}  // namespace
