// The importance matrix a conversion uses (after --include-weights / --exclude-weights) and what
// llama-quantize records about it in the output's quantize.imatrix.* keys.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "quant/convert.h"
#include "quant/gguf.h"
#include "quant/imatrix.h"

namespace quant::convert_internal {

struct LoadedImportance {
  ImportanceMatrix matrix;
  std::optional<ImatrixRecord> record;  // empty when no entry is left: then no imatrix is used at all
  std::set<std::string> filtered_out;   // entries the file has that --include/--exclude-weights dropped
  std::string filter;                   // that option, for messages ("--include-weights attn_q"); or empty
  std::optional<TextImatrixSummary> summary;  // computed from options.calibration_text
};

// Reads options.path (GGUF imatrix, else legacy .dat) and applies the include/exclude filters.
Result<LoadedImportance> load_importance(const ImatrixOptions& options);
// Computes the imatrix of options.calibration_text over the input (imatrix_from_text), applies the filters, and
// records it without a file name.
Result<LoadedImportance> compute_importance(const ImatrixOptions& options, const ModelSource& input);
// The same for a matrix computed already (options.computed, or compute_importance's own): the filters applied,
// recorded without a file name, with the summary of its text run.
Result<LoadedImportance> computed_importance(const ImatrixCollection& collection, const ImatrixOptions& options);

// What the output will record about a calibration text's matrix before it is computed (a dry run's sizes): the
// same keys and string, placeholder counts.
Result<ImatrixRecord> predicted_text_record(const ImatrixOptions& options);

// Why a tensor that needs importance data has none: the filter dropped its entry, or the file has none.
std::string missing_importance_reason(const LoadedImportance* importance, const std::string& tensor);

// The quantize.imatrix.* overrides, in the order llama-quantize appends them after the user's overrides.
std::vector<KvOverride> imatrix_overrides(const ImatrixRecord& record);

// The importance vector for a tensor, checked as llama-quantize checks it: ne0 x n_expert values. A tensor with
// no entry gets none; a mismatched size is an error except for the token embeddings, which then get none.
Result<const float*> importance_for(const LoadedImportance& importance, const ModelSource& input,
                                    const TensorInfo& tensor);

}  // namespace quant::convert_internal
