// Whole-program tests of `quantize imatrix`: both output formats read back through the imatrix readers with
// the calibration reference's sums, the recorded datasets and chunks, and exit codes for bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "quant/imatrix.h"
#include "test_data.h"

namespace {

using quant::testing::data_path;

struct RunResult {
  int exit_code;
  std::string out;
  std::string err;
};

std::string read_text(const std::string& path) {
  const std::vector<uint8_t> bytes = quant::testing::read_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

std::string temp_dir() {
  const auto dir = std::filesystem::temp_directory_path() / ("cli_imatrix_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Runs the built binary with `args`, capturing stdout and stderr.
RunResult run_quantize(const std::string& args) {
  const std::string err_path = temp_dir() + "/stderr.txt";
  const std::string command = std::string(QUANTIZE_BINARY) + " " + args + " 2>" + err_path;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed");
  std::string out;
  char buffer[65536];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.append(buffer, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, read_text(err_path)};
}

std::string batch_files() {
  std::string files;
  for (int i = 0; i < 4; ++i) files += " " + data_path("safetensors/imatrix-batch" + std::to_string(i) + ".safetensors");
  return files;
}

nlohmann::json reference() {
  std::ifstream in(data_path("imatrix/calibration-imatrix.json"));
  return nlohmann::json::parse(in)["expected"]["llama_cpp_imatrix"];
}

TEST(ImatrixCommand, GgufOutputHoldsTheReferenceSums) {
  const std::string out = temp_dir() + "/out.imatrix.gguf";
  const RunResult run = run_quantize("imatrix --data" + batch_files() + " -o " + out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("1 of 4 batches skipped"), std::string::npos) << run.out;

  auto m = quant::read_imatrix(out);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->format, quant::ImatrixFormat::gguf);
  ASSERT_EQ(m->datasets.size(), 4u);
  EXPECT_EQ(m->datasets[3], data_path("safetensors/imatrix-batch3.safetensors"));
  EXPECT_EQ(m->chunk_count, 3);  // the 8-token batch is skipped
  const quant::ImportanceEntry* q = m->find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  const nlohmann::json ref = reference();
  const auto sums = ref["in_sum2_f32_sequential"].get<std::vector<double>>();
  ASSERT_EQ(q->stored_sums.size(), sums.size());
  EXPECT_EQ(q->stored_counts, std::vector<float>{float(ref["counts"].get<int64_t>())});
  for (size_t j = 0; j < sums.size(); ++j) EXPECT_EQ(q->stored_sums[j], float(sums[j])) << j;

  const auto record = quant::imatrix_record(*m, out);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->entries_count, 1u);
  EXPECT_EQ(record->chunks_count, std::optional<uint32_t>(3));
}

TEST(ImatrixCommand, DatOutputGivesTheReferenceMeanSquares) {
  const std::string out = temp_dir() + "/out.imatrix.dat";
  const RunResult run = run_quantize("--json imatrix --data" + batch_files() + " -o " + out + " --format dat");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json summary = nlohmann::json::parse(run.out);
  EXPECT_EQ(summary["chunk_count"], 3);
  EXPECT_EQ(summary["batches_skipped"], 1);

  auto m = quant::read_imatrix(out);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->format, quant::ImatrixFormat::dat);
  EXPECT_EQ(m->chunk_count, 3);
  EXPECT_EQ(m->datasets, std::vector<std::string>{data_path("safetensors/imatrix-batch0.safetensors")});
  const auto mean_sq = reference()["importance_mean_sq(in_sum2/counts)"].get<std::vector<double>>();
  const quant::ImportanceEntry* q = m->find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  ASSERT_EQ(q->values.size(), mean_sq.size());
  for (size_t j = 0; j < mean_sq.size(); ++j) EXPECT_NEAR(q->values[j], mean_sq[j], 1e-5 * mean_sq[j]) << j;
}

TEST(ImatrixCommand, ExitCodes) {
  const std::string out = temp_dir() + "/never.gguf";
  RunResult bad = run_quantize("imatrix --data " + data_path("safetensors/model2vec-int8.safetensors") + " -o " + out);
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_NE(bad.err.find("tensor 'embeddings': unsupported dtype I8"), std::string::npos) << bad.err;
  RunResult nothing = run_quantize("imatrix --data " + data_path("npy/v2.npy") + " -o " + out);  // 3 tokens only
  EXPECT_EQ(nothing.exit_code, 4) << nothing.err;
  RunResult format = run_quantize("imatrix --data " + data_path("npy/v2.npy") + " -o " + out + " --format csv");
  EXPECT_EQ(format.exit_code, 2) << format.err;
  RunResult missing = run_quantize("imatrix --data /nonexistent.npy -o " + out);
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
