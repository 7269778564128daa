// The dataset reader: tells each file's kind from its first bytes, collects the arrays of every file from their
// headers, checks the dataset is consistent, then streams one batch at a time.
#include "quant/dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>

#include "core/checked_math.h"
#include "dataset/array_source.h"
#include "quant/half.h"

namespace quant {

using dataset::ArraySource;
using dataset::ElementType;
using dataset::InputFile;

namespace dataset {

size_t element_size(ElementType type) {
  switch (type) {
    case ElementType::f32: return 4;
    case ElementType::f16: return 2;
    case ElementType::bf16: return 2;
    case ElementType::f64: return 8;
  }
  return 4;
}

Status set_shape(ArraySource& source, const std::vector<uint64_t>& shape, const DatasetLimits& limits) {
  auto fail = [&](std::string reason) {
    return invalid_input(std::move(reason)).in_file(source.info.file).in_tensor(source.info.tensor);
  };
  if (shape.size() != 2 && shape.size() != 3) {
    return fail(fmt::format("shape [{}] is not [tokens, features] or [batches, tokens, features]", fmt::join(shape, ", ")));
  }
  const uint64_t batches = shape.size() == 3 ? shape[0] : 1;
  const uint64_t tokens = shape[shape.size() - 2];
  const uint64_t features = shape[shape.size() - 1];
  if (features == 0) return fail("shape has no features (last dimension is 0)");
  constexpr uint64_t kMaxDimension = uint64_t(1) << 40;
  if (batches > kMaxDimension || tokens > kMaxDimension || features > kMaxDimension) {
    return fail(fmt::format("shape [{}] has a dimension over 2^40", fmt::join(shape, ", ")));
  }
  const auto batch_values = checked_mul(tokens, features);
  const auto batch_floats = batch_values ? checked_mul(*batch_values, sizeof(float)) : std::nullopt;
  if (!batch_floats || *batch_floats > limits.max_batch_bytes) {
    return fail(fmt::format("one batch of [{}, {}] float32 values exceeds the cap of {} bytes", tokens, features,
                            limits.max_batch_bytes));
  }
  const auto all_values = checked_mul(*batch_values, batches);
  const auto bytes = all_values ? checked_mul(*all_values, element_size(source.element)) : std::nullopt;
  if (!bytes) return fail(fmt::format("shape [{}] overflows 64-bit sizes", fmt::join(shape, ", ")));
  source.info.batches = static_cast<int64_t>(batches);
  source.info.tokens = static_cast<int64_t>(tokens);
  source.info.features = static_cast<int64_t>(features);
  source.value_bytes = *bytes;
  return Status::success();
}

Result<std::unique_ptr<ByteStream>> open_values(const InputFile& file, const ArraySource& source) {
  if (!source.in_zip) return open_range(file, source.data_offset, source.value_bytes);
  auto stream = open_zip_member(file, source.method, source.data_offset, source.compressed_size,
                                source.uncompressed_size, source.crc32);
  // Skip the .npy header (parsed when the dataset was opened) so the stream starts at the first value.
  std::vector<uint8_t> header(static_cast<size_t>(source.header_bytes));
  QUANT_TRY(stream->read(header));
  return stream;
}

}  // namespace dataset

namespace {

enum class FileKind { safetensors, npy, npz };

Result<FileKind> detect_kind(const InputFile& file) {
  uint8_t magic[6] = {};
  if (file.size() < sizeof(magic)) {
    return invalid_input(fmt::format("{} bytes is too short for a safetensors, .npy or .npz file", file.size()))
        .in_file(file.path());
  }
  QUANT_TRY(file.read_at(0, magic, "file magic"));
  if (std::memcmp(magic, "\x93NUMPY", 6) == 0) return FileKind::npy;
  if (std::memcmp(magic, "PK\x03\x04", 4) == 0 || std::memcmp(magic, "PK\x05\x06", 4) == 0) return FileKind::npz;
  if (file.size() >= 9) {
    uint8_t first_json_byte = 0;
    QUANT_TRY(file.read_at(8, std::span<uint8_t>(&first_json_byte, 1), "file magic"));
    if (first_json_byte == '{') return FileKind::safetensors;
  }
  return invalid_input("not a safetensors, .npy or .npz file (unrecognised first bytes)").in_file(file.path()).at_offset(0);
}

// Converts `count` stored values to float32: widening is exact, f64 rounds to nearest.
void decode_values(ElementType type, const uint8_t* src, float* dst, size_t count) {
  switch (type) {
    case ElementType::f32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case ElementType::f16:
      for (size_t i = 0; i < count; ++i) dst[i] = fp16_to_fp32(dataset::load_u16(src + 2 * i));
      return;
    case ElementType::bf16:
      for (size_t i = 0; i < count; ++i) dst[i] = bf16_to_fp32(dataset::load_u16(src + 2 * i));
      return;
    case ElementType::f64:
      for (size_t i = 0; i < count; ++i) {
        double v;
        std::memcpy(&v, src + 8 * i, sizeof(double));
        dst[i] = static_cast<float>(v);
      }
      return;
  }
}

}  // namespace

struct DatasetReader::State {
  std::vector<std::string> files;
  std::vector<ArraySource> sources;
  std::vector<DatasetArray> arrays;
  std::vector<DatasetTensor> tensors;
  std::map<std::string, int64_t> batches_read;  // per weight, for Batch::index

  // The array being read: its file, stream and the next slice.
  size_t source_index = 0;
  int64_t slice = 0;
  std::optional<InputFile> file;
  std::unique_ptr<dataset::ByteStream> stream;
  std::vector<uint8_t> raw;  // stored bytes of one batch when they are not float32
};

DatasetReader::DatasetReader(std::unique_ptr<State> state) : state_(std::move(state)) {}
DatasetReader::DatasetReader(DatasetReader&& other) noexcept = default;
DatasetReader& DatasetReader::operator=(DatasetReader&& other) noexcept = default;
DatasetReader::~DatasetReader() = default;

const std::vector<std::string>& DatasetReader::files() const { return state_->files; }
const std::vector<DatasetArray>& DatasetReader::arrays() const { return state_->arrays; }
const std::vector<DatasetTensor>& DatasetReader::tensors() const { return state_->tensors; }

Result<bool> DatasetReader::next(Batch& batch) {
  State& s = *state_;
  // Skip arrays with no batches left (including arrays of zero batches).
  while (s.source_index < s.sources.size() && s.slice >= s.sources[s.source_index].info.batches) {
    ++s.source_index;
    s.slice = 0;
    s.stream.reset();
  }
  if (s.source_index >= s.sources.size()) {
    s.file.reset();
    return false;
  }
  const ArraySource& source = s.sources[s.source_index];
  if (!s.stream) {
    if (!s.file || s.file->path() != source.info.file) {
      s.file.reset();
      QUANT_ASSIGN_OR_RETURN(InputFile file, InputFile::open(source.info.file));
      s.file.emplace(std::move(file));
    }
    auto stream = dataset::open_values(*s.file, source);
    if (!stream) return std::move(stream).error().in_tensor(source.info.tensor);
    s.stream = std::move(stream).value();
  }

  const size_t count = static_cast<size_t>(source.info.tokens * source.info.features);  // checked in set_shape
  batch.tensor = source.info.tensor;
  batch.file = source.info.file;
  batch.index = s.batches_read[source.info.tensor]++;
  batch.tokens = source.info.tokens;
  batch.features = source.info.features;
  batch.values.resize(count);
  if (source.element == ElementType::f32) {
    Status read = s.stream->read(std::span<uint8_t>(reinterpret_cast<uint8_t*>(batch.values.data()), count * 4));
    if (!read) return std::move(read).error().in_tensor(source.info.tensor);
  } else {
    s.raw.resize(count * dataset::element_size(source.element));
    Status read = s.stream->read(s.raw);
    if (!read) return std::move(read).error().in_tensor(source.info.tensor);
    decode_values(source.element, s.raw.data(), batch.values.data(), count);
  }
  ++s.slice;
  return true;
}

Result<DatasetReader> open_dataset(const std::vector<std::string>& paths, const DatasetOptions& options) {
  if (paths.empty()) return usage_error("no dataset files given");
  auto state = std::make_unique<DatasetReader::State>();
  state->files = paths;
  for (const std::string& path : paths) {
    QUANT_ASSIGN_OR_RETURN(InputFile file, InputFile::open(path));
    QUANT_ASSIGN_OR_RETURN(FileKind kind, detect_kind(file));
    Result<std::vector<ArraySource>> arrays =
        kind == FileKind::npy ? dataset::read_npy_arrays(file, options.limits)
        : kind == FileKind::npz ? dataset::read_npz_arrays(file, options.limits)
                                : dataset::read_safetensors_arrays(file, options.limits);
    if (!arrays) return std::move(arrays).error();
    for (ArraySource& source : *arrays) state->sources.push_back(std::move(source));
  }

  std::map<std::string, DatasetTensor> tensors;
  for (const ArraySource& source : state->sources) {
    const DatasetArray& array = source.info;
    auto fail = [&](std::string reason) {
      return invalid_input(std::move(reason)).in_file(array.file).in_tensor(array.tensor);
    };
    if (!options.weight_features.empty()) {
      const auto expected = options.weight_features.find(array.tensor);
      if (expected == options.weight_features.end()) return fail("no weight of the model has this name");
      if (expected->second != array.features) {
        return fail(fmt::format("activations have {} features but the weight takes {} inputs (its row length)",
                                array.features, expected->second));
      }
    }
    auto [it, inserted] = tensors.try_emplace(array.tensor, DatasetTensor{array.tensor, array.features, 0, 0});
    if (!inserted && it->second.features != array.features) {
      return fail(fmt::format("activations have {} features but earlier batches of this weight have {}",
                              array.features, it->second.features));
    }
    const auto tokens = checked_add(uint64_t(it->second.tokens), uint64_t(array.batches) * uint64_t(array.tokens));
    if (!tokens || *tokens > uint64_t(INT64_MAX)) return fail("total token count overflows 64 bits");
    it->second.batches += array.batches;  // each term is below 2^40 (set_shape), and so are the files
    it->second.tokens = static_cast<int64_t>(*tokens);
    state->arrays.push_back(array);
  }
  for (auto& [name, tensor] : tensors) state->tensors.push_back(tensor);
  return DatasetReader(std::move(state));
}

}  // namespace quant
