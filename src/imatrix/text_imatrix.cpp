// Importance matrices from calibration text: llama-imatrix's compute_imatrix (tools/imatrix/imatrix.cpp at
// 34af94c) on our forward pass. The text is tokenized once and cut into chunks; groups of chunks are evaluated
// together as llama-imatrix decodes them, and the matmul inputs the forward pass reports are added to the sums
// ubatch by ubatch (decode_plan.h), so the collector's 16-token rule and its summation order are llama.cpp's.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "eval/scoring.h"
#include "imatrix/decode_plan.h"
#include "quant/imatrix.h"
#include "quant/model.h"
#include "quant/text_dataset.h"
#include "quant/tokenizer.h"

namespace quant {
namespace {

using Clock = std::chrono::steady_clock;

// Logits computed per Model::logits call, so the buffer stays small for large vocabularies.
constexpr uint64_t kLogitsBufferBytes = uint64_t(256) << 20;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool collects(std::string_view weight, bool process_output) {
  // llama-imatrix's filter on the weight's name: every blk.* matmul, output.weight on request. A tied output
  // head multiplies by token_embd.weight and is never collected, as in llama-imatrix.
  return weight.substr(0, 4) == "blk." || (process_output && weight == "output.weight");
}

// The sums of one run, with the group being evaluated and what the collector does with each matmul input.
class TextCollector {
 public:
  TextCollector(ImatrixAccumulator& accumulator, const imatrix::DecodePlan& plan, bool process_output)
      : accumulator_(accumulator), plan_(plan), process_output_(process_output) {}

  void begin_group(int64_t seqs) {
    ubatches_ = imatrix::group_ubatches(plan_, seqs);
    seqs_ = seqs;
    output_rows_.clear();
  }

  // A matmul input of the group's layers: every row of the group, chunk after chunk.
  Status on_matmul_input(const MatmulInput& input) {
    if (!collects(input.weight, process_output_)) return Status::success();
    if (!input.expert_ids.empty()) {
      // Mixture-of-experts inputs are taken as they come, as llama-imatrix takes GGML_OP_MUL_MAT_ID.
      const int64_t used = int64_t(input.expert_ids.size()) / std::max<int64_t>(1, tokens_in_group());
      return accumulator_.add_expert_batch(std::string(input.weight), expert_count(input), input.cols,
                                           tokens_in_group(), input.rows / tokens_in_group(), input.values, used,
                                           input.expert_ids.data());
    }
    if (input.rows != tokens_in_group()) {
      return Error(impossible(fmt::format("the forward pass gave {} rows to '{}', expected {}", input.rows,
                                          input.weight, tokens_in_group())));
    }
    return add_ubatches(std::string(input.weight), input.values, input.cols);
  }

  // The output head's input rows arrive in pieces (logits are computed a few rows at a time): keep them, and
  // add them ubatch by ubatch once the group is done.
  void on_output_input(const MatmulInput& input, int64_t first_row) {
    if (!collects(input.weight, process_output_)) return;
    output_cols_ = input.cols;
    const size_t size = size_t(tokens_in_group() * input.cols);
    if (output_rows_.size() < size) output_rows_.resize(size);
    std::memcpy(output_rows_.data() + first_row * input.cols, input.values, size_t(input.rows * input.cols) * sizeof(float));
  }

  Status end_group() {
    if (output_rows_.empty()) return Status::success();
    return add_ubatches("output.weight", output_rows_.data(), output_cols_);
  }

  int64_t tokens_in_group() const { return seqs_ * plan_.n_ctx; }
  int64_t batches_read() const { return batches_read_; }
  int64_t batches_skipped() const { return batches_skipped_; }

  void set_expert_counts(std::function<int64_t(std::string_view)> count) { expert_count_ = std::move(count); }

 private:
  int64_t expert_count(const MatmulInput& input) const { return expert_count_ ? expert_count_(input.weight) : 1; }

  // Rows of the group are sequence-major; a ubatch takes positions [begin, end) of each sequence in turn.
  Status add_ubatches(const std::string& weight, const float* values, int64_t cols) {
    std::vector<ImatrixAccumulator::RowRun> runs;
    for (const imatrix::Ubatch& ubatch : ubatches_) {
      runs.clear();
      for (int64_t s = 0; s < ubatch.seqs; ++s) {
        runs.push_back({values + (s * plan_.n_ctx + ubatch.begin) * cols, ubatch.end - ubatch.begin});
      }
      auto added = accumulator_.add_batch(weight, cols, runs);
      if (!added) return std::move(added).error();
      ++batches_read_;
      if (!*added) ++batches_skipped_;
    }
    return Status::success();
  }

  ImatrixAccumulator& accumulator_;
  const imatrix::DecodePlan& plan_;
  bool process_output_;
  std::vector<imatrix::Ubatch> ubatches_;
  int64_t seqs_ = 0;
  std::vector<float> output_rows_;
  int64_t output_cols_ = 0;
  int64_t batches_read_ = 0, batches_skipped_ = 0;
  std::function<int64_t(std::string_view)> expert_count_;
};

// llama-imatrix's perplexity: the second half of each chunk, -log p of the next token (process_logits).
struct RunningPerplexity {
  eval::PerplexitySums sums;
  std::vector<double> after_chunk;
  double current() const { return sums.count > 0 ? std::exp(sums.nll / double(sums.count)) : 0.0; }
};

// Reads the text and the in-files and checks everything a run needs before the model is evaluated.
struct PreparedRun {
  CalibrationText text;
  std::vector<TokenId> tokens;
  TokenId bos = kNoToken;
  bool add_bos = false;
  int64_t n_chunk = 0;
  double tokenize_seconds = 0;
};

Result<PreparedRun> prepare_run(const Model& model, const TextImatrixOptions& options, ImatrixCollection& collection) {
  const ModelSource& source = model.source();
  const ModelHyperparameters& hp = model.hparams();
  if (options.n_ctx < 1) return usage_error(fmt::format("context {} is too small: it must be at least 1", options.n_ctx));
  if (options.max_chunks == 0 || options.max_chunks < -1) {
    return usage_error(fmt::format("chunk limit {}: give at least 1, or -1 for every chunk", options.max_chunks));
  }
  // llama-imatrix only warns here; a context the model was not trained for measures activations it will never
  // see in use, so we refuse it.
  if (hp.n_ctx_train > 0 && options.n_ctx > hp.n_ctx_train) {
    return Error(impossible(fmt::format("a context of {} tokens is beyond the {} the model was trained on",
                                        options.n_ctx, hp.n_ctx_train)))
        .in_file(source.path());
  }
  if (options.text_path.empty()) return usage_error("no calibration text given");

  PreparedRun run;
  QUANT_ASSIGN_OR_RETURN(run.text, read_calibration_text(options.text_path));

  // --in-file: read and checked against this model before anything is computed (llama-imatrix would stop with
  // "inconsistent size" halfway through, or keep entries of another model).
  QUANT_TRY(merge_imatrix_files(collection, options.in_files, options.n_ctx, &source));

  const auto started = Clock::now();
  QUANT_ASSIGN_OR_RETURN(Vocabulary vocabulary, load_vocabulary(source.metadata(), source.path()));
  QUANT_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::create(std::move(vocabulary)));
  if (tokenizer.add_eos()) {
    // llama-imatrix asserts this away (GGML_ASSERT(!llama_vocab_get_add_eos(vocab))).
    return Error(impossible("the vocabulary adds an end-of-sequence token to every text, which llama-imatrix "
                            "does not support"))
        .in_file(source.path());
  }
  QUANT_ASSIGN_OR_RETURN(run.tokens, tokenizer.tokenize(run.text.text, /*add_special=*/true, options.parse_special));
  run.tokenize_seconds = seconds_since(started);
  run.add_bos = tokenizer.add_bos();
  run.bos = tokenizer.bos();
  if (int64_t(run.tokens.size()) < 2 * options.n_ctx) {
    return Error(impossible(fmt::format("the text has {} tokens; a context of {} needs at least {} (two chunks, as "
                                        "llama-imatrix requires)",
                                        run.tokens.size(), options.n_ctx, 2 * options.n_ctx)))
        .in_file(options.text_path);
  }
  run.n_chunk = int64_t(run.tokens.size()) / options.n_ctx;
  if (options.max_chunks > 0) run.n_chunk = std::min(run.n_chunk, options.max_chunks);
  return run;
}

// Computes the logits the run needs for the group's rows and hands the scored ones to the perplexity; the output
// head's inputs go to the collector.
Status group_logits(const Model& model, const HiddenStates& states, int64_t group_first_chunk,
                    std::span<const TokenId> tokens, const TextImatrixOptions& options, TextCollector& collector,
                    RunningPerplexity& perplexity, std::vector<float>& logits) {
  const int64_t n_ctx = options.n_ctx, seqs = states.n_seq(), n_vocab = model.hparams().n_vocab;
  const int64_t first = n_ctx / 2;           // llama-imatrix scores positions n_ctx/2 .. n_ctx-2
  const int64_t scored = n_ctx - 1 - first;  // (predicting the token after each)
  const bool want_ppl = options.compute_perplexity && scored > 0;
  if (!want_ppl && !options.process_output) return Status::success();
  const int64_t rows_per_call = std::max<int64_t>(1, int64_t(kLogitsBufferBytes / (uint64_t(n_vocab) * sizeof(float))));
  for (int64_t s = 0; s < seqs; ++s) {
    // The whole sequence when the head's inputs are collected, else only the rows that are scored.
    const int64_t seq_begin = options.process_output ? 0 : first;
    const int64_t seq_end = options.process_output ? n_ctx : first + scored;
    for (int64_t row = seq_begin; row < seq_end; row += rows_per_call) {
      const int64_t n_rows = std::min(rows_per_call, seq_end - row);
      const int64_t first_row = s * n_ctx + row;
      if (logits.size() < size_t(n_rows * n_vocab)) logits.resize(size_t(n_rows * n_vocab));
      EvalHooks hooks;
      hooks.on_matmul_input = [&](const MatmulInput& input) { collector.on_output_input(input, first_row); };
      QUANT_TRY(model.logits(states, first_row, n_rows, logits.data(), hooks));
      if (!want_ppl) continue;
      const int64_t chunk = group_first_chunk + s;
      for (int64_t r = std::max(row, first); r < std::min(row + n_rows, first + scored); ++r) {
        const TokenId target = tokens[size_t(chunk * n_ctx + r + 1)];
        perplexity.sums.add(eval::token_nll(logits.data() + (r - row) * n_vocab, n_vocab, target));
      }
    }
    if (want_ppl) perplexity.after_chunk.push_back(perplexity.current());
  }
  return Status::success();
}

}  // namespace

Status check_imatrix_matches_model(const ImportanceMatrix& imatrix, const std::string& imatrix_path,
                                   const ModelSource& model) {
  for (const auto& [name, entry] : imatrix.entries) {
    auto fail = [&, &entry_name = name](std::string reason) {
      return Error(invalid_input(reason + fmt::format(": {} was made for another model than {}", imatrix_path,
                                                      model.path())))
          .in_file(imatrix_path)
          .in_tensor(entry_name);
    };
    const TensorInfo* tensor = model.find_tensor(name);
    if (tensor == nullptr || tensor->shape.size() < 2) return fail("no weight of this name in the model");
    const int64_t experts = tensor->shape.size() > 2 ? tensor->shape[2] : 1;
    const bool shaped = imatrix.format == ImatrixFormat::dat ? int64_t(entry.stored_sums.size()) == tensor->shape[0] * experts
                                                             : entry.n_per_row == tensor->shape[0] &&
                                                                   (entry.n_expert == experts || entry.n_expert == 1);
    if (!shaped) {
      return fail(fmt::format("{} values ({} x {} experts) for a weight of {} columns x {} experts",
                              entry.stored_sums.size(), entry.n_per_row, entry.n_expert, tensor->shape[0], experts));
    }
  }
  return Status::success();
}

Result<ImatrixCollection> imatrix_from_text(const Model& model, const TextImatrixOptions& options) {
  ImatrixCollection collection;
  QUANT_ASSIGN_OR_RETURN(imatrix::DecodePlan plan,
                         imatrix::decode_plan(options.n_ctx, options.batch_tokens, options.ubatch_tokens));
  QUANT_ASSIGN_OR_RETURN(PreparedRun run, prepare_run(model, options, collection));

  TextCollector collector(collection.accumulator, plan, options.process_output);
  collector.set_expert_counts([&model](std::string_view weight) -> int64_t {
    const TensorInfo* tensor = model.source().find_tensor(weight);
    return tensor != nullptr && tensor->shape.size() > 2 ? tensor->shape[2] : 1;
  });
  RunningPerplexity perplexity;
  std::vector<int32_t> input;
  std::vector<float> logits;
  Status hook_status;
  EvalHooks hooks;
  hooks.on_matmul_input = [&](const MatmulInput& in) {
    if (hook_status) hook_status = collector.on_matmul_input(in);
  };

  const int n_layer = int(model.hparams().n_layer);
  const auto started = Clock::now();
  for (int64_t chunk = 0; chunk < run.n_chunk; chunk += plan.n_seq) {
    if (options.cancel != nullptr && options.cancel->load()) return Error(ErrorKind::interrupted, "interrupted");
    const int64_t seqs = std::min(plan.n_seq, run.n_chunk - chunk);
    const auto begin = run.tokens.begin() + chunk * options.n_ctx;
    input.assign(begin, begin + seqs * options.n_ctx);
    // llama-imatrix puts BOS in place of each chunk's first token.
    if (run.add_bos) {
      for (int64_t s = 0; s < seqs; ++s) input[size_t(s * options.n_ctx)] = run.bos;
    }
    collector.begin_group(seqs);
    // Every row is an output (llama-imatrix asks logits for all tokens), so the last layer keeps them all.
    QUANT_ASSIGN_OR_RETURN(HiddenStates states, model.embed(input, seqs, options.n_ctx, /*first_output=*/0));
    QUANT_TRY(model.run_layers(states, n_layer, hooks));
    QUANT_TRY(hook_status);
    QUANT_TRY(group_logits(model, states, chunk, run.tokens, options, collector, perplexity, logits));
    QUANT_TRY(collector.end_group());
    if (options.progress) {
      TextImatrixProgress progress;
      progress.chunks_done = chunk + seqs;
      progress.chunks_total = run.n_chunk;
      progress.tokens_done = (chunk + seqs) * options.n_ctx;
      progress.seconds = seconds_since(started);
      if (!perplexity.after_chunk.empty()) progress.perplexity = perplexity.after_chunk.back();
      options.progress(progress);
    }
  }

  TextImatrixStats stats;
  stats.text = options.text_path;
  stats.text_format = std::string(text_format_name(run.text.format));
  stats.documents = run.text.documents;
  stats.text_tokens = int64_t(run.tokens.size());
  stats.n_ctx = options.n_ctx;
  stats.chunks = run.n_chunk;
  stats.tokens_evaluated = run.n_chunk * options.n_ctx;
  stats.tokenize_seconds = run.tokenize_seconds;
  stats.seconds = seconds_since(started);
  stats.running_perplexity = perplexity.after_chunk;
  if (perplexity.sums.count > 0) {
    const PerplexityStats final_estimate = perplexity.sums.finish();
    stats.perplexity = final_estimate.value;
    stats.perplexity_uncertainty = final_estimate.uncertainty;
  }
  collection.text = std::move(stats);
  collection.batches_read = collector.batches_read();
  collection.batches_skipped = collector.batches_skipped();
  // llama-imatrix's save_imatrix: the merged files' datasets then the text; its chunk size; its last chunk, which
  // is the largest count over the chunk size.
  collection.metadata.datasets.push_back(options.text_path);
  collection.metadata.chunk_size = options.n_ctx;
  collection.metadata.chunk_count = collection.accumulator.max_count() / options.n_ctx;
  if (collection.accumulator.sums().empty()) {
    return impossible(fmt::format("no matmul input reached {} tokens in one batch: nothing to measure",
                                  ImatrixAccumulator::kMinTokens));
  }
  return collection;
}

Result<ImatrixCollection> imatrix_from_text(const ModelSource& source, const TextImatrixOptions& options) {
  ModelOptions model_options;
  model_options.threads = options.threads;
  // The model does not own the source: an aliasing pointer with no owner.
  QUANT_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                         Model::open(std::shared_ptr<const ModelSource>(std::shared_ptr<const ModelSource>(), &source),
                                     model_options));
  return imatrix_from_text(*model, options);
}

}  // namespace quant
