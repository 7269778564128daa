// Whole-program tests of `quantize imatrix`: both output formats read back through the imatrix readers with
// the calibration reference's sums, the recorded datasets and chunks, and exit codes for bad input.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_harness.h"
#include "quant/imatrix.h"
#include "test_data.h"

namespace {

using quant::testing::data_path;
using quant::testing::ProgramRun;
using quant::testing::run_quantize_line;
using quant::testing::empty_dir;
using quant::testing::temp_dir;

std::string batch_files() {
  std::string files;
  for (int i = 0; i < 4; ++i)
    files += fmt::format(" {}", data_path("safetensors/imatrix-batch" + std::to_string(i) + ".safetensors"));
  return files;
}

nlohmann::json reference() {
  std::ifstream in(data_path("imatrix/calibration-imatrix.json"));
  return nlohmann::json::parse(in)["expected"]["llama_cpp_imatrix"];
}

TEST(ImatrixCommand, GgufOutputHoldsTheReferenceSums) {
  const std::string out = temp_dir() + "/out.imatrix.gguf";
  const ProgramRun run = run_quantize_line("imatrix --data" + batch_files() + " -o " + out);
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
  const ProgramRun run = run_quantize_line("--json imatrix --data" + batch_files() + " -o " + out + " --format dat");
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
  ProgramRun bad =
      run_quantize_line("imatrix --data " + data_path("safetensors/model2vec-int8.safetensors") + " -o " + out);
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_NE(bad.err.find("tensor 'embeddings': unsupported dtype I8"), std::string::npos) << bad.err;
  ProgramRun nothing = run_quantize_line("imatrix --data " + data_path("npy/v2.npy") + " -o " + out);  // 3 tokens only
  EXPECT_EQ(nothing.exit_code, 4) << nothing.err;
  ProgramRun format = run_quantize_line("imatrix --data " + data_path("npy/v2.npy") + " -o " + out + " --format csv");
  EXPECT_EQ(format.exit_code, 2) << format.err;
  ProgramRun missing = run_quantize_line("imatrix --data /nonexistent.npy -o " + out);
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

// The output may never be one of the inputs, named directly or through a symlink: exit 2, input untouched.
TEST(ImatrixCommand, OutputOverAnInputIsRefused) {
  const std::string dir = empty_dir("imatrix_over_input");
  const std::string data = dir + "/data.npy";
  std::filesystem::copy_file(data_path("npy/v2.npy"), data);
  std::filesystem::create_symlink(data, dir + "/link.gguf");
  const std::string before = quant::testing::file_sha256(data);
  for (const std::string& output : {data, dir + "/link.gguf"}) {
    ProgramRun run = run_quantize_line("imatrix --data " + data + " -o " + output);
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_NE(run.err.find("is the input file"), std::string::npos) << run.err;
  }
  EXPECT_EQ(quant::testing::file_sha256(data), before);
}

}  // namespace
