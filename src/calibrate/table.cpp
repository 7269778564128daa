// Calibration tables: quantization error meter, JSON form and GGUF metadata form (docs/calibration.md).
#include <fmt/format.h>

#include <cmath>
#include <limits>
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

std::vector<float> read_floats(const json& j) {
  std::vector<float> out;
  if (j.is_array()) {
    for (const auto& x : j) out.push_back(x.get<float>());
  } else {
    out.push_back(j.get<float>());
  }
  return out;
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
  try {
    CalibrationTable table;
    const json& s = doc.at("settings");
    QUANT_ASSIGN_OR_RETURN(table.convention, parse_convention(s.at("convention").get<std::string>()));
    QUANT_ASSIGN_OR_RETURN(table.spec, parse_dtype(s.at("dtype").get<std::string>()));
    table.spec.symmetric = s.at("symmetric").get<bool>();
    table.spec.narrow_range = s.value("narrow_range", false);
    table.spec.reduce_range = s.value("reduce_range", false);
    if (!s.at("per_channel_axis").is_null()) table.channel_axis = s.at("per_channel_axis").get<int>();
    table.averaging_constant = s.value("averaging_constant", 0.01);
    if (s.contains("percentile") && !s.at("percentile").is_null()) table.percentile = s.at("percentile").get<double>();
    table.sources = doc.value("sources", std::vector<std::string>{});
    for (const auto& [tensor, methods] : doc.at("tensors").items()) {
      for (const auto& [method, m] : methods.items()) {
        CalibrationEntry e;
        e.tensor = tensor;
        QUANT_ASSIGN_OR_RETURN(e.method, parse_method(method));
        e.result.observed_min = read_floats(m.at("observed_min"));
        e.result.observed_max = read_floats(m.at("observed_max"));
        e.result.lo = read_floats(m.at("range_min"));
        e.result.hi = read_floats(m.at("range_max"));
        const std::vector<float> scales = read_floats(m.at("scale"));
        std::vector<int64_t> zps;
        if (m.at("zero_point").is_array()) zps = m.at("zero_point").get<std::vector<int64_t>>();
        else zps.push_back(m.at("zero_point").get<int64_t>());
        if (zps.size() != scales.size()) return invalid_input(fmt::format("tensor '{}': scale and zero_point differ in length", tensor));
        for (size_t i = 0; i < scales.size(); ++i) {
          e.result.qparams.push_back({scales[i], zps[i], {m.at("qmin").get<int64_t>(), m.at("qmax").get<int64_t>()}});
        }
        if (m.contains("mse")) e.mse = m.at("mse").get<double>();
        table.entries.push_back(std::move(e));
      }
    }
    return table;
  } catch (const json::exception& e) {
    return invalid_input(fmt::format("calibration table: {}", e.what()));
  }
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
