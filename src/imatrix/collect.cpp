// `quantize imatrix` as a library call: stream a dataset through the accumulator and write the result.
#include <fmt/format.h>

#include "quant/gguf.h"
#include "quant/imatrix.h"
#include "quant/model_source.h"

namespace quant {

Result<ImatrixCollection> collect_imatrix(const std::vector<std::string>& data_files, const DatasetOptions& options) {
  QUANT_ASSIGN_OR_RETURN(DatasetReader reader, open_dataset(data_files, options));
  ImatrixCollection collection;
  Batch batch;
  for (;;) {
    QUANT_ASSIGN_OR_RETURN(bool more, reader.next(batch));
    if (!more) break;
    auto added = collection.accumulator.add_batch(batch.tensor, batch.tokens, batch.features, batch.values.data());
    if (!added) return std::move(added).error().in_file(batch.file);
    ++collection.batches_read;
    if (!*added) ++collection.batches_skipped;
  }
  if (collection.accumulator.sums().empty()) {
    return impossible(fmt::format("no batch has at least {} tokens ({} batches read): nothing to measure",
                                  ImatrixAccumulator::kMinTokens, collection.batches_read));
  }
  collection.metadata.datasets = data_files;
  collection.metadata.chunk_count = collection.accumulator.chunk_count();
  collection.metadata.chunk_size = collection.accumulator.chunk_size();
  return collection;
}

Status write_imatrix(const std::string& path, ImatrixFormat format, const ImatrixCollection& collection,
                     const OutputPolicy& policy) {
  return format == ImatrixFormat::gguf
             ? write_imatrix_gguf(path, collection.accumulator.sums(), collection.metadata, policy)
             : write_imatrix_dat(path, collection.accumulator.sums(), collection.metadata, policy);
}

Status merge_imatrix_files(ImatrixCollection& collection, const std::vector<std::string>& files, int64_t chunk_size,
                           const ModelSource* model) {
  for (const std::string& path : files) {
    QUANT_ASSIGN_OR_RETURN(ImportanceMatrix loaded, read_imatrix(path));
    if (model != nullptr) QUANT_TRY(check_imatrix_matches_model(loaded, path, *model));
    QUANT_TRY(collection.accumulator.merge(loaded, chunk_size, path));
    collection.metadata.datasets.insert(collection.metadata.datasets.end(), loaded.datasets.begin(),
                                        loaded.datasets.end());
    collection.merged_files.push_back(path);
  }
  return Status::success();
}

Result<ImatrixCollection> combine_imatrices(const std::vector<std::string>& files, int64_t chunk_size,
                                            const ModelSource* model) {
  if (files.empty()) return usage_error("no imatrix files to combine");
  ImatrixCollection collection;
  QUANT_TRY(merge_imatrix_files(collection, files, chunk_size, model));
  collection.metadata.chunk_size = chunk_size;
  collection.metadata.chunk_count = collection.accumulator.max_count() / chunk_size;
  return collection;
}

ImportanceMatrix importance_matrix(const ImatrixCollection& collection) {
  ImportanceMatrix imatrix;
  imatrix.format = ImatrixFormat::gguf;
  imatrix.datasets = collection.metadata.datasets;
  imatrix.chunk_count = collection.metadata.chunk_count;
  imatrix.chunk_size = collection.metadata.chunk_size;
  for (const auto& [name, s] : collection.accumulator.sums()) {
    ImportanceEntry entry;
    entry.n_per_row = s.n_per_row();
    entry.n_expert = s.n_expert();
    entry.stored_sums = s.in_sum2;
    entry.stored_counts.assign(s.counts.begin(), s.counts.end());
    entry.values.resize(entry.stored_sums.size());
    const size_t row = size_t(entry.n_per_row);
    // As read_imatrix_gguf computes it from the stored floats.
    for (size_t i = 0; i < entry.values.size(); ++i) {
      const float count = entry.stored_counts[i / row];
      entry.values[i] = count > 0.0f ? entry.stored_sums[i] / count : 1.0f;
    }
    imatrix.entries.emplace(name, std::move(entry));
  }
  return imatrix;
}

std::map<std::string, int64_t> model_weight_features(const ModelSource& model) {
  std::map<std::string, int64_t> features;
  for (const TensorInfo& tensor : model.tensors()) {
    const bool is_weight = tensor.name.size() > 7 && tensor.name.compare(tensor.name.size() - 7, 7, ".weight") == 0;
    if (is_weight && tensor.shape.size() >= 2) features[tensor.name] = tensor.shape[0];
  }
  return features;
}

}  // namespace quant
