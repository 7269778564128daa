// The forward pass's steps, hooks and weight overrides on tiny-llama: what #13 (importance matrices from text) and
// #14 (automatic mixed precision) build on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include "eval/eval_test_util.h"
#include "quant/gguf.h"

namespace quant {
namespace {

using testing::data_path;

constexpr int64_t kCtx = 128;

std::vector<int32_t> two_chunks() {
  std::vector<int32_t> ids = testing::read_ids(data_path("eval/tiny-llama-f16.code-calib.ids"));
  ids.resize(2 * kCtx);
  ids[kCtx] = 1;  // BOS first in each chunk, as llama-perplexity puts it
  return ids;
}

std::vector<float> run_logits(const Model& model, const std::vector<int32_t>& tokens, const EvalHooks& hooks = {}) {
  auto states = model.embed(tokens, 2, kCtx, kCtx / 2);
  EXPECT_TRUE(states);
  EXPECT_TRUE(model.run_layers(*states, int(model.hparams().n_layer), hooks));
  std::vector<float> logits(size_t(states->rows() * model.hparams().n_vocab));
  EXPECT_TRUE(model.logits(*states, 0, states->rows(), logits.data(), hooks));
  return logits;
}

TEST(Model, HyperParametersOfTinyLlama) {
  auto model = testing::open_test_model(data_path("models/tiny-llama-f16.gguf"));
  const ModelHyperparameters& hp = model->hparams();
  EXPECT_EQ(hp.architecture->name, "llama");
  EXPECT_EQ(hp.n_vocab, 1024);
  EXPECT_EQ(hp.n_embd, 256);
  EXPECT_EQ(hp.n_layer, 4);
  EXPECT_EQ(hp.n_head, 4);
  EXPECT_EQ(hp.n_head_kv, 2);
  EXPECT_EQ(hp.head_dim_k, 64);
  EXPECT_EQ(hp.n_ff, 768);
  EXPECT_FALSE(hp.tied_output);
  EXPECT_FALSE(hp.fused_qkv);
  EXPECT_EQ(activation_type_for(TypeId::q4_K), TypeId::q8_K);
  EXPECT_EQ(activation_type_for(TypeId::q4_1), TypeId::q8_1);
  EXPECT_EQ(activation_type_for(TypeId::iq4_nl), TypeId::q8_0);
  EXPECT_EQ(activation_type_for(TypeId::f16), TypeId::f16);
  EXPECT_FALSE(activation_type_for(TypeId::i32));
}

// Every matmul input, as llama-imatrix's callback sees them: each blk weight once per layer with every token, the
// last layer's FFN and the head with the output rows only.
TEST(Model, ActivationHookSeesEveryMatmulInput) {
  auto model = testing::open_test_model(data_path("models/tiny-llama-f16.gguf"));
  std::map<std::string, std::pair<int64_t, int64_t>> seen;  // rows, calls
  EvalHooks hooks;
  hooks.on_matmul_input = [&](const MatmulInput& input) {
    auto& entry = seen[std::string(input.weight)];
    entry.first += input.rows;
    entry.second += 1;
    EXPECT_EQ(input.cols, std::string(input.weight).find("ffn_down") != std::string::npos ? 768 : 256);
    EXPECT_TRUE(input.expert_ids.empty());
    double sum = 0;
    for (int64_t i = 0; i < input.rows * input.cols; ++i) sum += double(input.values[i]) * input.values[i];
    EXPECT_GT(sum, 0.0);
  };
  run_logits(*model, two_chunks(), hooks);
  EXPECT_EQ(seen.size(), 4u * 7 + 1);
  for (int il = 0; il < 4; ++il) {
    for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_gate", "ffn_down"}) {
      const std::string name = "blk." + std::to_string(il) + "." + w + ".weight";
      const bool output_rows_only = il == 3 && std::string(w).rfind("ffn", 0) == 0;
      EXPECT_EQ(seen[name].first, output_rows_only ? 2 * kCtx / 2 : 2 * kCtx) << name;
      EXPECT_EQ(seen[name].second, 1) << name;
    }
  }
  EXPECT_EQ(seen["output.weight"].first, 2 * kCtx / 2);
}

// States saved at a layer's input and run from there give the full run's logits, bit for bit.
TEST(Model, PartialEvaluationFromSavedStates) {
  auto model = testing::open_test_model(data_path("models/tiny-llama-f16.gguf"));
  const std::vector<int32_t> tokens = two_chunks();
  const std::vector<float> full = run_logits(*model, tokens);
  auto states = model->embed(tokens, 2, kCtx, kCtx / 2);
  ASSERT_TRUE(states);
  ASSERT_TRUE(model->run_layers(*states, 2));
  EXPECT_EQ(states->next_layer(), 2);
  HiddenStates saved = *states;
  for (int repeat = 0; repeat < 2; ++repeat) {
    HiddenStates from_two = saved;
    ASSERT_TRUE(model->run_layers(from_two, 4));
    EXPECT_TRUE(from_two.compacted());
    std::vector<float> logits(full.size());
    ASSERT_TRUE(model->logits(from_two, 0, from_two.rows(), logits.data()));
    EXPECT_EQ(logits, full);
  }
}

// Weights read on every pass (a model larger than the resident budget: each matmul tile reads its rows from the
// file) give the logits of weights kept dequantized, with an override among them too, and the same logits pass
// after pass.
TEST(Model, StreamedWeightsGiveTheResidentLogits) {
  auto resident = testing::open_test_model(data_path("models/tiny-llama-f16.gguf"));
  ModelOptions options;
  options.resident_budget_bytes = 0;
  auto streamed = testing::open_test_model(data_path("models/tiny-llama-f16.gguf"), options);
  const std::vector<int32_t> tokens = two_chunks();
  auto replaced = resident->quantized_override("blk.1.attn_v.weight", TypeId::q5_K);
  ASSERT_TRUE(replaced) << replaced.error().message();
  EvalHooks hooks;
  hooks.overrides = std::span<const WeightOverride>(&*replaced, 1);
  const EvalHooks plain;
  std::vector<float> first;
  for (const EvalHooks* pass : {&plain, const_cast<const EvalHooks*>(&hooks), &plain}) {
    const std::vector<float> expected = run_logits(*resident, tokens, *pass);
    const std::vector<float> got = run_logits(*streamed, tokens, *pass);
    double max_diff = 0, sum_diff = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double diff = std::fabs(got[i] - expected[i]);
      max_diff = std::max(max_diff, diff);
      sum_diff += diff;
    }
    const double mean_diff = sum_diff / double(got.size());
    std::printf("streamed vs resident%s: |logit diff| max %.2e, mean %.2e\n", pass == &hooks ? " (override)" : "",
                max_diff, mean_diff);
    // The same products summed in another order (dense rows against tiles dequantized in the matmul), which moves
    // f16 roundings of the activations: measured max 1.2e-2 (2.9e-2 with the override), mean 1.2e-3 (1.4e-3),
    // on logits of magnitude ~10, before and after the read buffers were reused. A wrong weight moves them by
    // whole units.
    EXPECT_LT(max_diff, 0.1);
    EXPECT_LT(mean_diff, 5e-3);
    if (pass == &plain && first.empty()) {
      first = got;
    } else if (pass == &plain) {
      EXPECT_EQ(got, first) << "a pass after another reads the same weights";
    }
  }
}

// Writes tiny-llama with one tensor stored as an override holds it.
void write_with_replaced_tensor(const std::string& path, const WeightOverride& replaced) {
  auto in = GgufFile::open(data_path("models/tiny-llama-f16.gguf"));
  ASSERT_TRUE(in);
  auto out = GgufWriter::create(path);
  ASSERT_TRUE(out);
  for (const KeyValue& kv : in->metadata()) ASSERT_TRUE(out->add_metadata(kv.key, kv.value));
  for (const TensorInfo& t : in->tensors()) {
    ASSERT_TRUE(out->add_tensor(t.name, t.name == replaced.name ? replaced.type : t.type, t.shape));
  }
  ASSERT_TRUE(out->begin());
  for (const TensorInfo& t : in->tensors()) {
    if (t.name == replaced.name) {
      ASSERT_TRUE(out->write_tensor(t.name, *replaced.data));
    } else {
      auto bytes = in->read_tensor_data(t);
      ASSERT_TRUE(bytes);
      ASSERT_TRUE(out->write_tensor(t.name, *bytes));
    }
  }
  ASSERT_TRUE(out->commit());
}

// A weight override gives the logits of a file holding that weight in that type.
TEST(Model, OverrideEqualsAFileWithThatWeight) {
  auto model = testing::open_test_model(data_path("models/tiny-llama-f16.gguf"));
  auto replaced = model->quantized_override("blk.3.ffn_down.weight", TypeId::q4_K);
  ASSERT_TRUE(replaced) << replaced.error().message();
  const std::vector<int32_t> tokens = two_chunks();
  EvalHooks hooks;
  hooks.overrides = std::span<const WeightOverride>(&*replaced, 1);
  const std::vector<float> with_override = run_logits(*model, tokens, hooks);
  const std::vector<float> base = run_logits(*model, tokens);

  // The same model with blk.3.ffn_down stored as those q4_K bytes.
  const std::string path = ::testing::TempDir() + "/tiny-llama-ffn-down-q4_K.gguf";
  write_with_replaced_tensor(path, *replaced);
  auto file_model = testing::open_test_model(path);
  const std::vector<float> from_file = run_logits(*file_model, tokens);
  double max_diff = 0, max_change = 0;
  for (size_t i = 0; i < from_file.size(); ++i) {
    max_diff = std::max(max_diff, double(std::fabs(from_file[i] - with_override[i])));
    max_change = std::max(max_change, double(std::fabs(base[i] - with_override[i])));
  }
  // The same values summed in another order (the file's weight is kept dequantized and multiplied a block of
  // tokens at a time, the override's in tiles of rows): measured 2.7e-4 on logits of magnitude ~10, while the
  // override itself moves logits by more than 0.1.
  std::printf("override vs file: max |logit diff| %.2e; override vs f16: %.2e\n", max_diff, max_change);
  EXPECT_LT(max_diff, 2e-3);
  EXPECT_GT(max_change, 0.05);
  std::remove(path.c_str());
}

// A GGUF model whose reads of one tensor fail, as reads of a file cut short under a running evaluation do.
class FailingReads : public ModelSource {
 public:
  FailingReads(std::string path, std::string broken) : file_(std::move(*GgufFile::open(path))), broken_(std::move(broken)) {}
  const std::string& path() const override { return file_.path(); }
  uint64_t input_bytes() const override { return file_.input_bytes(); }
  const std::vector<KeyValue>& metadata() const override { return file_.metadata(); }
  const Value* find(std::string_view key) const override { return file_.find(key); }
  const std::vector<TensorInfo>& tensors() const override { return file_.tensors(); }
  const TensorInfo* find_tensor(std::string_view name) const override { return file_.find_tensor(name); }
  Status read_tensor(const TensorInfo& tensor, uint64_t offset, std::span<uint8_t> out) const override {
    if (tensor.name == broken_ && offset + out.size() > tensor.size_bytes / 2) {
      return Error(io_error("read failed: input/output error")).in_file(path()).in_tensor(tensor.name);
    }
    return file_.read_tensor(tensor, offset, out);
  }

 private:
  GgufFile file_;
  std::string broken_;
};

ModelOptions streamed() {
  ModelOptions options;
  options.resident_budget_bytes = 0;  // every matmul reads its weight's rows from the file, tile by tile
  return options;
}

// The same with one thread and with more threads than tiles of some weights (each tile is read on the thread that
// multiplies by it): the resident logits up to summation order, and the same top token on every row.
TEST(Model, StreamedWeightsAtOneAndThreeThreads) {
  const std::vector<int32_t> tokens = two_chunks();
  const std::vector<float> resident = run_logits(*testing::open_test_model(data_path("models/tiny-llama-f16.gguf")), tokens);
  for (const int threads : {1, 3}) {
    ModelOptions options = streamed();
    options.threads = threads;
    const std::vector<float> logits =
        run_logits(*testing::open_test_model(data_path("models/tiny-llama-f16.gguf"), options), tokens);
    ASSERT_EQ(logits.size(), resident.size());
    double max_diff = 0;
    for (size_t i = 0; i < logits.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(logits[i] - resident[i])));
    // Another summation order moves a few values across an f16 rounding boundary of the next matmul's input (a
    // relative step of 2^-11), which the later layers carry: measured 8e-3 (1 thread) and 1.3e-2 (3 threads) on
    // logits of magnitude ~10.
    std::printf("%d threads: max |streamed - resident| %.2e\n", threads, max_diff);
    EXPECT_LT(max_diff, 5e-2) << threads << " threads";
    EXPECT_GT(max_diff, 0.0) << "the streamed path was not taken";
    const int64_t n_vocab = 1024;
    for (size_t row = 0; row < logits.size() / n_vocab; ++row) {
      const auto top = [&](const std::vector<float>& l) {
        return std::max_element(l.begin() + row * n_vocab, l.begin() + (row + 1) * n_vocab) - l.begin();
      };
      EXPECT_EQ(top(logits), top(resident)) << "row " << row;
    }
  }
}

// A read that fails inside a matmul tile, the embeddings or the resident load is the call's error, naming the
// tensor; nothing crashes and the model stays usable for other inputs.
TEST(Model, FailedWeightReadsAreTheCallsError) {
  const std::string path = data_path("models/tiny-llama-f16.gguf");
  const std::vector<int32_t> tokens = two_chunks();
  auto open = [&](const std::string& broken, const ModelOptions& options) {
    return Model::open(std::make_shared<FailingReads>(path, broken), options);
  };

  auto resident = open("blk.2.ffn_up.weight", {});
  ASSERT_FALSE(resident);
  EXPECT_EQ(resident.error().kind(), ErrorKind::io);
  EXPECT_NE(resident.error().message().find("blk.2.ffn_up.weight"), std::string::npos) << resident.error().message();

  auto model = open("blk.2.ffn_up.weight", streamed());
  ASSERT_TRUE(model) << model.error().message();
  auto states = (*model)->embed(tokens, 2, kCtx, kCtx / 2);
  ASSERT_TRUE(states);
  HiddenStates first_two = *states;
  ASSERT_TRUE((*model)->run_layers(first_two, 2));  // layers 0 and 1 read nothing broken
  const Status failed = (*model)->run_layers(*states, 4);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().kind(), ErrorKind::io);
  EXPECT_NE(failed.error().message().find("blk.2.ffn_up.weight"), std::string::npos) << failed.error().message();

  auto head = open("output.weight", streamed());
  ASSERT_TRUE(head);
  auto final_states = (*head)->embed(tokens, 2, kCtx, kCtx / 2);
  ASSERT_TRUE(final_states);
  ASSERT_TRUE((*head)->run_layers(*final_states, 4));
  std::vector<float> logits(size_t(final_states->rows() * (*head)->hparams().n_vocab));
  const Status head_failed = (*head)->logits(*final_states, 0, final_states->rows(), logits.data());
  ASSERT_FALSE(head_failed);
  EXPECT_NE(head_failed.error().message().find("output.weight"), std::string::npos);

  // Token rows in the second half of the table are the ones that fail.
  auto embeddings = open("token_embd.weight", streamed());
  ASSERT_TRUE(embeddings);
  std::vector<int32_t> low(tokens.size(), 1), high(tokens.size(), 1000);
  EXPECT_TRUE((*embeddings)->embed(low, 2, kCtx, kCtx / 2));
  auto embed_failed = (*embeddings)->embed(high, 2, kCtx, kCtx / 2);
  ASSERT_FALSE(embed_failed);
  EXPECT_NE(embed_failed.error().message().find("token_embd.weight"), std::string::npos);
}

// An override of the token embeddings is what embed() reads: the rows of a file holding them in that type, exactly.
TEST(Model, EmbeddingOverrideEqualsAFileWithThoseEmbeddings) {
  auto model = testing::open_test_model(data_path("models/tiny-llama-f16.gguf"));
  auto replaced = model->quantized_override("token_embd.weight", TypeId::q3_K);
  ASSERT_TRUE(replaced) << replaced.error().message();
  const std::string path = ::testing::TempDir() + "/tiny-llama-token-embd-q3_K.gguf";
  write_with_replaced_tensor(path, *replaced);
  auto file_model = testing::open_test_model(path);
  const std::vector<int32_t> tokens = two_chunks();
  EvalHooks hooks;
  hooks.overrides = std::span<const WeightOverride>(&*replaced, 1);
  auto with_override = model->embed(tokens, 2, kCtx, kCtx / 2, hooks);
  auto from_file = file_model->embed(tokens, 2, kCtx, kCtx / 2);
  auto base = model->embed(tokens, 2, kCtx, kCtx / 2);
  ASSERT_TRUE(with_override && from_file && base);
  EXPECT_TRUE(std::ranges::equal(with_override->values(), from_file->values()));
  EXPECT_FALSE(std::ranges::equal(with_override->values(), base->values()));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace quant
