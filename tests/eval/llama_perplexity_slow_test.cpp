// tiny-llama and llama-quantize's quantizations of it, scored on code-eval.txt (ctx 256, 273 chunks) against the
// f16 model, compared with llama-perplexity's numbers for the same files (shared reference
// reference/llama-perplexity/*-code-eval-c256.log, llama.cpp 34af94c, CPU, 2 threads). The quantized files are
// made by our converter, which writes llama-quantize's bytes (the SHA-256 of each is checked against
// llama-quantize's output, tests/data/llama-quantize-outputs.tsv).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "eval/eval_test_util.h"
#include "quant/convert.h"
#include "quant/eval.h"

namespace quant {
namespace {

using testing::data_path;

struct Reference {
  const char* type;
  const char* imatrix;  // in tests/data/imatrix, recorded by name as llama-quantize was given it
  const char* sha256;
  double ppl, kld, same_top;  // llama-perplexity's Mean PPL(Q), Mean KLD, Same top p (fraction)
};

constexpr Reference kReferences[] = {
    {"Q8_0", "", "1201bd853f8db35cc94ed8b0e8a9a549fd71276d8d85d97cc3676d3f285fb2d8", 5.298922, 0.000759, 0.98725},
    {"Q6_K", "", "b8efafaa432210833c21ad9f76d34e24365a045a26157329f20123acf535d951", 5.338997, 0.005044, 0.96637},
    {"Q4_K_M", "", "df42de0f55c1ecf80eb560bac48596027a238506fa4649e9da3d49630f9b0e3a", 5.538633, 0.042720, 0.90984},
    {"Q4_K_M", "tiny-llama.imatrix.gguf", "814739aebbf3a9fe24a4083f7b4af96c6be520c0ff7830c5ac1b566fd301d715",
     5.476771, 0.037628, 0.91685},
};

class LlamaPerplexityComparison : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                      ("quant-eval-slow-" + std::to_string(::getpid())));
    std::filesystem::create_directories(*dir_);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::filesystem::path* dir_;
};
std::filesystem::path* LlamaPerplexityComparison::dir_ = nullptr;

TEST_F(LlamaPerplexityComparison, CodeEvalContext256) {
  const std::vector<int32_t> ids = testing::read_ids(data_path("eval/tiny-llama-f16.code-eval.ids"));
  const std::string f16_path = data_path("models/tiny-llama-f16.gguf");
  auto f16 = testing::open_test_model(f16_path);

  // The f16 model's own score, writing its base logits (llama-perplexity --kl-divergence-base: PPL 5.2945 ± 0.06988).
  const std::string base_file = (*dir_ / "f16.kld").string();
  EvalOptions options;
  options.n_ctx = 256;
  options.save_kl_base = base_file;
  auto own = evaluate(*f16, ids, true, 1, {}, options);
  ASSERT_TRUE(own) << own.error().message();
  EXPECT_EQ(own->chunks, 273);
  EXPECT_NEAR(own->perplexity.value, 5.2945, 5.2945 * 0.005);
  std::printf("f16: PPL %.4f +/- %.5f (llama-perplexity 5.2945 +/- 0.06988), %.0f tokens/s\n", own->perplexity.value,
              own->perplexity.uncertainty, own->tokens_per_second());
  auto file = KlBaseReader::open(base_file);
  ASSERT_TRUE(file) << file.error().message();

  const std::filesystem::path previous = std::filesystem::current_path();
  for (const Reference& ref : kReferences) {
    const std::string name = std::string(ref.type) + (*ref.imatrix ? "-imat" : "");
    ConvertRequest request;
    request.input = f16_path;
    request.targets.push_back({ref.type, (*dir_ / (name + ".gguf")).string()});
    if (*ref.imatrix) {
      // llama-quantize recorded the imatrix by its bare name; convert from its folder to write the same bytes.
      std::filesystem::current_path(data_path("imatrix"));
      request.imatrix.path = ref.imatrix;
    }
    auto reports = convert(request);
    std::filesystem::current_path(previous);
    ASSERT_TRUE(reports) << reports.error().message();
    EXPECT_EQ((*reports)[0].output_sha256, ref.sha256) << name;

    auto quantized = testing::open_test_model(request.targets[0].output);
    EvalBase base;
    base.file = &*file;
    auto result = evaluate(*quantized, {}, true, 1, base, {});
    ASSERT_TRUE(result) << result.error().message();
    const KlDivergenceStats& kl = *result->kl_divergence;
    std::printf("%-11s PPL %.6f (llama %.6f, %+.3f%%)  KLD %.6f (llama %.6f, %+.2f%%)  same top %.3f%% (llama %.3f%%, "
                "%+.3f points)\n",
                name.c_str(), result->perplexity.value, ref.ppl, 100 * (result->perplexity.value / ref.ppl - 1),
                kl.mean, ref.kld, 100 * (kl.mean / ref.kld - 1), 100 * kl.same_top, 100 * ref.same_top,
                100 * (kl.same_top - ref.same_top));
    // The acceptance tolerances of issue 12: 0.5 % on PPL, 3 % (or 0.0003) on mean KLD, 0.5 points on same top.
    EXPECT_NEAR(result->perplexity.value, ref.ppl, ref.ppl * 0.005) << name;
    EXPECT_NEAR(kl.mean, ref.kld, std::max(ref.kld * 0.03, 0.0003)) << name;
    EXPECT_NEAR(kl.same_top, ref.same_top, 0.005) << name;
  }
}

// --base (our forward pass of the base model) gives exactly the numbers of the base-logits file it writes.
TEST_F(LlamaPerplexityComparison, BaseModelEqualsItsBaseFile) {
  const std::vector<int32_t> ids = testing::read_ids(data_path("eval/tiny-llama-f16.code-eval.ids"));
  auto f16 = testing::open_test_model(data_path("models/tiny-llama-f16.gguf"));
  ConvertRequest request;
  request.input = data_path("models/tiny-llama-f16.gguf");
  request.targets.push_back({"Q4_K_M", (*dir_ / "base-test-Q4_K_M.gguf").string()});
  ASSERT_TRUE(convert(request));
  auto quantized = testing::open_test_model(request.targets[0].output);
  EvalOptions options;
  options.n_ctx = 256;
  options.max_chunks = 24;
  options.save_kl_base = (*dir_ / "f16-24.kld").string();
  EvalBase with_model;
  with_model.model = f16.get();
  auto by_model = evaluate(*quantized, ids, true, 1, with_model, options);
  ASSERT_TRUE(by_model) << by_model.error().message();
  auto file = KlBaseReader::open(options.save_kl_base);
  ASSERT_TRUE(file) << file.error().message();
  EvalBase with_file;
  with_file.file = &*file;
  auto by_file = evaluate(*quantized, {}, true, 1, with_file, {});
  ASSERT_TRUE(by_file) << by_file.error().message();
  EXPECT_EQ(by_model->chunks, 24);
  EXPECT_EQ(by_file->chunks, 24);
  EXPECT_EQ(by_model->perplexity.value, by_file->perplexity.value);
  EXPECT_EQ(by_model->kl_divergence->mean, by_file->kl_divergence->mean);
  EXPECT_EQ(by_model->kl_divergence->same_top, by_file->kl_divergence->same_top);
  EXPECT_EQ(by_model->kl_divergence->kld.p99, by_file->kl_divergence->kld.p99);
}

}  // namespace
}  // namespace quant
