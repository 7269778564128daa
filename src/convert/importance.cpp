#include "convert/importance.h"

#include <fmt/format.h>

namespace quant::convert_internal {

Result<LoadedImportance> load_importance(const ConvertRequest& request) {
  LoadedImportance loaded;
  QUANT_ASSIGN_OR_RETURN(loaded.matrix, read_imatrix(request.imatrix_path));
  QUANT_TRY(filter_imatrix(loaded.matrix, request.include_weights, request.exclude_weights));
  loaded.record = imatrix_record(loaded.matrix, request.imatrix_path);
  return loaded;
}

Result<LoadedImportance> compute_importance(const ConvertRequest& request, const ModelSource& input) {
  QUANT_ASSIGN_OR_RETURN(ImatrixCollection collection, imatrix_from_text(input, *request.calibration_text));
  return computed_importance(collection, request);
}

Result<LoadedImportance> computed_importance(const ImatrixCollection& collection, const ConvertRequest& request) {
  LoadedImportance loaded;
  loaded.matrix = importance_matrix(collection);
  QUANT_TRY(filter_imatrix(loaded.matrix, request.include_weights, request.exclude_weights));
  // As llama-quantize records a file's imatrix, less the file name: there is none.
  loaded.record = imatrix_record(loaded.matrix, std::nullopt);
  if (!loaded.record) {
    return usage_error("--include-weights / --exclude-weights leave no entry of the imatrix computed from the "
                       "calibration text");
  }
  if (!collection.text) return usage_error("the computed importance matrix was not made from a text");
  const TextImatrixStats& text = *collection.text;
  TextImatrixSummary summary;
  summary.text = text.text;
  summary.n_ctx = text.n_ctx;
  summary.chunks = text.chunks;
  summary.tokens = text.tokens_evaluated;
  summary.entries = int64_t(loaded.matrix.entries.size());
  summary.perplexity = text.perplexity;
  summary.seconds = text.seconds + text.tokenize_seconds;
  loaded.summary = summary;
  return loaded;
}

std::vector<KvOverride> imatrix_overrides(const ImatrixRecord& record) {
  std::vector<KvOverride> keys;
  auto add = [&keys](const char* key, KvOverride::Kind kind, std::string text, int64_t number) {
    KvOverride o;
    o.key = key;
    o.kind = kind;
    o.string_value = std::move(text);
    o.int_value = number;
    keys.push_back(std::move(o));
  };
  if (record.file) add("quantize.imatrix.file", KvOverride::Kind::string, *record.file, 0);
  if (record.dataset) add("quantize.imatrix.dataset", KvOverride::Kind::string, *record.dataset, 0);
  add("quantize.imatrix.entries_count", KvOverride::Kind::integer, "", record.entries_count);
  if (record.chunks_count) add("quantize.imatrix.chunks_count", KvOverride::Kind::integer, "", *record.chunks_count);
  return keys;
}

Result<const float*> importance_for(const LoadedImportance& importance, const ModelSource& input,
                                    const TensorInfo& tensor) {
  const ImportanceEntry* entry = importance.matrix.find(tensor.name);
  if (entry == nullptr) return static_cast<const float*>(nullptr);
  const int64_t experts = tensor.shape.size() > 2 ? tensor.shape[2] : 1;
  const uint64_t expected = uint64_t(tensor.row_length()) * uint64_t(experts);
  if (entry->values.size() == expected) return entry->values.data();
  if (tensor.name == "token_embd.weight" || tensor.name == "per_layer_token_embd.weight") {
    return static_cast<const float*>(nullptr);  // llama-quantize ignores a token-embedding mismatch
  }
  return Error(impossible(fmt::format("the importance matrix has {} values for this tensor, which needs {} ({} "
                                      "columns x {} experts)", entry->values.size(), expected, tensor.row_length(),
                                      experts)))
      .in_file(input.path())
      .in_tensor(tensor.name);
}

}  // namespace quant::convert_internal
