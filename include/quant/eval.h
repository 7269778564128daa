// Scoring a model as llama.cpp's llama-perplexity scores it (tools/perplexity/perplexity.cpp at 34af94c).
//
// The text's tokens (BOS first when the vocabulary adds one) are cut into chunks of n_ctx tokens; at least two
// chunks are needed. Each chunk is evaluated on its own with BOS put in place of its first token, and only its
// second half is scored: the logits at positions n_ctx/2 .. n_ctx-2 predict the tokens after them, n_ctx-1-n_ctx/2
// tokens per chunk. Every statistic uses llama-perplexity's formulas and float/double arithmetic:
//   - perplexity exp(mean NLL) ± ppl·sqrt(var(NLL)/(count-1));
//   - against a base: the base's log-probabilities as llama-perplexity stores them in a base-logits file (16-bit,
//     scale and minimum per token, values under max-16 dropped), KL divergence mean ± uncertainty, max,
//     percentiles, median, min; Δp = p(token) - p_base(token) percentiles and RMS; same top token.
// A base given as a model is scored through the same 16-bit compression a base-logits file applies, so both paths
// give llama-perplexity's numbers for the same base logits.
//
// The base-logits file (`llama-perplexity --kl-divergence-base FILE`, little-endian):
//   "_logits_" | u32 n_ctx | i32 n_vocab | i32 n_chunk | i32 tokens[n_chunk·n_ctx] (as tokenized, before BOS is put
//   in each chunk) | for each chunk, n_ctx-1-n_ctx/2 rows of nv = 2·((n_vocab+1)/2)+4 u16: f32 scale, f32 minimum
//   log-probability, then n_vocab u16 q with log p = scale·q + minimum (a padding u16 when n_vocab is odd).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "quant/atomic_file.h"
#include "quant/error.h"
#include "quant/model.h"
#include "quant/report.h"

namespace quant {

// u16 values per stored row of the base-logits file.
int64_t kl_row_values(int64_t n_vocab);

// Compresses one row of logits as llama-perplexity writes it (`log_softmax(n_vocab, logits, log_prob, tok)`) into
// row[kl_row_values(n_vocab)]; returns the NLL of `token` as that function computes it.
double compress_log_probs(const float* logits, int64_t n_vocab, int32_t token, uint16_t* row);

// The header of a base-logits file and where its rows start.
struct KlBaseHeader {
  uint32_t n_ctx = 0;
  int32_t n_vocab = 0;
  int32_t n_chunk = 0;
  std::vector<int32_t> tokens;  // n_chunk · n_ctx
  uint64_t rows_offset = 0;     // byte offset of chunk 0's rows
  int64_t rows_per_chunk() const { return int64_t(n_ctx) - 1 - int64_t(n_ctx / 2); }
};

// Reads a base-logits file chunk by chunk. Every error names the file and the byte offset: a wrong magic, a
// header llama-perplexity would not have written (n_ctx < 4, n_vocab < 1, n_chunk < 1), a file shorter than its
// header says (ErrorKind::invalid_input).
class KlBaseReader {
 public:
  static Result<KlBaseReader> open(const std::string& path);
  KlBaseReader(KlBaseReader&&) noexcept;
  KlBaseReader& operator=(KlBaseReader&&) noexcept;
  ~KlBaseReader();

  const KlBaseHeader& header() const { return header_; }
  const std::string& path() const { return path_; }
  // The rows of chunk `chunk` (rows_per_chunk() · kl_row_values(n_vocab) u16).
  Status read_chunk(int64_t chunk, std::vector<uint16_t>& rows) const;

 private:
  KlBaseReader() = default;
  std::string path_;
  int fd_ = -1;
  uint64_t file_size_ = 0;
  KlBaseHeader header_;
};

// Writes a base-logits file: the header at creation, then the chunks in order; commit() places the temporary file
// under `policy` (quant/atomic_file.h: an existing file only with `overwrite`, only a regular file, never one of
// the inputs). Nothing is left at `path` unless commit succeeds.
class KlBaseWriter {
 public:
  static Result<KlBaseWriter> create(const std::string& path, uint32_t n_ctx, int32_t n_vocab,
                                     std::span<const int32_t> tokens, const OutputPolicy& policy);

  Status write_chunk(std::span<const uint16_t> rows);
  Status commit();

 private:
  KlBaseWriter() = default;
  Status write_bytes(const void* data, size_t size);
  AtomicFile file_;
  OutputPolicy policy_;
};

struct PerplexityStats {
  double value = 0;        // exp(mean NLL)
  double uncertainty = 0;  // llama-perplexity's ±
};

struct Percentiles {
  double max = 0, p99_9 = 0, p99 = 0, p95 = 0, p90 = 0, p75 = 0, median = 0, p25 = 0, p10 = 0, p5 = 0, p1 = 0,
         p0_1 = 0, min = 0;
};

struct KlDivergenceStats {
  PerplexityStats base_perplexity;
  double log_ppl_correlation = 0;      // Cor(ln PPL(Q), ln PPL(base))
  double log_ppl_ratio = 0, log_ppl_ratio_uncertainty = 0;  // mean ln(PPL(Q)/PPL(base))
  double ppl_ratio = 0, ppl_ratio_uncertainty = 0;
  double ppl_difference = 0, ppl_difference_uncertainty = 0;
  double mean = 0, uncertainty = 0;    // KL divergence
  Percentiles kld;                     // (p75 and p25 are not reported for KLD by llama-perplexity)
  double delta_p_mean = 0, delta_p_uncertainty = 0;
  Percentiles delta_p;
  double delta_p_rms = 0, delta_p_rms_uncertainty = 0;
  double same_top = 0, same_top_uncertainty = 0;  // fractions 0..1
};

struct EvalResult {
  std::string model;
  std::string base;          // the base model or file, empty without one
  int64_t n_ctx = 0;
  int64_t chunks = 0;
  int64_t tokens_scored = 0;
  PerplexityStats perplexity;
  std::optional<KlDivergenceStats> kl_divergence;
  double seconds = 0;        // evaluation time (models already open)
  int64_t tokens_evaluated = 0;  // chunks · n_ctx, per model evaluated
  double tokens_per_second() const { return seconds > 0 ? double(tokens_evaluated) / seconds : 0; }
};

struct EvalOptions {
  int64_t n_ctx = 0;                // 0: the base file's context, else 512 (llama-perplexity's default)
  int64_t max_chunks = -1;          // -1: every whole chunk of the text (or of the base file)
  std::string text_path;             // the file the tokens came from, named by errors about them (may be empty)
  // Tokens evaluated together per pass over the weights (whole chunks; at least one chunk).
  int64_t tokens_per_pass = 4096;
  std::string save_kl_base;          // write the base's (or, without a base, the model's) log-probabilities here
  OutputPolicy save_policy;          // how save_kl_base is placed (--force, the files read; the models' own files are added)
  // Called after each pass with chunks done and the total.
  std::function<void(int64_t done, int64_t total)> progress;
  // When set and true: stop before the next model run with ErrorKind::interrupted; a --save-kl-base file being
  // written is removed, nothing else is written.
  const std::atomic<bool>* cancel = nullptr;
};

// The base a model is scored against.
struct EvalBase {
  const Model* model = nullptr;          // --base: a model evaluated alongside
  const KlBaseReader* file = nullptr;    // --kl-base: a base-logits file (its tokens are scored)
};

// A text as llama-perplexity evaluates it: `path` read as its `-f FILE` reads a prompt (bytes as they are, one
// trailing newline removed) and tokenized with `model`'s vocabulary, BOS first when the vocabulary adds one and
// special tokens not parsed. An empty path gives no tokens, only the BOS rule (for a base-logits file's tokens). A
// vocabulary that adds EOS is refused, as llama-perplexity asserts against it.
struct EvalText {
  std::vector<int32_t> tokens;
  bool add_bos = false;
  int32_t bos = -1;
};
Result<EvalText> read_eval_text(const ModelSource& model, const std::string& path);

// Scores `model` on `tokens` (the whole text tokenized with BOS as the vocabulary says), BOS `bos` put first in each
// chunk when add_bos. With a base file its tokens are scored, as llama-perplexity does; `tokens` may then be empty,
// and when given must start with the file's tokens (ErrorKind::invalid_input naming the file otherwise).
// Errors: fewer than 2·n_ctx tokens (ErrorKind::impossible, llama-perplexity's rule, naming options.text_path), a
// base of another vocabulary size or a file of another context than a non-zero options.n_ctx
// (ErrorKind::invalid_input naming the file), a token outside the vocabulary.
Result<EvalResult> evaluate(const Model& model, std::span<const int32_t> tokens, bool add_bos, int32_t bos,
                            const EvalBase& base, const EvalOptions& options);

// Several models scored against one base model in one run: each pass evaluates the base once for all of them.
// Results are in the order of `models`, each equal to what evaluate() gives for that model alone.
Result<std::vector<EvalResult>> evaluate_against(const Model& base, std::span<const Model* const> models,
                                                 std::span<const int32_t> tokens, bool add_bos, int32_t bos,
                                                 const EvalOptions& options);

// `quantize IN --to T --eval-text FILE`, before it converts anything: options.text_path read and tokenized with
// `input`'s vocabulary as read_eval_text does, checked to hold the two chunks of options.n_ctx tokens (0: 512)
// evaluate() needs. Errors are theirs, so a text that cannot score the outputs is refused before any is written.
Result<EvalText> prepare_eval_text(const std::string& input, const EvalOptions& options);

// Then, once the outputs are written: scores each against `input` on that text and fills each report's `quality`.
Status score_conversions(const std::string& input, std::span<ConversionReport> reports, const EvalText& text,
                         const EvalOptions& options, int threads);

nlohmann::json to_json(const EvalResult& result);

}  // namespace quant
