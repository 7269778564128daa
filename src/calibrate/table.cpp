// Calibration tables: quantization error meter, JSON form and GGUF metadata form (docs/calibration.md).
#include <fmt/format.h>

#include <cmath>
#include <climits>
#include <cstdint>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>

#include "quant/calibrate.h"

namespace quant {

namespace {

using nlohmann::json;

constexpr int kTableVersion = 1;

template <typename T>
json maybe_scalar(const std::vector<T>& v, bool per_channel) {
  json a = json::array();
  for (const T& x : v) a.push_back(x);
  if (!per_channel && v.size() == 1) return a[0];
  return a;
}

// Typed reads of a table's fields. Each names the field and says what it holds instead, so a damaged table never
// surfaces as a JSON library exception.
const char* json_kind(const json& j) {
  if (j.is_null()) return "null";
  if (j.is_boolean()) return "a boolean";
  if (j.is_number()) return "a number";
  if (j.is_string()) return "a string";
  if (j.is_array()) return "an array";
  return "an object";
}

Result<const json*> member(const json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) return invalid_input(fmt::format("{}: '{}' is missing", where, key));
  return &*it;
}

Result<double> finite_number(const json& j, const std::string& where) {
  if (!j.is_number()) return invalid_input(fmt::format("{} must be a finite number, not {}", where, json_kind(j)));
  const double value = j.get<double>();
  if (!std::isfinite(value)) return invalid_input(fmt::format("{} must be a finite number", where));
  return value;
}

Result<int64_t> integer(const json& j, const std::string& where) {
  if (!j.is_number_integer()) return invalid_input(fmt::format("{} must be an integer, not {}", where, json_kind(j)));
  if (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(INT64_MAX)) {
    return invalid_input(fmt::format("{} is out of range", where));
  }
  return j.get<int64_t>();
}

// A number, or (per channel) an array of numbers.
Result<std::vector<float>> floats_field(const json& m, const char* key, const std::string& where) {
  QUANT_ASSIGN_OR_RETURN(const json* field, member(m, key, where));
  const std::string name = fmt::format("{}: '{}'", where, key);
  std::vector<float> out;
  if (!field->is_array()) {
    QUANT_ASSIGN_OR_RETURN(const double value, finite_number(*field, name));
    out.push_back(static_cast<float>(value));
  } else {
    if (field->empty()) return invalid_input(fmt::format("{} is an empty array (one value per channel)", name));
    for (size_t i = 0; i < field->size(); ++i) {
      QUANT_ASSIGN_OR_RETURN(const double value, finite_number((*field)[i], fmt::format("{}[{}]", name, i)));
      out.push_back(static_cast<float>(value));
    }
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) return invalid_input(fmt::format("{}: value {} does not fit float32", name, i));
  }
  return out;
}

Result<std::vector<int64_t>> integers_field(const json& m, const char* key, const std::string& where) {
  QUANT_ASSIGN_OR_RETURN(const json* field, member(m, key, where));
  const std::string name = fmt::format("{}: '{}'", where, key);
  std::vector<int64_t> out;
  if (!field->is_array()) {
    QUANT_ASSIGN_OR_RETURN(const int64_t value, integer(*field, name));
    out.push_back(value);
  } else {
    if (field->empty()) return invalid_input(fmt::format("{} is an empty array (one value per channel)", name));
    for (size_t i = 0; i < field->size(); ++i) {
      QUANT_ASSIGN_OR_RETURN(const int64_t value, integer((*field)[i], fmt::format("{}[{}]", name, i)));
      out.push_back(value);
    }
  }
  return out;
}

Result<std::string> string_field(const json& object, const char* key, const std::string& where) {
  QUANT_ASSIGN_OR_RETURN(const json* field, member(object, key, where));
  if (!field->is_string()) {
    return invalid_input(fmt::format("{}: '{}' must be a string, not {}", where, key, json_kind(*field)));
  }
  return field->get<std::string>();
}

Result<bool> bool_field(const json& object, const char* key, const std::string& where, std::optional<bool> fallback) {
  const auto it = object.find(key);
  if (it == object.end() && fallback) return *fallback;
  if (it == object.end()) return invalid_input(fmt::format("{}: '{}' is missing", where, key));
  if (!it->is_boolean()) {
    return invalid_input(fmt::format("{}: '{}' must be true or false, not {}", where, key, json_kind(*it)));
  }
  return it->get<bool>();
}

}  // namespace

Status QuantErrorMeter::add(std::span<const float> values, std::span<const int64_t> shape) {
  QuantLayout layout;
  if (channel_axis_) {
    layout.granularity = QuantLayout::Granularity::per_channel;
    layout.axis = *channel_axis_;
  }
  QUANT_ASSIGN_OR_RETURN(std::vector<int32_t> codes, quantize_tensor(values, shape, layout, qparams_));
  QUANT_ASSIGN_OR_RETURN(std::vector<float> back, dequantize_tensor(codes, shape, layout, qparams_));
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) continue;
    const double diff = static_cast<double>(back[i]) - static_cast<double>(values[i]);
    error_sum_ += diff * diff;
    signal_sum_ += static_cast<double>(values[i]) * static_cast<double>(values[i]);
    ++count_;
  }
  return Status::success();
}

double QuantErrorMeter::sqnr_db() const {
  if (error_sum_ == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal_sum_ / error_sum_);
}

std::string calibration_table_to_json(const CalibrationTable& table) {
  const bool per_channel = table.channel_axis.has_value();
  json settings = {
      {"convention", std::string(convention_name(table.convention))},
      {"dtype", dtype_name(table.spec)},
      {"symmetric", table.spec.symmetric},
      {"narrow_range", table.spec.narrow_range},
      {"reduce_range", table.spec.reduce_range},
      {"per_channel_axis", per_channel ? json(*table.channel_axis) : json(nullptr)},
      {"averaging_constant", table.averaging_constant},
      {"percentile", table.percentile ? json(*table.percentile) : json(nullptr)},
  };
  json tensors = json::object();
  for (const CalibrationEntry& e : table.entries) {
    const CalibrationResult& r = e.result;
    std::vector<float> scales;
    std::vector<int64_t> zero_points;
    for (const QParams& p : r.qparams) {
      scales.push_back(p.scale);
      zero_points.push_back(p.zero_point);
    }
    json m = {
        {"observed_min", maybe_scalar(r.observed_min, per_channel)},
        {"observed_max", maybe_scalar(r.observed_max, per_channel)},
        {"range_min", maybe_scalar(r.lo, per_channel)},
        {"range_max", maybe_scalar(r.hi, per_channel)},
        {"scale", maybe_scalar(scales, per_channel)},
        {"zero_point", maybe_scalar(zero_points, per_channel)},
        {"qmin", r.qparams.empty() ? 0 : r.qparams[0].range.min},
        {"qmax", r.qparams.empty() ? 0 : r.qparams[0].range.max},
        {"values_seen", r.values_seen},
        {"values_ignored", r.values_ignored},
    };
    if (e.mse) m["mse"] = *e.mse;
    if (e.sqnr_db) m["sqnr_db"] = std::isfinite(*e.sqnr_db) ? json(*e.sqnr_db) : json(nullptr);
    if (r.histogram) {
      m["histogram"] = {{"bins", r.histogram->bins},         {"bin_width", r.histogram->bin_width},
                        {"first_edge", r.histogram->first_edge}, {"last_edge", r.histogram->last_edge},
                        {"total", r.histogram->total},       {"chosen_index", r.histogram->chosen_index}};
    }
    tensors[e.tensor][std::string(method_name(e.method))] = std::move(m);
  }
  json doc = {{"format", "quantize.calibration"}, {"version", kTableVersion}, {"settings", settings},
              {"sources", table.sources}, {"tensors", tensors}};
  return doc.dump(2) + "\n";
}

Result<CalibrationTable> calibration_table_from_json(std::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return invalid_input("calibration table is not a JSON object");
  const auto format = doc.find("format");
  if (format == doc.end() || !format->is_string() || format->get<std::string>() != "quantize.calibration") {
    return invalid_input("not a quantize.calibration table (\"format\" is not \"quantize.calibration\")");
  }
  const auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() || version->get<int64_t>() != kTableVersion) {
    return invalid_input(fmt::format("calibration table version {} is not supported (this build reads {})",
                                     version == doc.end() ? std::string("(missing)") : version->dump(), kTableVersion));
  }
  CalibrationTable table;
  QUANT_ASSIGN_OR_RETURN(const json* settings, member(doc, "settings", "calibration table"));
  if (!settings->is_object()) return invalid_input("calibration table: 'settings' must be an object");
  const json& s = *settings;
  const std::string in_settings = "calibration table settings";
  QUANT_ASSIGN_OR_RETURN(const std::string convention, string_field(s, "convention", in_settings));
  QUANT_ASSIGN_OR_RETURN(table.convention, parse_convention(convention));
  QUANT_ASSIGN_OR_RETURN(const std::string dtype, string_field(s, "dtype", in_settings));
  QUANT_ASSIGN_OR_RETURN(table.spec, parse_dtype(dtype));
  QUANT_ASSIGN_OR_RETURN(table.spec.symmetric, bool_field(s, "symmetric", in_settings, std::nullopt));
  QUANT_ASSIGN_OR_RETURN(table.spec.narrow_range, bool_field(s, "narrow_range", in_settings, false));
  QUANT_ASSIGN_OR_RETURN(table.spec.reduce_range, bool_field(s, "reduce_range", in_settings, false));
  QUANT_ASSIGN_OR_RETURN(const json* axis, member(s, "per_channel_axis", in_settings));
  if (!axis->is_null()) {
    QUANT_ASSIGN_OR_RETURN(const int64_t value, integer(*axis, in_settings + ": 'per_channel_axis'"));
    if (value < INT32_MIN || value > INT32_MAX) {
      return invalid_input(in_settings + ": 'per_channel_axis' is out of range");
    }
    table.channel_axis = int(value);
  }
  if (const auto it = s.find("averaging_constant"); it != s.end()) {
    QUANT_ASSIGN_OR_RETURN(table.averaging_constant, finite_number(*it, in_settings + ": 'averaging_constant'"));
  }
  if (const auto it = s.find("percentile"); it != s.end() && !it->is_null()) {
    QUANT_ASSIGN_OR_RETURN(table.percentile, finite_number(*it, in_settings + ": 'percentile'"));
  }
  if (const auto it = doc.find("sources"); it != doc.end()) {
    if (!it->is_array()) return invalid_input("calibration table: 'sources' must be an array of strings");
    for (const json& source : *it) {
      if (!source.is_string()) return invalid_input("calibration table: 'sources' must be an array of strings");
      table.sources.push_back(source.get<std::string>());
    }
  }
  QUANT_ASSIGN_OR_RETURN(const json* tensors, member(doc, "tensors", "calibration table"));
  if (!tensors->is_object()) return invalid_input("calibration table: 'tensors' must be an object");
  for (const auto& [tensor, methods] : tensors->items()) {
    if (!methods.is_object()) {
      return invalid_input(fmt::format("tensor '{}': must map method names to results", tensor));
    }
    for (const auto& [method, m] : methods.items()) {
      const std::string where = fmt::format("tensor '{}' method {}", tensor, method);
      if (!m.is_object()) return invalid_input(fmt::format("{}: must be an object", where));
      CalibrationEntry e;
      e.tensor = tensor;
      QUANT_ASSIGN_OR_RETURN(e.method, parse_method(method));
      QUANT_ASSIGN_OR_RETURN(e.result.observed_min, floats_field(m, "observed_min", where));
      QUANT_ASSIGN_OR_RETURN(e.result.observed_max, floats_field(m, "observed_max", where));
      QUANT_ASSIGN_OR_RETURN(e.result.lo, floats_field(m, "range_min", where));
      QUANT_ASSIGN_OR_RETURN(e.result.hi, floats_field(m, "range_max", where));
      QUANT_ASSIGN_OR_RETURN(const std::vector<float> scales, floats_field(m, "scale", where));
      QUANT_ASSIGN_OR_RETURN(const std::vector<int64_t> zero_points, integers_field(m, "zero_point", where));
      QUANT_ASSIGN_OR_RETURN(const json* qmin_field, member(m, "qmin", where));
      QUANT_ASSIGN_OR_RETURN(const json* qmax_field, member(m, "qmax", where));
      QUANT_ASSIGN_OR_RETURN(const int64_t qmin, integer(*qmin_field, where + ": 'qmin'"));
      QUANT_ASSIGN_OR_RETURN(const int64_t qmax, integer(*qmax_field, where + ": 'qmax'"));
      if (qmin >= qmax) return invalid_input(fmt::format("{}: qmin {} is not below qmax {}", where, qmin, qmax));
      if (zero_points.size() != scales.size()) {
        return invalid_input(fmt::format("{}: scale and zero_point differ in length", where));
      }
      for (size_t i = 0; i < scales.size(); ++i) {
        if (!(scales[i] > 0.0f)) {
          return invalid_input(fmt::format("{}: scale {} is not a positive number", where, scales[i]));
        }
        if (zero_points[i] < qmin || zero_points[i] > qmax) {
          return invalid_input(fmt::format("{}: zero point {} is outside [{}, {}]", where, zero_points[i], qmin, qmax));
        }
        e.result.qparams.push_back({scales[i], zero_points[i], {qmin, qmax}});
      }
      if (const auto it = m.find("mse"); it != m.end() && !it->is_null()) {
        QUANT_ASSIGN_OR_RETURN(e.mse, finite_number(*it, where + ": 'mse'"));
      }
      table.entries.push_back(std::move(e));
    }
  }
  return table;
}

std::vector<MetadataEntry> calibration_table_to_gguf_metadata(const CalibrationTable& table) {
  const std::string prefix = "quantize.calibration.";
  std::vector<MetadataEntry> out;
  out.push_back({prefix + "version", {uint32_t{kTableVersion}}});
  out.push_back({prefix + "convention", {std::string(convention_name(table.convention))}});
  out.push_back({prefix + "dtype", {dtype_name(table.spec)}});
  out.push_back({prefix + "symmetric", {table.spec.symmetric}});
  out.push_back({prefix + "per_channel_axis", {int32_t{table.channel_axis.value_or(-1)}}});
  std::vector<std::string> tensors;
  for (const CalibrationEntry& e : table.entries) {
    if (std::find(tensors.begin(), tensors.end(), e.tensor) == tensors.end()) tensors.push_back(e.tensor);
  }
  out.push_back({prefix + "tensors", {tensors}});
  for (const CalibrationEntry& e : table.entries) {
    const std::string key = prefix + e.tensor + "." + std::string(method_name(e.method)) + ".";
    std::vector<float> scales;
    std::vector<int32_t> zero_points;
    for (const QParams& p : e.result.qparams) {
      scales.push_back(p.scale);
      zero_points.push_back(static_cast<int32_t>(p.zero_point));
    }
    out.push_back({key + "min", {e.result.observed_min}});
    out.push_back({key + "max", {e.result.observed_max}});
    out.push_back({key + "lo", {e.result.lo}});
    out.push_back({key + "hi", {e.result.hi}});
    out.push_back({key + "scale", {scales}});
    out.push_back({key + "zero_point", {zero_points}});
  }
  return out;
}

}  // namespace quant
