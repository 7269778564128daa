// Whole-program tests of what the CLI says (docs/cli.md): every refusal is one `quantize: error:` line that names
// what is wrong and what to type instead (an unknown TYPE or option gets the nearest real one, a missing INPUT or
// --to is named, a CLI11 parse error reads in our words); `--help` lists every TYPE; `-v` prints debug logs; the
// small contract points of the review: `info` with several files, `-o ""`, `--percentile nan`, a duplicate target
// in a dry run, strict --override-kv values, the words for an exact conversion, options right before INPUT.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli_harness.h"
#include "quant/plan.h"
#include "test_data.h"

namespace {

namespace fs = std::filesystem;
using quant::testing::data_path;
using quant::testing::ProgramRun;
using quant::testing::run_quantize;
using quant::testing::ScratchDir;

const std::string kModel = "gguf/stories260K-rows256-F32.gguf";

size_t lines(const std::string& text) { return size_t(std::count(text.begin(), text.end(), '\n')); }

// A usage error: exit 2, exactly one line, our prefix, and each of `parts`.
void expect_one_line_usage_error(const ProgramRun& run, const std::vector<std::string>& parts) {
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_EQ(lines(run.err), 1u) << run.err;
  EXPECT_EQ(run.err.rfind("quantize: error: ", 0), 0u) << run.err;
  for (const std::string& part : parts) EXPECT_NE(run.err.find(part), std::string::npos) << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
}

TEST(Messages, UnknownTypesNameTheNearestAndHelpListsThemAll) {
  ScratchDir dir;
  const std::string model = data_path(kModel);
  const struct {
    std::string typed;
    std::string suggestion;
  } cases[] = {{"q4km", "did you mean Q4_K_M?"}, {"Q4KM", "did you mean Q4_K_M?"}, {"q8", "did you mean Q8_0?"},
               {"iq2-xxs", "did you mean IQ2_XXS?"}, {"Q6K", "did you mean Q6_K?"}, {"COPPY", "did you mean COPY?"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.typed);
    expect_one_line_usage_error(run_quantize({model, "--to", c.typed, "-o", dir / "out.gguf"}),
                                {"'" + c.typed + "'", c.suggestion});
  }
  // Nothing near: the whole list, in the one line.
  const ProgramRun far = run_quantize({model, "--to", "banana", "-o", dir / "out.gguf"});
  expect_one_line_usage_error(far, {"'banana'", "Q4_K_M", "IQ2_XXS", "COPY"});
  // In a list of targets and in the type options too.
  expect_one_line_usage_error(run_quantize({model, "--to", "Q8_0,q4km", "-o", dir / "a", "-o", dir / "b"}),
                              {"did you mean Q4_K_M?"});
  expect_one_line_usage_error(run_quantize({model, "--to", "Q8_0", "--output-tensor-type", "q8"}), {"q8_0"});
  EXPECT_TRUE(dir.entries().empty());

  const ProgramRun help = run_quantize({"--help"});
  ASSERT_EQ(help.exit_code, 0);
  for (const quant::FileTypeInfo& info : quant::all_file_types()) {
    EXPECT_NE(help.out.find(fmt::format(" {}", info.name)), std::string::npos) << info.name;
  }
}

TEST(Messages, AMissingInputOrTypeIsNamedInOneLine) {
  const std::string model = data_path(kModel);
  expect_one_line_usage_error(run_quantize({model}), {"missing --to TYPE"});
  expect_one_line_usage_error(run_quantize({model, "-o", "x.gguf"}), {"missing --to TYPE"});
  expect_one_line_usage_error(run_quantize({"--to", "Q8_0"}), {"missing INPUT"});
  expect_one_line_usage_error(run_quantize({"--dry-run", "-t", "2"}), {"missing INPUT and --to TYPE"});
  expect_one_line_usage_error(run_quantize({}), {"missing INPUT and --to TYPE", "quantize --help"});
  expect_one_line_usage_error(run_quantize({model, "--to", ""}), {"--to", "empty"});
}

// CLI11's own messages ("The following arguments were not expected: Q4_K_M --too", "Could not convert:
// --threads = o") come out in our words, with our prefix.
TEST(Messages, ParseErrorsReadNaturally) {
  const std::string model = data_path(kModel);
  const struct {
    std::vector<std::string> args;
    std::vector<std::string> parts;
  } cases[] = {
      {{model, "--too", "Q4_K_M"}, {"unknown option '--too'", "did you mean --to?"}},
      {{model, "--to", "Q8_0", "--forse"}, {"unknown option '--forse'", "--force"}},
      {{model, "--to", "Q8_0", "--dry-runn"}, {"unknown option '--dry-runn'", "--dry-run"}},
      {{model, "--to", "Q8_0", "--imatrx", "x"}, {"unknown option '--imatrx'", "--imatrix"}},
      {{model, "-to", "Q4_K_M"}, {"'-to' reads as '-t o'", "did you mean '--to'?"}},
      {{model, "--to", "Q8_0", "-force"}, {"'-force'", "did you mean '--force'?"}},
      {{model, "--to", "Q8_0", "--threads", "abc"}, {"--threads takes a number, not 'abc'"}},
      {{model, "--to", "Q8_0", "-t", "2x"}, {"--threads takes a number, not '2x'"}},
      {{model, "--to"}, {"--to needs a value"}},
      {{model, "--to", "Q8_0", "-o"}, {"needs a value"}},
      {{model, "other.gguf", "--to", "Q8_0"}, {"unexpected argument 'other.gguf'", "one INPUT"}},
      {{"imatrix", "--daat", "x", "-o", "y"}, {"imatrix: unknown option '--daat'", "did you mean --data?"}},
      {{"calibrate", "--data", "x.npy", "--methd", "minmax"}, {"calibrate: unknown option '--methd'", "--method"}},
      {{"calibrate", "--data", "x.npy"}, {"--method", "required"}},
      {{"info"}, {"FILE", "required"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args.size() > 1 ? c.args[1] : c.args[0]);
    expect_one_line_usage_error(run_quantize(c.args), c.parts);
  }
}

// A tensor whose type needs importance data, but whose entry --include-weights / --exclude-weights removed: the
// message says that, not "give one with --imatrix" (one was given).
TEST(Messages, AnImatrixFilterThatRemovedATensorsDataSaysSo) {
  ScratchDir dir;
  const std::string imatrix = data_path("imatrix/rows256.imatrix.gguf");
  const struct {
    std::vector<std::string> filter;
    std::vector<std::string> parts;
  } cases[] = {
      {{"--include-weights", "attn_q"}, {"excluded", "--include-weights attn_q"}},
      {{"--exclude-weights", "ffn"}, {"excluded", "--exclude-weights ffn"}},
      {{"--include-weights", "no-such-tensor"}, {"--include-weights no-such-tensor left no entry"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.filter[1]);
    std::vector<std::string> args = {data_path(kModel), "--to", "IQ2_XXS", "--pure", "--imatrix", imatrix, "-o",
                                     dir / "out.gguf"};
    args.insert(args.end(), c.filter.begin(), c.filter.end());
    const ProgramRun run = run_quantize(args);
    EXPECT_EQ(run.exit_code, 4) << run.err;
    for (const std::string& part : c.parts) EXPECT_NE(run.err.find(part), std::string::npos) << run.err;
    EXPECT_EQ(run.err.find("give one with --imatrix"), std::string::npos) << run.err;
    EXPECT_TRUE(dir.entries().empty());
  }
}

TEST(Messages, VerbosePrintsDebugLogs) {
  ScratchDir dir;
  const std::string output = dir / "out.gguf";
  const ProgramRun quiet = run_quantize({data_path(kModel), "--to", "Q8_0", "-o", output, "-q"});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_TRUE(quiet.err.empty()) << quiet.err;
  const ProgramRun verbose = run_quantize({"-v", data_path(kModel), "--to", "Q8_0", "-o", output, "--force"});
  ASSERT_EQ(verbose.exit_code, 0) << verbose.err;
  EXPECT_NE(verbose.err.find("quantize: debug: "), std::string::npos) << verbose.err;
  EXPECT_NE(verbose.err.find("replaced the existing file"), std::string::npos) << verbose.err;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-v", "info", data_path(kModel)},
        std::vector<std::string>{"-v", "--json", data_path(kModel), "--to", "Q8_0", "--dry-run"}}) {
    const ProgramRun run = run_quantize(args);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_NE(run.err.find("quantize: debug: "), std::string::npos) << args[1];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The small ones.

TEST(SmallContract, InfoDescribesEveryFileGivenOrNone) {
  const std::string a = data_path(kModel), b = data_path("gguf/stories260K.gguf");
  const ProgramRun text = run_quantize({"info", a, b});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("file: " + a), std::string::npos);
  EXPECT_NE(text.out.find("file: " + b), std::string::npos);
  const ProgramRun json = run_quantize({"--json", "info", a, b});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json doc = nlohmann::json::parse(json.out);
  ASSERT_EQ(doc["files"].size(), 2u);
  EXPECT_EQ(doc["files"][0]["file"], a);
  EXPECT_EQ(doc["files"][1]["file"], b);
  const ProgramRun one = run_quantize({"--json", "info", a});
  EXPECT_EQ(nlohmann::json::parse(one.out)["file"], a);  // one file: the document itself
  const ProgramRun missing = run_quantize({"info", a, "/nonexistent/model.gguf"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent/model.gguf"), std::string::npos);
  EXPECT_TRUE(missing.out.empty()) << "nothing is printed when a file cannot be read";
}

TEST(SmallContract, AnEmptyOutputPathIsAUsageError) {
  ScratchDir dir;
  const std::string npy = data_path("npy/blk.0.attn_q.weight.npy");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{data_path(kModel), "--to", "Q8_0", "-o", ""},
        std::vector<std::string>{data_path(kModel), "--to", "Q8_0,Q6_K", "-o", dir / "a.gguf", "-o", ""},
        std::vector<std::string>{data_path(kModel), "--to", "Q8_0", "--output=", "--dry-run"},
        std::vector<std::string>{data_path(kModel), "--output=", "--to", "Q8_0"},
        std::vector<std::string>{"imatrix", "--data", npy, "-o", ""},
        std::vector<std::string>{"calibrate", "--data", npy, "--method", "minmax", "-o", ""}}) {
    SCOPED_TRACE(args[0] + " " + args[1]);
    expect_one_line_usage_error(run_quantize(args, dir.path().string()), {"--output", "empty"});
  }
  EXPECT_TRUE(dir.entries().empty()) << "in particular no default-named output";
}

TEST(SmallContract, ANonNumberPercentileIsRefused) {
  const std::string npy = data_path("npy/blk.0.attn_q.weight.npy");
  for (const char* bad : {"nan", "NaN", "-nan", "inf", "-1", "100.5"}) {
    SCOPED_TRACE(bad);
    const ProgramRun run = run_quantize({"calibrate", "--data", npy, "--method", "percentile", "--percentile", bad});
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_NE(run.err.find("percentile"), std::string::npos) << run.err;
    EXPECT_TRUE(run.out.empty());
  }
}

// A dry run refuses what the real run refuses as a usage error: two targets writing one file.
TEST(SmallContract, ADryRunRefusesTwoTargetsWritingOneFile) {
  ScratchDir dir;
  const std::string input = dir / "model.gguf";
  fs::copy_file(data_path(kModel), input);
  const std::string out = dir / "out.gguf";
  const std::string dotted = (dir.path() / "." / "out.gguf").string();
  for (const std::vector<std::string>& targets :
       {std::vector<std::string>{"--to", "Q8_0,Q8_0"}, std::vector<std::string>{"--to", "Q8_0,q8_0"},
        std::vector<std::string>{"--to", "Q8_0,Q6_K", "-o", out, "-o", out},
        std::vector<std::string>{"--to", "Q8_0,Q6_K", "-o", out, "-o", dotted}}) {
    for (const bool dry_run : {true, false}) {
      SCOPED_TRACE(targets[1] + (dry_run ? " --dry-run" : ""));
      std::vector<std::string> args = {input};
      args.insert(args.end(), targets.begin(), targets.end());
      if (dry_run) args.push_back("--dry-run");
      expect_one_line_usage_error(run_quantize(args), {"two targets write the same output"});
    }
  }
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.gguf"});
}

TEST(SmallContract, OverrideKvValuesThatWouldChangeAreRefused) {
  ScratchDir dir;
  for (const char* bad : {"a=int:abc", "a=int:99999999999", "a=int:12abc", "a=int:-4294967296", "a=float:abc",
                          "a=float:1e39", "a=float:nan", "a=bool:yes"}) {
    for (const bool dry_run : {false, true}) {
      SCOPED_TRACE(std::string(bad) + (dry_run ? " --dry-run" : ""));
      std::vector<std::string> args = {data_path(kModel), "--to", "Q8_0", "-o", dir / "out.gguf", "--override-kv", bad};
      if (dry_run) args.push_back("--dry-run");
      expect_one_line_usage_error(run_quantize(args), {bad});
    }
  }
  EXPECT_TRUE(dir.entries().empty());
  const ProgramRun largest = run_quantize({data_path(kModel), "--to", "Q8_0", "-o", dir / "out.gguf", "-q",
                                           "--override-kv", "a=int:-4294967295"});
  EXPECT_EQ(largest.exit_code, 0) << largest.err;
}

// Nothing lost is said in words, never "SQNR exact dB".
TEST(SmallContract, ExactConversionsSaySo) {
  ScratchDir dir;
  const struct {
    std::string input, type, words;
  } cases[] = {
      {"models/tiny-llama-f16.gguf", "F32", "none: every converted value reads back exactly"},
      {kModel, "COPY", "none: every tensor was copied unchanged"},
      {kModel, "F32", "none: every tensor was copied unchanged"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.type);
    const ProgramRun run = run_quantize({data_path(c.input), "--to", c.type, "-o", dir / "out.gguf", "--force"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_NE(run.out.find(c.words), std::string::npos) << run.out;
    EXPECT_EQ(run.out.find("SQNR exact"), std::string::npos) << run.out;
  }
}

// Every option takes one value, so INPUT may come right after any of them (docs/cli.md).
TEST(SmallContract, InputMayFollowAnyOption) {
  ScratchDir dir;
  const std::string model = data_path(kModel);
  const std::vector<std::vector<std::string>> lines = {
      {"--to", "Q6_K", "-o", dir / "a.gguf", model},
      {"--to", "Q6_K", "--tensor-type", "attn_v=q8_0", "-o", dir / "b.gguf", "--override-kv", "x.y=int:1", model},
      {"-o", dir / "c.gguf", "--tensor-type", "attn_v=q8_0", model, "--to", "Q6_K"},
  };
  for (const std::vector<std::string>& line : lines) {
    std::vector<std::string> args = line;
    args.push_back("-q");
    const ProgramRun run = run_quantize(args);
    EXPECT_EQ(run.exit_code, 0) << run.err;
  }
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"a.gguf", "b.gguf", "c.gguf"}));
}

}  // namespace
