// The evaluation driver: chunks as llama-perplexity cuts them, models run a pass of several chunks at a time, each
// scored row handed to llama-perplexity's arithmetic (scoring.h).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/grow_buffer.h"
#include "eval/scoring.h"
#include "quant/eval.h"

namespace quant {
namespace {

// The context a text is cut into without a base file (options.n_ctx, else llama-perplexity's 512), when the text
// has the two chunks llama-perplexity requires.
Result<int64_t> text_context(size_t n_tokens, const EvalOptions& options) {
  const int64_t n_ctx = options.n_ctx != 0 ? options.n_ctx : 512;
  if (n_ctx < 3) return Error(usage_error(fmt::format("context {} is too small", n_ctx)));
  if (int64_t(n_tokens) < 2 * n_ctx) {
    Error error(impossible(fmt::format("the text has {} tokens; a context of {} needs at least {} (two chunks, as "
                                       "llama-perplexity requires)",
                                       n_tokens, n_ctx, 2 * n_ctx)));
    if (!options.text_path.empty()) error.in_file(options.text_path);
    return error;
  }
  return n_ctx;
}

// Logits computed per call of Model::logits, so the buffer stays small for large vocabularies.
constexpr uint64_t kLogitsBufferBytes = uint64_t(64) << 20;

struct Chunking {
  int64_t n_ctx = 0;
  int64_t n_chunk = 0;
  int64_t first = 0;   // first output position: n_ctx/2
  int64_t scored = 0;  // rows scored per chunk: n_ctx - 1 - first
  std::span<const int32_t> tokens;
};

// What a pass does with each scored row i of a chunk: score(chunk, i, logits) runs on the model's threads, one
// row per task, and writes only that row's results; fold(chunk, i) then adds them to the sums on the calling
// thread, row after row in order (so the sums are llama-perplexity's, in its order, however many threads run).
struct RowScoring {
  std::function<void(int64_t chunk, int64_t i, const float* logits)> score;
  std::function<void(int64_t chunk, int64_t i)> fold;
};

// Runs `model` on chunks [c0, c0 + n) and scores each scored row of each chunk.
Status run_chunks(const Model& model, const Chunking& chunking, int64_t c0, int64_t n, bool add_bos, int32_t bos,
                  GrowBuffer<float>& logits, const RowScoring& scoring) {
  const int64_t n_ctx = chunking.n_ctx;
  std::vector<int32_t> input(chunking.tokens.begin() + c0 * n_ctx, chunking.tokens.begin() + (c0 + n) * n_ctx);
  if (add_bos) {
    for (int64_t s = 0; s < n; ++s) input[size_t(s * n_ctx)] = bos;  // llama-perplexity: BOS first in each chunk
  }
  QUANT_ASSIGN_OR_RETURN(HiddenStates states, model.embed(input, n, n_ctx, chunking.first));
  QUANT_TRY(model.run_layers(states, int(model.hparams().n_layer)));
  const int64_t n_vocab = model.hparams().n_vocab;
  const int64_t per_seq = n_ctx - chunking.first;
  const int64_t seqs_per_call =
      std::max<int64_t>(1, int64_t(kLogitsBufferBytes / (uint64_t(per_seq) * uint64_t(n_vocab) * sizeof(float))));
  for (int64_t s0 = 0; s0 < n; s0 += seqs_per_call) {
    const int64_t seqs = std::min(seqs_per_call, n - s0);
    QUANT_TRY(model.logits(states, s0 * per_seq, seqs * per_seq, logits.at_least(size_t(seqs * per_seq * n_vocab))));
    model.parallel_for(seqs * chunking.scored, [&](int64_t row) {
      const int64_t s = row / chunking.scored, i = row % chunking.scored;
      scoring.score(c0 + s0 + s, i, logits.data() + size_t((s * per_seq + i) * n_vocab));
    });
    if (!scoring.fold) continue;
    for (int64_t s = 0; s < seqs; ++s) {
      for (int64_t i = 0; i < chunking.scored; ++i) scoring.fold(c0 + s0 + s, i);
    }
  }
  return Status::success();
}

}  // namespace

namespace {

// The evaluation of `models` against `base` (none, a file or a model): evaluate() with one model, or
// evaluate_against() with several.
Result<std::vector<EvalResult>> evaluate_models(std::span<const Model* const> models, std::span<const int32_t> tokens,
                                                bool add_bos, int32_t bos, const EvalBase& base,
                                                const EvalOptions& options) {
  const int64_t n_vocab = models[0]->hparams().n_vocab;
  EvalResult common;
  Chunking chunking;
  if (base.file != nullptr) {
    const KlBaseHeader& header = base.file->header();
    common.base = base.file->path();
    if (header.n_vocab != n_vocab) {
      return Error(invalid_input(fmt::format("base logits are for a vocabulary of {} tokens; the model has {}",
                                             header.n_vocab, n_vocab)))
          .in_file(base.file->path())
          .at_offset(12);
    }
    if (options.n_ctx != 0 && options.n_ctx != int64_t(header.n_ctx)) {
      return Error(invalid_input(fmt::format("base logits were computed with a context of {}, not {}", header.n_ctx,
                                             options.n_ctx)))
          .in_file(base.file->path())
          .at_offset(8);
    }
    chunking.n_ctx = header.n_ctx;
    chunking.n_chunk = header.n_chunk;
    chunking.tokens = header.tokens;
    if (!tokens.empty()) {
      const auto mismatch = std::mismatch(header.tokens.begin(), header.tokens.end(), tokens.begin(), tokens.end());
      if (mismatch.first != header.tokens.end()) {
        const size_t at = size_t(mismatch.first - header.tokens.begin());
        return Error(invalid_input(fmt::format("the text's tokens differ from the ones the base logits were computed "
                                               "for, from token {} on", at)))
            .in_file(base.file->path())
            .at_offset(20 + 4 * uint64_t(at));
      }
    }
  } else {
    QUANT_ASSIGN_OR_RETURN(chunking.n_ctx, text_context(tokens.size(), options));
    chunking.n_chunk = int64_t(tokens.size()) / chunking.n_ctx;
    chunking.tokens = tokens;
  }
  for (const Model* model : models) {
    if (model->hparams().n_vocab != n_vocab) {
      return Error(invalid_input(fmt::format("the model has a vocabulary of {} tokens; the first has {}",
                                             model->hparams().n_vocab, n_vocab)))
          .in_file(model->source().path());
    }
  }
  if (base.model != nullptr) {
    common.base = base.model->source().path();
    if (base.model->hparams().n_vocab != n_vocab) {
      return Error(invalid_input(fmt::format("the base model has a vocabulary of {} tokens; the model has {}",
                                             base.model->hparams().n_vocab, n_vocab)))
          .in_file(base.model->source().path());
    }
  }
  if (options.max_chunks >= 0) chunking.n_chunk = std::min(chunking.n_chunk, options.max_chunks);
  if (chunking.n_chunk < 1) return Error(usage_error("no chunk to evaluate"));
  chunking.first = chunking.n_ctx / 2;
  chunking.scored = chunking.n_ctx - 1 - chunking.first;
  common.n_ctx = chunking.n_ctx;
  common.chunks = chunking.n_chunk;
  common.tokens_scored = chunking.n_chunk * chunking.scored;

  const bool has_base = base.file != nullptr || base.model != nullptr;
  std::optional<KlBaseWriter> writer;
  if (!options.save_kl_base.empty()) {
    OutputPolicy policy = options.save_policy;  // and every file of the models read (each shard, a folder's files)
    for (const Model* model : models) {
      for (std::string& file : model->source().files()) policy.inputs.push_back(std::move(file));
    }
    if (base.model != nullptr) {
      for (std::string& file : base.model->source().files()) policy.inputs.push_back(std::move(file));
    }
    QUANT_ASSIGN_OR_RETURN(writer, KlBaseWriter::create(options.save_kl_base, uint32_t(chunking.n_ctx),
                                                        int32_t(n_vocab),
                                                        chunking.tokens.first(size_t(chunking.n_chunk * chunking.n_ctx)),
                                                        policy));
  }

  const int64_t row_values = kl_row_values(n_vocab);
  const int64_t chunk_values = chunking.scored * row_values;
  const int64_t chunks_per_pass = std::max<int64_t>(1, options.tokens_per_pass / chunking.n_ctx);
  std::vector<eval::PerplexitySums> ppl(models.size());
  std::vector<eval::KlSums> kl(models.size());
  std::vector<double> seconds(models.size(), 0.0);
  double base_seconds = 0;
  std::vector<uint16_t> base_rows, chunk_rows;
  GrowBuffer<float> logits;
  // Per scored row of a pass: its NLL or its KL terms, between score() and fold().
  std::vector<double> row_nll;
  std::vector<eval::KlTerms> row_kl;
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  auto check_cancel = [&]() -> Status {
    if (options.cancel != nullptr && options.cancel->load()) return Error(ErrorKind::interrupted, "interrupted");
    return Status::success();
  };
  for (int64_t c0 = 0; c0 < chunking.n_chunk; c0 += chunks_per_pass) {
    const int64_t n = std::min(chunks_per_pass, chunking.n_chunk - c0);
    QUANT_TRY(check_cancel());
    auto target = [&](int64_t chunk, int64_t i) {
      return chunking.tokens[size_t(chunk * chunking.n_ctx + chunking.first + i + 1)];
    };
    auto slot = [&](int64_t chunk, int64_t i) { return size_t((chunk - c0) * chunking.scored + i); };
    row_nll.resize(size_t(n * chunking.scored));
    row_kl.resize(size_t(n * chunking.scored));
    if (has_base) {
      const auto base_started = Clock::now();
      base_rows.resize(size_t(n * chunk_values));
      if (base.file != nullptr) {
        for (int64_t c = 0; c < n; ++c) {
          QUANT_TRY(base.file->read_chunk(c0 + c, chunk_rows));
          std::copy(chunk_rows.begin(), chunk_rows.end(), base_rows.begin() + c * chunk_values);
        }
      } else {
        const RowScoring compress{[&](int64_t chunk, int64_t i, const float* l) {
                                    compress_log_probs(l, n_vocab, target(chunk, i),
                                                       base_rows.data() + (chunk - c0) * chunk_values + i * row_values);
                                  },
                                  nullptr};
        QUANT_TRY(run_chunks(*base.model, chunking, c0, n, add_bos, bos, logits, compress));
      }
      if (writer) QUANT_TRY(writer->write_chunk(base_rows));
      base_seconds += since(base_started);
      for (size_t m = 0; m < models.size(); ++m) {
        QUANT_TRY(check_cancel());
        const auto started = Clock::now();
        const RowScoring against_base{
            [&](int64_t chunk, int64_t i, const float* l) {
              row_kl[slot(chunk, i)] = eval::kl_terms(
                  l, n_vocab, base_rows.data() + (chunk - c0) * chunk_values + i * row_values, target(chunk, i));
            },
            [&](int64_t chunk, int64_t i) { kl[m].add(row_kl[slot(chunk, i)]); }};
        QUANT_TRY(run_chunks(*models[m], chunking, c0, n, add_bos, bos, logits, against_base));
        seconds[m] += since(started);
      }
    } else if (writer) {
      // llama-perplexity --kl-divergence-base: the model is the base; its NLL comes from the compressing
      // log_softmax (a float log of the sum), which is what it reports as the perplexity then.
      const auto started = Clock::now();
      chunk_rows.resize(size_t(n * chunk_values));
      const RowScoring compress{[&](int64_t chunk, int64_t i, const float* l) {
                                  row_nll[slot(chunk, i)] = compress_log_probs(
                                      l, n_vocab, target(chunk, i),
                                      chunk_rows.data() + (chunk - c0) * chunk_values + i * row_values);
                                },
                                [&](int64_t chunk, int64_t i) { ppl[0].add(row_nll[slot(chunk, i)]); }};
      QUANT_TRY(run_chunks(*models[0], chunking, c0, n, add_bos, bos, logits, compress));
      QUANT_TRY(writer->write_chunk(chunk_rows));
      seconds[0] += since(started);
    } else {
      const auto started = Clock::now();
      const RowScoring perplexity{
          [&](int64_t chunk, int64_t i, const float* l) {
            row_nll[slot(chunk, i)] = eval::token_nll(l, n_vocab, target(chunk, i));
          },
          [&](int64_t chunk, int64_t i) { ppl[0].add(row_nll[slot(chunk, i)]); }};
      QUANT_TRY(run_chunks(*models[0], chunking, c0, n, add_bos, bos, logits, perplexity));
      seconds[0] += since(started);
    }
    if (options.progress) options.progress(c0 + n, chunking.n_chunk);
  }
  // A signal that came during the last pass still means no base-logits file.
  QUANT_TRY(check_cancel());
  if (writer) QUANT_TRY(writer->commit());

  std::vector<EvalResult> results;
  for (size_t m = 0; m < models.size(); ++m) {
    EvalResult result = common;
    result.model = models[m]->source().path();
    // A base model's time is shared by the models scored against it.
    result.seconds = seconds[m] + base_seconds / double(models.size());
    result.tokens_evaluated = chunking.n_chunk * chunking.n_ctx * (base.model != nullptr ? 2 : 1);
    if (has_base) {
      result.perplexity = kl[m].perplexity();
      result.kl_divergence = kl[m].finish();
    } else {
      result.perplexity = ppl[m].finish();
    }
    results.push_back(std::move(result));
  }
  return results;
}

}  // namespace

Result<EvalResult> evaluate(const Model& model, std::span<const int32_t> tokens, bool add_bos, int32_t bos,
                            const EvalBase& base, const EvalOptions& options) {
  const Model* models[] = {&model};
  QUANT_ASSIGN_OR_RETURN(std::vector<EvalResult> results, evaluate_models(models, tokens, add_bos, bos, base, options));
  return std::move(results[0]);
}

Result<std::vector<EvalResult>> evaluate_against(const Model& base, std::span<const Model* const> models,
                                                 std::span<const int32_t> tokens, bool add_bos, int32_t bos,
                                                 const EvalOptions& options) {
  if (models.empty()) return std::vector<EvalResult>();
  EvalBase with;
  with.model = &base;
  return evaluate_models(models, tokens, add_bos, bos, with, options);
}

Result<EvalText> prepare_eval_text(const std::string& input, const EvalOptions& options) {
  QUANT_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model(input));
  QUANT_ASSIGN_OR_RETURN(EvalText eval_text, read_eval_text(*source, options.text_path));
  QUANT_TRY(text_context(eval_text.tokens.size(), options));
  return eval_text;
}

Status score_conversions(const std::string& input, std::span<ConversionReport> reports, const EvalText& text,
                         const EvalOptions& options, int threads) {
  ModelOptions model_options;
  model_options.threads = threads;
  auto open = [&](const std::string& path) -> Result<std::unique_ptr<Model>> {
    QUANT_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model(path));
    return Model::open(std::shared_ptr<const ModelSource>(std::move(source)), model_options);
  };
  QUANT_ASSIGN_OR_RETURN(std::unique_ptr<Model> base, open(input));
  std::vector<std::unique_ptr<Model>> outputs;
  std::vector<const Model*> models;
  for (const ConversionReport& report : reports) {
    if (report.dry_run) continue;
    QUANT_ASSIGN_OR_RETURN(std::unique_ptr<Model> output, open(report.output));
    models.push_back(output.get());
    outputs.push_back(std::move(output));
  }
  QUANT_ASSIGN_OR_RETURN(std::vector<EvalResult> results,
                         evaluate_against(*base, models, text.tokens, text.add_bos, text.bos, options));
  size_t next = 0;
  for (ConversionReport& report : reports) {
    if (report.dry_run) continue;
    const EvalResult& r = results[next++];
    const KlDivergenceStats& k = *r.kl_divergence;
    ModelQuality q;
    q.text = options.text_path;
    q.n_ctx = r.n_ctx;
    q.chunks = r.chunks;
    q.tokens_scored = r.tokens_scored;
    q.perplexity = r.perplexity.value;
    q.perplexity_uncertainty = r.perplexity.uncertainty;
    q.base_perplexity = k.base_perplexity.value;
    q.base_perplexity_uncertainty = k.base_perplexity.uncertainty;
    q.kld_mean = k.mean;
    q.kld_uncertainty = k.uncertainty;
    q.kld_median = k.kld.median;
    q.kld_p99 = k.kld.p99;
    q.kld_max = k.kld.max;
    q.same_top = k.same_top;
    q.same_top_uncertainty = k.same_top_uncertainty;
    q.seconds = r.seconds;
    report.quality = q;
  }
  return Status::success();
}

}  // namespace quant
