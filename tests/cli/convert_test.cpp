// Whole-program tests of the main job, `quantize INPUT --to TYPE`: it must be a drop-in for llama-quantize.
//
// The heart is a table (tests/data/llama-quantize-outputs.tsv) of every whole file llama-quantize wrote in the
// shared reference set, with the input, TYPE and options it was run with and the sha256 of what it wrote: our
// output for the same command must be byte-identical. The rest checks the CLI's own contract (docs/cli.md):
// refusals, several targets from one read, thread-count independence, --dry-run, default names, overwrite
// and same-file protection, the --json report, and llama-quantize's metadata and type options.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/cli_harness.h"
#include "quant/gguf.h"
#include "test_data.h"

namespace {

namespace fs = std::filesystem;
using quant::testing::data_path;
using quant::testing::file_sha256;
using quant::testing::ProgramRun;
using quant::testing::read_text;
using quant::testing::run_quantize;
using quant::testing::ScratchDir;
using quant::testing::split_spaces;

// One whole file llama-quantize wrote: `llama-quantize OPTIONS INPUT OUT TYPE`.
struct ReferenceOutput {
  std::string reference;  // path under the shared reference set's reference/llama-quantize/
  std::string input;      // path under tests/data
  std::string type;
  std::vector<std::string> options;
  std::string sha256;
};

std::vector<ReferenceOutput> load_reference_outputs() {
  std::vector<ReferenceOutput> outputs;
  const auto rows = quant::testing::read_tsv(data_path("llama-quantize-outputs.tsv"));
  for (size_t i = 1; i < rows.size(); ++i) {  // row 0 is the header
    const auto& row = rows[i];
    if (row.size() != 5) throw std::runtime_error("llama-quantize-outputs.tsv: row with other than 5 columns");
    outputs.push_back({row[0], row[1], row[2], split_spaces(row[3]), row[4]});
  }
  return outputs;
}

const std::vector<ReferenceOutput>& reference_outputs() {
  static const std::vector<ReferenceOutput> outputs = load_reference_outputs();
  return outputs;
}

const ReferenceOutput& reference_named(const std::string& reference) {
  for (const ReferenceOutput& r : reference_outputs()) {
    if (r.reference == reference) return r;
  }
  throw std::runtime_error("no row for " + reference + " in llama-quantize-outputs.tsv");
}

// The imatrix named by an --imatrix option, if any.
std::string imatrix_option(const std::vector<std::string>& options) {
  for (size_t i = 0; i + 1 < options.size(); ++i) {
    if (options[i] == "--imatrix") return options[i + 1];
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------------
// Byte-identical to every reference output.

class ReferenceOutputTest : public ::testing::TestWithParam<ReferenceOutput> {};

TEST_P(ReferenceOutputTest, ByteIdenticalToLlamaQuantize) {
  const ReferenceOutput& ref = GetParam();
  ScratchDir dir;
  // llama-quantize records the imatrix path as typed (quantize.imatrix.file), and the references were made
  // from inside the imatrix's folder with its bare name: do the same, so that key matches too.
  const std::string imatrix = imatrix_option(ref.options);
  if (!imatrix.empty()) fs::copy_file(data_path("imatrix/" + imatrix), dir / imatrix);
  const std::string output = dir / "out.gguf";
  std::vector<std::string> args = {data_path(ref.input), "--to", ref.type, "-o", output, "-q"};
  args.insert(args.end(), ref.options.begin(), ref.options.end());

  const ProgramRun run = run_quantize(args, dir.path().string());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(file_sha256(output), ref.sha256) << "differs from llama-quantize's " << ref.reference;
}

std::string reference_test_name(const ::testing::TestParamInfo<ReferenceOutput>& info) {
  std::string name = fs::path(info.param.reference).stem().string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(LlamaQuantize, ReferenceOutputTest, ::testing::ValuesIn(reference_outputs()),
                         reference_test_name);

TEST(ConvertReferenceTable, CoversEveryReferenceFolder) {
  // The table is the spec: a row lost by accident would silently drop a check.
  std::map<std::string, int> per_folder;
  for (const ReferenceOutput& r : reference_outputs()) ++per_folder[r.reference.substr(0, r.reference.find('/'))];
  EXPECT_EQ(per_folder["stories260K"], 3);
  EXPECT_EQ(per_folder["rows256"], 13);
  EXPECT_EQ(per_folder["tiny-llama"], 4);
  EXPECT_EQ(per_folder["imatrix"], 6);
}

// ---------------------------------------------------------------------------------------------------------
// What llama-quantize refuses, we refuse: exit 4 (impossible), a message that says why, and no output.

struct Refusal {
  const char* input;
  const char* type;
  std::vector<std::string> options;
  std::vector<std::string> message_parts;  // each must appear in stderr
};

TEST(ConvertRefusals, ImpossibleConversionsWriteNothing) {
  // stories260K's ffn_down rows hold 172 values; Q8_0 and Q4_0 have no shape fallback in llama-quantize.
  const std::vector<Refusal> refusals = {
      {"gguf/stories260K.gguf", "Q8_0", {}, {"blk.0.ffn_down.weight", "172", "32"}},
      {"gguf/stories260K.gguf", "Q4_0", {}, {"blk.0.ffn_down.weight", "172", "32"}},
      {"gguf/stories260K-rows256-F32.gguf", "IQ2_XXS", {"--pure"}, {"imatrix"}},
      {"models/tiny-llama-f16.gguf", "IQ2_XS", {}, {"imatrix"}},
      {"models/tiny-llama-f16.gguf", "IQ1_S", {}, {"imatrix"}},
  };
  for (const Refusal& refusal : refusals) {
    SCOPED_TRACE(std::string(refusal.input) + " " + refusal.type);
    ScratchDir dir;
    const std::string output = dir / "out.gguf";
    std::vector<std::string> args = {data_path(refusal.input), "--to", refusal.type, "-o", output};
    args.insert(args.end(), refusal.options.begin(), refusal.options.end());
    const ProgramRun run = run_quantize(args);
    EXPECT_EQ(run.exit_code, 4) << run.err;
    for (const std::string& part : refusal.message_parts) EXPECT_NE(run.err.find(part), std::string::npos) << run.err;
    EXPECT_FALSE(fs::exists(output));
    EXPECT_TRUE(fs::is_empty(dir.path())) << "a temporary file was left behind";
  }
}

// ---------------------------------------------------------------------------------------------------------
// Several targets, threads, dry run, default names.

TEST(ConvertTargets, SeveralOutputsFromOneReadEqualSeparateRuns) {
  ScratchDir dir;
  const std::vector<std::string> types = {"F16", "Q4_K_M", "Q6_K"};
  std::vector<std::string> args = {data_path("gguf/stories260K.gguf"), "--to", "F16,Q4_K_M,Q6_K", "-q"};
  for (const std::string& type : types) {
    args.push_back("-o");
    args.push_back(dir / ("together-" + type + ".gguf"));
  }
  const ProgramRun together = run_quantize(args);
  ASSERT_EQ(together.exit_code, 0) << together.err;
  for (const std::string& type : types) {
    SCOPED_TRACE(type);
    const std::string alone = dir / ("alone-" + type + ".gguf");
    const ProgramRun run = run_quantize({data_path("gguf/stories260K.gguf"), "--to", type, "-o", alone, "-q"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(quant::testing::read_bytes(dir / ("together-" + type + ".gguf")), quant::testing::read_bytes(alone));
    EXPECT_EQ(file_sha256(alone), reference_named("stories260K/stories260K-" + type + ".gguf").sha256);
  }
}

TEST(ConvertTargets, OutputCountMustMatchTypeCount) {
  ScratchDir dir;
  const ProgramRun run =
      run_quantize({data_path("gguf/stories260K.gguf"), "--to", "F16,Q6_K", "-o", dir / "only-one.gguf"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(ConvertTargets, ThreadCountDoesNotChangeTheBytes) {
  ScratchDir dir;
  const ReferenceOutput& ref = reference_named("tiny-llama/tiny-llama-Q4_K_M.gguf");
  for (const char* threads : {"1", "2"}) {
    SCOPED_TRACE(threads);
    const std::string output = dir / (std::string("threads-") + threads + ".gguf");
    const ProgramRun run =
        run_quantize({data_path(ref.input), "--to", ref.type, "-o", output, "--threads", threads, "-q"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(file_sha256(output), ref.sha256);
  }
}

// The per-tensor output types llama-quantize chose for one of its reference outputs, from the tensor table.
std::map<std::string, std::string> reference_tensor_types(const std::string& output_file) {
  std::map<std::string, std::string> types;
  for (const auto& row : quant::testing::read_tsv(data_path("llama-quantize-tensor-types.tsv"))) {
    if (row.size() == 5 && row[0] == "output" && row[1] == output_file) types[row[2]] = row[4];
  }
  return types;
}

TEST(ConvertDryRun, WritesNothingAndPrintsThePlan) {
  ScratchDir dir;
  const std::string output = dir / "out.gguf";
  const std::string input = data_path("gguf/stories260K.gguf");
  const ProgramRun text = run_quantize({input, "--to", "Q4_K_M", "-o", output, "--dry-run"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(fs::is_empty(dir.path()));
  const std::map<std::string, std::string> expected = reference_tensor_types("stories260K-Q4_K_M.gguf");
  ASSERT_EQ(expected.size(), 48u);
  for (const auto& [name, type] : expected) EXPECT_NE(text.out.find(name), std::string::npos) << name;

  const ProgramRun json = run_quantize({"--json", input, "--to", "Q4_K_M", "-o", output, "--dry-run"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_TRUE(fs::is_empty(dir.path()));
  const nlohmann::json plan = nlohmann::json::parse(json.out);
  EXPECT_EQ(plan["dry_run"], true);
  EXPECT_TRUE(plan["output"].is_null());
  ASSERT_EQ(plan["tensors"].size(), expected.size());
  for (const nlohmann::json& tensor : plan["tensors"]) {
    const std::string name = tensor["name"];
    ASSERT_TRUE(expected.count(name)) << name;
    EXPECT_EQ(tensor["type_out"], expected.at(name)) << name;
  }
  // Nothing was measured, so no error figure is claimed (a CI gate on cosine must not pass on a dry run).
  for (const nlohmann::json& tensor : plan["tensors"]) EXPECT_TRUE(tensor["error"].is_null()) << tensor["name"];
  EXPECT_TRUE(plan["totals"]["output_sha256"].is_null());
  // Each tensor's planned size is what a real run writes for it, and the planned file size is the real file's.
  const ProgramRun real = run_quantize({"--json", input, "--to", "Q4_K_M", "-o", output});
  ASSERT_EQ(real.exit_code, 0) << real.err;
  const nlohmann::json written = nlohmann::json::parse(real.out);
  ASSERT_EQ(written["tensors"].size(), plan["tensors"].size());
  for (size_t i = 0; i < plan["tensors"].size(); ++i) {
    EXPECT_EQ(written["tensors"][i]["name"], plan["tensors"][i]["name"]);
    EXPECT_EQ(written["tensors"][i]["bytes_out"], plan["tensors"][i]["bytes_out"]);
  }
  EXPECT_EQ(plan["totals"]["output_bytes"], fs::file_size(output));
  EXPECT_EQ(written["totals"]["output_bytes"], fs::file_size(output));
}

// The dry run predicts the exact size of every file a real run writes, header and padding included, for every
// kind of metadata a conversion adds: several targets, type options, --override-kv, an imatrix, a calibration
// table, COPY, a GGUF v1 input, a Hugging Face checkpoint folder, a calibration text. The text report shows the
// same size.
TEST(ConvertDryRun, PredictsTheExactOutputSize) {
  ScratchDir dir;
  const std::string table = dir / "table.json";
  ASSERT_EQ(run_quantize({"calibrate", "--data", data_path("npy/blk.0.attn_q.weight.npy"), "--method", "minmax",
                          "-o", table, "-q"})
                .exit_code,
            0);
  const struct {
    std::string input;
    std::string types;
    std::vector<std::string> options;
  } cases[] = {
      {"gguf/stories260K.gguf", "Q4_K_M", {}},
      {"models/tiny-llama-f16.gguf", "Q8_0,Q2_K,F32", {}},
      {"models/tiny-llama-f16.gguf", "COPY", {"--override-kv", "general.name=str:renamed", "--override-kv",
                                              "x.count=int:7"}},
      {"gguf/stories260K-rows256-F32.gguf", "IQ2_XXS", {"--pure", "--imatrix", data_path("imatrix/rows256.imatrix.gguf")}},
      {"gguf/stories260K-rows256-F32.gguf", "Q6_K", {"--calibration", table, "--tensor-type", "attn_v=q8_0"}},
      {"gguf/stories260K-v1.gguf", "Q6_K", {"--leave-output-tensor"}},
      // A checkpoint folder: its converter's own metadata (F16), and llama-quantize's rules on it (Q4_K_M).
      {"hf/gemma2-f32", "F16", {}},
      {"hf/llama-bf16-shards", "Q4_K_M", {"--override-kv", "general.name=str:sharded"}},
      // A matrix computed from a text: the dry run does not compute it, but counts the keys it will record.
      {"gguf/stories260K.gguf", "Q4_K_M", {"--calibration-text", data_path("text/calib.txt"), "--calibration-ctx",
                                           "128", "--calibration-chunks", "2"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input + " " + c.types);
    std::vector<std::string> base = {data_path(c.input), "--to", c.types};
    base.insert(base.end(), c.options.begin(), c.options.end());
    const size_t outputs = size_t(std::count(c.types.begin(), c.types.end(), ',')) + 1;
    for (size_t i = 0; i < outputs; ++i) {
      base.push_back("-o");
      base.push_back(dir / ("out" + std::to_string(i) + ".gguf"));
    }
    std::vector<std::string> dry = base;
    dry.insert(dry.begin(), "--json");
    dry.push_back("--dry-run");
    const ProgramRun planned = run_quantize(dry);
    ASSERT_EQ(planned.exit_code, 0) << planned.err;
    std::vector<std::string> text_dry = base;
    text_dry.push_back("--dry-run");
    const ProgramRun text = run_quantize(text_dry);
    ASSERT_EQ(text.exit_code, 0) << text.err;
    std::vector<std::string> real = base;
    real.push_back("--force");
    real.push_back("-q");
    const ProgramRun wrote = run_quantize(real);
    ASSERT_EQ(wrote.exit_code, 0) << wrote.err;
    nlohmann::json reports = nlohmann::json::parse(planned.out);
    if (outputs == 1) reports = nlohmann::json{{"outputs", {reports}}};
    ASSERT_EQ(reports["outputs"].size(), outputs);
    for (size_t i = 0; i < outputs; ++i) {
      const uint64_t size = fs::file_size(dir / ("out" + std::to_string(i) + ".gguf"));
      EXPECT_EQ(reports["outputs"][i]["totals"]["output_bytes"].get<uint64_t>(), size) << i;
      // The text view prints the same size (KiB or MiB with two decimals).
      const double mib = double(size) / (1024.0 * 1024.0);
      const std::string shown = mib >= 1.0 ? fmt::format("-> {:.2f} MiB", mib) : fmt::format("-> {:.2f} KiB", double(size) / 1024.0);
      EXPECT_NE(text.out.find(shown), std::string::npos) << shown << "\n" << text.out;
    }
  }
}

TEST(ConvertDefaultOutput, IsInputStemDashTypeBesideTheInput) {
  ScratchDir dir;
  const std::string input = dir / "stories260K.gguf";
  fs::copy_file(data_path("gguf/stories260K.gguf"), input);
  const ProgramRun run = run_quantize({input, "--to", "Q6_K", "-q"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string expected = dir / "stories260K-Q6_K.gguf";
  ASSERT_TRUE(fs::exists(expected));
  EXPECT_EQ(file_sha256(expected), reference_named("stories260K/stories260K-Q6_K.gguf").sha256);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}), 2);
}

// ---------------------------------------------------------------------------------------------------------
// Protection of existing files, and usage errors.

TEST(ConvertOverwrite, ExistingOutputNeedsForce) {
  ScratchDir dir;
  const std::string output = dir / "out.gguf";
  std::ofstream(output) << "precious";
  const std::string input = data_path("gguf/stories260K.gguf");
  const ProgramRun refused = run_quantize({input, "--to", "Q6_K", "-o", output});
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("--force"), std::string::npos) << refused.err;
  EXPECT_EQ(read_text(output), "precious");

  const ProgramRun forced = run_quantize({input, "--to", "Q6_K", "-o", output, "--force", "-q"});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(file_sha256(output), reference_named("stories260K/stories260K-Q6_K.gguf").sha256);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}), 1);
}

TEST(ConvertOverwrite, OutputSameAsInputIsRefused) {
  ScratchDir dir;
  const std::string input = dir / "model.gguf";
  fs::copy_file(data_path("gguf/stories260K.gguf"), input);
  const std::string before = file_sha256(input);
  const std::string link = dir / "link.gguf";
  fs::create_symlink(input, link);
  const std::string dotted = (dir.path() / "." / "model.gguf").string();
  for (const std::string& output : {input, link, dotted}) {
    SCOPED_TRACE(output);
    for (const bool force : {false, true}) {
      std::vector<std::string> args = {input, "--to", "Q6_K", "-o", output};
      if (force) args.push_back("--force");
      const ProgramRun run = run_quantize(args);
      EXPECT_EQ(run.exit_code, 2) << run.err;
      EXPECT_EQ(file_sha256(input), before);
      EXPECT_TRUE(fs::is_symlink(link));
    }
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}), 2);
}

TEST(ConvertUsage, UnknownTypeAndMissingInput) {
  ScratchDir dir;
  const std::string output = dir / "out.gguf";
  const ProgramRun unknown = run_quantize({data_path("gguf/stories260K.gguf"), "--to", "Q4_K_X", "-o", output});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
  EXPECT_NE(unknown.err.find("Q4_K_X"), std::string::npos) << unknown.err;

  const ProgramRun bad_tensor_type = run_quantize(
      {data_path("gguf/stories260K.gguf"), "--to", "Q6_K", "-o", output, "--output-tensor-type", "q9_9"});
  EXPECT_EQ(bad_tensor_type.exit_code, 2) << bad_tensor_type.err;

  const ProgramRun missing = run_quantize({dir / "missing.gguf", "--to", "Q6_K", "-o", output});
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
  EXPECT_NE(missing.err.find("missing.gguf"), std::string::npos) << missing.err;

  const ProgramRun no_type = run_quantize({data_path("gguf/stories260K.gguf"), "-o", output});
  EXPECT_EQ(no_type.exit_code, 2) << no_type.err;
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

// ---------------------------------------------------------------------------------------------------------
// The --json report.

TEST(ConvertJsonReport, EveryTensorWithMetricsTotalsAndTheFilesDigest) {
  ScratchDir dir;
  const std::string output = dir / "out.gguf";
  const std::string input = data_path("gguf/stories260K.gguf");
  const ProgramRun run = run_quantize({"--json", input, "--to", "Q4_K_M", "-o", output});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);

  EXPECT_EQ(report["input"], input);
  EXPECT_EQ(report["output"], output);
  EXPECT_EQ(report["target"], "Q4_K_M");
  EXPECT_EQ(report["dry_run"], false);
  const std::map<std::string, std::string> expected = reference_tensor_types("stories260K-Q4_K_M.gguf");
  ASSERT_EQ(report["tensors"].size(), expected.size());
  int converted = 0;
  for (const nlohmann::json& tensor : report["tensors"]) {
    const std::string name = tensor["name"];
    SCOPED_TRACE(name);
    ASSERT_TRUE(expected.count(name));
    EXPECT_EQ(tensor["type_in"], "f32");
    EXPECT_EQ(tensor["type_out"], expected.at(name));
    ASSERT_TRUE(tensor["shape"].is_array());
    EXPECT_GT(tensor["bytes_in"].get<uint64_t>(), 0u);
    EXPECT_GT(tensor["bytes_out"].get<uint64_t>(), 0u);
    if (tensor["converted"].get<bool>()) {
      ++converted;
      const nlohmann::json& error = tensor["error"];
      for (const char* metric : {"rmse", "max_abs_error", "cosine", "values"}) {
        EXPECT_TRUE(error[metric].is_number()) << metric;
      }
      EXPECT_GT(error["rmse"].get<double>(), 0.0);  // every quantized type here loses something
      EXPECT_GT(error["cosine"].get<double>(), 0.9);
      EXPECT_TRUE(error["sqnr_db"].is_number());
    } else {
      EXPECT_TRUE(tensor["error"].is_null());
      EXPECT_EQ(tensor["bytes_in"], tensor["bytes_out"]);
    }
  }
  // stories260K has 37 weight matrices (plus 11 f32 norms that are copied).
  EXPECT_EQ(converted, 37);

  const nlohmann::json& totals = report["totals"];
  const std::string digest = file_sha256(output);
  EXPECT_EQ(totals["output_sha256"], digest);
  EXPECT_EQ(digest, reference_named("stories260K/stories260K-Q4_K_M.gguf").sha256);
  EXPECT_EQ(totals["output_bytes"], fs::file_size(output));
  EXPECT_EQ(totals["input_bytes"], fs::file_size(input));
  EXPECT_EQ(totals["parameters"], 292800);
  for (const char* field : {"ratio", "bits_per_weight", "wall_seconds", "cpu_seconds", "threads", "peak_rss_bytes"}) {
    EXPECT_TRUE(totals[field].is_number()) << field;
  }
}

TEST(ConvertJsonReport, SeveralTargetsGiveAnOutputsArray) {
  ScratchDir dir;
  const ProgramRun run = run_quantize({"--json", data_path("gguf/stories260K.gguf"), "--to", "Q6_K,F16", "-o",
                                       dir / "a.gguf", "-o", dir / "b.gguf"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);
  ASSERT_EQ(report["outputs"].size(), 2u);
  EXPECT_EQ(report["outputs"][0]["target"], "Q6_K");
  EXPECT_EQ(report["outputs"][1]["target"], "F16");
  EXPECT_EQ(report["outputs"][0]["totals"]["output_sha256"], file_sha256(dir / "a.gguf"));
  EXPECT_EQ(report["outputs"][1]["totals"]["output_sha256"], file_sha256(dir / "b.gguf"));
}

// ---------------------------------------------------------------------------------------------------------
// llama-quantize's metadata and per-tensor type options, checked with our GGUF reader.

quant::GgufFile open_gguf(const std::string& path) {
  auto file = quant::GgufFile::open(path);
  if (!file) throw std::runtime_error(file.error().message());
  return std::move(*file);
}

std::map<std::string, std::string> tensor_types(const quant::GgufFile& file) {
  std::map<std::string, std::string> types;
  for (const quant::TensorInfo& t : file.tensors()) types[t.name] = std::string(quant::format_of(t.type).name);
  return types;
}

TEST(ConvertOverrideKv, WritesLlamaQuantizesTypesAfterTheStandardKeys) {
  ScratchDir dir;
  const std::string output = dir / "out.gguf";
  const ProgramRun run = run_quantize({data_path("gguf/stories260K.gguf"), "--to", "Q6_K", "-o", output, "-q",
                                       "--override-kv", "test.int=int:-7", "--override-kv", "test.float=float:0.25",
                                       "--override-kv", "test.bool=bool:true", "--override-kv",
                                       "general.name=str:renamed"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const quant::GgufFile file = open_gguf(output);
  const auto& kv = file.metadata();
  ASSERT_GE(kv.size(), 6u);
  // llama-quantize sets each override after quantization_version and file_type, removing any earlier
  // copy of the key (gguf_set_val_*), so they come last in command-line order.
  const size_t n = kv.size();
  EXPECT_EQ(kv[n - 6].key, "general.quantization_version");
  EXPECT_EQ(kv[n - 5].key, "general.file_type");
  EXPECT_EQ(kv[n - 4].key, "test.int");
  EXPECT_EQ(kv[n - 3].key, "test.float");
  EXPECT_EQ(kv[n - 2].key, "test.bool");
  EXPECT_EQ(kv[n - 1].key, "general.name");
  // Integers are written as u32 of the absolute value (llama.cpp PR 14182), floats as f32.
  ASSERT_TRUE(kv[n - 4].value.holds<uint32_t>());
  EXPECT_EQ(kv[n - 4].value.as<uint32_t>(), 7u);
  ASSERT_TRUE(kv[n - 3].value.holds<float>());
  EXPECT_EQ(kv[n - 3].value.as<float>(), 0.25f);
  ASSERT_TRUE(kv[n - 2].value.holds<bool>());
  EXPECT_TRUE(kv[n - 2].value.as<bool>());
  EXPECT_EQ(kv[n - 1].value.as_string(), "renamed");
  size_t names = 0;
  for (const quant::KeyValue& entry : kv) names += entry.key == "general.name";
  EXPECT_EQ(names, 1u);

  const ProgramRun bad = run_quantize(
      {data_path("gguf/stories260K.gguf"), "--to", "Q6_K", "-o", dir / "bad.gguf", "--override-kv", "k=long:1"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_FALSE(fs::exists(dir / "bad.gguf"));
}

TEST(ConvertTypeOptions, OutputAndTokenEmbeddingTypes) {
  ScratchDir dir;
  const std::string input = data_path("models/tiny-llama-f16.gguf");
  const std::string output = dir / "out.gguf";
  const ProgramRun run = run_quantize({input, "--to", "Q4_K_M", "-o", output, "-q", "--output-tensor-type", "q8_0",
                                       "--token-embedding-type", "Q5_K"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto types = tensor_types(open_gguf(output));
  // Without the options Q4_K_M gives output.weight q6_K and token_embd.weight q4_K (reference table).
  const auto plain = reference_tensor_types("tiny-llama-Q4_K_M.gguf");
  ASSERT_EQ(plain.at("output.weight"), "q6_K");
  ASSERT_EQ(plain.at("token_embd.weight"), "q4_K");
  EXPECT_EQ(types.at("output.weight"), "q8_0");
  EXPECT_EQ(types.at("token_embd.weight"), "q5_K");
  for (const auto& [name, type] : plain) {
    if (name == "output.weight" || name == "token_embd.weight") continue;
    EXPECT_EQ(types.at(name), type) << name;
  }
}

TEST(ConvertTypeOptions, TensorTypeFileFirstMatchWinsAndYieldsToTheNamedOptions) {
  ScratchDir dir;
  const std::string input = data_path("models/tiny-llama-f16.gguf");
  const std::string list = dir / "types.txt";
  // Whitespace-separated; the pattern is lowercased and searched as a regex; the first match wins.
  std::ofstream(list) << "BLK\\.0\\.ATTN_V=q8_0 attn_v=q5_0\n\tffn_up=f16  token_embd=q8_0\n";
  const std::string output = dir / "out.gguf";
  const ProgramRun run = run_quantize(
      {input, "--to", "Q4_K_M", "-o", output, "-q", "--tensor-type-file", list, "--token-embedding-type", "q4_1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto types = tensor_types(open_gguf(output));
  const auto plain = reference_tensor_types("tiny-llama-Q4_K_M.gguf");
  for (const auto& [name, type] : plain) {
    SCOPED_TRACE(name);
    if (name == "blk.0.attn_v.weight") {
      EXPECT_EQ(types.at(name), "q8_0");
    } else if (name.find("attn_v") != std::string::npos) {
      EXPECT_EQ(types.at(name), "q5_0");
    } else if (name.find("ffn_up") != std::string::npos) {
      EXPECT_EQ(types.at(name), "f16");
    } else if (name == "token_embd.weight") {
      EXPECT_EQ(types.at(name), "q4_1");  // --token-embedding-type comes before any --tensor-type
    } else {
      EXPECT_EQ(types.at(name), type);
    }
  }

  // With an unquantized default type (F16) llama-quantize ignores --tensor-type altogether.
  const std::string f16 = dir / "f16.gguf";
  const ProgramRun unquantized = run_quantize({input, "--to", "F16", "-o", f16, "-q", "--tensor-type", "attn_v=q8_0"});
  ASSERT_EQ(unquantized.exit_code, 0) << unquantized.err;
  for (const auto& [name, type] : tensor_types(open_gguf(f16))) {
    EXPECT_TRUE(type == "f16" || type == "f32") << name << " " << type;
  }
}

}  // namespace
