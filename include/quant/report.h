// What a conversion cost and what it lost: per-tensor error metrics and whole-run totals.
//
// Error metrics compare the values a reader of the output gets back (dequantized) with the input values:
// RMSE, largest absolute error, SQNR = 10·log10(Σx² / Σ(x−y)²) in dB, and cosine similarity. Sums are kept
// in double so a tensor of billions of values reports the same figures whatever the order of accumulation
// within a block-row chunk. The JSON form is documented in docs/cli.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "quant/formats.h"

namespace quant {

class ErrorStats {
 public:
  // Adds n pairs (reference value, value read back).
  void add(const float* reference, const float* reconstructed, int64_t n);
  // Combines the stats of another part of the same tensor.
  void merge(const ErrorStats& other);

  int64_t count() const { return count_; }
  double rmse() const;
  double max_abs_error() const { return max_abs_; }
  // +inf when the reconstruction is exact; 0 dB when the reference is all zeros but the error is not.
  double sqnr_db() const;
  // 1 when both are all zeros; 0 when exactly one is.
  double cosine() const;

 private:
  int64_t count_ = 0;
  double sum_sq_error_ = 0, sum_sq_reference_ = 0, sum_sq_reconstructed_ = 0, dot_ = 0, max_abs_ = 0;
};

struct TensorReport {
  std::string name;
  std::vector<int64_t> shape;  // ne0 first
  TypeId type_in = TypeId::f32;
  TypeId type_out = TypeId::f32;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  bool converted = false;   // false when the tensor was copied unchanged
  std::string reason;       // which rule chose type_out
  ErrorStats error;         // nothing measured (count() == 0) when copied unchanged or in a dry run
};

// One file of a split output (or of `quantize split` / `quantize merge`), written or, in a dry run, planned.
struct ShardReport {
  std::string path;
  uint32_t index = 0;         // 0-based: split.no
  uint64_t tensors = 0;
  uint64_t tensor_bytes = 0;  // tensor data, unpadded
  uint64_t file_bytes = 0;    // the whole file; in a dry run, what it will be
  std::string sha256;         // empty in a dry run
};

// How an output scores against its input on a text (`--eval-text`, llama-perplexity's statistics, docs/eval.md).
struct ModelQuality {
  std::string text;
  int64_t n_ctx = 0;
  int64_t chunks = 0;
  int64_t tokens_scored = 0;
  double perplexity = 0, perplexity_uncertainty = 0;
  double base_perplexity = 0, base_perplexity_uncertainty = 0;
  double kld_mean = 0, kld_uncertainty = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
  double same_top = 0, same_top_uncertainty = 0;  // fractions 0..1
  double seconds = 0;
};

// The importance matrix a conversion computed from a calibration text (`--calibration-text`, docs/imatrix.md).
struct TextImatrixSummary {
  std::string text;
  int64_t n_ctx = 0;
  int64_t chunks = 0;
  int64_t tokens = 0;   // evaluated
  int64_t entries = 0;  // weights in the matrix (after --include-weights / --exclude-weights)
  std::optional<double> perplexity;  // llama-imatrix's estimate over the text
  double seconds = 0;
};

struct ConversionReport {
  std::string input;
  std::string output;
  std::string target;       // the type name as given, e.g. "Q4_K_M"
  std::vector<TensorReport> tensors;
  uint64_t input_bytes = 0;   // file sizes
  uint64_t output_bytes = 0;
  int64_t parameters = 0;
  double wall_seconds = 0;
  double cpu_seconds = 0;
  uint64_t peak_rss_bytes = 0;
  int threads = 1;
  std::string output_sha256;
  bool dry_run = false;
  bool replaced_existing = false;     // the output replaced an existing file (--force)
  std::vector<std::string> warnings;  // for the user: the library never prints them itself
  // A split output (--keep-split, --split-max-size, --split-max-tensors, --shard): the shards written (with
  // --shard, the one), in order; `output` is then the first of them, `output_sha256` is set only when there is one,
  // and `shard_count` is how many the whole output has. Empty for a single-file output.
  std::vector<ShardReport> shards;
  uint32_t shard_count = 0;
  std::optional<ModelQuality> quality;  // set when the output was scored against the input
  std::optional<TextImatrixSummary> imatrix_from_text;  // set when the run computed its importance matrix

  double ratio() const { return output_bytes == 0 ? 0.0 : double(input_bytes) / double(output_bytes); }
  // Bits per weight of the tensor data written (all tensors).
  double bits_per_weight() const;
  double input_mb_per_second() const;
  double parameters_per_second() const;
};

// Peak resident set size of this process so far, in bytes.
uint64_t peak_rss_bytes();
// CPU time (user + system) used by this process so far, in seconds.
double process_cpu_seconds();

// null when nothing was measured (a dry run, a copied tensor, a type that cannot be read back): a report never
// claims figures it did not measure.
nlohmann::json to_json(const ErrorStats& stats);
nlohmann::json to_json(const TensorReport& tensor);
nlohmann::json to_json(const ShardReport& shard);
nlohmann::json to_json(const ModelQuality& quality);
nlohmann::json to_json(const TextImatrixSummary& summary);
nlohmann::json to_json(const ConversionReport& report);

}  // namespace quant
