// The KLD measurer against llama.cpp's own figures: llama-perplexity's mean KL divergence of tiny-llama with ONE
// tensor quantized (tests/data/automix/single-tensor-kld.tsv, 105 tensor/type pairs, the first 16 chunks of 256
// tokens of code-calib.txt against the f16 model) and of a whole Q4_K_M file; and its refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "automix/scratch.h"
#include "convert/model_params.h"
#include "quant/automix.h"
#include "quant/gguf.h"
#include "quant/imatrix.h"
#include "test_data.h"

namespace quant {
namespace {

using testing::data_path;

const std::string kModel = data_path("models/tiny-llama-f16.gguf");
const std::string kText = data_path("automix/code-calib-head.txt");  // its first 4096 tokens: the 16 chunks

struct Fixture {
  std::shared_ptr<const ModelSource> model;
  ImportanceMatrix imatrix;
  MeasureContext context;
};

// Every weight matrix of the model with the candidates automix would give it (importance from the imatrix).
Fixture make_fixture(bool with_imatrix) {
  Fixture f;
  auto source = open_model(kModel);
  EXPECT_TRUE(source.ok());
  f.model = std::move(*source);
  if (with_imatrix) f.imatrix = *read_imatrix(data_path("imatrix/tiny-llama.imatrix.gguf"));
  f.context.model = f.model;
  f.context.calibration_text = kText;
  f.context.threads = 2;
  for (const TensorInfo& t : f.model->tensors()) {
    if (t.shape.size() < 2) continue;
    const ImportanceEntry* entry = with_imatrix ? f.imatrix.find(t.name) : nullptr;
    const PlanTensor plan{t.name, t.shape, t.type};
    f.context.tensors.push_back({&t, candidate_types(plan, entry != nullptr), entry ? entry->values.data() : nullptr});
  }
  return f;
}

KldMeasurerOptions sixteen_chunks() {
  KldMeasurerOptions options;
  options.ctx = 256;
  options.max_tokens = 4096;
  return options;
}

TEST(KldMeasurer, AgreesWithLlamaPerplexityOnSingleTensorQuantization) {
  Fixture f = make_fixture(true);
  auto measurer = make_kld_measurer(sixteen_chunks());
  auto table = measurer->measure(f.context);
  ASSERT_TRUE(table.ok()) << table.error().message();
  EXPECT_EQ(table->unit, "KLD (nats)");
  ASSERT_EQ(table->tensors.size(), 30u);
  const auto rows = testing::read_tsv(data_path("automix/single-tensor-kld.tsv"));
  ASSERT_EQ(rows.size(), 106u);
  double sum_sq = 0, sum = 0;
  for (size_t i = 1; i < rows.size(); ++i) {
    const TensorSensitivity* tensor = table->find(rows[i][0]);
    ASSERT_NE(tensor, nullptr) << rows[i][0];
    const std::optional<double> predicted = tensor->cost_of(find_format(rows[i][1])->id);
    ASSERT_TRUE(predicted.has_value()) << rows[i][0] << " " << rows[i][1];
    const double log_ratio = std::log(*predicted / std::stod(rows[i][2]));
    EXPECT_LT(std::fabs(log_ratio), std::log(2.0)) << rows[i][0] << " " << rows[i][1] << ": " << *predicted
                                                   << " vs llama-perplexity " << rows[i][2];
    sum += log_ratio;
    sum_sq += log_ratio * log_ratio;
  }
  const double n = double(rows.size() - 1);
  EXPECT_LT(std::fabs(sum / n), 0.1) << "bias";
  EXPECT_LT(std::sqrt(sum_sq / n), 0.2) << "spread";
  // Keeping the source type is free; coarser types of one tensor cost more.
  for (const TensorSensitivity& tensor : table->tensors) {
    EXPECT_EQ(tensor.cost_of(TypeId::f16), 0.0) << tensor.name;
    EXPECT_GT(*tensor.cost_of(TypeId::q2_K), *tensor.cost_of(TypeId::q4_K)) << tensor.name;
    EXPECT_GT(*tensor.cost_of(TypeId::q4_K), *tensor.cost_of(TypeId::q6_K)) << tensor.name;
  }
}

TEST(KldMeasurer, AWholeMixAgreesWithLlamaPerplexity) {
  // llama-quantize's Q4_K_M of tiny-llama without an imatrix scores a mean KLD of 0.034745 in llama-perplexity on
  // these 16 chunks (tests/data/README.md: pub-Q4_K_M-calib16.log).
  Fixture f = make_fixture(false);
  auto params = convert_internal::read_model_params(*f.model);
  ASSERT_TRUE(params.ok());
  PlanOptions options;
  options.file_type = FileType::q4_K_M;
  auto plan = make_plan(*params, convert_internal::plan_tensors(*f.model), options);
  ASSERT_TRUE(plan.ok());
  for (MeasureTensor& t : f.context.tensors) {
    for (const TensorPlan& p : plan->tensors) {
      if (p.name == t.tensor->name) t.types = {p.target_type};
    }
  }
  auto measurer = make_kld_measurer(sixteen_chunks());
  auto score = measurer->measure_mix(f.context);
  ASSERT_TRUE(score.ok()) << score.error().message();
  ASSERT_TRUE(score->has_value());
  EXPECT_NEAR((*score)->cost, 0.034745, 0.034745 * 0.03);
  EXPECT_GT((*score)->same_top, 0.85);
  EXPECT_LT((*score)->same_top, 0.95);
}

TEST(KldMeasurer, RefusesATextTooShortOrNone) {
  testing::Scratch dir;
  testing::write_text_file(dir / "short.txt", "def f(x):\n    return x + 1\n");
  Fixture f = make_fixture(false);
  f.context.tensors.resize(1);
  f.context.calibration_text = dir / "short.txt";
  auto short_text = make_kld_measurer(sixteen_chunks())->measure(f.context);
  ASSERT_FALSE(short_text.ok());
  EXPECT_EQ(short_text.error().kind(), ErrorKind::impossible);
  EXPECT_NE(short_text.error().message().find("too short to measure"), std::string::npos)
      << short_text.error().message();
  EXPECT_NE(short_text.error().message().find("short.txt"), std::string::npos);

  f.context.calibration_text.clear();
  auto none = make_kld_measurer(sixteen_chunks())->measure(f.context);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().kind(), ErrorKind::usage);
}

}  // namespace
}  // namespace quant
