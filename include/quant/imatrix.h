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
// Accumulation follows llama-imatrix: per column, float32 sums of x*x over the tokens of every batch in order,
// batches under 16 tokens skipped. See docs/imatrix.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quant/atomic_file.h"
#include "quant/dataset.h"
#include "quant/error.h"

namespace quant {

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
// file = the path as given on the command line (cut to 127 bytes), dataset = the first dataset name (cut to
// 127 bytes; absent when there is none), entries_count = the number of entries, chunks_count = the chunk count
// (absent unless positive). All numbers are written as u32. Nothing is written when no entry is left.
struct ImatrixRecord {
  std::string file;
  std::optional<std::string> dataset;
  uint32_t entries_count = 0;
  std::optional<uint32_t> chunks_count;
};
std::optional<ImatrixRecord> imatrix_record(const ImportanceMatrix& imatrix, const std::string& path_as_given);

// Sums of squared activations per weight, as llama-imatrix collects them for dense weights.
class ImatrixAccumulator {
 public:
  static constexpr int64_t kMinTokens = 16;  // llama-imatrix ignores smaller batches

  // Adds one batch (tokens x features, row-major) of the activations feeding `weight`. Returns false when the
  // batch is skipped (fewer than kMinTokens tokens). A feature count differing from earlier batches of the
  // weight, or a non-finite sum, is an invalid_input error naming the weight.
  Result<bool> add_batch(const std::string& weight, int64_t tokens, int64_t features, const float* values);

  struct Sums {
    std::vector<float> in_sum2;  // per column
    int64_t count = 0;           // tokens
    int64_t batches = 0;         // batches used
  };
  const std::map<std::string, Sums>& sums() const { return sums_; }
  // llama-imatrix's chunk is one pass over the text, feeding every weight once: the chunk count is the most
  // batches any weight used, and the chunk size the most tokens any weight saw divided by that, rounded up.
  int64_t chunk_count() const;
  int64_t chunk_size() const;

 private:
  std::map<std::string, Sums> sums_;
};

// What an imatrix file records besides the sums.
struct ImatrixMetadata {
  std::vector<std::string> datasets;  // GGUF: all; .dat: the first one only (the format holds one)
  int64_t chunk_count = 0;
  int64_t chunk_size = 0;
};

// Writes the sums in llama-imatrix's GGUF format (atomically, under `policy`: an existing file is replaced only
// with policy.overwrite): KVs general.type, imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size; then per
// weight in name order W.in_sum2 and W.counts.
Status write_imatrix_gguf(const std::string& path, const std::map<std::string, ImatrixAccumulator::Sums>& sums,
                          const ImatrixMetadata& metadata, const OutputPolicy& policy = {});
// Writes the legacy .dat format (atomically, under `policy`): v = (in_sum2 / count) * ncall with
// ncall = ceil(count / chunk_size); weights with no tokens are left out.
Status write_imatrix_dat(const std::string& path, const std::map<std::string, ImatrixAccumulator::Sums>& sums,
                         const ImatrixMetadata& metadata, const OutputPolicy& policy = {});

// `quantize imatrix`: the whole collection, dataset files to sums, streaming one batch at a time.
struct ImatrixCollection {
  ImatrixAccumulator accumulator;
  ImatrixMetadata metadata;     // datasets = the data files as given; chunk count and size from the accumulator
  int64_t batches_read = 0;
  int64_t batches_skipped = 0;  // under ImatrixAccumulator::kMinTokens tokens
};
Result<ImatrixCollection> collect_imatrix(const std::vector<std::string>& data_files,
                                          const DatasetOptions& options = {});
// Writes a collection in either format (atomically, under `policy`).
Status write_imatrix(const std::string& path, ImatrixFormat format, const ImatrixCollection& collection,
                     const OutputPolicy& policy = {});

// The input features (row length, ne0) of every weight of a GGUF model that takes activations: tensors named
// "*.weight" with at least 2 dimensions. For DatasetOptions::weight_features.
Result<std::map<std::string, int64_t>> model_weight_features(const std::string& model_path);

}  // namespace quant
