// `quantize info FILE...`: what a person needs to know about a model file: version, alignment, metadata (long
// arrays summarised), tensors, and totals by type. With --json, the same as one JSON document (docs/info-json.md);
// several files give {"files": [document, ...]}. Any shard of a split model describes the whole model: its shards,
// the first shard's metadata, every tensor with the shard that holds it, and totals over all of them. Every file is
// opened before anything is printed, so a file that cannot be read fails the command with nothing on stdout.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "command.h"
#include "quant/gguf.h"
#include "quant/hf.h"
#include "quant/split.h"

namespace quant::cli {
namespace {

constexpr uint64_t kArrayHead = 8;          // array elements shown before "..."
constexpr size_t kMaxShownStringBytes = 64;  // longer strings are cut in the text view

// A string for a terminal: quoted, control characters escaped, long ones cut.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMaxShownStringBytes; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += char(c);
    }
  }
  out += '"';
  if (text.size() > kMaxShownStringBytes) out += fmt::format("...({} bytes)", text.size());
  return out;
}

std::string scalar_text(const Value& v) {
  switch (v.type()) {
    case ValueType::u8: return fmt::format("{}", v.as<uint8_t>());
    case ValueType::i8: return fmt::format("{}", v.as<int8_t>());
    case ValueType::u16: return fmt::format("{}", v.as<uint16_t>());
    case ValueType::i16: return fmt::format("{}", v.as<int16_t>());
    case ValueType::u32: return fmt::format("{}", v.as<uint32_t>());
    case ValueType::i32: return fmt::format("{}", v.as<int32_t>());
    case ValueType::f32: return fmt::format("{}", v.as<float>());
    case ValueType::boolean: return v.as<bool>() ? "true" : "false";
    case ValueType::u64: return fmt::format("{}", v.as<uint64_t>());
    case ValueType::i64: return fmt::format("{}", v.as<int64_t>());
    case ValueType::f64: return fmt::format("{}", v.as<double>());
    case ValueType::string: return quoted(v.as_string());
    case ValueType::array: break;
  }
  return "";
}

// "array[string] x512: "a", "b", ..." (nested arrays shown by their own summaries).
std::string value_text(const Value& v) {
  if (!v.is_array()) return fmt::format("{} {}", value_type_name(v.type()), scalar_text(v));
  std::string out = fmt::format("array[{}] x{}", value_type_name(v.element_type()), v.size());
  for (uint64_t i = 0; i < v.size() && i < kArrayHead; ++i) {
    const Value item = v.element(i);
    out += i == 0 ? ": " : ", ";
    out += item.is_array() ? "(" + value_text(item) + ")" : scalar_text(item);
  }
  if (v.size() > kArrayHead) out += ", ...";
  return out;
}

nlohmann::json scalar_json(const Value& v) {
  switch (v.type()) {
    case ValueType::u8: return v.as<uint8_t>();
    case ValueType::i8: return v.as<int8_t>();
    case ValueType::u16: return v.as<uint16_t>();
    case ValueType::i16: return v.as<int16_t>();
    case ValueType::u32: return v.as<uint32_t>();
    case ValueType::i32: return v.as<int32_t>();
    case ValueType::f32: return v.as<float>();
    case ValueType::boolean: return v.as<bool>();
    case ValueType::u64: return v.as<uint64_t>();
    case ValueType::i64: return v.as<int64_t>();
    case ValueType::f64: return v.as<double>();
    case ValueType::string: return std::string(v.as_string());
    case ValueType::array: break;
  }
  return nullptr;
}

// {"type": "u32", "value": 5} or {"type": "array", "element_type": ..., "count": N, "head": [...]}.
nlohmann::json value_json(const Value& v) {
  nlohmann::json out;
  out["type"] = value_type_name(v.type());
  if (!v.is_array()) {
    out["value"] = scalar_json(v);
    return out;
  }
  out["element_type"] = value_type_name(v.element_type());
  out["count"] = v.size();
  nlohmann::json head = nlohmann::json::array();
  for (uint64_t i = 0; i < v.size() && i < kArrayHead; ++i) {
    const Value item = v.element(i);
    head.push_back(item.is_array() ? value_json(item) : scalar_json(item));
  }
  out["head"] = std::move(head);
  return out;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

struct TypeTotals {
  uint64_t tensors = 0;
  uint64_t parameters = 0;
  uint64_t bytes = 0;
};

double bits_per_weight(uint64_t bytes, uint64_t parameters) {
  return parameters == 0 ? 0.0 : 8.0 * double(bytes) / double(parameters);
}

// Totals per tensor type, ordered by type name.
std::map<std::string, TypeTotals> totals_by_type(const ModelSource& file) {
  std::map<std::string, TypeTotals> totals;
  for (const TensorInfo& tensor : file.tensors()) {
    TypeTotals& t = totals[std::string(format_of(tensor.type).name)];
    ++t.tensors;
    t.parameters += uint64_t(tensor.element_count());
    t.bytes += tensor.size_bytes;
  }
  return totals;
}

// The GGUF file whose header holds the model's metadata: the file itself, or the first shard of a split model.
const GgufFile& head_file(const ModelSource& model) {
  if (const auto* split = dynamic_cast<const SplitModel*>(&model); split != nullptr) return split->shards().front();
  return static_cast<const GgufFile&>(model);  // open_model() gives a split model or a GGUF file
}

void print_shards_text(const SplitModel& split) {
  fmt::print("\nshards ({}):\n", split.shards().size());
  size_t path_width = 4;
  for (const GgufFile& shard : split.shards()) path_width = std::max(path_width, shard.path().size());
  fmt::print("  {:>5}  {:<{}}  {:>7} {:>14} {:>14}\n", "shard", "file", path_width, "tensors", "bytes", "data at");
  for (size_t i = 0; i < split.shards().size(); ++i) {
    const GgufFile& shard = split.shards()[i];
    fmt::print("  {:>5}  {:<{}}  {:>7} {:>14} {:>#14x}\n", i + 1, shard.path(), path_width, shard.tensors().size(),
               shard.file_size(), shard.data_offset());
  }
}

void print_text(const ModelSource& model) {
  const GgufFile& file = head_file(model);
  const auto* split = dynamic_cast<const SplitModel*>(&model);
  fmt::print("file: {}\n", model.path());
  if (split != nullptr) {
    fmt::print("split model: {} shards, {} bytes in all; GGUF version {}, alignment {} (first shard)\n",
               split->shards().size(), split->input_bytes(), file.version(), file.alignment());
    print_shards_text(*split);
  } else {
    fmt::print("GGUF version {}{}, alignment {}, {} bytes, data section at {:#x}\n", file.version(),
               file.byte_swapped_magic() ? " (byte-swapped magic \"FUGG\")" : "", file.alignment(),
               file.file_size(), file.data_offset());
  }

  fmt::print("\nmetadata ({} keys{}):\n", file.metadata().size(), split != nullptr ? ", from the first shard" : "");
  size_t key_width = 0;
  for (const KeyValue& kv : file.metadata()) key_width = std::max(key_width, kv.key.size());
  for (const KeyValue& kv : file.metadata()) fmt::print("  {:<{}}  {}\n", kv.key, key_width, value_text(kv.value));

  fmt::print("\ntensors ({}):\n", model.tensors().size());
  if (!model.tensors().empty()) {
    size_t name_width = 4;
    for (const TensorInfo& t : model.tensors()) name_width = std::max(name_width, t.name.size());
    const std::string shard_column = split != nullptr ? fmt::format(" {:>5}", "shard") : "";
    fmt::print("  {:<{}}  {:<8} {:<24} {:>14}{} {:>14}\n", "name", name_width, "type", "shape", "bytes", shard_column,
               "offset");
    for (const TensorInfo& t : model.tensors()) {
      const std::string shard = split != nullptr ? fmt::format(" {:>5}", split->split_index_of(t) + 1) : "";
      fmt::print("  {:<{}}  {:<8} {:<24} {:>14}{} {:>#14x}\n", t.name, name_width, format_of(t.type).name,
                 shape_text(t.shape), t.size_bytes, shard, t.offset);
    }
  }

  const uint64_t parameters = model.total_elements();
  const uint64_t bytes = model.total_tensor_bytes();
  fmt::print("\ntotals: {} tensors, {} parameters, {} bytes of tensor data, {:.4f} bits per weight\n",
             model.tensors().size(), parameters, bytes, bits_per_weight(bytes, parameters));
  for (const auto& [type, t] : totals_by_type(model)) {
    fmt::print("  {:<8} {:>6} tensors {:>14} parameters {:>14} bytes {:>8.4f} bpw\n", type, t.tensors, t.parameters,
               t.bytes, bits_per_weight(t.bytes, t.parameters));
  }
}

nlohmann::json info_json(const ModelSource& model) {
  const GgufFile& file = head_file(model);
  const auto* split = dynamic_cast<const SplitModel*>(&model);
  nlohmann::json doc;
  doc["file"] = model.path();
  doc["version"] = file.version();
  doc["byte_swapped_magic"] = file.byte_swapped_magic();
  doc["alignment"] = file.alignment();
  doc["file_size"] = model.input_bytes();
  doc["data_offset"] = split != nullptr ? nlohmann::json(nullptr) : nlohmann::json(file.data_offset());
  if (split != nullptr) {
    nlohmann::json shards = nlohmann::json::array();
    for (const GgufFile& shard : split->shards()) {
      shards.push_back({{"file", shard.path()}, {"version", shard.version()}, {"alignment", shard.alignment()},
                        {"file_size", shard.file_size()}, {"data_offset", shard.data_offset()},
                        {"tensors", shard.tensors().size()}, {"bytes", shard.total_tensor_bytes()}});
    }
    doc["split"] = {{"prefix", split->prefix()}, {"count", split->shards().size()}, {"shards", std::move(shards)}};
  }
  nlohmann::json metadata = nlohmann::json::array();
  for (const KeyValue& kv : file.metadata()) {
    nlohmann::json entry = value_json(kv.value);
    entry["key"] = kv.key;
    metadata.push_back(std::move(entry));
  }
  doc["metadata"] = std::move(metadata);
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorInfo& t : model.tensors()) {
    tensors.push_back({{"name", t.name}, {"type", format_of(t.type).name}, {"shape", t.shape},
                       {"parameters", t.element_count()}, {"bytes", t.size_bytes}, {"offset", t.offset}});
    if (split != nullptr) tensors.back()["shard"] = split->split_index_of(t);
  }
  doc["tensors"] = std::move(tensors);
  const uint64_t parameters = model.total_elements();
  const uint64_t bytes = model.total_tensor_bytes();
  nlohmann::json by_type = nlohmann::json::array();
  for (const auto& [type, t] : totals_by_type(model)) {
    by_type.push_back({{"type", type}, {"tensors", t.tensors}, {"parameters", t.parameters}, {"bytes", t.bytes},
                       {"bits_per_weight", bits_per_weight(t.bytes, t.parameters)}});
  }
  doc["totals"] = {{"tensors", model.tensors().size()}, {"parameters", parameters}, {"bytes", bytes},
                   {"bits_per_weight", bits_per_weight(bytes, parameters)}, {"by_type", std::move(by_type)}};
  return doc;
}

}  // namespace

Command add_info_command(CLI::App& parent, GlobalOptions& globals) {
  auto* app = parent.add_subcommand("info", "Describe GGUF files or split models: version, metadata, tensors, totals");
  auto paths = std::make_shared<std::vector<std::string>>();
  app->add_option("FILE", *paths, "GGUF file(s) to describe (any shard of a split model describes the whole model)")
      ->required();
  return Command{app, [paths, &globals]() -> int {
                   std::vector<std::unique_ptr<ModelSource>> models;
                   for (const std::string& path : *paths) {
                     if (is_checkpoint_directory(path)) {
                       // info describes a file's own layout (version, alignment, offsets), which a checkpoint
                       // folder does not have; the dry run shows the GGUF it is read as.
                       return fail(usage_error(fmt::format("'{}' is a checkpoint folder: info describes GGUF files; "
                                                           "`quantize {} --to F16 --dry-run` lists the tensors it "
                                                           "is read as (docs/hf.md)",
                                                           path, path)));
                     }
                     Result<std::unique_ptr<ModelSource>> model = open_model(path);
                     if (!model) return fail(model.error());
                     spdlog::debug("{}: {} bytes, {} tensors", path, (*model)->input_bytes(),
                                   (*model)->tensors().size());
                     models.push_back(std::move(*model));
                   }
                   if (globals.json) {
                     nlohmann::json doc;
                     if (models.size() == 1) {
                       doc = info_json(*models[0]);
                     } else {
                       doc["files"] = nlohmann::json::array();
                       for (const auto& model : models) doc["files"].push_back(info_json(*model));
                     }
                     // Metadata strings are not guaranteed UTF-8: replace invalid bytes rather than fail.
                     fmt::print("{}\n", doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
                   } else {
                     for (size_t i = 0; i < models.size(); ++i) {
                       if (i > 0) fmt::print("\n");
                       print_text(*models[i]);
                     }
                   }
                   return kExitOk;
                 }};
}

}  // namespace quant::cli
