// Whole-program tests of `quantize INPUT --to TYPE --calibration-text FILE`: the importance matrix computed in
// the run quantizes every tensor exactly as the same matrix written by `quantize imatrix` and given with
// --imatrix, and is recorded as llama-quantize records one, without quantize.imatrix.file.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_harness.h"
#include "quant/gguf.h"
#include "test_data.h"

namespace {

using quant::testing::data_path;
using quant::testing::empty_dir;
using quant::testing::ProgramRun;
using quant::testing::run_quantize_line;

const std::string kStories = data_path("gguf/stories260K.gguf");
const std::string kCalib = data_path("text/calib.txt");

quant::GgufFile open_gguf(const std::string& path) {
  auto file = quant::GgufFile::open(path);
  if (!file) throw std::runtime_error(file.error().message());
  return std::move(*file);
}

TEST(ConvertCalibrationText, SameTensorsAsTheWrittenImatrixAndNoFileKey) {
  const std::string dir = empty_dir("convert_calibration_text");
  const std::string imatrix = dir + "/stories.imatrix.gguf";
  const std::string text_options = " --ctx 128 --chunks 4";
  ProgramRun run = run_quantize_line("imatrix " + kStories + " --text " + kCalib + text_options + " -o " + imatrix);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  run = run_quantize_line(kStories + " --to Q4_K_M --imatrix " + imatrix + " -o " + dir + "/from-file.gguf");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  run = run_quantize_line("--json " + kStories + " --to Q4_K_M --calibration-text " + kCalib +
                          " --calibration-ctx 128 --calibration-chunks 4 -o " + dir + "/from-text.gguf");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);
  EXPECT_EQ(report["imatrix_from_text"]["chunks"], 4);
  EXPECT_EQ(report["imatrix_from_text"]["n_ctx"], 128);
  EXPECT_EQ(report["imatrix_from_text"]["entries"], 35);
  EXPECT_EQ(report["imatrix_from_text"]["text"], kCalib);

  const quant::GgufFile from_file = open_gguf(dir + "/from-file.gguf");
  const quant::GgufFile from_text = open_gguf(dir + "/from-text.gguf");
  ASSERT_EQ(from_file.tensors().size(), from_text.tensors().size());
  for (size_t i = 0; i < from_file.tensors().size(); ++i) {
    const quant::TensorInfo& a = from_file.tensors()[i];
    const quant::TensorInfo& b = from_text.tensors()[i];
    ASSERT_EQ(a.name, b.name);
    EXPECT_EQ(a.type, b.type) << a.name;
    EXPECT_EQ(*from_file.read_tensor_data(a), *from_text.read_tensor_data(b)) << a.name;
  }
  EXPECT_NE(from_file.find("quantize.imatrix.file"), nullptr);
  EXPECT_EQ(from_text.find("quantize.imatrix.file"), nullptr);
  EXPECT_EQ(from_text.get<std::string>("quantize.imatrix.dataset").value(), kCalib);
  for (const char* key : {"quantize.imatrix.entries_count", "quantize.imatrix.chunks_count"}) {
    EXPECT_EQ(from_text.get<uint32_t>(key).value(), from_file.get<uint32_t>(key).value()) << key;
  }
  EXPECT_EQ(from_text.get<uint32_t>("quantize.imatrix.chunks_count").value(), 4u);
}

TEST(ConvertCalibrationText, OptionsAndBadInput) {
  const std::string dir = empty_dir("convert_calibration_text_bad");
  const std::string out = dir + "/never.gguf";
  // Both sources at once: a usage error.
  ProgramRun run = run_quantize_line(kStories + " --to IQ2_XS --imatrix " + data_path("imatrix/stories260K.imatrix.gguf") +
                                     " --calibration-text " + kCalib + " -o " + out);
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("--imatrix and --calibration-text"), std::string::npos) << run.err;
  // A text under two chunks: exit 4 naming the text, nothing written.
  run = run_quantize_line(kStories + " --to Q4_K_M --calibration-text " + kCalib + " --calibration-ctx 2000 -o " + out);
  EXPECT_EQ(run.exit_code, 4) << run.err;
  EXPECT_NE(run.err.find("calib.txt"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  // A dry run plans as if the matrix were there (IQ2_XS needs one) without computing it.
  run = run_quantize_line("--json " + kStories + " --to IQ2_XS --calibration-text " + kCalib + " --dry-run");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_FALSE(nlohmann::json::parse(run.out).contains("imatrix_from_text"));
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

}  // namespace
