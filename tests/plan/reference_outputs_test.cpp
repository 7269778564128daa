// The plan against files llama-quantize really wrote: for each reference output, the tensor order, every tensor's
// type and general.file_type must be what make_plan chooses for the same input and command line.
// tests/data/llama-quantize-tensor-types.tsv lists the tensor infos of the inputs and outputs (see its README line).
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "quant/plan.h"
#include "test_data.h"

namespace quant {
namespace {

struct ReferenceFiles {
  std::map<std::string, std::vector<PlanTensor>> tensors;  // file -> tensor infos in file order
  std::map<std::string, uint32_t> file_types;             // file -> general.file_type
};

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  size_t start = 0;
  for (size_t x; (x = text.find('x', start)) != std::string::npos; start = x + 1) {
    shape.push_back(std::stoll(text.substr(start, x - start)));
  }
  shape.push_back(std::stoll(text.substr(start)));
  return shape;
}

const ReferenceFiles& reference_files() {
  static const ReferenceFiles files = [] {
    ReferenceFiles result;
    const auto rows = testing::read_tsv(testing::data_path("llama-quantize-tensor-types.tsv"));
    for (size_t i = 1; i < rows.size(); ++i) {
      const auto& row = rows[i];
      if (row.at(0) == "file_type") {
        result.file_types[row.at(1)] = static_cast<uint32_t>(std::stoul(row.at(4)));
        continue;
      }
      const FormatInfo* format = find_format(row.at(4));
      if (!format) throw std::runtime_error("unknown type in reference list: " + row.at(4));
      result.tensors[row.at(1)].push_back({row.at(2), parse_shape(row.at(3)), format->id});
    }
    return result;
  }();
  return files;
}

// How each reference output was made (shared reference set README): input, TYPE and options.
struct ReferenceRun {
  std::string output;
  std::string input;
  std::string type;
  bool pure = false;
  bool imatrix = false;
  std::vector<std::string> tensor_types = {};
};

// The inputs' hyperparameters, from their GGUF metadata (llama.block_count, attention.head_count(_kv)).
ModelParams params_of(const std::string& input) {
  ModelParams params;
  params.arch = "llama";
  if (input == "tiny-llama-f16.gguf") {
    params.n_layer = 4, params.n_head = 4, params.n_head_kv = 2;
  } else {
    params.n_layer = 5, params.n_head = 8, params.n_head_kv = 4;
  }
  return params;
}

std::vector<ReferenceRun> runs() {
  std::vector<ReferenceRun> list = {
      {"stories260K-F16.gguf", "stories260K.gguf", "F16"},
      {"stories260K-Q4_K_M.gguf", "stories260K.gguf", "Q4_K_M"},
      {"stories260K-Q6_K.gguf", "stories260K.gguf", "Q6_K"},
      {"stories260K-Q4_K_M-imat.gguf", "stories260K.gguf", "Q4_K_M", false, true},
      {"tiny-llama-Q8_0.gguf", "tiny-llama-f16.gguf", "Q8_0"},
      {"tiny-llama-Q4_K_M.gguf", "tiny-llama-f16.gguf", "Q4_K_M"},
      {"tiny-llama-Q6_K.gguf", "tiny-llama-f16.gguf", "Q6_K"},
      {"tiny-llama-Q4_K_M-imat.gguf", "tiny-llama-f16.gguf", "Q4_K_M", false, true},
      {"stories260K-rows256-NVFP4.gguf", "stories260K-rows256-F32.gguf", "Q8_0", true, false, {".*=nvfp4"}},
  };
  for (const char* type : {"BF16", "F16", "IQ4_NL", "MXFP4_MOE", "Q1_0", "Q2_0", "Q4_0", "Q4_K_S", "Q6_K", "Q8_0",
                           "TQ1_0", "TQ2_0"}) {
    list.push_back({std::string("stories260K-rows256-") + type + ".gguf", "stories260K-rows256-F32.gguf", type, true});
  }
  for (const char* type : {"IQ2_XXS", "IQ4_XS", "Q4_0", "Q4_K_S", "Q6_K"}) {
    list.push_back(
        {std::string("stories260K-rows256-") + type + "-imat.gguf", "stories260K-rows256-F32.gguf", type, true, true});
  }
  return list;
}

class ReferenceOutputTest : public ::testing::TestWithParam<ReferenceRun> {};

TEST_P(ReferenceOutputTest, PlanMatchesTheFileLlamaQuantizeWrote) {
  const ReferenceRun& run = GetParam();
  const ReferenceFiles& files = reference_files();
  ASSERT_TRUE(files.tensors.count(run.input)) << run.input;
  ASSERT_TRUE(files.tensors.count(run.output)) << run.output;
  const std::vector<PlanTensor>& input = files.tensors.at(run.input);
  const std::vector<PlanTensor>& output = files.tensors.at(run.output);

  auto file_type = parse_file_type(run.type);
  ASSERT_TRUE(file_type.ok());
  PlanOptions options;
  options.file_type = (*file_type)->id;
  options.types.pure = run.pure;
  options.has_imatrix = run.imatrix;
  for (const std::string& entry : run.tensor_types) {
    auto parsed = parse_tensor_type_override(entry);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message();
    options.types.tensor_types.push_back(*parsed);
  }
  auto plan = make_plan(params_of(run.input), input, options);
  ASSERT_TRUE(plan.ok()) << plan.error().message();

  EXPECT_EQ(plan->file_type, files.file_types.at(run.output));
  ASSERT_EQ(plan->tensors.size(), output.size());
  for (size_t i = 0; i < output.size(); ++i) {
    SCOPED_TRACE(output[i].name);
    EXPECT_EQ(plan->tensors[i].name, output[i].name) << "output order differs at position " << i;
    EXPECT_EQ(plan->tensors[i].shape, output[i].shape);
    EXPECT_EQ(format_of(plan->tensors[i].target_type).name, format_of(output[i].type).name) << plan->tensors[i].why;
  }
}

INSTANTIATE_TEST_SUITE_P(LlamaQuantize, ReferenceOutputTest, ::testing::ValuesIn(runs()),
                         [](const ::testing::TestParamInfo<ReferenceRun>& case_info) {
                           std::string name = case_info.param.output.substr(0, case_info.param.output.size() - 5);
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace quant
