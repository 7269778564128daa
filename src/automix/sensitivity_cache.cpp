// The sensitivity cache: one measurement, many budgets. A JSON file:
//   {"format": "quantize.sensitivity", "version": 1, "unit": "...", "seconds": 1.2,
//    "fingerprint": {"model": HEX, "imatrix": HEX|"none", "text": HEX|"none", "measurer": "weighted-error/1 values=131072"},
//    "tensors": [{"name": "blk.0.attn_q.weight", "costs": {"q4_K": 0.0012, ...}}, ...]}
// A cache is only used for the inputs it was measured from; the refusal says which input differs.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "quant/atomic_file.h"
#include "quant/automix.h"
#include "quant/sha256.h"

namespace quant {
namespace {

constexpr std::string_view kFormat = "quantize.sensitivity";
constexpr int kVersion = 1;
constexpr uint64_t kWindowBytes = 4096;
constexpr int kWindowsPerTensor = 4;

void hash_u64(Sha256& hasher, uint64_t value) { hasher.update(&value, sizeof(value)); }

void hash_string(Sha256& hasher, std::string_view text) {
  hash_u64(hasher, text.size());
  hasher.update(text.data(), text.size());
}

Error bad_cache(const std::string& path, std::string why) {
  return Error(invalid_input(fmt::format("not a sensitivity cache: {}", why))).in_file(path);
}

}  // namespace

std::optional<double> TensorSensitivity::cost_of(TypeId type) const {
  for (const TypeCost& entry : costs) {
    if (entry.type == type) return entry.cost;
  }
  return std::nullopt;
}

const TensorSensitivity* SensitivityTable::find(std::string_view name) const {
  for (const TensorSensitivity& tensor : tensors) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

Result<std::string> model_fingerprint(const ModelSource& model) {
  Sha256 hasher;
  std::vector<uint8_t> encoded;
  for (const KeyValue& kv : model.metadata()) {
    hash_string(hasher, kv.key);
    encoded.clear();
    kv.value.encode_v3(encoded);
    hash_u64(hasher, uint64_t(kv.value.type()));
    hasher.update(encoded.data(), encoded.size());
  }
  std::vector<uint8_t> window;
  for (const TensorInfo& tensor : model.tensors()) {
    hash_string(hasher, tensor.name);
    hash_u64(hasher, uint64_t(tensor.type));
    for (int64_t extent : tensor.shape) hash_u64(hasher, uint64_t(extent));
    // A few windows spread over the data: a fine-tune with the same header differs in every one of them.
    const uint64_t size = tensor.size_bytes;
    for (int w = 0; w < kWindowsPerTensor && size > 0; ++w) {
      const uint64_t length = std::min(size, kWindowBytes);
      const uint64_t start = (size - length) * uint64_t(w) / uint64_t(kWindowsPerTensor - 1);
      window.resize(length);
      QUANT_TRY(model.read_tensor(tensor, start, window));
      hasher.update(window.data(), window.size());
    }
  }
  return hasher.finish_hex();
}

std::string imatrix_fingerprint(const ImportanceMatrix* imatrix) {
  if (imatrix == nullptr || imatrix->entries.empty()) return "none";
  Sha256 hasher;
  for (const auto& [name, entry] : imatrix->entries) {
    hash_string(hasher, name);
    hash_u64(hasher, uint64_t(entry.n_per_row));
    hash_u64(hasher, uint64_t(entry.n_expert));
    hasher.update(entry.values.data(), entry.values.size() * sizeof(float));
  }
  return hasher.finish_hex();
}

Result<std::string> file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(io_error(fmt::format("cannot open: {}", std::strerror(errno)))).in_file(path);
  Sha256 hasher;
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), std::streamsize(buffer.size()));
    hasher.update(buffer.data(), size_t(in.gcount()));
  }
  if (in.bad()) return Error(io_error("cannot read")).in_file(path);
  return hasher.finish_hex();
}

Status write_sensitivity_cache(const std::string& path, const SensitivityTable& table, const OutputPolicy& policy) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorSensitivity& tensor : table.tensors) {
    nlohmann::json costs = nlohmann::json::object();
    for (const TypeCost& entry : tensor.costs) costs[std::string(format_of(entry.type).name)] = entry.cost;
    tensors.push_back({{"name", tensor.name}, {"costs", costs}});
  }
  const nlohmann::json document = {
      {"format", kFormat},
      {"version", kVersion},
      {"unit", table.unit},
      {"seconds", table.seconds},
      {"fingerprint",
       {{"model", table.fingerprint.model},
        {"imatrix", table.fingerprint.imatrix},
        {"text", table.fingerprint.text},
        {"measurer", table.fingerprint.measurer}}},
      {"tensors", tensors},
  };
  const std::string text = document.dump(1) + "\n";
  return write_file_atomically(path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
                               policy);
}

Result<SensitivityTable> read_sensitivity_cache(const std::string& path, const SensitivityFingerprint& expected) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(io_error(fmt::format("cannot open sensitivity cache: {}", std::strerror(errno)))).in_file(path);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return Error(io_error("cannot read sensitivity cache")).in_file(path);
  const nlohmann::json document = nlohmann::json::parse(contents.str(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object()) return bad_cache(path, "not a JSON object");
  auto string_at = [&](const nlohmann::json& object, const char* key) -> Result<std::string> {
    const auto it = object.find(key);
    if (it == object.end() || !it->is_string()) return bad_cache(path, fmt::format("'{}' is missing or not a string", key));
    return it->get<std::string>();
  };
  QUANT_ASSIGN_OR_RETURN(const std::string format, string_at(document, "format"));
  if (format != kFormat) return bad_cache(path, fmt::format("format is '{}'", format));
  const auto version = document.find("version");
  if (version == document.end() || !version->is_number_integer() || version->get<int64_t>() != kVersion) {
    return bad_cache(path, fmt::format("version is not {}", kVersion));
  }
  SensitivityTable table;
  QUANT_ASSIGN_OR_RETURN(table.unit, string_at(document, "unit"));
  if (const auto seconds = document.find("seconds"); seconds != document.end() && seconds->is_number()) {
    table.seconds = seconds->get<double>();
  }
  const auto fingerprint = document.find("fingerprint");
  if (fingerprint == document.end() || !fingerprint->is_object()) return bad_cache(path, "no fingerprint object");
  QUANT_ASSIGN_OR_RETURN(table.fingerprint.model, string_at(*fingerprint, "model"));
  QUANT_ASSIGN_OR_RETURN(table.fingerprint.imatrix, string_at(*fingerprint, "imatrix"));
  QUANT_ASSIGN_OR_RETURN(table.fingerprint.text, string_at(*fingerprint, "text"));
  QUANT_ASSIGN_OR_RETURN(table.fingerprint.measurer, string_at(*fingerprint, "measurer"));

  // Refuse a cache from other inputs before reading its numbers, naming the first input that differs.
  auto refuse = [&](std::string why) { return Error(impossible(fmt::format("cannot use this sensitivity cache: {}; "
                                                                           "measure again with another cache file",
                                                                           why)))
                                           .in_file(path); };
  if (table.fingerprint.model != expected.model) return refuse("it was measured on another model");
  if (table.fingerprint.imatrix != expected.imatrix) {
    return refuse(expected.imatrix == "none" ? "it was measured with an importance matrix and none is given now"
                  : table.fingerprint.imatrix == "none" ? "it was measured without an importance matrix"
                                                        : "it was measured with another importance matrix");
  }
  if (table.fingerprint.text != expected.text) {
    return refuse(expected.text == "none" ? "it was measured on a calibration text and none is given now"
                  : table.fingerprint.text == "none" ? "it was measured without a calibration text"
                                                     : "it was measured on another calibration text");
  }
  if (table.fingerprint.measurer != expected.measurer) {
    return refuse(fmt::format("it was measured by '{}', this run measures by '{}'", table.fingerprint.measurer,
                              expected.measurer));
  }

  const auto tensors = document.find("tensors");
  if (tensors == document.end() || !tensors->is_array()) return bad_cache(path, "no tensors array");
  for (const nlohmann::json& entry : *tensors) {
    if (!entry.is_object()) return bad_cache(path, "a tensors entry is not an object");
    TensorSensitivity tensor;
    QUANT_ASSIGN_OR_RETURN(tensor.name, string_at(entry, "name"));
    const auto costs = entry.find("costs");
    if (costs == entry.end() || !costs->is_object()) {
      return bad_cache(path, fmt::format("tensor '{}' has no costs object", tensor.name));
    }
    for (const auto& [type_name, cost] : costs->items()) {
      const FormatInfo* type_format = find_format(type_name);
      if (type_format == nullptr) return bad_cache(path, fmt::format("tensor '{}': unknown type '{}'", tensor.name, type_name));
      if (!cost.is_number() || !std::isfinite(cost.get<double>()) || cost.get<double>() < 0) {
        return bad_cache(path, fmt::format("tensor '{}': cost of {} is not a finite number >= 0", tensor.name, type_name));
      }
      tensor.costs.push_back({type_format->id, cost.get<double>()});
    }
    table.tensors.push_back(std::move(tensor));
  }
  return table;
}

}  // namespace quant
