// Importance matrices from text against llama-imatrix's own files (llama.cpp 34af94c, CPU): the same entries and
// counts, and each column's mean square within 1 % for 99 % of the columns and 5 % for all (imatrix_compare.h).
// The references and the commands that made them are listed in tests/data/README.md.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

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
  std::vector<const char*> in_files;  // merged first (under tests/data/imatrix/)
};

// What each reference exercises in llama-imatrix's batching (decode_plan.h): 8 chunks per decode in ubatches of
// 8 x 64 tokens (tiny-llama, 256); 16 x 32 (stories260K, 128); 32 x 16, then a last group of 8 chunks in one
// ubatch of 8 x 64, with output.weight (64); 3 x 170 with a 3 x 2-token ubatch that the 16-token rule drops (682);
// one stream, ubatches of 512, 512 and 76 tokens (1100); a partial group of 7 chunks, written as .dat (100);
// 6 chunks per decode, ubatches of 6 x 85 and 6 x 45, with output.weight (300); llama-imatrix's default context
// (512); GGUF and .dat in-files merged with a context of 64.
const ReferenceRun kRuns[] = {
    {"tiny-llama.imatrix.gguf", "models/tiny-llama-f16.gguf", "code-calib.txt", 256, -1, false, {}},
    {"stories260K.imatrix.gguf", "gguf/stories260K.gguf", "calib.txt", 128, -1, false, {}},
    {"stories260K-c64-output.imatrix.gguf", "gguf/stories260K.gguf", "calib.txt", 64, -1, true, {}},
    {"stories260K-c682.imatrix.gguf", "gguf/stories260K.gguf", "calib.txt", 682, -1, false, {}},
    {"stories260K-c1100.imatrix.gguf", "gguf/stories260K.gguf", "calib.txt", 1100, -1, false, {}},
    {"stories260K-c100-chunks7.imatrix.dat", "gguf/stories260K.gguf", "calib.txt", 100, 7, false, {}},
    {"tiny-llama-c300-output.imatrix.gguf", "models/tiny-llama-f16.gguf", "code-calib.txt", 300, 20, true, {}},
    {"tiny-llama-c512-chunks8.imatrix.gguf", "models/tiny-llama-f16.gguf", "code-calib.txt", 512, 8, false, {}},
    {"stories260K-c64-merged.imatrix.gguf", "gguf/stories260K.gguf", "calib.txt", 64, -1, false,
     {"stories260K.imatrix.gguf", "stories260K.imatrix.dat"}},
};

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

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
  for (const char* in_file : run.in_files) options.in_files.push_back(data_path(std::string("imatrix/") + in_file));
  auto collection = imatrix_from_text(**source, options);
  ASSERT_TRUE(collection) << collection.error().message();
  auto reference = read_imatrix(data_path(std::string("imatrix/") + run.reference));
  ASSERT_TRUE(reference) << reference.error().message();

  // Written in the reference's format and read back, as llama-quantize would read it.
  const std::string reference_name = run.reference;
  const bool dat = ends_with(reference_name, ".dat");
  const std::string written = ::testing::TempDir() + "text_imatrix_" + reference_name;
  const Status status = write_imatrix(written, dat ? ImatrixFormat::dat : ImatrixFormat::gguf, *collection);
  ASSERT_TRUE(status) << status.error().message();
  auto ours = read_imatrix(written);
  std::remove(written.c_str());
  ASSERT_TRUE(ours) << ours.error().message();
  EXPECT_EQ(ours->chunk_count, reference->chunk_count);
  EXPECT_EQ(ours->chunk_size, reference->chunk_size);
  EXPECT_EQ(ours->datasets.size(), reference->datasets.size());
  std::printf("%s:\n", run.reference);
  testing::expect_matches_llama_imatrix(*ours, *reference);
}

INSTANTIATE_TEST_SUITE_P(Runs, LlamaImatrixReference, ::testing::ValuesIn(kRuns),
                         [](const ::testing::TestParamInfo<ReferenceRun>& run_info) {
                           std::string name = run_info.param.reference;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace quant
