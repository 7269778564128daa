#include "automix/overlay_source.h"

#include <cstring>

#include <fmt/format.h>

#include "quant/formats.h"

namespace quant::automix_internal {

OverlaySource::OverlaySource(std::shared_ptr<const ModelSource> base)
    : base_(std::move(base)), tensors_(base_->tensors()) {}

const TensorInfo* OverlaySource::find_tensor(std::string_view name) const {
  for (const TensorInfo& tensor : tensors_) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

Status OverlaySource::replace(const std::string& name, TypeId type, std::shared_ptr<const std::vector<uint8_t>> bytes) {
  for (TensorInfo& tensor : tensors_) {
    if (tensor.name != name) continue;
    const std::optional<uint64_t> per_row = row_bytes(format_of(type), tensor.row_length());
    if (!per_row || *per_row * uint64_t(tensor.rows()) != bytes->size()) {
      return Error(usage_error(fmt::format("{} bytes do not hold this tensor as {}", bytes->size(),
                                           format_of(type).name)))
          .in_tensor(name);
    }
    tensor.type = type;
    tensor.size_bytes = bytes->size();
    replaced_[name] = std::move(bytes);
    return Status::success();
  }
  return Error(usage_error("the model has no such tensor")).in_tensor(name);
}

Status OverlaySource::read_tensor(const TensorInfo& tensor, uint64_t offset_in_tensor, std::span<uint8_t> out) const {
  const auto it = replaced_.find(tensor.name);
  if (it == replaced_.end()) {
    const TensorInfo* original = base_->find_tensor(tensor.name);
    if (original == nullptr) return Error(usage_error("the model has no such tensor")).in_tensor(tensor.name);
    return base_->read_tensor(*original, offset_in_tensor, out);
  }
  const std::vector<uint8_t>& bytes = *it->second;
  if (offset_in_tensor > bytes.size() || out.size() > bytes.size() - offset_in_tensor) {
    return Error(usage_error(fmt::format("read of {} bytes at {} runs past the tensor's {} bytes", out.size(),
                                         offset_in_tensor, bytes.size())))
        .in_tensor(tensor.name);
  }
  std::memcpy(out.data(), bytes.data() + offset_in_tensor, out.size());
  return Status::success();
}

}  // namespace quant::automix_internal
