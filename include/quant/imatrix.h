// Importance matrices (llama.cpp's "imatrix"): per weight, the mean square of each input column's activations,
// which the quantizers use as per-column weights of the rounding error.
//
// Two file formats, both written by llama-imatrix and both read by llama-quantize (GGUF first, then legacy):
//   - GGUF: general.type = "imatrix", imatrix.datasets (array of strings), imatrix.chunk_count (u32),
//     imatrix.chunk_size (u32); per weight W two F32 tensors, W.in_sum2 [n_per_row, n_expert] (raw sums of
//     squared activations) and W.counts [1, n_expert] (tokens seen). Importance = in_sum2 / count per expert,
//     1.0 where the count is 0.
//   - legacy .dat (little-endian): i32 n_entries, then per entry i32 name length, name, i32 ncall, i32 nval,
//     f32 v[nval] with v = mean square * ncall; optionally i32 chunk_count, i32 length, dataset name.
//     Importance = v / ncall (v itself when ncall is 0).
// Two sources of activations:
//   - activation files (collect_imatrix): arrays keyed by weight name, one batch at a time;
//   - calibration text run through the model (imatrix_from_text), as llama-imatrix does: the text tokenized,
//     cut into chunks of n_ctx tokens with BOS first, every `blk.*` matmul input (and output.weight's on request)
//     accumulated batch by batch in llama.cpp's order.
// Accumulation follows llama-imatrix: per column, float32 sums of x*x over the tokens of every batch in order,
// dense batches under 16 tokens skipped, one count per weight (per expert for mixture-of-experts weights).
// See docs/imatrix.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quant/atomic_file.h"
#include "quant/dataset.h"
#include "quant/error.h"

namespace quant {

class Model;        // quant/model.h
class ModelSource;  // quant/model_source.h

enum class ImatrixFormat { gguf, dat };

// The importance vector of one weight: n_expert slices of n_per_row values (one slice for a dense weight).
struct ImportanceEntry {
  int64_t n_per_row = 0;
  int64_t n_expert = 1;
  std::vector<float> values;  // n_per_row * n_expert: the importance, what the quantizers take
  // As stored: GGUF in_sum2 (n_per_row * n_expert) and counts (n_expert); .dat v (n_per_row) and {ncall}.
  std::vector<float> stored_sums;
  std::vector<float> stored_counts;
};

// An importance matrix as read from a file.
struct ImportanceMatrix {
  ImatrixFormat format = ImatrixFormat::gguf;
  std::vector<std::string> datasets;  // GGUF: imatrix.datasets; .dat: the optional trailing name (0 or 1)
  int64_t chunk_count = 0;            // GGUF: imatrix.chunk_count; .dat: the optional trailing count, else 0
  int64_t chunk_size = 0;             // GGUF: imatrix.chunk_size; .dat: 0 (not stored)
  std::map<std::string, ImportanceEntry> entries;  // by weight name

  const ImportanceEntry* find(std::string_view weight) const;
};

// Caps for hostile files (counts are also always checked against the bytes in the file).
struct ImatrixLimits {
  uint64_t max_entries = uint64_t(1) << 20;
  uint64_t max_name_bytes = 4096;
  uint64_t max_values_per_entry = uint64_t(1) << 28;
};

// Reads a GGUF imatrix, or when the file is not a readable GGUF file, a legacy .dat one (as llama-quantize
// does). Non-finite values, missing or unpaired tensors, non-F32 tensors and bad counts are invalid_input
// errors naming the file, the entry and the index. When neither format reads, the error is the GGUF one for
// files starting with "GGUF" and the .dat one otherwise.
Result<ImportanceMatrix> read_imatrix(const std::string& path, const ImatrixLimits& limits = {});
Result<ImportanceMatrix> read_imatrix_gguf(const std::string& path, const ImatrixLimits& limits = {});
Result<ImportanceMatrix> read_imatrix_dat(const std::string& path, const ImatrixLimits& limits = {});

// llama-quantize's --include-weights / --exclude-weights: keep only entries whose name contains one of
// `include` (substring), or drop those containing one of `exclude`. Both at once is a usage error.
Status filter_imatrix(ImportanceMatrix& imatrix, const std::vector<std::string>& include,
                      const std::vector<std::string>& exclude);

// The quantize.imatrix.* keys llama-quantize adds to a model quantized with an imatrix (after filtering):
// file = the path as given on the command line (cut to 127 bytes; absent for an imatrix computed in the same run,
// which has no file), dataset = the first dataset name (cut to
// 127 bytes; absent when there is none), entries_count = the number of entries, chunks_count = the chunk count
// (absent unless positive). All numbers are written as u32. Nothing is written when no entry is left.
struct ImatrixRecord {
  std::optional<std::string> file;
  std::optional<std::string> dataset;
  uint32_t entries_count = 0;
  std::optional<uint32_t> chunks_count;
};
std::optional<ImatrixRecord> imatrix_record(const ImportanceMatrix& imatrix,
                                            const std::optional<std::string>& path_as_given);

// Sums of squared activations per weight, as llama-imatrix's collector keeps them (tools/imatrix/imatrix.cpp).
class ImatrixAccumulator {
 public:
  static constexpr int64_t kMinTokens = 16;  // llama-imatrix ignores dense batches of fewer tokens

  struct Sums {
    std::vector<float> in_sum2;   // n_expert slices of n_per_row column sums (one slice for a dense weight)
    std::vector<int64_t> counts;  // tokens seen, per expert
    int64_t batches = 0;          // dense batches used
    int64_t n_expert() const { return int64_t(counts.size()); }
    int64_t n_per_row() const { return counts.empty() ? 0 : int64_t(in_sum2.size()) / int64_t(counts.size()); }
    int64_t max_count() const;
  };

  // Adds one dense batch (tokens x features, row-major) of the activations feeding `weight`. Returns false when
  // the batch is skipped (fewer than kMinTokens tokens). A feature count differing from earlier batches of the
  // weight, or a non-finite sum, is an invalid_input error naming the weight.
  Result<bool> add_batch(const std::string& weight, int64_t tokens, int64_t features, const float* values);
  // The same for a batch whose rows lie in several runs (llama.cpp's ubatch of several sequences: each
  // sequence's rows are contiguous), added run after run; the batch's tokens are the sum of the runs.
  struct RowRun {
    const float* values = nullptr;  // count x features
    int64_t count = 0;
  };
  Result<bool> add_batch(const std::string& weight, int64_t features, std::span<const RowRun> runs);
  // One mixture-of-experts batch as llama-imatrix takes it from GGML_OP_MUL_MAT_ID: `values` holds tokens x
  // slots x features (slots is 1 when every selected expert reads the same row, else experts_used), `expert_ids`
  // tokens x experts_used ids below n_expert. Each (token, selected expert) adds the token's row to that expert's
  // sums and 1 to its count; no batch is too small. Ids out of range, a shape differing from earlier batches, or a
  // non-finite sum in a touched expert is an invalid_input error naming the weight.
  Status add_expert_batch(const std::string& weight, int64_t n_expert, int64_t features, int64_t tokens,
                          int64_t slots, const float* values, int64_t experts_used, const int32_t* expert_ids);

  // Adds an importance matrix read from a file, as llama-imatrix --in-file loads one before collecting: GGUF
  // sums and (rounded) counts are added as they are (a single count is broadcast to every expert of an entry
  // that has several); a legacy .dat entry's values and call count are multiplied by `chunk_size` first (its
  // only record of the tokens seen). An entry whose size differs from what is already held is an invalid_input
  // error naming the file and the entry.
  Status merge(const ImportanceMatrix& imatrix, int64_t chunk_size, const std::string& source);

  const std::map<std::string, Sums>& sums() const { return sums_; }
  // The most tokens any weight or expert has seen.
  int64_t max_count() const;
  // For activation files: a llama-imatrix chunk is one pass over the text, feeding every weight once: the chunk
  // count is the most batches any weight used, and the chunk size the most tokens any weight saw divided by
  // that, rounded up.
  int64_t chunk_count() const;
  int64_t chunk_size() const;

 private:
  std::map<std::string, Sums> sums_;
};

// What an imatrix file records besides the sums.
struct ImatrixMetadata {
  std::vector<std::string> datasets;  // GGUF: all; .dat: the last one only (the format holds one)
  int64_t chunk_count = 0;
  int64_t chunk_size = 0;
};

// Writes the sums in llama-imatrix's GGUF format (atomically, under `policy`: an existing file is replaced only
// with policy.overwrite): KVs general.type, imatrix.datasets,
// imatrix.chunk_count, imatrix.chunk_size; then per weight in name order W.in_sum2 [n_per_row, n_expert] and
// W.counts [1, n_expert] (ggml drops trailing dimensions of 1), weights without tokens included.
Status write_imatrix_gguf(const std::string& path, const std::map<std::string, ImatrixAccumulator::Sums>& sums,
                          const ImatrixMetadata& metadata, const OutputPolicy& policy = {});
// Writes the legacy .dat format (atomically, under `policy`): v = (in_sum2 / count) * ncall per expert with
// ncall = ceil(largest count / chunk_size), 1 * ncall for an expert without tokens; weights with no tokens at
// all are left out. The trailer names the last dataset.
Status write_imatrix_dat(const std::string& path, const std::map<std::string, ImatrixAccumulator::Sums>& sums,
                         const ImatrixMetadata& metadata, const OutputPolicy& policy = {});

// How a text run went (imatrix_from_text).
struct TextImatrixStats {
  std::string text;                // the calibration text, as given
  std::string text_format;         // "text" or "jsonl"
  int64_t documents = 0;           // JSONL documents (1 for plain text)
  int64_t text_tokens = 0;         // the whole text tokenized (BOS included when the vocabulary adds one)
  int64_t n_ctx = 0;
  int64_t chunks = 0;              // chunks evaluated
  int64_t tokens_evaluated = 0;    // chunks * n_ctx
  double tokenize_seconds = 0;
  double seconds = 0;              // the forward passes and accumulation
  // llama-imatrix's perplexity over the second half of each chunk: after each chunk, then the final estimate.
  std::vector<double> running_perplexity;
  std::optional<double> perplexity;
  double perplexity_uncertainty = 0;
  double tokens_per_second() const { return seconds > 0 ? double(tokens_evaluated) / seconds : 0; }
};

// `quantize imatrix`: the whole collection, activation files or a text to sums.
struct ImatrixCollection {
  ImatrixAccumulator accumulator;
  ImatrixMetadata metadata;     // activation files: the files as given, chunk count and size from the
                                // accumulator; text: llama-imatrix's (see imatrix_from_text)
  int64_t batches_read = 0;
  int64_t batches_skipped = 0;  // under ImatrixAccumulator::kMinTokens tokens
  std::vector<std::string> merged_files;  // --in-file imatrices added first
  std::optional<TextImatrixStats> text;   // set by imatrix_from_text
};
Result<ImatrixCollection> collect_imatrix(const std::vector<std::string>& data_files,
                                          const DatasetOptions& options = {});
// Writes a collection in either format (atomically, under `policy`).
Status write_imatrix(const std::string& path, ImatrixFormat format, const ImatrixCollection& collection,
                     const OutputPolicy& policy = {});
// The importance matrix a collection's file would read back as (what a conversion uses without writing one).
ImportanceMatrix importance_matrix(const ImatrixCollection& collection);

// Progress of a text run, reported after every group of chunks evaluated together.
struct TextImatrixProgress {
  int64_t chunks_done = 0;
  int64_t chunks_total = 0;
  int64_t tokens_done = 0;
  double seconds = 0;
  std::optional<double> perplexity;  // the running estimate
};

// llama-imatrix's options (tools/imatrix/imatrix.cpp and common/arg.cpp at 34af94c), its defaults.
struct TextImatrixOptions {
  std::string text_path;             // plain UTF-8 text or JSONL (read_calibration_text); recorded as given
  int64_t n_ctx = 512;               // -c: tokens per chunk, BOS first in each; at most the training context
  int64_t max_chunks = -1;           // --chunks: -1 = every whole chunk of the text
  bool process_output = false;       // --process-output: collect output.weight too
  bool compute_perplexity = true;    // --ppl / --no-ppl
  bool parse_special = false;        // --parse-special: control tokens written in the text are matched
  std::vector<std::string> in_files; // --in-file: imatrices (GGUF or .dat) of this model merged first
  int64_t batch_tokens = 2048;       // -b: tokens per llama_decode (whole chunks when n_ctx divides it)
  int64_t ubatch_tokens = 512;       // -ub: tokens per graph evaluation (the batches the collector sees)
  int threads = 0;                   // forward-pass threads when the model is opened here (0: every core)
  std::function<void(const TextImatrixProgress&)> progress;  // may be empty
  const std::atomic<bool>* cancel = nullptr;                 // when set and true: stop with `interrupted`
};

// Computes an importance matrix from a calibration text as llama-imatrix does: the text tokenized with the
// model's vocabulary (BOS first as the vocabulary says), cut into chunks of n_ctx tokens (at least two, as
// llama-imatrix requires), each evaluated with BOS put first; every `blk.*` matmul input (and output.weight's
// with process_output) accumulated batch by batch in the order llama.cpp's scheduler evaluates them. Metadata as
// llama-imatrix writes it: datasets = the --in-file datasets, then the text path as given; chunk_size = n_ctx;
// chunk_count = the largest count / n_ctx. Errors, before anything is computed: an empty, binary or too short
// text and an n_ctx beyond the model's training context (impossible or invalid_input naming the text), an
// in-file that does not match the model (invalid_input naming it and the entry).
Result<ImatrixCollection> imatrix_from_text(const Model& model, const TextImatrixOptions& options);
// The same, opening the forward pass over `source` (options.threads).
Result<ImatrixCollection> imatrix_from_text(const ModelSource& source, const TextImatrixOptions& options);

// llama-imatrix --in-file: reads each imatrix file (GGUF or .dat, read_imatrix), checks it against `model` when
// given (check_imatrix_matches_model), and adds it to the collection (ImatrixAccumulator::merge with
// `chunk_size`), its datasets appended to the collection's and the path to merged_files.
Status merge_imatrix_files(ImatrixCollection& collection, const std::vector<std::string>& files, int64_t chunk_size,
                           const ModelSource* model = nullptr);
// llama-imatrix with --in-file and no text: the files combined. Metadata: their datasets, the chunk size given
// (llama-imatrix's context, 512 by default) and the largest count over it as the chunk count.
Result<ImatrixCollection> combine_imatrices(const std::vector<std::string>& files, int64_t chunk_size,
                                            const ModelSource* model = nullptr);

// Checks that every entry of `imatrix` names a weight of `model` with its row length and expert count:
// invalid_input naming `imatrix_path` and the entry otherwise ("made for another model").
Status check_imatrix_matches_model(const ImportanceMatrix& imatrix, const std::string& imatrix_path,
                                   const ModelSource& model);

// The input features (row length, ne0) of every weight of a GGUF model that takes activations: tensors named
// "*.weight" with at least 2 dimensions. For DatasetOptions::weight_features. Any model open_model() reads: a
// GGUF file, a split model (every shard's weights) or a checkpoint folder.
std::map<std::string, int64_t> model_weight_features(const ModelSource& model);

}  // namespace quant
