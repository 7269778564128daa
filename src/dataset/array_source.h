// Where one array of a dataset file lives and how its values are encoded: what each file-format parser
// (safetensors.cpp, npy.cpp, npz.cpp) produces from headers alone, and what the reader streams batches from.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataset/byte_stream.h"
#include "quant/dataset.h"

namespace quant::dataset {

enum class ElementType { f32, f16, bf16, f64 };
size_t element_size(ElementType type);

struct ArraySource {
  DatasetArray info;
  ElementType element = ElementType::f32;
  // A plain byte range of the file (safetensors, .npy), or a zip member (.npz).
  bool in_zip = false;
  ZipMethod method = ZipMethod::stored;
  uint64_t data_offset = 0;        // first value (plain) or first stored byte of the member (zip)
  uint64_t compressed_size = 0;    // zip only
  uint64_t uncompressed_size = 0;  // zip only: the member's .npy bytes, header included
  uint32_t crc32 = 0;              // zip only
  uint64_t header_bytes = 0;       // zip only: .npy header bytes before the first value
  uint64_t value_bytes = 0;        // batches * tokens * features * element size
};

// Fills info.batches/tokens/features from a 2-D [tokens, features] or 3-D [batches, tokens, features] shape,
// and value_bytes from the element type; errors name info.file and info.tensor.
Status set_shape(ArraySource& source, const std::vector<uint64_t>& shape, const DatasetLimits& limits);

// The arrays of one file, from its header(s) only. The file kind has been told from its first bytes.
Result<std::vector<ArraySource>> read_safetensors_arrays(const InputFile& file, const DatasetLimits& limits);
Result<std::vector<ArraySource>> read_npy_arrays(const InputFile& file, const DatasetLimits& limits);
Result<std::vector<ArraySource>> read_npz_arrays(const InputFile& file, const DatasetLimits& limits);

// A .npy header: the descriptor, the layout and the shape, and how many bytes it took (preamble included).
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<uint64_t> shape;
  uint64_t header_bytes = 0;
};
// Reads and parses a .npy header from the start of `stream`; `file` and the stream's offset go in errors.
Result<NpyHeader> read_npy_header(ByteStream& stream, const std::string& file, const DatasetLimits& limits);
// The element type for a .npy descriptor ("<f4", "<f2", "<f8"); nullopt-like error for anything else.
Result<ElementType> npy_element_type(const std::string& descr);

// A stream positioned at the source's first value.
Result<std::unique_ptr<ByteStream>> open_values(const InputFile& file, const ArraySource& source);

}  // namespace quant::dataset
