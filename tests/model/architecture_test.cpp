// The forward pass on llama3-style (GQA, rope_freqs), qwen2 (qkv biases, tied output) and qwen3 (q/k norms)
// models with random weights, against llama.cpp's logits for the same files (tests/data/model/arch-references.json,
// made by tests/model/make_arch_references.sh with node-llama-cpp's CPU build of llama.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "eval/eval_test_util.h"
#include "model/arch_models.h"

namespace quant {
namespace {

using testing::data_path;

// Writes the models for make_arch_references.sh (only when QUANT_WRITE_ARCH_MODELS names a folder).
TEST(Architecture, WriteModels) {
  const char* dir = std::getenv("QUANT_WRITE_ARCH_MODELS");
  if (dir == nullptr) GTEST_SKIP() << "QUANT_WRITE_ARCH_MODELS is not set";
  for (const testing::ArchModelSpec& spec : testing::arch_model_specs()) {
    const std::string error = testing::write_arch_model(spec, data_path("models/tiny-llama-f16.gguf"),
                                                        std::string(dir) + "/" + spec.name + ".gguf");
    ASSERT_EQ(error, "");
  }
}

struct Softmax {
  std::vector<double> p;
  int64_t top = 0;
};

Softmax softmax(const std::vector<double>& logits) {
  Softmax s;
  const double max = *std::max_element(logits.begin(), logits.end());
  s.top = std::max_element(logits.begin(), logits.end()) - logits.begin();
  double sum = 0;
  for (double l : logits) sum += std::exp(l - max);
  for (double l : logits) s.p.push_back(std::exp(l - max) / sum);
  return s;
}

TEST(Architecture, LogitsMatchLlamaCpp) {
  const auto references = nlohmann::json::parse(testing::read_bytes(data_path("model/arch-references.json")));
  const std::vector<int32_t> ids = testing::read_ids(data_path("eval/tiny-llama-f16.code-calib.ids"));
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("quant-arch-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (const testing::ArchModelSpec& spec : testing::arch_model_specs()) {
    const std::string path = (dir / (std::string(spec.name) + ".gguf")).string();
    ASSERT_EQ(testing::write_arch_model(spec, data_path("models/tiny-llama-f16.gguf"), path), "");
    auto model = testing::open_test_model(path);
    EXPECT_EQ(std::string(model->hparams().architecture->name), spec.architecture);
    double kld_sum = 0;
    int kld_rows = 0;
    for (const auto& [label, expected] : references["cases"][spec.name].items()) {
      const int64_t length = expected["tokens"].get<int64_t>();
      const int64_t first = expected["first_position"].get<int64_t>();
      const std::vector<int32_t> tokens(ids.begin(), ids.begin() + length);
      auto states = model->embed(tokens, 1, length, first);
      ASSERT_TRUE(states) << states.error().message();
      ASSERT_TRUE(model->run_layers(*states, int(model->hparams().n_layer)));
      const int64_t rows = length - first, n_vocab = model->hparams().n_vocab;
      std::vector<float> logits(size_t(rows * n_vocab));
      ASSERT_TRUE(model->logits(*states, 0, rows, logits.data()));
      for (int64_t r = 0; r < rows; ++r) {
        const std::vector<double> want = expected["logits"][size_t(r)].get<std::vector<double>>();
        ASSERT_EQ(int64_t(want.size()), n_vocab);
        std::vector<double> got(logits.begin() + r * n_vocab, logits.begin() + (r + 1) * n_vocab);
        double max_diff = 0, scale = 0;
        for (int64_t i = 0; i < n_vocab; ++i) {
          max_diff = std::max(max_diff, std::fabs(got[size_t(i)] - want[size_t(i)]));
          scale = std::max(scale, std::fabs(want[size_t(i)]));
        }
        const Softmax p = softmax(want), q = softmax(got);
        double kld = 0;
        for (int64_t i = 0; i < n_vocab; ++i) {
          if (p.p[size_t(i)] > 0) kld += p.p[size_t(i)] * std::log(p.p[size_t(i)] / std::max(q.p[size_t(i)], 1e-300));
        }
        std::printf("%-7s %-5s position %3lld: max |logit diff| %.2e (logits up to %.2f), KLD %.2e, top %s\n",
                    spec.name, label.c_str(), (long long)(first + r), max_diff, scale, kld,
                    p.top == q.top ? "same" : "DIFFERENT");
        // Measured: most rows differ by 1e-6..2e-4 in the logits (float summation order); a few by up to 5e-3,
        // where an activation rounds to the neighbouring q8 level after such a difference upstream (KLD up to
        // 1.2e-6, in qwen2's q8_0 attention). Leaving out the activation rounding altogether moves every row by
        // 2e-3..1.3e-2 (KLD 1e-7..5e-6): these small random models are less sensitive to it than trained ones.
        EXPECT_LT(max_diff, 1e-2 * std::max(1.0, scale / 4)) << spec.name << " " << label << " row " << r;
        EXPECT_LT(kld, 3e-6) << spec.name << " " << label << " row " << r;
        kld_sum += kld;
        ++kld_rows;
        EXPECT_EQ(p.top, q.top) << spec.name << " " << label << " row " << r;
      }
    }
    // Over the model's rows: measured <= 3.3e-7 (qwen2); 4.5e-6 without the q8_0 activation rounding.
    EXPECT_LT(kld_sum / kld_rows, 1e-6) << spec.name;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace quant
