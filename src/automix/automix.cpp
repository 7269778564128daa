// automix(): the whole job, top to bottom. Each step is a call into a file named after it.
//
// Sizes: the header of the output does not depend on the tensor types (a tensor info stores its type as a u32),
// so the exact file size of any assignment is a fixed part plus each tensor's padded data. The fixed part comes
// from convert()'s own dry run of one assignment, the same computation that writes the file.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <tuple>

#include <fmt/format.h>

#include "automix/kld_measurer.h"
#include "convert/importance.h"
#include "convert/model_params.h"
#include "core/checked_math.h"
#include "plan/shape_fallback.h"
#include "plan/tensor_roles.h"
#include "quant/atomic_file.h"
#include "quant/automix.h"
#include "quant/convert.h"
#include "quant/model.h"
#include "quant/model_source.h"

namespace quant {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// One tensor of the model, in output order, with what the mix may do with it.
struct Slot {
  const TensorInfo* info = nullptr;
  PlanTensor plan_tensor;
  bool quantizable = false;
  std::optional<TypeId> pin;        // a --tensor-type pattern matched (after the shape fallback)
  std::vector<TypeId> candidates;   // quantizable tensors only
  const float* importance = nullptr;
};

struct InputModel {
  std::shared_ptr<const ModelSource> source;
  ModelParams params;
  std::vector<Slot> slots;  // output order
  std::optional<convert_internal::LoadedImportance> importance;
  // The importance matrix computed from the calibration text when no --imatrix is given (the file is written with
  // it too); null otherwise.
  std::shared_ptr<const ImatrixCollection> computed_imatrix;
  uint64_t alignment = 32;
  int64_t elements = 0;     // all tensors, for bits per weight
};

uint64_t data_bytes(TypeId type, const std::vector<int64_t>& shape) {
  uint64_t bytes = *row_bytes(format_of(type), shape.empty() ? 1 : shape[0]);
  for (size_t d = 1; d < shape.size(); ++d) bytes *= uint64_t(shape[d]);
  return bytes;
}

uint64_t padded_bytes(TypeId type, const std::vector<int64_t>& shape, uint64_t alignment) {
  return *checked_align_up(data_bytes(type, shape), alignment);
}

Status match_pins(InputModel& model, const std::vector<TensorTypeOverride>& pins) {
  std::vector<std::regex> patterns;
  for (const TensorTypeOverride& pin : pins) {
    try {
      patterns.emplace_back(pin.pattern);
    } catch (const std::regex_error& error) {
      return usage_error(fmt::format("invalid --tensor-type pattern '{}': {}", pin.pattern, error.what()));
    }
  }
  for (Slot& slot : model.slots) {
    if (!slot.quantizable) continue;
    for (size_t i = 0; i < pins.size(); ++i) {
      if (!std::regex_search(slot.info->name, patterns[i])) continue;
      // As llama-quantize does with a --tensor-type: the first match wins, then the shape fallback.
      QUANT_ASSIGN_OR_RETURN(slot.pin, plan_detail::fall_back_for_shape(slot.plan_tensor, pins[i].type));
      break;
    }
  }
  return Status::success();
}

// The importance matrix of the calibration text, as `--to --calibration-text` computes it (llama-imatrix's
// defaults: every whole chunk of the text), at the context the measurer cuts the text into.
Result<std::shared_ptr<const ImatrixCollection>> importance_from_text(const AutomixRequest& request,
                                                                      const ModelSource& input) {
  QUANT_ASSIGN_OR_RETURN(const ModelHyperparameters hparams, read_hyperparameters(input));
  TextImatrixOptions options;
  options.text_path = request.calibration_text;
  options.n_ctx = automix_internal::calibration_context(request.kld, hparams);
  options.threads = request.threads;
  options.cancel = request.cancel;
  if (request.progress) {
    options.progress = [&request](const TextImatrixProgress& p) {
      request.progress(size_t(p.chunks_done), size_t(p.chunks_total), "importance matrix of the calibration text");
    };
  }
  QUANT_ASSIGN_OR_RETURN(ImatrixCollection collection, imatrix_from_text(input, options));
  return std::make_shared<const ImatrixCollection>(std::move(collection));
}

Result<InputModel> open_and_classify(const AutomixRequest& request) {
  InputModel model;
  QUANT_ASSIGN_OR_RETURN(model.source, open_model(request.input));
  const ModelSource& input = *model.source;
  QUANT_ASSIGN_OR_RETURN(model.params, convert_internal::read_model_params(input));
  if (const Value* alignment = input.find("general.alignment"); alignment != nullptr && alignment->holds<uint32_t>()) {
    model.alignment = alignment->as<uint32_t>();
  }
  if (!request.imatrix_path.empty()) {
    convert_internal::LoadedImportance loaded;
    QUANT_ASSIGN_OR_RETURN(loaded.matrix, read_imatrix(request.imatrix_path));
    loaded.record = imatrix_record(loaded.matrix, request.imatrix_path);
    if (loaded.record) model.importance = std::move(loaded);
  } else if (!request.calibration_text.empty()) {
    QUANT_ASSIGN_OR_RETURN(model.computed_imatrix, importance_from_text(request, input));
    const ImatrixOptions no_filters;  // an automatic mix takes no --include-weights / --exclude-weights
    QUANT_ASSIGN_OR_RETURN(model.importance,
                           convert_internal::computed_importance(*model.computed_imatrix, no_filters));
  }
  const std::vector<PlanTensor> tensors = convert_internal::plan_tensors(input);
  for (size_t index : plan_detail::output_order(tensors)) {
    Slot slot;
    slot.plan_tensor = tensors[index];
    slot.info = input.find_tensor(slot.plan_tensor.name);
    slot.quantizable = !plan_detail::never_quantized_reason(slot.plan_tensor, false).has_value();
    model.elements += slot.info->element_count();
    if (slot.quantizable) {
      const FormatInfo& source = format_of(slot.info->type);
      if (source.quantized || (slot.info->type != TypeId::f32 && slot.info->type != TypeId::f16 &&
                               slot.info->type != TypeId::bf16)) {
        return Error(impossible(fmt::format("an automatic mix starts from an unquantized model (f32, f16 or bf16 "
                                            "weights); this tensor is {}",
                                            source.name)))
            .in_file(input.path())
            .in_tensor(slot.info->name);
      }
      if (model.importance) {
        QUANT_ASSIGN_OR_RETURN(slot.importance, convert_internal::importance_for(*model.importance, input, *slot.info));
      }
      slot.candidates = candidate_types(slot.plan_tensor, slot.importance != nullptr);
    }
    model.slots.push_back(std::move(slot));
  }
  QUANT_TRY(match_pins(model, request.pins));
  return model;
}

// ---- Measuring (or reading the cache) ---------------------------------------------------------------------------

// Every quantizable tensor with its candidates, or with the one type `chosen` gives it (a mix to measure whole).
MeasureContext measure_context(const AutomixRequest& request, const InputModel& model, std::span<const TypeId> chosen) {
  MeasureContext context;
  context.model = model.source;
  context.calibration_text = request.calibration_text;
  context.threads = request.threads;
  context.progress = request.progress;
  context.cancel = request.cancel;
  size_t k = 0;
  for (const Slot& slot : model.slots) {
    if (!slot.quantizable) continue;
    std::vector<TypeId> types = chosen.empty() ? slot.candidates : std::vector<TypeId>{chosen[k++]};
    context.tensors.push_back({slot.info, std::move(types), slot.importance});
  }
  return context;
}

// How every file the run writes is placed (quant/atomic_file.h): replaced only with --force, never one of the
// files the run reads.
OutputPolicy output_policy(const AutomixRequest& request) {
  OutputPolicy policy;
  policy.overwrite = request.overwrite;
  for (const std::string& read : {request.imatrix_path, request.calibration_text}) {
    if (!read.empty()) policy.inputs.push_back(read);
  }
  for (std::string& file : model_files(request.input)) policy.inputs.push_back(std::move(file));
  return policy;
}

Result<SensitivityTable> measurements(const AutomixRequest& request, const InputModel& model, SensitivityMeasurer& measurer,
                                      bool* cache_used) {
  SensitivityFingerprint fingerprint;
  QUANT_ASSIGN_OR_RETURN(fingerprint.model, model_fingerprint(*model.source));
  fingerprint.imatrix = imatrix_fingerprint(model.importance ? &model.importance->matrix : nullptr);
  fingerprint.text = "none";
  if (!request.calibration_text.empty()) {
    QUANT_ASSIGN_OR_RETURN(fingerprint.text, file_fingerprint(request.calibration_text));
  }
  fingerprint.measurer = measurer.id();

  *cache_used = false;
  std::error_code ec;
  if (!request.sensitivity_cache.empty() && std::filesystem::exists(request.sensitivity_cache, ec)) {
    QUANT_ASSIGN_OR_RETURN(SensitivityTable cached, read_sensitivity_cache(request.sensitivity_cache, fingerprint));
    for (const Slot& slot : model.slots) {
      if (!slot.quantizable) continue;
      const TensorSensitivity* tensor = cached.find(slot.info->name);
      if (tensor == nullptr) {
        return Error(impossible("cannot use this sensitivity cache: it has no measurements for this tensor"))
            .in_file(request.sensitivity_cache)
            .in_tensor(slot.info->name);
      }
    }
    *cache_used = true;
    return cached;
  }
  QUANT_ASSIGN_OR_RETURN(SensitivityTable table, measurer.measure(measure_context(request, model, {})));
  table.fingerprint = fingerprint;
  table.unit = measurer.unit();
  if (!request.sensitivity_cache.empty()) {
    QUANT_TRY(write_sensitivity_cache(request.sensitivity_cache, table, output_policy(request)));
  }
  return table;
}

// ---- Sizes ------------------------------------------------------------------------------------------------------

ConvertRequest conversion_request(const AutomixRequest& request, const InputModel& model, std::string base_type,
                                  std::string output, std::vector<TensorTypeOverride> overrides) {
  ConvertRequest convert;
  convert.input = request.input;
  convert.targets.push_back(ConvertTarget{std::move(base_type), std::move(output)});
  convert.types.tensor_types = std::move(overrides);
  convert.imatrix.path = request.imatrix_path;
  convert.imatrix.computed = model.computed_imatrix;
  convert.output.overwrite = request.overwrite;
  convert.threads = request.threads;
  convert.stream.cancel = request.cancel;
  return convert;
}

// Every quantizable tensor pinned to `type_of(slot)`, as --tensor-type patterns.
template <typename TypeOf>
std::vector<TensorTypeOverride> overrides_for(const InputModel& model, TypeOf type_of) {
  std::vector<TensorTypeOverride> overrides;
  for (const Slot& slot : model.slots) {
    if (slot.quantizable) overrides.push_back({exact_name_pattern(slot.info->name), type_of(slot)});
  }
  return overrides;
}

// The bytes of the file that do not depend on the types: convert()'s dry run of the unquantized assignment, less
// its tensor data.
Result<uint64_t> fixed_file_bytes(const AutomixRequest& request, const InputModel& model) {
  auto overrides = overrides_for(model, [](const Slot& slot) { return slot.info->type; });
  ConvertRequest dry = conversion_request(request, model, "Q8_0", "", std::move(overrides));
  dry.dry_run = true;
  QUANT_ASSIGN_OR_RETURN(std::vector<ConversionReport> reports, convert(dry));
  uint64_t fixed = reports.front().output_bytes;
  for (const Slot& slot : model.slots) {
    if (slot.quantizable) fixed -= padded_bytes(slot.info->type, slot.info->shape, model.alignment);
  }
  return fixed;
}

// ---- Choosing ---------------------------------------------------------------------------------------------------

// The options of one tensor: its pin alone, or its measured candidates.
std::vector<std::pair<TypeId, double>> options_of(const Slot& slot, const SensitivityTable& table) {
  std::vector<std::pair<TypeId, double>> options;
  const TensorSensitivity* measured = table.find(slot.info->name);
  if (slot.pin) {
    const std::optional<double> cost = measured ? measured->cost_of(*slot.pin) : std::nullopt;
    options.push_back({*slot.pin, cost.value_or(0.0)});
    return options;
  }
  for (TypeId type : slot.candidates) {
    const std::optional<double> cost = measured ? measured->cost_of(type) : std::nullopt;
    if (cost) options.push_back({type, *cost});
  }
  return options;
}

struct Chooser {
  const InputModel& model;
  const SensitivityTable& table;
  SizeBudget::Kind kind;
  uint64_t fixed_file = 0;  // header and the tensors that are never quantized
  std::vector<size_t> slots;                                    // quantizable slot indices
  std::vector<std::vector<std::pair<TypeId, double>>> options;  // per quantizable slot

  uint64_t weight(size_t k, TypeId type) const {
    const Slot& slot = model.slots[slots[k]];
    return kind == SizeBudget::Kind::file_bytes ? padded_bytes(type, slot.info->shape, model.alignment)
                                                : data_bytes(type, slot.info->shape);
  }
  // What the kept tensors weigh in the budget's own measure.
  uint64_t fixed_weight() const {
    if (kind == SizeBudget::Kind::file_bytes) return fixed_file;
    uint64_t fixed = 0;
    for (const Slot& slot : model.slots) {
      if (!slot.quantizable) fixed += data_bytes(slot.info->type, slot.info->shape);
    }
    return fixed;
  }
  std::vector<std::vector<KnapsackOption>> items() const {
    std::vector<std::vector<KnapsackOption>> out(slots.size());
    for (size_t k = 0; k < slots.size(); ++k) {
      for (const auto& [type, cost] : options[k]) out[k].push_back({weight(k, type), cost});
    }
    return out;
  }
  // The smallest and largest budgets (in the budget's measure) any choice reaches.
  std::pair<uint64_t, uint64_t> range() const {
    uint64_t low = fixed_weight(), high = low;
    for (size_t k = 0; k < slots.size(); ++k) {
      uint64_t lightest = UINT64_MAX, heaviest = 0;
      for (const auto& [type, cost] : options[k]) {
        lightest = std::min(lightest, weight(k, type));
        heaviest = std::max(heaviest, weight(k, type));
      }
      low += lightest;
      high += heaviest;
    }
    return {low, high};
  }
  Result<std::vector<TypeId>> choose(uint64_t budget) const {
    const auto all = items();
    QUANT_ASSIGN_OR_RETURN(KnapsackSolution solution, solve_knapsack(all, budget - fixed_weight()));
    std::vector<TypeId> types(slots.size());
    for (size_t k = 0; k < slots.size(); ++k) types[k] = options[k][solution.choice[k]].first;
    return types;
  }
};

// The measured cost of quantizable slot k in `type`: its pin's, or the table's (a pinned type the table lacks, such
// as f32 for an f16 source, is lossless or unmeasured: nullopt).
std::optional<double> cost_of(const Chooser& chooser, size_t k, TypeId type) {
  const Slot& slot = chooser.model.slots[chooser.slots[k]];
  if (type == slot.info->type) return 0.0;
  const TensorSensitivity* measured = chooser.table.find(slot.info->name);
  return measured ? measured->cost_of(type) : std::nullopt;
}

// File bytes, bits per weight and predicted cost of one assignment of the quantizable slots.
FrontierPoint evaluate(const Chooser& chooser, const std::vector<TypeId>& types, std::string label) {
  FrontierPoint point;
  point.label = std::move(label);
  point.file_bytes = chooser.fixed_file;
  uint64_t data = 0;
  for (const Slot& slot : chooser.model.slots) {
    if (!slot.quantizable) data += data_bytes(slot.info->type, slot.info->shape);
  }
  for (size_t k = 0; k < chooser.slots.size(); ++k) {
    const Slot& slot = chooser.model.slots[chooser.slots[k]];
    point.file_bytes += padded_bytes(types[k], slot.info->shape, chooser.model.alignment);
    data += data_bytes(types[k], slot.info->shape);
    point.cost += cost_of(chooser, k, types[k]).value_or(0.0);
  }
  point.bits_per_weight = chooser.model.elements > 0 ? 8.0 * double(data) / double(chooser.model.elements) : 0;
  return point;
}

// llama-quantize's named mixes on this model, with the imatrix when there is one; those it would refuse (or that
// use a type the table has no cost for) are left out.
std::vector<std::pair<const FileTypeInfo*, std::vector<TypeId>>> named_mixes(const Chooser& chooser,
                                                                             bool has_imatrix) {
  std::vector<PlanTensor> tensors;
  for (const Slot& slot : chooser.model.slots) tensors.push_back(slot.plan_tensor);
  std::vector<std::pair<const FileTypeInfo*, std::vector<TypeId>>> mixes;
  for (const FileTypeInfo& info : all_file_types()) {
    if (find_file_type(info.id) != &info) continue;  // aliases and COPY
    PlanOptions options;
    options.file_type = info.id;
    options.has_imatrix = has_imatrix;
    auto plan = make_plan(chooser.model.params, tensors, options);
    if (!plan) continue;
    std::map<std::string_view, TypeId> chosen;
    for (const TensorPlan& t : plan->tensors) chosen[t.name] = t.target_type;
    std::vector<TypeId> types;
    bool priced = true;
    for (size_t k = 0; k < chooser.slots.size() && priced; ++k) {
      const TypeId type = chosen.at(chooser.model.slots[chooser.slots[k]].info->name);
      priced = cost_of(chooser, k, type).has_value();
      types.push_back(type);
    }
    if (priced) mixes.push_back({&info, std::move(types)});
  }
  return mixes;
}

// The mix named to llama-quantize (general.file_type): the named mix of the type holding most weights among those
// that have one (preferring, among mixes of that type, the one nearest in size). Its rules never apply, since
// every quantizable tensor is pinned; Q2_K_S is avoided (it makes q2_K need an imatrix), and the float mixes are
// used only when nothing is quantized (they ignore --tensor-type).
std::string base_file_type(const Chooser& chooser, const std::vector<TypeId>& types, uint64_t file_bytes) {
  std::map<TypeId, int64_t> weights_by_type;
  for (size_t k = 0; k < chooser.slots.size(); ++k) {
    weights_by_type[types[k]] += chooser.model.slots[chooser.slots[k]].info->element_count();
  }
  if (weights_by_type.size() == 1 && !format_of(weights_by_type.begin()->first).quantized) {
    for (const FileTypeInfo& info : all_file_types()) {
      if (!info.copy_only && info.default_type == weights_by_type.begin()->first) return std::string(info.name);
    }
  }
  std::vector<std::pair<int64_t, TypeId>> ranked;
  for (const auto& [type, weights] : weights_by_type) ranked.push_back({weights, type});
  std::sort(ranked.rbegin(), ranked.rend());
  const auto mixes = named_mixes(chooser, true);
  for (const auto& [weights, type] : ranked) {
    if (!format_of(type).quantized) continue;
    const FileTypeInfo* best = nullptr;
    uint64_t best_distance = UINT64_MAX;
    for (const FileTypeInfo& info : all_file_types()) {
      if (find_file_type(info.id) != &info || info.default_type != type || info.id == FileType::q2_K_S) continue;
      uint64_t distance = UINT64_MAX - 1;
      for (const auto& [mix, mix_types] : mixes) {
        if (mix != &info) continue;
        const uint64_t size = evaluate(chooser, mix_types, "").file_bytes;
        distance = size > file_bytes ? size - file_bytes : file_bytes - size;
      }
      if (distance < best_distance) best = &info, best_distance = distance;
    }
    if (best != nullptr) return std::string(best->name);
  }
  return "Q8_0";
}

// The llama-quantize command that writes the same tensors from the saved plan; an imatrix computed in the run is
// written first by `quantize imatrix` with the same text and context (llama-quantize reads only files).
std::string reproducing_command(const AutomixRequest& request, const InputModel& model, const AutomixResult& result) {
  std::string imatrix = request.imatrix_path, prefix;
  if (model.importance && model.importance->summary) {
    const TextImatrixSummary& text = *model.importance->summary;
    imatrix = "IMATRIX.gguf";
    prefix = fmt::format("quantize imatrix {} --text {} --ctx {} -o {} && ", request.input, text.text, text.n_ctx,
                         imatrix);
  }
  return fmt::format("{}llama-quantize {}--tensor-type-file {} {} {} {}", prefix,
                     imatrix.empty() ? "" : fmt::format("--imatrix {} ", imatrix),
                     request.save_plan.empty() ? "PLAN.txt" : request.save_plan, request.input, result.output,
                     result.base_file_type);
}

std::string describe_range(uint64_t low, uint64_t high, SizeBudget::Kind kind, int64_t elements) {
  if (kind == SizeBudget::Kind::file_bytes) return fmt::format("{} to {} bytes", low, high);
  return fmt::format("{:.4f} to {:.4f} bits per weight", 8.0 * double(low) / double(elements),
                     8.0 * double(high) / double(elements));
}

Result<Frontier> frontier_of(const Chooser& chooser, const FrontierOptions& options, bool has_imatrix) {
  Frontier frontier;
  frontier.unit = chooser.table.unit;
  Chooser by_file = chooser;
  by_file.kind = SizeBudget::Kind::file_bytes;
  const auto [low, high] = by_file.range();
  const int points = std::max(options.points, 2);
  for (int i = 0; i < points; ++i) {
    const uint64_t budget = low + uint64_t((long double)(high - low) * i / (points - 1));
    QUANT_ASSIGN_OR_RETURN(std::vector<TypeId> types, by_file.choose(budget));
    frontier.ours.push_back(evaluate(by_file, types, "auto"));
  }
  for (const auto& [info, types] : named_mixes(by_file, has_imatrix)) {
    FrontierPoint point = evaluate(by_file, types, std::string(info->name));
    if (point.file_bytes >= low && point.file_bytes <= high) frontier.mixes.push_back(point);
  }
  std::sort(frontier.mixes.begin(), frontier.mixes.end(),
            [](const FrontierPoint& a, const FrontierPoint& b) { return a.file_bytes < b.file_bytes; });
  return frontier;
}

Status check_request(const AutomixRequest& request) {
  if (request.input.empty()) return usage_error("no input model given");
  if (request.budget.kind == SizeBudget::Kind::file_bytes && request.budget.file_bytes == 0) {
    return usage_error("the target size must be more than 0 bytes");
  }
  if (request.budget.kind == SizeBudget::Kind::bits_per_weight &&
      !(request.budget.bits_per_weight > 0 && std::isfinite(request.budget.bits_per_weight))) {
    return usage_error("the target bits per weight must be a number above 0");
  }
  if (request.frontier && request.frontier->prefix.empty()) return usage_error("--frontier needs a file prefix");
  // Every output path is checked before the measurements, which can take minutes: a refusal does not wait.
  const OutputPolicy policy = output_policy(request);
  std::vector<std::string> outputs;
  if (!request.save_plan.empty()) outputs.push_back(request.save_plan);
  if (request.frontier) {
    for (const char* extension : {".csv", ".json", ".svg"}) outputs.push_back(request.frontier->prefix + extension);
  }
  if (!request.dry_run) {
    outputs.push_back(request.output.empty() ? default_output_path(request.input, "auto-" + request.budget_text)
                                             : request.output);
  }
  for (const std::string& path : outputs) QUANT_TRY(check_output_path(path, policy));
  return Status::success();
}

}  // namespace

Result<AutomixResult> automix(const AutomixRequest& request) {
  QUANT_TRY(check_request(request));
  std::shared_ptr<SensitivityMeasurer> measurer = request.measurer;
  if (!measurer) {
    measurer = request.calibration_text.empty() ? make_weighted_error_measurer() : make_kld_measurer(request.kld);
  }

  // 1. The model, its quantizable tensors, their candidates and the user's pins.
  QUANT_ASSIGN_OR_RETURN(InputModel model, open_and_classify(request));
  AutomixResult result;
  result.input = request.input;
  result.measurer = measurer->id();
  if (model.importance) result.imatrix_from_text = model.importance->summary;
  if (!request.calibration_text.empty() && !request.imatrix_path.empty() &&
      measurer->id().starts_with("weighted-error")) {
    result.warnings.push_back("the weighted-error measurer does not read the calibration text; it is only recorded "
                              "in the cache's fingerprint");
  }

  // 2. What every (tensor, type) costs: measured once, or read from the cache.
  const auto measure_started = Clock::now();
  QUANT_ASSIGN_OR_RETURN(const SensitivityTable table, measurements(request, model, *measurer, &result.cache_used));
  result.measure_seconds = seconds_since(measure_started);
  result.cost_unit = table.unit;

  // 3. Exact sizes, the reachable range, and the choice under the budget.
  const auto solve_started = Clock::now();
  Chooser chooser{model, table, request.budget.kind, 0, {}, {}};
  QUANT_ASSIGN_OR_RETURN(chooser.fixed_file, fixed_file_bytes(request, model));
  for (size_t i = 0; i < model.slots.size(); ++i) {
    if (!model.slots[i].quantizable) continue;
    chooser.slots.push_back(i);
    chooser.options.push_back(options_of(model.slots[i], table));
    if (chooser.options.back().empty()) {
      return Error(impossible("no candidate type could be measured for this tensor")).in_tensor(model.slots[i].info->name);
    }
  }
  const auto [low, high] = chooser.range();
  Chooser by_file = chooser;
  by_file.kind = SizeBudget::Kind::file_bytes;
  std::tie(result.min_file_bytes, result.max_file_bytes) = by_file.range();
  uint64_t budget = request.budget.file_bytes;
  if (request.budget.kind == SizeBudget::Kind::bits_per_weight) {
    budget = uint64_t(std::floor((long double)request.budget.bits_per_weight * (long double)model.elements / 8.0L));
  }
  const std::string reachable = describe_range(low, high, request.budget.kind, model.elements);
  if (budget < low) {
    return Error(impossible(fmt::format("the budget is below the smallest file these tensors can make: the reachable "
                                        "range is {}",
                                        reachable)))
        .in_file(request.input);
  }
  if (budget > high) {
    return Error(impossible(fmt::format("the budget is above the unquantized size: the reachable range is {}",
                                        reachable)))
        .in_file(request.input);
  }
  QUANT_ASSIGN_OR_RETURN(const std::vector<TypeId> types, chooser.choose(budget));
  const FrontierPoint chosen = evaluate(chooser, types, "auto");
  result.solve_seconds = seconds_since(solve_started);
  result.budget = request.budget;
  result.file_bytes = chosen.file_bytes;
  result.bits_per_weight = chosen.bits_per_weight;
  result.predicted_cost = chosen.cost;
  result.base_file_type = base_file_type(chooser, types, chosen.file_bytes);

  // 4. The plan, per tensor and as a --tensor-type-file.
  size_t k = 0;
  for (const Slot& slot : model.slots) {
    AutomixTensor tensor{slot.info->name, slot.info->shape, slot.info->type, slot.info->type, 0, 0, slot.quantizable,
                         slot.pin.has_value()};
    if (slot.quantizable) {
      tensor.type = types[k];
      tensor.cost = cost_of(chooser, k, tensor.type).value_or(0.0);
      ++k;
    }
    tensor.bytes = padded_bytes(tensor.type, tensor.shape, model.alignment);
    result.tensors.push_back(std::move(tensor));
  }
  result.plan_text = tensor_type_file_text(result.tensors);
  QUANT_ASSIGN_OR_RETURN(std::vector<TensorTypeOverride> plan_overrides, parse_tensor_type_list(result.plan_text));
  result.output = request.output.empty() ? default_output_path(request.input, "auto-" + request.budget_text)
                                         : request.output;
  result.llama_quantize_command = reproducing_command(request, model, result);

  // 5. The same plan through convert()'s own dry run must give exactly these types and this size.
  ConvertRequest writing = conversion_request(request, model, result.base_file_type, result.output, plan_overrides);
  {
    ConvertRequest dry = writing;
    dry.dry_run = true;
    QUANT_ASSIGN_OR_RETURN(std::vector<ConversionReport> planned, convert(dry));
    const ConversionReport& report = planned.front();
    for (size_t i = 0; i < report.tensors.size(); ++i) {
      if (report.tensors[i].name != result.tensors[i].name || report.tensors[i].type_out != result.tensors[i].type) {
        return Error(impossible(fmt::format("the saved plan would not reproduce the chosen type {} (it gives {})",
                                            format_of(result.tensors[i].type).name,
                                            format_of(report.tensors[i].type_out).name)))
            .in_tensor(result.tensors[i].name);
      }
    }
    if (report.output_bytes != result.file_bytes) {
      return impossible(fmt::format("internal error: the file would have {} bytes, {} were predicted",
                                    report.output_bytes, result.file_bytes));
    }
  }

  // 6. The chosen mix measured whole, when the measurer can run the model.
  const auto check_started = Clock::now();
  QUANT_ASSIGN_OR_RETURN(result.measured, measurer->measure_mix(measure_context(request, model, types)));
  result.check_seconds = seconds_since(check_started);

  // 7. The frontier, the plan file, then the model itself.
  if (request.frontier) {
    QUANT_ASSIGN_OR_RETURN(result.frontier, frontier_of(chooser, *request.frontier, model.importance.has_value()));
    QUANT_TRY(write_frontier(*result.frontier, request.frontier->prefix, output_policy(request)));
  }
  if (!request.save_plan.empty()) {
    QUANT_TRY(write_file_atomically(request.save_plan, std::span<const uint8_t>(
                                                           reinterpret_cast<const uint8_t*>(result.plan_text.data()),
                                                           result.plan_text.size()),
                                    output_policy(request)));
  }
  if (request.dry_run) {
    result.output.clear();
    return result;
  }
  QUANT_ASSIGN_OR_RETURN(std::vector<ConversionReport> written, convert(writing));
  result.conversion = std::move(written.front());
  return result;
}

}  // namespace quant
