// Whole-program tests of `quantize INPUT --target-size SIZE` / `--target-bpw B`: the file reproduced byte for byte
// by llama.cpp's llama-quantize from the saved plan (when that binary is available locally), the exit codes and
// messages for budgets out of range, a cache from another model, a calibration text too short and bad options.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_harness.h"
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

// llama.cpp's llama-quantize: $LLAMA_QUANTIZE, else the peer checkout beside this repository; empty when absent.
std::string llama_quantize() {
  if (const char* path = std::getenv("LLAMA_QUANTIZE"); path != nullptr && fs::exists(path)) return path;
  const fs::path beside = fs::path(QUANT_TEST_DATA_DIR) / "../../../peer/llama.cpp/build/bin/llama-quantize";
  std::error_code ec;
  return fs::exists(beside, ec) ? fs::canonical(beside).string() : "";
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
  EXPECT_NE(no_imatrix.err.find("need --imatrix"), std::string::npos) << no_imatrix.err;
}

}  // namespace
