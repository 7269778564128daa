// A model with some tensors held in other types, in memory: what a quantized file of the model would give a reader,
// without writing the file. The forward pass reads it like any model (ModelSource).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quant/model_source.h"

namespace quant::automix_internal {

class OverlaySource final : public ModelSource {
 public:
  explicit OverlaySource(std::shared_ptr<const ModelSource> base);

  // From now on `name` reads as `type` with these bytes (rows of row_bytes(type, ne0), the base tensor's shape).
  // A usage error when the model has no such tensor or the byte count does not fit the shape.
  Status replace(const std::string& name, TypeId type, std::shared_ptr<const std::vector<uint8_t>> bytes);

  const std::string& path() const override { return base_->path(); }
  uint64_t input_bytes() const override { return base_->input_bytes(); }
  const std::vector<KeyValue>& metadata() const override { return base_->metadata(); }
  const Value* find(std::string_view key) const override { return base_->find(key); }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const override;
  Status read_tensor(const TensorInfo& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const override;

 private:
  std::shared_ptr<const ModelSource> base_;
  std::vector<TensorInfo> tensors_;  // the base's, with replaced types and sizes
  std::map<std::string, std::shared_ptr<const std::vector<uint8_t>>, std::less<>> replaced_;
};

}  // namespace quant::automix_internal
