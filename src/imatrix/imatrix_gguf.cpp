// The GGUF imatrix format (llama-imatrix's default): three metadata keys and, per weight W, the F32 tensors
// W.in_sum2 [n_per_row, n_expert] and W.counts [1, n_expert]. Other tensors (W.in_sum, W.stats from newer
// writers) are ignored, as llama-quantize ignores them.
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "core/checked_math.h"
#include "imatrix/imatrix_gguf.h"

namespace quant {
namespace {

constexpr std::string_view kSumsSuffix = ".in_sum2";
constexpr std::string_view kCountsSuffix = ".counts";
constexpr const char* kDatasetsKey = "imatrix.datasets";
constexpr const char* kChunkCountKey = "imatrix.chunk_count";
constexpr const char* kChunkSizeKey = "imatrix.chunk_size";

bool strip_suffix(std::string_view name, std::string_view suffix, std::string* base) {
  if (name.size() <= suffix.size() || name.substr(name.size() - suffix.size()) != suffix) return false;
  *base = std::string(name.substr(0, name.size() - suffix.size()));
  return true;
}

Result<std::vector<float>> read_f32_tensor(const GgufFile& file, const TensorInfo& tensor, const std::string& entry,
                                           const ImatrixLimits& limits) {
  auto fail = [&](std::string reason) {
    return invalid_input(std::move(reason)).in_file(file.path()).in_tensor(tensor.name);
  };
  if (tensor.type != TypeId::f32) {
    return fail(fmt::format("sums and counts of '{}' must be F32, this is {}", entry, format_of(tensor.type).name));
  }
  const int64_t elements = tensor.element_count();
  if (elements < 1 || uint64_t(elements) > limits.max_values_per_entry) {
    return fail(fmt::format("{} values, outside 1..{}", elements, limits.max_values_per_entry));
  }
  QUANT_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, file.read_tensor_data(tensor));
  std::vector<float> values(static_cast<size_t>(elements));
  if (bytes.size() != values.size() * 4) return fail("tensor data size does not match its shape");
  std::memcpy(values.data(), bytes.data(), bytes.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return fail(fmt::format("value {} is not finite ({})", i, values[i])).at_offset(file.data_offset() + tensor.offset + 4 * i);
    }
  }
  return values;
}

}  // namespace

Result<ImportanceMatrix> read_imatrix_gguf(const std::string& path, const ImatrixLimits& limits) {
  QUANT_ASSIGN_OR_RETURN(GgufFile file, GgufFile::open(path));
  return imatrix::imatrix_from_gguf(file, limits);
}

Result<ImportanceMatrix> imatrix::imatrix_from_gguf(const GgufFile& file, const ImatrixLimits& limits) {
  const std::string& path = file.path();
  auto fail = [&](std::string reason) { return invalid_input(std::move(reason)).in_file(path); };
  if (file.tensors().empty()) return fail("no tensors: not an importance matrix");

  // llama-quantize refuses a GGUF imatrix without these three keys.
  ImportanceMatrix imatrix;
  imatrix.format = ImatrixFormat::gguf;
  const Value* datasets = file.find(kDatasetsKey);
  if (datasets == nullptr || file.find(kChunkCountKey) == nullptr || file.find(kChunkSizeKey) == nullptr) {
    return fail(fmt::format("missing imatrix metadata (needs {}, {} and {})", kDatasetsKey, kChunkCountKey, kChunkSizeKey));
  }
  if (!datasets->is_array() || datasets->element_type() != ValueType::string) {
    return fail(fmt::format("{} must be an array of strings", kDatasetsKey));
  }
  for (uint64_t i = 0; i < datasets->size(); ++i) imatrix.datasets.emplace_back(datasets->string_at(i));
  QUANT_ASSIGN_OR_RETURN(uint32_t chunk_count, file.get<uint32_t>(kChunkCountKey));
  QUANT_ASSIGN_OR_RETURN(uint32_t chunk_size, file.get<uint32_t>(kChunkSizeKey));
  imatrix.chunk_count = chunk_count;
  imatrix.chunk_size = chunk_size;

  // Pair W.in_sum2 with W.counts.
  std::map<std::string, std::pair<const TensorInfo*, const TensorInfo*>> pairs;
  for (const TensorInfo& tensor : file.tensors()) {
    std::string base;
    if (strip_suffix(tensor.name, kSumsSuffix, &base)) pairs[base].first = &tensor;
    else if (strip_suffix(tensor.name, kCountsSuffix, &base)) pairs[base].second = &tensor;
  }
  if (pairs.size() > limits.max_entries) return fail(fmt::format("{} entries, over the cap of {}", pairs.size(), limits.max_entries));
  for (const auto& [name, pair] : pairs) {
    const auto [sums_info, counts_info] = pair;
    // Named capture: clang 14 (the fuzz build) cannot capture a structured binding implicitly.
    auto entry_error = [&, &entry_name = name](std::string reason) {
      return invalid_input(std::move(reason)).in_file(path).in_tensor(entry_name);
    };
    if (sums_info == nullptr || counts_info == nullptr) {
      return entry_error(fmt::format("mismatched sums and counts: {}{} has no {}{}", name,
                                     sums_info ? kSumsSuffix : kCountsSuffix, name, sums_info ? kCountsSuffix : kSumsSuffix));
    }
    const std::vector<int64_t>& shape = sums_info->shape;
    for (size_t d = 2; d < shape.size(); ++d) {
      if (shape[d] != 1) return entry_error("in_sum2 has more than 2 dimensions ([n_per_row, n_expert] expected)");
    }
    ImportanceEntry entry;
    entry.n_per_row = shape.empty() ? 1 : shape[0];
    entry.n_expert = shape.size() > 1 ? shape[1] : 1;
    if (counts_info->element_count() != entry.n_expert) {
      return entry_error(fmt::format("{} counts for {} experts (in_sum2 is [{}, {}])", counts_info->element_count(),
                                     entry.n_expert, entry.n_per_row, entry.n_expert));
    }
    QUANT_ASSIGN_OR_RETURN(entry.stored_sums, read_f32_tensor(file, *sums_info, name, limits));
    QUANT_ASSIGN_OR_RETURN(entry.stored_counts, read_f32_tensor(file, *counts_info, name, limits));
    entry.values.resize(entry.stored_sums.size());
    const size_t row = static_cast<size_t>(entry.n_per_row);
    for (size_t e = 0; e < entry.stored_counts.size(); ++e) {
      const float count = entry.stored_counts[e];
      if (count < 0) return entry_error(fmt::format("negative count {} for expert {}", count, e));
      for (size_t i = 0; i < row; ++i) {
        // A weight (or expert) that never saw a token gets importance 1 everywhere, as in llama-quantize.
        const float v = count > 0.0f ? entry.stored_sums[e * row + i] / count : 1.0f;
        if (!std::isfinite(v)) {
          return entry_error(fmt::format("importance {} (expert {}, column {}) is not finite: sum {} / count {}",
                                         e * row + i, e, i, entry.stored_sums[e * row + i], count));
        }
        entry.values[e * row + i] = v;
      }
    }
    imatrix.entries.emplace(name, std::move(entry));
  }
  if (imatrix.entries.empty()) return fail("no W.in_sum2 / W.counts tensor pairs: not an importance matrix");
  return imatrix;
}

Status write_imatrix_gguf(const std::string& path, const std::map<std::string, ImatrixAccumulator::Sums>& sums,
                          const ImatrixMetadata& metadata, const OutputPolicy& policy) {
  if (metadata.chunk_count < 0 || metadata.chunk_count > int64_t(UINT32_MAX) || metadata.chunk_size < 0 ||
      metadata.chunk_size > int64_t(UINT32_MAX)) {
    return impossible("chunk count or size does not fit the format's u32").in_file(path);
  }
  if (sums.empty()) return impossible("no weight received a batch of at least 16 tokens: nothing to write").in_file(path);
  QUANT_TRY(check_output_path(path, policy));
  for (const auto& [name, s] : sums) {
    if (s.counts.empty() || s.in_sum2.empty() || s.in_sum2.size() % s.counts.size() != 0) {
      return impossible(fmt::format("{} sums for {} counts", s.in_sum2.size(), s.counts.size())).in_file(path).in_tensor(name);
    }
  }
  QUANT_ASSIGN_OR_RETURN(GgufWriter writer, GgufWriter::create(path));
  QUANT_TRY(writer.add_metadata("general.type", Value::string("imatrix")));
  QUANT_TRY(writer.add_metadata(kDatasetsKey, Value::array_of_strings(std::span<const std::string>(metadata.datasets))));
  QUANT_TRY(writer.add_metadata(kChunkCountKey, Value::u32(static_cast<uint32_t>(metadata.chunk_count))));
  QUANT_TRY(writer.add_metadata(kChunkSizeKey, Value::u32(static_cast<uint32_t>(metadata.chunk_size))));
  // llama-imatrix makes [n_per_row, n_expert] and [1, n_expert] tensors; ggml drops trailing dimensions of 1, so
  // dense weights get [n_per_row] and [1].
  for (const auto& [name, s] : sums) {
    const int64_t experts = s.n_expert();
    const std::vector<int64_t> sums_shape = experts > 1 ? std::vector<int64_t>{s.n_per_row(), experts}
                                                        : std::vector<int64_t>{s.n_per_row()};
    const std::vector<int64_t> counts_shape = experts > 1 ? std::vector<int64_t>{1, experts} : std::vector<int64_t>{1};
    QUANT_TRY(writer.add_tensor(name + std::string(kSumsSuffix), TypeId::f32, sums_shape));
    QUANT_TRY(writer.add_tensor(name + std::string(kCountsSuffix), TypeId::f32, counts_shape));
  }
  QUANT_TRY(writer.begin());
  for (const auto& [name, s] : sums) {
    QUANT_TRY(writer.write_tensor(name + std::string(kSumsSuffix),
                                  std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.in_sum2.data()),
                                                           s.in_sum2.size() * sizeof(float))));
    std::vector<float> counts(s.counts.begin(), s.counts.end());  // stored as F32, as llama-imatrix does
    QUANT_TRY(writer.write_tensor(name + std::string(kCountsSuffix),
                                  std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(counts.data()),
                                                           counts.size() * sizeof(float))));
  }
  return writer.commit(policy);
}

}  // namespace quant
