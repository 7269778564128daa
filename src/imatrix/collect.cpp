// `quantize imatrix` as a library call: stream a dataset through the accumulator and write the result.
#include <fmt/format.h>

#include "quant/gguf.h"
#include "quant/imatrix.h"

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

Result<std::map<std::string, int64_t>> model_weight_features(const std::string& model_path) {
  QUANT_ASSIGN_OR_RETURN(GgufFile model, GgufFile::open(model_path));
  std::map<std::string, int64_t> features;
  for (const TensorInfo& tensor : model.tensors()) {
    const bool is_weight = tensor.name.size() > 7 && tensor.name.compare(tensor.name.size() - 7, 7, ".weight") == 0;
    if (is_weight && tensor.shape.size() >= 2) features[tensor.name] = tensor.shape[0];
  }
  return features;
}

}  // namespace quant
