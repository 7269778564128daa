// Dataset arrays from a safetensors file: the project's safetensors parser (quant/safetensors.h) reads and checks
// the header; here each tensor is accepted as an activation array when its dtype is a float type and its shape
// is [tokens, features] or [batches, tokens, features].
#include <fmt/format.h>

#include "dataset/array_source.h"
#include "quant/safetensors.h"

namespace quant::dataset {
namespace {

Result<ElementType> activation_element_type(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::f32: return ElementType::f32;
    case SafetensorsDtype::f16: return ElementType::f16;
    case SafetensorsDtype::bf16: return ElementType::bf16;
    case SafetensorsDtype::f64: return ElementType::f64;
    default:
      return invalid_input(fmt::format("unsupported dtype {} (activations must be F32, F16, BF16 or F64)",
                                       dtype_info(dtype).name));
  }
}

}  // namespace

Result<std::vector<ArraySource>> read_safetensors_arrays(const InputFile& file, const DatasetLimits& limits) {
  SafetensorsLimits header_limits;
  header_limits.max_header_bytes = limits.max_header_bytes;
  header_limits.max_tensors = limits.max_tensors_per_file;
  header_limits.max_name_bytes = limits.max_name_bytes;
  auto read_at = [&file](uint64_t offset, std::span<uint8_t> out) {
    return file.read_at(offset, out, "safetensors header");
  };
  QUANT_ASSIGN_OR_RETURN(const SafetensorsHeader header,
                         read_safetensors_header(read_at, file.size(), file.path(), header_limits));

  // header.tensors is in data order, so the batches are read sequentially.
  std::vector<ArraySource> arrays;
  arrays.reserve(header.tensors.size());
  for (const SafetensorsTensor& tensor : header.tensors) {
    ArraySource source;
    source.info.file = file.path();
    source.info.tensor = tensor.name;
    source.info.dtype = std::string(dtype_info(tensor.dtype).name);
    auto element = activation_element_type(tensor.dtype);
    if (!element) return std::move(element).error().in_file(file.path()).in_tensor(tensor.name);
    source.element = *element;
    QUANT_TRY(set_shape(source, tensor.shape, limits));
    source.data_offset = tensor.file_offset;  // the parser checked value_bytes == tensor.byte_size()
    arrays.push_back(std::move(source));
  }
  return arrays;
}

}  // namespace quant::dataset
