// Automatic mixed precision: for a size budget, the per-tensor types that cost the model least.
//
//   open the model -> the candidate types of every quantizable tensor (every type llama.cpp loads that fits the
//   tensor's rows, none wider than its source, the i-quants that need importance data only where the imatrix has
//   some) -> measure what each (tensor, type) costs the model, once (a SensitivityMeasurer; the table is cached in
//   a file) -> choose one type per tensor by a multiple-choice knapsack under the budget, priced in exact output
//   bytes -> write the file with convert() (nothing else writes GGUF) and, when asked, the plan as a
//   --tensor-type-file that makes the same bytes with llama-quantize.
//
// The importance matrix is a file (--imatrix), or, without one, computed from the calibration text in the run as
// `--to --calibration-text` computes it; either way it weighs the measurements and quantizes the file, and is
// recorded as llama-quantize records one (a computed one without quantize.imatrix.file: there is no file).
// The budget is the output FILE's size, header and metadata included (the quantize.imatrix.* keys too), or
// llama.cpp's bits per weight: 8 x tensor data bytes / parameters, the "BPW" its model loader prints. The file
// written is never larger than the budget. User pins (--tensor-type) win: a pinned tensor keeps its type and only
// its bytes count. docs/automix.md describes the method and its measurements.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quant/atomic_file.h"
#include "quant/error.h"
#include "quant/formats.h"
#include "quant/imatrix.h"
#include "quant/model_source.h"
#include "quant/plan.h"
#include "quant/report.h"

namespace quant {

// ---- Budgets ----------------------------------------------------------------------------------------------------

// A byte count as typed: digits with an optional fraction, then an optional unit: none or B (bytes), K/M/G/T
// (decimal, 1000^n, as llama-gguf-split reads M and G; KB/MB/GB/TB the same), KiB/MiB/GiB/TiB (binary, 1024^n).
// Units are case-insensitive. The value is rounded down to whole bytes (a budget is never exceeded by rounding).
// Usage error for anything else, zero, or more than 2^64-1 bytes.
Result<uint64_t> parse_byte_size(std::string_view text);

struct SizeBudget {
  enum class Kind { file_bytes, bits_per_weight };
  Kind kind = Kind::file_bytes;
  uint64_t file_bytes = 0;  // Kind::file_bytes: the largest output file allowed
  double bits_per_weight = 0;  // Kind::bits_per_weight: 8 x tensor data bytes / parameters allowed
};

// ---- Candidates -------------------------------------------------------------------------------------------------

// The types a tensor may get: ggml types llama.cpp's CPU backend loads and we write, whose blocks fill the tensor's
// rows (llama-quantize's shape fallbacks only ever give such a type, so every fallback is among them), no more
// bits per weight than the source type (which is always a candidate: keeping it is exact), and the types that
// need importance data (iq1_s, iq1_m, iq2_xxs, iq2_xs, iq2_s, iq3_xxs outside the embeddings and output) only when
// the tensor has an importance vector. Sorted by bits per weight, then id.
std::vector<TypeId> candidate_types(const PlanTensor& tensor, bool has_importance);

// ---- Sensitivity ------------------------------------------------------------------------------------------------

// What quantizing one tensor alone to one type costs the model. The unit is the measurer's (SensitivityTable::unit):
// an estimated increase of mean KL divergence in nats, or a proxy. Costs add up over tensors in the model the
// solver uses; the real mix is validated separately.
struct TypeCost {
  TypeId type;
  double cost = 0;
};

struct TensorSensitivity {
  std::string name;
  std::vector<TypeCost> costs;  // one per candidate type measured

  std::optional<double> cost_of(TypeId type) const;
};

// What the measurements were made from. A cache is used only when all four equal the current run's.
struct SensitivityFingerprint {
  std::string model;     // hex digest of the model's header and samples of every tensor's bytes
  std::string imatrix;   // hex digest of the importance values used, or "none"
  std::string text;      // hex digest of the calibration text's bytes, or "none"
  std::string measurer;  // the measurer and its settings, e.g. "weighted-error/1 values=131072"
};

struct SensitivityTable {
  SensitivityFingerprint fingerprint;
  std::string unit;  // "relative weighted error" or "KLD (nats)": what a cost means
  std::vector<TensorSensitivity> tensors;
  double seconds = 0;  // time the measurement took

  const TensorSensitivity* find(std::string_view name) const;
};

// The fingerprint of a model (its metadata and tensor list, and a few 4 KiB windows of every tensor's data: cheap
// to compute, different for a fine-tune with the same header), of an importance matrix (the values used), of a text.
Result<std::string> model_fingerprint(const ModelSource& model);
std::string imatrix_fingerprint(const ImportanceMatrix* imatrix);
Result<std::string> file_fingerprint(const std::string& path);

// Writes a table as JSON (atomically) / reads one back. Reading checks the format and every field (invalid_input
// naming the file and what is wrong); `expected` then must equal the table's fingerprint field by field, or the
// cache is refused (impossible) with the reason: "measured on another model", "... with another importance
// matrix", "... another calibration text", "... by another measurer or settings".
Status write_sensitivity_cache(const std::string& path, const SensitivityTable& table, const OutputPolicy& policy);
Result<SensitivityTable> read_sensitivity_cache(const std::string& path, const SensitivityFingerprint& expected);

// One tensor to measure and the types to measure it at.
struct MeasureTensor {
  const TensorInfo* tensor = nullptr;  // one of the model's tensors
  std::vector<TypeId> types;
  const float* importance = nullptr;   // its importance vector (row length x experts values), or null
};

using MeasureProgress = std::function<void(size_t done, size_t total, const std::string& tensor)>;

struct MeasureContext {
  std::shared_ptr<const ModelSource> model;
  std::vector<MeasureTensor> tensors;
  std::string calibration_text;  // path; empty: none
  int threads = 0;               // 0: all cores
  MeasureProgress progress;      // may be empty
  const std::atomic<bool>* cancel = nullptr;
};

// Measures the cost of every (tensor, type) asked. Implementations: the weighted quantization error below (no
// forward pass), and the KL divergence of the final logits when the model can be run.
class SensitivityMeasurer {
 public:
  virtual ~SensitivityMeasurer() = default;
  // The measurer and its settings as recorded in the fingerprint: a cache from other settings is refused.
  virtual std::string id() const = 0;
  virtual std::string unit() const = 0;
  // Fills costs for every tensor and type of the context (the fingerprint is the caller's).
  virtual Result<SensitivityTable> measure(const MeasureContext& context) = 0;

  // What a whole mix costs, measured at once (every tensor of the context at its first type, the others
  // unquantized), in the same unit and on the same data as measure(); nullopt when this measurer cannot run the
  // model.
  struct MixScore {
    double cost = 0;      // mean KL divergence against the unquantized model
    double same_top = 0;  // fraction of scored tokens whose most likely next token is the unquantized model's
  };
  virtual Result<std::optional<MixScore>> measure_mix(const MeasureContext& mix) {
    (void)mix;
    return std::optional<MixScore>();
  }
};

// The proxy measurer: for every candidate type, the relative importance-weighted squared error of the tensor's
// output, Σ_ij imp_j (w_ij − q(w)_ij)² / Σ_ij imp_j w_ij², on evenly spaced rows holding about `sample_values`
// values (at least 16 rows; all rows when the tensor is smaller). imp is the tensor's importance vector (the mean
// square of each input column over the calibration text, so this is the expected output error energy relative to
// the output's energy for independent inputs), or all ones when the imatrix has none. The quantization is exactly
// the converter's, importance included; every ggml type quantizes rows independently, so a sample of rows measures
// the whole tensor.
std::unique_ptr<SensitivityMeasurer> make_weighted_error_measurer(int64_t sample_values = 131072);

// The measurer of what users judge a quantized model by: the increase of mean KL divergence of the final logits
// against the unquantized model, on the calibration text (llama-perplexity's chunks and arithmetic), in nats. A few
// forward passes per tensor calibrate the weighted error of every candidate type (docs/automix.md has the model and
// its check against llama-perplexity). Errors: no calibration text (usage), a text of fewer than two chunks
// (impossible, naming the file), a model the forward pass does not support (impossible).
struct KldMeasurerOptions {
  int64_t ctx = 0;             // tokens per chunk; 0: 512, or the model's training context when smaller
  int64_t max_tokens = 4096;   // whole chunks up to this many tokens (at least two chunks)
  int64_t sample_values = 131072;  // for the weighted error
};
std::unique_ptr<SensitivityMeasurer> make_kld_measurer(const KldMeasurerOptions& options = {});

// ---- Solver -----------------------------------------------------------------------------------------------------

struct KnapsackOption {
  uint64_t weight = 0;  // bytes
  double cost = 0;
};
struct KnapsackSolution {
  std::vector<size_t> choice;  // one option index per item
  uint64_t weight = 0;
  double cost = 0;
};

// Chooses one option per item to minimise the total cost with total weight <= capacity. Exact when the capacity
// is at most `exact_units` (a dynamic programme over every weight); otherwise the same programme over weights
// rounded UP to units of capacity / exact_units (so the result always fits), improved by spending what rounding
// left on the upgrades with the best cost saved per byte. Impossible (naming the smallest total) when even the
// lightest choices do not fit. Items with no options are a usage error.
Result<KnapsackSolution> solve_knapsack(std::span<const std::vector<KnapsackOption>> items, uint64_t capacity,
                                        uint64_t exact_units = 20000);

// ---- The whole job ----------------------------------------------------------------------------------------------

struct FrontierOptions {
  std::string prefix;  // writes PREFIX.csv, PREFIX.json, PREFIX.svg
  int points = 24;     // budgets, evenly spaced in bits per weight between the smallest and largest file
};

struct AutomixRequest {
  std::string input;
  std::string output;            // empty: "<input stem>-auto-<budget as typed>.gguf" beside the input
  std::string budget_text;       // the budget as typed, for the default output name and messages
  SizeBudget budget;
  std::string imatrix_path;      // recorded in quantize.imatrix.file as given; empty: none
  // Text to measure on; empty: none. Without imatrix_path it is also the importance matrix's source:
  // imatrix_from_text over every whole chunk of kld.ctx tokens (resolved as the KLD measurer resolves 0), before
  // anything is measured, so the computed values are part of the cache's fingerprint.
  std::string calibration_text;
  std::string sensitivity_cache; // read when it exists and matches, written after measuring; empty: none
  std::vector<TensorTypeOverride> pins;  // --tensor-type: these tensors keep these types
  std::string save_plan;         // write the chosen plan as a --tensor-type-file here; empty: don't
  std::optional<FrontierOptions> frontier;
  // null: the KLD measurer with `kld` when there is a calibration text, else the weighted-error measurer.
  std::shared_ptr<SensitivityMeasurer> measurer;
  KldMeasurerOptions kld;
  bool dry_run = false;          // choose and report; write no GGUF (the plan file and frontier are written)
  bool overwrite = false;
  int threads = 0;
  MeasureProgress progress;     // also called per chunk of a computed importance matrix
  const std::atomic<bool>* cancel = nullptr;
};

// One tensor of the chosen mix.
struct AutomixTensor {
  std::string name;
  std::vector<int64_t> shape;
  TypeId source_type;
  TypeId type;           // chosen (or pinned, or kept because it is never quantized)
  uint64_t bytes = 0;    // in the file, padding included
  double cost = 0;       // measured cost of `type` (0 for kept tensors)
  bool quantizable = false;
  bool pinned = false;
};

struct FrontierPoint {
  std::string label;         // "auto" for ours, the mix name ("Q4_K_M") for llama-quantize's
  uint64_t file_bytes = 0;
  double bits_per_weight = 0;  // llama.cpp's: 8 x tensor data bytes / parameters
  double cost = 0;             // predicted: the sum of measured costs
};

struct Frontier {
  std::string unit;
  std::vector<FrontierPoint> ours;   // by size
  std::vector<FrontierPoint> mixes;  // llama-quantize's named mixes that this model and imatrix allow
};

struct AutomixResult {
  std::string input;
  std::string output;                // empty for a dry run
  std::string base_file_type;        // the mix named to llama-quantize (general.file_type)
  SizeBudget budget;                 // as asked
  uint64_t min_file_bytes = 0;       // the reachable range under the pins
  uint64_t max_file_bytes = 0;
  uint64_t file_bytes = 0;           // exact size of the chosen file
  double bits_per_weight = 0;
  double predicted_cost = 0;         // sum of the chosen types' costs
  // The chosen mix measured whole on the calibration text (when the measurer runs the model): errors of several
  // tensors do not add up exactly, this is the real figure.
  std::optional<SensitivityMeasurer::MixScore> measured;
  std::string cost_unit;
  std::string measurer;
  std::optional<TextImatrixSummary> imatrix_from_text;  // the importance matrix computed from the calibration text
  bool cache_used = false;           // the measurements came from --sensitivity-cache
  double measure_seconds = 0;       // the measurement (or reading the cache), the imatrix computed from text aside
  double check_seconds = 0;         // measuring the chosen mix whole
  double solve_seconds = 0;
  std::vector<AutomixTensor> tensors;  // in output order
  std::string plan_text;             // the --tensor-type-file contents
  // Reproduces the tensors with the saved plan (preceded by the `quantize imatrix` that writes a computed
  // importance matrix to a file, which llama-quantize then records in quantize.imatrix.file).
  std::string llama_quantize_command;
  std::optional<Frontier> frontier;
  std::optional<ConversionReport> conversion;  // the written file's report (absent for a dry run)
  std::vector<std::string> warnings;
};

// Runs the whole job. Errors: usage for a bad request; impossible (exit 4) for a budget outside the reachable
// range (the message gives the range), a model with quantized tensors, or a cache from other inputs; invalid_input
// for damaged inputs. On any error nothing is written.
Result<AutomixResult> automix(const AutomixRequest& request);

// The plan as a llama-quantize --tensor-type-file: one anchored, escaped `^NAME$=TYPE` line per quantizable tensor,
// in output order. llama-quantize's parser reads whitespace-separated REGEX=TYPE words and lowercases the REGEX.
std::string tensor_type_file_text(std::span<const AutomixTensor> tensors);
// The regex that matches exactly `name` (ECMAScript, special characters escaped).
std::string exact_name_pattern(std::string_view name);

// Writes PREFIX.csv, PREFIX.json and PREFIX.svg (a self-contained chart of cost against size).
Status write_frontier(const Frontier& frontier, const std::string& prefix, const OutputPolicy& policy);

}  // namespace quant
