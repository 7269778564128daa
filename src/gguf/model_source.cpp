// The parts of ModelSource every kind of input shares.
#include "quant/model_source.h"

#include <fmt/format.h>

namespace quant {

Result<std::vector<uint8_t>> ModelSource::read_tensor_data(const TensorInfo& tensor) const {
  std::vector<uint8_t> bytes(tensor.size_bytes);
  QUANT_TRY(read_tensor(tensor, 0, bytes));
  return bytes;
}

uint64_t ModelSource::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const TensorInfo& tensor : tensors()) total += tensor.size_bytes;  // each bounded by its file's size
  return total;
}

uint64_t ModelSource::total_elements() const {
  uint64_t total = 0;
  for (const TensorInfo& tensor : tensors()) total += uint64_t(tensor.element_count());
  return total;
}

Error ModelSource::key_error(std::string_view key, std::string reason) const {
  return invalid_input(fmt::format("metadata key '{}' {}", key, reason)).in_file(path());
}

}  // namespace quant
