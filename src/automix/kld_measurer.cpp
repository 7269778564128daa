// The KLD measurer: what quantizing each tensor costs the model's final answers, in nats of mean KL divergence.
//
// Measured on the calibration text, cut into chunks as llama-perplexity cuts its text (BOS first in each chunk, the
// second half of each chunk scored) and scored against the unquantized model with llama-perplexity's arithmetic.
// Measuring every candidate type of every tensor by a forward pass would cost (tensors x types) passes; instead the
// weighted error (weighted_error.cpp) predicts how the cost varies between types of one tensor, and a few passes per
// tensor calibrate it. The model, measured on tiny-llama against llama-perplexity (docs/automix.md):
//   cost(t, q) = s_t · e_t(q) + a_t(activation type of q)
// e_t(q) is the relative weighted error of tensor t in type q. s_t, the tensor's sensitivity, is the slope measured
// between a coarse reference type (e ≈ 3 %, where the KLD is well above noise and still proportional to e) and q6_K.
// a_t is the floor llama.cpp's matmul adds by rounding the tensor's input activations to the weight type's dot-product
// type: q8_K for the k-quants and i-quants (measured at q6_K), q8_0 for the legacy types (measured at q8_0; q8_1 is
// taken as q8_0's). Keeping the source type costs nothing.
// A tensor of a transformer block is measured from that block's input: the hidden states are computed once per
// layer, so the passes cost about half a model each on average. The embeddings and tensors outside the blocks run
// the whole model with the tensor replaced.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "automix/kld_measurer.h"
#include "eval/scoring.h"
#include "plan/tensor_roles.h"
#include "quant/eval.h"
#include "quant/model.h"

namespace quant::automix_internal {
namespace {

// The relative weighted error the coarse reference type is chosen nearest to (on a log scale).
constexpr double kReferenceError = 0.03;
// Logits are computed this many bytes at a time.
constexpr uint64_t kLogitsBufferBytes = uint64_t(64) << 20;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The activation type llama.cpp rounds a matmul's input to for weights of `type`, as a class of floors.
enum class Floor { none, q8_K, q8_0 };

Floor floor_of(TypeId type) {
  const std::optional<TypeId> activation = activation_type_for(type);
  if (!activation) return Floor::none;
  switch (*activation) {
    case TypeId::q8_K: return Floor::q8_K;
    case TypeId::q8_0:
    case TypeId::q8_1: return Floor::q8_0;
    default: return Floor::none;
  }
}

}  // namespace

// The calibration chunks and the unquantized model's answers on them.
struct KldMeasurer::Calibration {
  std::unique_ptr<Model> model;
  int64_t n_ctx = 0, n_chunk = 0, first = 0, scored = 0, n_vocab = 0;
  std::vector<int32_t> input;      // n_chunk x n_ctx, BOS first in each chunk
  std::vector<int32_t> targets;    // per scored row, the token it predicts
  std::vector<uint16_t> base_rows; // per scored row, the base's log-probabilities as llama-perplexity stores them
  HiddenStates embedded;           // the input of layer 0
  double floor = 0;                // the base's KLD against its own stored rows (their 16-bit rounding)
};

int64_t calibration_context(const KldMeasurerOptions& options, const ModelHyperparameters& hparams) {
  if (options.ctx != 0) return options.ctx;
  return hparams.n_ctx_train > 0 ? std::min<int64_t>(512, hparams.n_ctx_train) : 512;
}

KldMeasurer::KldMeasurer(const KldMeasurerOptions& options)
    : options_(options), proxy_(make_weighted_error_measurer(options.sample_values)) {}
KldMeasurer::~KldMeasurer() = default;

std::string KldMeasurer::id() const {
  return fmt::format("kld/1 ctx={} max-tokens={} {}", options_.ctx, options_.max_tokens, proxy_->id());
}

Result<double> KldMeasurer::kld(const Model& model, const HiddenStates& final_states, const EvalHooks& hooks,
                                double* same_top) const {
  const Calibration& c = *calibration_;
  const int64_t per_seq = c.n_ctx - c.first;
  const int64_t seqs_per_call =
      std::max<int64_t>(1, int64_t(kLogitsBufferBytes / (uint64_t(per_seq) * uint64_t(c.n_vocab) * sizeof(float))));
  std::vector<float> logits;
  std::vector<eval::KlTerms> terms;
  eval::KlSums sums;
  const int64_t row_values = kl_row_values(c.n_vocab);
  for (int64_t s0 = 0; s0 < c.n_chunk; s0 += seqs_per_call) {
    const int64_t seqs = std::min(seqs_per_call, c.n_chunk - s0);
    logits.resize(size_t(seqs * per_seq * c.n_vocab));
    QUANT_TRY(model.logits(final_states, s0 * per_seq, seqs * per_seq, logits.data(), hooks));
    // Each row's terms on the pool (a log-softmax over the vocabulary each), added in token order afterwards:
    // the sums are the same, bit for bit, at any thread count.
    terms.resize(size_t(seqs * c.scored));
    model.parallel_for(seqs * c.scored, [&](int64_t k) {
      const int64_t s = k / c.scored, i = k % c.scored;
      const int64_t row = (s0 + s) * c.scored + i;
      terms[size_t(k)] = eval::kl_terms(logits.data() + size_t((s * per_seq + i) * c.n_vocab), c.n_vocab,
                                        c.base_rows.data() + size_t(row * row_values), c.targets[size_t(row)]);
    });
    for (const eval::KlTerms& row_terms : terms) sums.add(row_terms);
  }
  const KlDivergenceStats stats = sums.finish();
  if (same_top != nullptr) *same_top = stats.same_top;
  return std::max(0.0, stats.mean - c.floor);
}

Status KldMeasurer::prepare(const MeasureContext& context) {
  if (calibration_) return Status::success();
  if (context.calibration_text.empty()) {
    return usage_error("measuring by KL divergence needs a calibration text (--calibration-text)");
  }
  auto c = std::make_unique<Calibration>();
  ModelOptions model_options;
  model_options.threads = context.threads;
  QUANT_ASSIGN_OR_RETURN(c->model, Model::open(context.model, model_options));
  const Model& model = *c->model;
  QUANT_ASSIGN_OR_RETURN(EvalText text, read_eval_text(*context.model, context.calibration_text));
  c->n_vocab = model.hparams().n_vocab;
  c->n_ctx = calibration_context(options_, model.hparams());
  if (c->n_ctx < 8) return usage_error(fmt::format("calibration context {} is too small (at least 8)", c->n_ctx));
  if (int64_t(text.tokens.size()) < 2 * c->n_ctx) {
    return Error(impossible(fmt::format("the calibration text is too short to measure: {} tokens, and a context of {} "
                                        "needs at least {} (two chunks)",
                                        text.tokens.size(), c->n_ctx, 2 * c->n_ctx)))
        .in_file(context.calibration_text);
  }
  c->n_chunk = std::min<int64_t>(int64_t(text.tokens.size()) / c->n_ctx,
                                 std::max<int64_t>(2, options_.max_tokens / c->n_ctx));
  c->first = c->n_ctx / 2;
  c->scored = c->n_ctx - 1 - c->first;
  c->input.assign(text.tokens.begin(), text.tokens.begin() + c->n_chunk * c->n_ctx);
  for (int64_t s = 0; s < c->n_chunk; ++s) {
    if (text.add_bos) c->input[size_t(s * c->n_ctx)] = text.bos;  // as llama-perplexity puts BOS in each chunk
    for (int64_t i = 0; i < c->scored; ++i) {
      c->targets.push_back(text.tokens[size_t(s * c->n_ctx + c->first + i + 1)]);
    }
  }
  QUANT_ASSIGN_OR_RETURN(c->embedded, model.embed(c->input, c->n_chunk, c->n_ctx, c->first));
  HiddenStates final_states = c->embedded;
  QUANT_TRY(model.run_layers(final_states, int(model.hparams().n_layer)));
  // The base's answers, stored as llama-perplexity stores them in a base-logits file.
  const int64_t per_seq = c->n_ctx - c->first;
  const int64_t row_values = kl_row_values(c->n_vocab);
  c->base_rows.resize(size_t(c->n_chunk * c->scored * row_values));
  std::vector<float> logits(size_t(per_seq * c->n_vocab));
  for (int64_t s = 0; s < c->n_chunk; ++s) {
    QUANT_TRY(model.logits(final_states, s * per_seq, per_seq, logits.data()));
    for (int64_t i = 0; i < c->scored; ++i) {
      const int64_t row = s * c->scored + i;
      compress_log_probs(logits.data() + size_t(i * c->n_vocab), c->n_vocab, c->targets[size_t(row)],
                         c->base_rows.data() + size_t(row * row_values));
    }
  }
  calibration_ = std::move(c);
  calibration_->floor = 0;
  QUANT_ASSIGN_OR_RETURN(calibration_->floor, kld(model, final_states, {}));
  return Status::success();
}

Result<double> KldMeasurer::kld_with(std::span<const WeightOverride> overrides, double* same_top) const {
  const Calibration& c = *calibration_;
  EvalHooks hooks;
  hooks.overrides = overrides;
  const bool embedding = std::any_of(overrides.begin(), overrides.end(),
                                     [](const WeightOverride& o) { return o.name == "token_embd.weight"; });
  HiddenStates states;
  if (embedding) {
    QUANT_ASSIGN_OR_RETURN(states, c.model->embed(c.input, c.n_chunk, c.n_ctx, c.first, hooks));
  } else {
    states = c.embedded;
  }
  QUANT_TRY(c.model->run_layers(states, int(c.model->hparams().n_layer), hooks));
  return kld(*c.model, states, hooks, same_top);
}

namespace {

// One forward pass to make: a tensor at a reference type.
struct Job {
  size_t tensor;  // index into the context's tensors
  TypeId type;
  double kld = 0;
};

// The reference types of one tensor: the coarse one (a q8_K-floor type of relative error nearest kReferenceError,
// any quantized type when the rows fit none), q6_K and q8_0 when they are candidates.
std::vector<TypeId> reference_types(const MeasureTensor& tensor, const TensorSensitivity& errors) {
  std::vector<TypeId> references;
  std::optional<TypeId> coarse;
  double best = 1e300;
  for (const bool strict : {true, false}) {
    for (const TypeCost& entry : errors.costs) {
      if (entry.type == tensor.tensor->type || entry.cost <= 0 || !format_of(entry.type).quantized) continue;
      if (strict && floor_of(entry.type) != Floor::q8_K) continue;
      const double distance = std::fabs(std::log(entry.cost / kReferenceError));
      if (distance < best) best = distance, coarse = entry.type;
    }
    if (coarse) break;
  }
  if (coarse) references.push_back(*coarse);
  for (TypeId fine : {TypeId::q6_K, TypeId::q8_0}) {
    if (fine != coarse && errors.cost_of(fine)) references.push_back(fine);
  }
  return references;
}

// Fits s and the floors from a tensor's reference passes and prices every candidate.
TensorSensitivity fit(const MeasureTensor& tensor, const TensorSensitivity& errors, const std::vector<Job>& jobs) {
  std::map<TypeId, double> measured;
  for (const Job& job : jobs) measured[job.type] = job.kld;
  const TypeId coarse = jobs.front().type;
  const double e_coarse = *errors.cost_of(coarse);
  double slope = measured[coarse] / e_coarse;
  double floor_k = 0, floor_0 = 0;
  if (const auto e = errors.cost_of(TypeId::q6_K); e && measured.count(TypeId::q6_K) && coarse != TypeId::q6_K &&
                                                     e_coarse > *e) {
    const double two_point = (measured[coarse] - measured[TypeId::q6_K]) / (e_coarse - *e);
    if (two_point > 0) slope = two_point;
    floor_k = std::max(0.0, measured[TypeId::q6_K] - slope * *e);
  }
  if (const auto e = errors.cost_of(TypeId::q8_0); e && measured.count(TypeId::q8_0)) {
    floor_0 = std::max(0.0, measured[TypeId::q8_0] - slope * *e);
  }
  if (floor_of(coarse) == Floor::q8_K && floor_k == 0) floor_k = std::max(0.0, measured[coarse] - slope * e_coarse);
  TensorSensitivity priced;
  priced.name = errors.name;
  for (const TypeCost& entry : errors.costs) {
    double cost = 0;
    if (entry.type != tensor.tensor->type) {
      const Floor floor = floor_of(entry.type);
      cost = slope * entry.cost + (floor == Floor::q8_K ? floor_k : floor == Floor::q8_0 ? floor_0 : 0.0);
    }
    priced.costs.push_back({entry.type, cost});
  }
  return priced;
}

std::span<const float> importance_of(const MeasureTensor& tensor) {
  if (tensor.importance == nullptr) return {};
  return {tensor.importance, size_t(tensor.tensor->row_length())};
}

}  // namespace

Result<SensitivityTable> KldMeasurer::measure(const MeasureContext& context) {
  const auto started = std::chrono::steady_clock::now();
  // 1. The unquantized model's answers (a text too short is refused before anything else), then the weighted error
  //    of every candidate (its own progress).
  QUANT_TRY(prepare(context));
  QUANT_ASSIGN_OR_RETURN(const SensitivityTable errors, proxy_->measure(context));
  const Calibration& c = *calibration_;
  const Model& model = *c.model;
  const int n_layer = int(model.hparams().n_layer);

  // 2. The passes: per layer from that layer's input, the output head from the last states, the rest whole.
  std::vector<std::vector<Job>> jobs(context.tensors.size());
  std::map<int, std::vector<std::pair<size_t, size_t>>> by_layer;  // layer -> (tensor, job) ; -1: whole model
  std::vector<std::pair<size_t, size_t>> head;
  size_t total = 0;
  for (size_t k = 0; k < context.tensors.size(); ++k) {
    const MeasureTensor& tensor = context.tensors[k];
    for (TypeId type : reference_types(tensor, errors.tensors[k])) jobs[k].push_back({k, type, 0});
    const std::string& name = tensor.tensor->name;
    const std::optional<int> block = plan_detail::block_number(name);
    for (size_t j = 0; j < jobs[k].size(); ++j, ++total) {
      if (block && *block >= 0 && *block < n_layer) {
        by_layer[*block].push_back({k, j});
      } else if (name == "output.weight") {
        head.push_back({k, j});
      } else {
        by_layer[-1].push_back({k, j});
      }
    }
  }
  size_t done = 0;
  auto run_job = [&](size_t k, size_t j, auto&& evaluate) -> Status {
    if (context.cancel != nullptr && context.cancel->load()) return Error(ErrorKind::interrupted, "interrupted");
    const MeasureTensor& tensor = context.tensors[k];
    Job& job = jobs[k][j];
    QUANT_ASSIGN_OR_RETURN(WeightOverride override,
                           model.quantized_override(tensor.tensor->name, job.type, importance_of(tensor)));
    QUANT_ASSIGN_OR_RETURN(job.kld, evaluate(override));
    if (context.progress) context.progress(++done, total, "KL divergence: " + tensor.tensor->name);
    return Status::success();
  };
  for (const auto& [k, j] : by_layer[-1]) {
    QUANT_TRY(run_job(k, j, [&](const WeightOverride& o) { return kld_with(std::span(&o, 1)); }));
  }
  HiddenStates running = c.embedded;
  for (int layer = 0; layer < n_layer; ++layer) {
    for (const auto& [k, j] : by_layer[layer]) {
      // The rest of the model from this layer on, with the one override.
      auto from_here = [&](const WeightOverride& o) -> Result<double> {
        EvalHooks hooks;
        hooks.overrides = std::span(&o, 1);
        HiddenStates states = running;
        QUANT_TRY(model.run_layers(states, n_layer, hooks));
        return kld(model, states, {});
      };
      QUANT_TRY(run_job(k, j, from_here));
    }
    QUANT_TRY(model.run_layers(running, layer + 1));
  }
  for (const auto& [k, j] : head) {
    QUANT_TRY(run_job(k, j, [&](const WeightOverride& o) -> Result<double> {
      EvalHooks hooks;
      hooks.overrides = std::span(&o, 1);
      return kld(model, running, hooks);
    }));
  }

  // 3. Every candidate priced from its tensor's passes; a tensor with no quantized candidate (rows no block fits)
  //    gets the median slope of the others for its float types.
  SensitivityTable table;
  table.unit = unit();
  std::vector<double> slopes;
  for (size_t k = 0; k < context.tensors.size(); ++k) {
    table.tensors.push_back(errors.tensors[k]);
    if (jobs[k].empty()) continue;
    table.tensors[k] = fit(context.tensors[k], errors.tensors[k], jobs[k]);
    const double e = *errors.tensors[k].cost_of(jobs[k].front().type);
    if (e > 0) slopes.push_back(jobs[k].front().kld / e);
  }
  std::sort(slopes.begin(), slopes.end());
  const double median_slope = slopes.empty() ? 1.0 : slopes[slopes.size() / 2];
  for (size_t k = 0; k < context.tensors.size(); ++k) {
    if (!jobs[k].empty()) continue;
    for (TypeCost& entry : table.tensors[k].costs) {
      entry.cost = entry.type == context.tensors[k].tensor->type ? 0.0 : median_slope * entry.cost;
    }
  }
  table.seconds = seconds_since(started);
  return table;
}

Result<std::optional<SensitivityMeasurer::MixScore>> KldMeasurer::measure_mix(const MeasureContext& mix) {
  QUANT_TRY(prepare(mix));
  std::vector<WeightOverride> overrides;
  for (const MeasureTensor& tensor : mix.tensors) {
    if (tensor.types.empty() || tensor.types.front() == tensor.tensor->type) continue;
    QUANT_ASSIGN_OR_RETURN(WeightOverride override,
                           calibration_->model->quantized_override(tensor.tensor->name, tensor.types.front(),
                                                                   importance_of(tensor)));
    overrides.push_back(std::move(override));
  }
  MixScore score;
  QUANT_ASSIGN_OR_RETURN(score.cost, kld_with(overrides, &score.same_top));
  return std::optional<MixScore>(score);
}

}  // namespace quant::automix_internal

namespace quant {

std::unique_ptr<SensitivityMeasurer> make_kld_measurer(const KldMeasurerOptions& options) {
  return std::make_unique<automix_internal::KldMeasurer>(options);
}

}  // namespace quant
