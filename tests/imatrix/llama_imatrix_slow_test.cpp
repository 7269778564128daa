// Importance matrices from text against llama-imatrix's own files (llama.cpp 34af94c, CPU): the same entries and
// counts, and each column's mean square within 1 % for 99 % of the columns and 5 % for all (imatrix_compare.h).
// The references and the commands that made them are listed in tests/data/README.md.
#include <gtest/gtest.h>

#include <cstdio>

#include "imatrix_compare.h"
#include "quant/imatrix.h"
#include "quant/model.h"
#include "quant/model_source.h"
#include "test_data.h"

namespace quant {
namespace {

using testing::data_path;

struct ReferenceRun {
  const char* reference;  // under tests/data/imatrix/
  const char* model;      // under tests/data/
  const char* text;       // under tests/data/text/
  int64_t n_ctx;
  int64_t chunks;         // -1: all
  bool process_output;
  const char* in_file;    // merged first, or nullptr
};

const ReferenceRun kRuns[] = {
    {"tiny-llama.imatrix.gguf", "models/tiny-llama-f16.gguf", "code-calib.txt", 256, -1, false, nullptr},
    {"stories260K.imatrix.gguf", "gguf/stories260K.gguf", "calib.txt", 128, -1, false, nullptr},
};

class LlamaImatrixReference : public ::testing::TestWithParam<ReferenceRun> {};

TEST_P(LlamaImatrixReference, SameEntriesCountsAndMeanSquares) {
  const ReferenceRun& run = GetParam();
  auto source = open_model(data_path(run.model));
  ASSERT_TRUE(source) << source.error().message();
  TextImatrixOptions options;
  options.text_path = data_path(std::string("text/") + run.text);
  options.n_ctx = run.n_ctx;
  options.max_chunks = run.chunks;
  options.process_output = run.process_output;
  if (run.in_file != nullptr) options.in_files.push_back(data_path(std::string("imatrix/") + run.in_file));
  auto collection = imatrix_from_text(**source, options);
  ASSERT_TRUE(collection) << collection.error().message();
  auto reference = read_imatrix(data_path(std::string("imatrix/") + run.reference));
  ASSERT_TRUE(reference) << reference.error().message();

  const ImportanceMatrix ours = importance_matrix(*collection);
  EXPECT_EQ(ours.chunk_count, reference->chunk_count);
  EXPECT_EQ(ours.chunk_size, reference->chunk_size);
  std::printf("%s:\n", run.reference);
  testing::expect_matches_llama_imatrix(ours, *reference);
}

INSTANTIATE_TEST_SUITE_P(Runs, LlamaImatrixReference, ::testing::ValuesIn(kRuns),
                         [](const ::testing::TestParamInfo<ReferenceRun>& info) {
                           std::string name = info.param.reference;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace quant
