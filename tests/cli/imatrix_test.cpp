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
  // The format holds one dataset name: the last, as llama-imatrix writes its text (or its last merged dataset).
  EXPECT_EQ(m->datasets, std::vector<std::string>{data_path("safetensors/imatrix-batch3.safetensors")});
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

// ---- From text: quantize imatrix MODEL --text FILE ----

const std::string kStories = data_path("gguf/stories260K.gguf");
const std::string kCalib = data_path("text/calib.txt");

TEST(ImatrixText, WritesLlamaImatrixsFormatThatConversionsAccept) {
  const std::string dir = empty_dir("imatrix_text");
  const std::string out = dir + "/stories.imatrix.gguf";
  const ProgramRun run =
      run_quantize_line("--json imatrix " + kStories + " --text " + kCalib + " --ctx 128 --chunks 6 -t 2 -o " + out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json summary = nlohmann::json::parse(run.out);
  EXPECT_EQ(summary["entries"], 35);  // every blk.* weight
  EXPECT_EQ(summary["chunk_count"], 6);
  EXPECT_EQ(summary["chunk_size"], 128);
  EXPECT_EQ(summary["datasets"], nlohmann::json::array({kCalib}));
  EXPECT_EQ(summary["text"]["chunks"], 6);
  EXPECT_EQ(summary["text"]["tokens_evaluated"], 6 * 128);
  EXPECT_EQ(summary["text"]["perplexity"]["per_chunk"].size(), 6u);
  EXPECT_GT(summary["text"]["perplexity"]["value"].get<double>(), 1.0);

  auto m = quant::read_imatrix(out);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->chunk_count, 6);
  EXPECT_EQ(m->find("blk.0.ffn_down.weight")->stored_counts, std::vector<float>{6 * 128});

  // Our own --imatrix takes it: an IQ2_XS conversion needs one (llama-quantize refuses to run without).
  const std::string model = dir + "/stories-IQ2_XS.gguf";
  const ProgramRun convert = run_quantize_line(kStories + " --to IQ2_XS --imatrix " + out + " -o " + model);
  ASSERT_EQ(convert.exit_code, 0) << convert.err;
}

TEST(ImatrixText, PrintsTheRunningPerplexityAsLlamaImatrixDoes) {
  const std::string out = empty_dir("imatrix_text_human") + "/out.dat";
  // MODEL through the --model alias, --output-format as an alias of --format.
  const ProgramRun run = run_quantize_line("imatrix --model " + kStories + " --text " + kCalib +
                                           " -c 128 --chunks 3 --output-format dat -o " + out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out.rfind("[1]", 0), 0u) << run.out;
  EXPECT_NE(run.out.find(",[3]"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("Final estimate: PPL = "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("35 weights, 3 chunks of 128 tokens"), std::string::npos) << run.out;
  EXPECT_EQ(run.err, "");  // no progress on a pipe
  auto m = quant::read_imatrix(out);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->format, quant::ImatrixFormat::dat);
  EXPECT_EQ(m->datasets, std::vector<std::string>{kCalib});
}

// --in-file alone combines files as llama-imatrix does without a text: sums and counts added.
TEST(ImatrixText, InFilesCombine) {
  const std::string out = empty_dir("imatrix_combine") + "/both.gguf";
  const std::string gguf = data_path("imatrix/stories260K.imatrix.gguf");
  const ProgramRun run = run_quantize_line("--json imatrix " + kStories + " --in-file " + gguf + " --in-file " + gguf +
                                           " --ctx 128 -o " + out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto m = quant::read_imatrix(out);
  auto one = quant::read_imatrix(gguf);
  ASSERT_TRUE(m && one);
  EXPECT_EQ(m->chunk_count, 40);
  EXPECT_EQ(m->datasets, (std::vector<std::string>{"calib.txt", "calib.txt"}));
  const quant::ImportanceEntry& e = m->entries.at("blk.0.attn_q.weight");
  EXPECT_EQ(e.stored_counts[0], 2 * one->entries.at("blk.0.attn_q.weight").stored_counts[0]);
  EXPECT_EQ(e.values, one->entries.at("blk.0.attn_q.weight").values);
}

// Bad input: a clear error with the exit code of its kind, and no output file.
TEST(ImatrixText, BadInputIsRefusedAndNothingIsWritten) {
  const std::string dir = empty_dir("imatrix_text_bad");
  const std::string out = dir + "/never.gguf";
  const std::string empty = dir + "/empty.txt";
  quant::testing::write_text(empty, "");
  const std::string short_text = dir + "/short.txt";
  quant::testing::write_text(short_text, quant::testing::read_text(kCalib).substr(0, 300));
  struct Case {
    std::string args;
    int exit_code;
    std::string message;
  };
  const Case cases[] = {
      {kStories + " --text " + empty, 3, "the text is empty"},
      {kStories + " --text " + data_path("models/tiny-llama-f16.gguf"), 3, "binary file"},
      {kStories + " --text " + short_text + " --ctx 128", 4, "needs at least 256 (two chunks"},
      {kStories + " --text " + kCalib + " --ctx 4096", 4, "beyond the 2048 the model was trained on"},
      {kStories + " --text " + kCalib + " --ctx 128 --in-file " + data_path("imatrix/tiny-llama.imatrix.gguf"), 3,
       "was made for another model"},
      {"--text " + kCalib, 2, "--text needs the MODEL"},
      {kStories + " --text " + kCalib + " --data " + data_path("npy/v2.npy"), 2, "either --text or --data"},
      {kStories, 2, "nothing to measure"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    const ProgramRun run = run_quantize_line("imatrix " + c.args + " -o " + out);
    EXPECT_EQ(run.exit_code, c.exit_code) << run.err;
    EXPECT_NE(run.err.find(c.message), std::string::npos) << run.err;
    EXPECT_FALSE(std::filesystem::exists(out));
  }
  // Nothing else appeared beside the output either (no temporary file left).
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 2u);  // the two texts made above
}

}  // namespace
