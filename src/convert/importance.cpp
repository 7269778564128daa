#include "convert/importance.h"

#include <fmt/format.h>

namespace quant::convert_internal {

namespace {

// --include-weights / --exclude-weights, remembering what they dropped so that messages can say so.
Status apply_filters(LoadedImportance& loaded, const ImatrixOptions& options) {
  std::set<std::string> before;
  for (const auto& [name, entry] : loaded.matrix.entries) before.insert(name);
  QUANT_TRY(filter_imatrix(loaded.matrix, options.include_weights, options.exclude_weights));
  for (const std::string& name : before) {
    if (loaded.matrix.entries.count(name) == 0) loaded.filtered_out.insert(name);
  }
  const bool include = !options.include_weights.empty();
  const std::vector<std::string>& patterns = include ? options.include_weights : options.exclude_weights;
  for (const std::string& pattern : patterns) {
    loaded.filter += fmt::format("{}{} {}", loaded.filter.empty() ? "" : " ",
                                 include ? "--include-weights" : "--exclude-weights", pattern);
  }
  return Status::success();
}

}  // namespace

Result<LoadedImportance> load_importance(const ImatrixOptions& options) {
  LoadedImportance loaded;
  QUANT_ASSIGN_OR_RETURN(loaded.matrix, read_imatrix(options.path));
  QUANT_TRY(apply_filters(loaded, options));
  loaded.record = imatrix_record(loaded.matrix, options.path);
  return loaded;
}

Result<ImatrixRecord> predicted_text_record(const ImatrixOptions& options) {
  // The record compute_importance() will make, as far as its size goes: the counts are fixed-width integers
  // whatever their values; the dataset is the first merged file's first dataset, else the text (as
  // imatrix_from_text lists them).
  ImportanceMatrix predicted;
  for (const std::string& file : options.calibration_text->in_files) {
    QUANT_ASSIGN_OR_RETURN(ImportanceMatrix merged, read_imatrix(file));
    predicted.datasets.insert(predicted.datasets.end(), merged.datasets.begin(), merged.datasets.end());
  }
  predicted.datasets.push_back(options.calibration_text->text_path);
  predicted.entries["predicted"] = ImportanceEntry{};
  predicted.chunk_count = 1;
  return *imatrix_record(predicted, std::nullopt);
}

std::string missing_importance_reason(const LoadedImportance* importance, const std::string& tensor) {
  if (importance == nullptr) return "no importance matrix was given (--imatrix)";
  if (!importance->record) return fmt::format("{} left no entry of the importance matrix", importance->filter);
  if (importance->filtered_out.count(tensor) != 0) {
    return fmt::format("the importance matrix has data for it, but {} excluded it", importance->filter);
  }
  return "the importance matrix has no data for it";
}

Result<LoadedImportance> compute_importance(const ImatrixOptions& options, const ModelSource& input) {
  QUANT_ASSIGN_OR_RETURN(ImatrixCollection collection, imatrix_from_text(input, *options.calibration_text));
  return computed_importance(collection, options);
}

Result<LoadedImportance> computed_importance(const ImatrixCollection& collection, const ImatrixOptions& options) {
  if (!collection.text) return usage_error("the computed importance matrix was not made from a text");
  LoadedImportance loaded;
  loaded.matrix = importance_matrix(collection);
  QUANT_TRY(apply_filters(loaded, options));
  // As llama-quantize records a file's imatrix, less the file name: there is none.
  loaded.record = imatrix_record(loaded.matrix, std::nullopt);
  if (!loaded.record) {
    return usage_error("--include-weights / --exclude-weights leave no entry of the imatrix computed from the "
                       "calibration text");
  }
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
