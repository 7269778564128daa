#include "convert/importance.h"

#include <fmt/format.h>

namespace quant::convert_internal {

Result<LoadedImportance> load_importance(const ImatrixOptions& options) {
  LoadedImportance loaded;
  QUANT_ASSIGN_OR_RETURN(loaded.matrix, read_imatrix(options.path));
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
  loaded.record = imatrix_record(loaded.matrix, options.path);
  return loaded;
}

std::string missing_importance_reason(const LoadedImportance* importance, const std::string& tensor) {
  if (importance == nullptr) return "no importance matrix was given (--imatrix)";
  if (!importance->record) return fmt::format("{} left no entry of the importance matrix", importance->filter);
  if (importance->filtered_out.count(tensor) != 0) {
    return fmt::format("the importance matrix has data for it, but {} excluded it", importance->filter);
  }
  return "the importance matrix has no data for it";
}

std::vector<KvOverride> imatrix_overrides(const ImatrixRecord& record) {
  std::vector<KvOverride> keys;
  KvOverride file;
  file.key = "quantize.imatrix.file";
  file.kind = KvOverride::Kind::string;
  file.string_value = record.file;
  keys.push_back(file);
  if (record.dataset) {
    KvOverride dataset = file;
    dataset.key = "quantize.imatrix.dataset";
    dataset.string_value = *record.dataset;
    keys.push_back(dataset);
  }
  KvOverride entries;
  entries.key = "quantize.imatrix.entries_count";
  entries.kind = KvOverride::Kind::integer;
  entries.int_value = record.entries_count;
  keys.push_back(entries);
  if (record.chunks_count) {
    KvOverride chunks = entries;
    chunks.key = "quantize.imatrix.chunks_count";
    chunks.int_value = *record.chunks_count;
    keys.push_back(chunks);
  }
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
