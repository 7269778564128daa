// Our scores of tiny-llama against llama-perplexity's (llama.cpp 34af94c, CPU, 2 threads) on the same tokens.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/eval_test_util.h"
#include "quant/eval.h"

namespace quant {
namespace {

using testing::data_path;

// llama-perplexity -m tiny-llama-f16.gguf -c 256 --chunks 16 -f code-calib.txt --kl-divergence-base FILE
// (shared reference pub-f16-calib16.log): "Final estimate: PPL = 6.7346 +/- 0.33786".
TEST(EvalReference, F16PerplexityOnCodeCalib) {
  auto model = testing::open_test_model(data_path("models/tiny-llama-f16.gguf"));
  const std::vector<int32_t> ids = testing::read_ids(data_path("eval/tiny-llama-f16.code-calib.ids"));
  EvalOptions options;
  options.n_ctx = 256;
  options.max_chunks = 16;
  auto result = evaluate(*model, ids, true, 1, {}, options);
  ASSERT_TRUE(result) << result.error().message();
  EXPECT_EQ(result->chunks, 16);
  EXPECT_EQ(result->tokens_scored, 16 * 127);
  EXPECT_NEAR(result->perplexity.value, 6.7346, 6.7346 * 0.001);
  EXPECT_NEAR(result->perplexity.uncertainty, 0.33786, 0.33786 * 0.01);
  std::printf("f16 code-calib c256x16: PPL %.4f +/- %.5f (llama-perplexity 6.7346 +/- 0.33786)\n",
              result->perplexity.value, result->perplexity.uncertainty);
}

// The f16 model scored against its own base-logits file written by llama-perplexity: the file's PPL(base) is
// 6.729142 (pub-Q4_K_M-calib16.log), and our logits must land on llama.cpp's nearly exactly.
TEST(EvalReference, F16AgainstItsLlamaPerplexityBaseFile) {
  auto model = testing::open_test_model(data_path("models/tiny-llama-f16.gguf"));
  auto file = KlBaseReader::open(data_path("eval/f16-code-calib-c256-16chunks.kld"));
  ASSERT_TRUE(file) << file.error().message();
  EvalBase base;
  base.file = &*file;
  auto result = evaluate(*model, {}, true, 1, base, {});
  ASSERT_TRUE(result) << result.error().message();
  ASSERT_TRUE(result->kl_divergence);
  const KlDivergenceStats& kl = *result->kl_divergence;
  EXPECT_NEAR(kl.base_perplexity.value, 6.729142, 1e-5);
  EXPECT_NEAR(result->perplexity.value, 6.729142, 6.729142 * 0.001);
  EXPECT_LT(kl.mean, 1e-4);
  EXPECT_GT(kl.same_top, 0.995);
  std::printf("f16 vs llama.cpp's f16 logits: PPL %.6f, KLD mean %.3g max %.3g, same top %.3f%%\n",
              result->perplexity.value, kl.mean, kl.kld.max, 100 * kl.same_top);
}

}  // namespace
}  // namespace quant
