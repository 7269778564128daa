// convert(): the main job, top to bottom. Each step is a call into a file named after it.
#include "quant/convert.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>

#include "convert/calibration_metadata.h"
#include "convert/importance.h"
#include "convert/model_params.h"
#include "convert/output_metadata.h"
#include "convert/output_shards.h"
#include "convert/tensor_stream.h"
#include "convert/work_pool.h"
#include "quant/gguf.h"
#include "quant/hf.h"
#include "split/output_files.h"

namespace quant {
namespace {

using convert_internal::TensorOutput;

// One output being produced: its plan, its files (one, or the shards of a split output), their writers (for
// the files this process writes) and its report.
struct Target {
  const FileTypeInfo* file_type = nullptr;
  std::string type_name;
  std::string output_path;
  Plan plan;
  // Set when the input defines this target's bytes itself (SourcePlan): its metadata, and what each tensor is
  // read as (in plan order).
  std::optional<std::vector<KeyValue>> source_metadata;
  std::vector<TensorInfo> source_tensors;
  std::vector<KeyValue> metadata;  // of the whole output: shard 0's, without split keys
  convert_internal::OutputShards files;
  std::vector<std::optional<GgufWriter>> writers;  // per file
  ConversionReport report;
};

Result<Target> plan_target(const ConvertRequest& request, const ConvertTarget& wanted, const ModelSource& input,
                           const ModelParams& model, const std::vector<PlanTensor>& tensors, bool has_imatrix) {
  Target target;
  QUANT_ASSIGN_OR_RETURN(target.file_type, parse_file_type(wanted.type_name));
  target.type_name = wanted.type_name;
  target.output_path = wanted.output.empty() ? default_output_path(request.input, std::string(target.file_type->name))
                                             : wanted.output;
  // A source that defines this type's bytes (a Hugging Face checkpoint written as convert_hf_to_gguf.py writes
  // its outtypes) plans it itself, unless per-tensor options ask for llama-quantize's rules.
  const bool per_tensor_options = request.pure || request.leave_output_tensor || request.output_tensor_type ||
                                  request.token_embedding_type || !request.tensor_types.empty() || has_imatrix;
  if (!target.file_type->copy_only && !per_tensor_options) {
    QUANT_ASSIGN_OR_RETURN(std::optional<SourcePlan> own, input.source_plan(uint32_t(target.file_type->id)));
    if (own) {
      target.plan.file_type = uint32_t(target.file_type->id);
      for (SourcePlanTensor& t : own->tensors) {
        TensorPlan entry{t.source.name, t.source.shape, t.source.type, t.target, PlanRule::pure_default, t.why, {},
                         false};
        target.plan.tensors.push_back(std::move(entry));
        target.source_tensors.push_back(std::move(t.source));
      }
      target.source_metadata = std::move(own->metadata);
      return target;
    }
  }
  PlanOptions options;
  options.file_type = target.file_type->id;
  options.copy_only = target.file_type->copy_only;
  options.pure = request.pure;
  options.has_imatrix = has_imatrix;
  options.dry_run = request.dry_run;
  options.leave_output_tensor = request.leave_output_tensor;
  options.allow_requantize = request.allow_requantize;
  options.output_tensor_type = request.output_tensor_type;
  options.token_embedding_type = request.token_embedding_type;
  options.tensor_types = request.tensor_types;
  options.input_order = request.split.keep_split;
  if (const Value* ft = input.find("general.file_type"); ft != nullptr) {
    uint64_t value = 0;
    if (ft->to_uint64(&value)) options.input_file_type = uint32_t(value);
  }
  auto plan = make_plan(model, tensors, options);
  if (!plan) return std::move(plan).error().in_file(input.path());
  target.plan = std::move(plan).value();
  return target;
}

// Opens the writer of file `index` of the target: its metadata, its tensors, its header.
Status open_writer(Target& target, uint32_t index, const ModelSource& input, const ConvertRequest& request) {
  const std::string& path = target.files.paths[index];
  auto stale = remove_stale_temp_files(path);
  if (!stale) return std::move(stale).error();
  WriterOptions options;
  options.fsync = request.fsync;
  // Only the file with the model's metadata follows general.alignment; other shards hold no such key.
  const Value* alignment = input.find("general.alignment");
  if (index == 0 && alignment != nullptr && alignment->holds<uint32_t>()) options.alignment = alignment->as<uint32_t>();
  QUANT_ASSIGN_OR_RETURN(GgufWriter writer, GgufWriter::create(path, options));
  for (KeyValue& kv : convert_internal::file_metadata(target.files, target.metadata, index)) {
    QUANT_TRY(writer.add_metadata(std::move(kv.key), std::move(kv.value)));
  }
  for (size_t i = 0; i < target.plan.tensors.size(); ++i) {
    if (target.files.shard_of[i] != index) continue;
    const TensorPlan& t = target.plan.tensors[i];
    QUANT_TRY(writer.add_tensor(t.name, t.target_type, t.shape));
  }
  QUANT_TRY(writer.begin());
  target.writers[index].emplace(std::move(writer));
  return Status::success();
}

// What a split output's report lists: each file written (or planned), with its tensors and sizes.
std::vector<ShardReport> shard_reports(const Target& target) {
  std::vector<ShardReport> shards;
  for (uint32_t s = 0; s < target.files.count; ++s) {
    if (!target.files.selected[s]) continue;
    ShardReport shard;
    shard.path = target.files.paths[s];
    shard.index = s;
    std::vector<split_internal::DeclaredTensor> declared;
    for (size_t i = 0; i < target.plan.tensors.size(); ++i) {
      if (target.files.shard_of[i] != s) continue;
      const TensorPlan& t = target.plan.tensors[i];
      const uint64_t bytes = convert_internal::planned_bytes(t);
      ++shard.tensors;
      shard.tensor_bytes += bytes;
      declared.push_back({t.name, t.target_type, t.shape, bytes});
    }
    if (const std::optional<GgufWriter>& writer = target.writers[s]; writer) {
      shard.file_bytes = writer->bytes_written();
      shard.sha256 = writer->sha256_hex();
    } else {
      shard.file_bytes = split_internal::gguf_file_bytes(convert_internal::file_metadata(target.files, target.metadata, s),
                                                         declared);
    }
    shards.push_back(std::move(shard));
  }
  return shards;
}

TensorReport start_tensor_report(const TensorInfo& info, const TensorPlan& plan) {
  TensorReport report;
  report.name = info.name;
  report.shape = info.shape;
  report.type_in = info.type;
  report.type_out = plan.target_type;
  report.bytes_in = info.size_bytes;
  report.bytes_out = *row_bytes(format_of(plan.target_type), info.row_length()) * uint64_t(info.rows());
  report.converted = !plan.keeps_type();
  report.reason = plan.why;
  return report;
}

}  // namespace

std::string default_output_path(const std::string& input, const std::string& type_name) {
  std::filesystem::path path(input);
  if (is_checkpoint_directory(input)) {
    // A checkpoint folder: "<folder>-<TYPE>.gguf" beside it (its whole name: "Llama-3.2-1B" has no extension).
    std::string trimmed = input;
    while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
    const std::filesystem::path folder(trimmed);
    const std::string name = checkpoint_folder_name(trimmed);
    if (!name.empty() && name != ".." && folder.filename() == name) {
      return (folder.parent_path() / (name + "-" + type_name + ".gguf")).string();
    }
    // ".", "..", "a/.": name the output after the folder's real name.
    const std::filesystem::path real = std::filesystem::weakly_canonical(folder);
    return (real.parent_path() / (real.filename().string() + "-" + type_name + ".gguf")).string();
  }
  // A split model is named after its shards' prefix: model-00001-of-00003.gguf -> model-Q4_K_M.gguf.
  if (const std::optional<SplitName> shard = parse_split_path(input); shard) path = shard->prefix + ".gguf";
  std::string stem = path.stem().string();
  return (path.parent_path() / (stem + "-" + type_name + ".gguf")).string();
}

Result<std::vector<ConversionReport>> convert(const ConvertRequest& request) {
  const auto started = std::chrono::steady_clock::now();
  const double cpu_started = process_cpu_seconds();
  if (request.targets.empty()) return usage_error("no target type given");
  const OutputSplit& split = request.split;
  if (int(split.keep_split) + int(split.limits.max_bytes != 0 || split.limits.max_tensors != 0) +
          int(split.shard.has_value()) > 1) {
    return usage_error("--keep-split, --split-max-size / --split-max-tensors and --shard are different ways to cut "
                       "the output: give one");
  }

  // 1. Open and validate the input; read what the plan needs.
  QUANT_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model(request.input));
  const ModelSource& input = *source;
  QUANT_ASSIGN_OR_RETURN(ModelParams model, convert_internal::read_model_params(input));
  std::vector<PlanTensor> tensors = convert_internal::plan_tensors(input);
  if (split.keep_split) tensors = convert_internal::keep_split_order(input, std::move(tensors));

  // 2. The importance matrix, if any.
  if (int(!request.imatrix_path.empty()) + int(request.calibration_text.has_value()) +
          int(request.computed_imatrix != nullptr) > 1) {
    return usage_error("--imatrix and --calibration-text both give the importance matrix: use one");
  }
  std::optional<convert_internal::LoadedImportance> importance;
  if (!request.imatrix_path.empty()) {
    QUANT_ASSIGN_OR_RETURN(importance, convert_internal::load_importance(request));
  } else if (request.computed_imatrix) {
    QUANT_ASSIGN_OR_RETURN(importance, convert_internal::computed_importance(*request.computed_imatrix, request));
  }
  // A calibration text is computed after the plans (a bad type name should not wait for it); they are made as
  // if its matrix were there, which it is unless the run fails.
  bool has_imatrix = (importance && importance->record.has_value()) || request.calibration_text.has_value();

  // 3. Plan every target, then open its writer (nothing is created until every plan succeeded).
  std::vector<Target> targets;
  for (const ConvertTarget& wanted : request.targets) {
    QUANT_ASSIGN_OR_RETURN(Target target, plan_target(request, wanted, input, model, tensors, has_imatrix));
    if (request.dry_run && target.plan.imatrix_required && !has_imatrix) {
      spdlog::warn("{}: a real conversion to {} needs an importance matrix (--imatrix)", request.input,
                   target.type_name);
    }
    targets.push_back(std::move(target));
  }
  // Targets planned by the source read tensors as the source says, in its order: they cannot share a pass with
  // targets planned by llama-quantize's rules.
  for (const Target& target : targets) {
    if (target.source_metadata.has_value() != targets[0].source_metadata.has_value()) {
      return usage_error(fmt::format("{} and {} cannot be written in one run from this input: {} is written as "
                                     "the input's own converter writes it (docs/hf.md)",
                                     targets[0].type_name, target.type_name,
                                     target.source_metadata ? target.type_name : targets[0].type_name));
    }
  }
  // Which TensorInfo tensor i of the plans is read as.
  auto source_info = [&](size_t i) -> const TensorInfo& {
    if (targets[0].source_metadata) return targets[0].source_tensors[i];
    return *input.find_tensor(targets[0].plan.tensors[i].name);
  };
  if (request.calibration_text && !request.dry_run) {
    // One read of the model for the statistics; the conversion below reads it again.
    QUANT_ASSIGN_OR_RETURN(importance, convert_internal::compute_importance(request, input));
  }
  has_imatrix = importance && importance->record.has_value();
  std::vector<KvOverride> overrides = request.kv_overrides;
  if (has_imatrix) {
    for (KvOverride& o : convert_internal::imatrix_overrides(*importance->record)) overrides.push_back(std::move(o));
  }
  std::vector<KeyValue> calibration_keys;
  if (!request.calibration_table.empty()) {
    QUANT_ASSIGN_OR_RETURN(calibration_keys, convert_internal::load_calibration_metadata(request));
  }
  const ImportanceMatrix* importance_data = has_imatrix ? &importance->matrix : nullptr;
  std::vector<std::string> output_paths;
  for (Target& target : targets) {
    target.metadata = target.source_metadata ? convert_internal::with_overrides(*target.source_metadata, overrides)
                                             : convert_internal::output_metadata(input, target.plan.file_type, overrides);
    convert_internal::append_calibration_metadata(target.metadata, calibration_keys);
    auto files = convert_internal::lay_out_output(split, input, target.plan, target.output_path, target.metadata,
                                                  importance_data);
    if (!files) return std::move(files).error().in_file(input.path());
    target.files = std::move(files).value();
    target.writers.resize(target.files.count);
    for (uint32_t s = 0; s < target.files.count; ++s) {
      if (target.files.selected[s]) output_paths.push_back(target.files.paths[s]);
    }
  }
  if (!request.dry_run) {
    const std::vector<std::string> inputs = split_internal::files_of(input);
    for (size_t i = 0; i < output_paths.size(); ++i) {
      if (std::find(output_paths.begin(), output_paths.begin() + i, output_paths[i]) != output_paths.begin() + i) {
        return usage_error(fmt::format("two targets write the same output '{}'", output_paths[i]));
      }
      QUANT_TRY(split_internal::check_output_path(output_paths[i], request.overwrite, inputs));
    }
    for (Target& target : targets) {
      for (uint32_t s = 0; s < target.files.count; ++s) {
        if (target.files.selected[s]) QUANT_TRY(open_writer(target, s, input, request));
      }
    }
  }

  // 4. Stream every tensor, in output order, to every target that writes it (under --shard, only the tensors of
  //    this job's shard are read). All targets share the order (it depends only on the names, or under
  //    --keep-split on the input's layout), so tensor i of each plan is the same input tensor.
  const auto writes = [&](const Target& target, size_t i) {
    return bool(target.files.selected[target.files.shard_of[i]]);
  };
  convert_internal::WorkPool pool(request.threads);
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < targets[0].plan.tensors.size(); ++i) {
    if (std::any_of(targets.begin(), targets.end(), [&](const Target& t) { return writes(t, i); })) {
      total_bytes += source_info(i).size_bytes;
    }
  }
  convert_internal::TensorStreamer streamer(input, pool, request, request.dry_run ? 0 : total_bytes);
  for (size_t i = 0; i < targets[0].plan.tensors.size(); ++i) {
    const TensorInfo& info = source_info(i);
    std::vector<TensorOutput> outputs;
    for (Target& target : targets) {
      if (!writes(target, i)) continue;
      target.report.tensors.push_back(start_tensor_report(info, target.plan.tensors[i]));
      TensorOutput output;
      output.format = &format_of(target.plan.tensors[i].target_type);
      std::optional<GgufWriter>& writer = target.writers[target.files.shard_of[i]];
      output.writer = writer ? &*writer : nullptr;
      output.report = &target.report.tensors.back();
      if (output.report->converted && has_imatrix) {
        QUANT_ASSIGN_OR_RETURN(output.importance, convert_internal::importance_for(*importance, input, info));
      }
      if (has_imatrix && output.report->converted && output.importance == nullptr &&
          target.plan.tensors[i].requires_imatrix) {
        return Error(impossible(fmt::format("type {} needs importance data for this tensor and the importance "
                                            "matrix has none (--imatrix)",
                                            format_of(target.plan.tensors[i].target_type).name)))
            .in_file(input.path())
            .in_tensor(info.name);
      }
      outputs.push_back(output);
    }
    if (!request.dry_run && !outputs.empty()) QUANT_TRY(streamer.stream(info, outputs));
  }
  QUANT_TRY(streamer.finish());

  // 5. Publish every file of every output together, or none.
  std::vector<GgufWriter*> writers;
  for (Target& target : targets) {
    for (std::optional<GgufWriter>& writer : target.writers) {
      if (writer) writers.push_back(&*writer);
    }
  }
  // A signal that arrived after the last chunk was read (while the tail was written) still means no output.
  if (request.cancel != nullptr && request.cancel->load()) return Error(ErrorKind::interrupted, "interrupted");
  QUANT_TRY(split_internal::commit_together(writers));

  // 6. The reports.
  std::vector<ConversionReport> reports;
  for (Target& target : targets) {
    ConversionReport& report = target.report;
    report.input = request.input;
    report.target = target.type_name;
    report.dry_run = request.dry_run;
    report.threads = pool.size();
    report.input_bytes = input.input_bytes();
    report.parameters = int64_t(input.total_elements());
    if (importance) report.imatrix_from_text = importance->summary;
    if (split.shard) {
      // One shard of the output: its share of the work, so that the rates are this job's.
      report.input_bytes = 0;
      report.parameters = 0;
      for (const TensorReport& t : report.tensors) {
        report.input_bytes += t.bytes_in;
        int64_t elements = 1;
        for (int64_t ne : t.shape) elements *= ne;
        report.parameters += elements;
      }
    }
    if (target.files.shard_names) {
      report.shards = shard_reports(target);
      report.shard_count = target.files.count;
    }
    // The writers hashed every byte as they wrote it: no second pass over the files.
    std::vector<const GgufWriter*> written;
    for (const std::optional<GgufWriter>& writer : target.writers) {
      if (writer) written.push_back(&*writer);
    }
    for (const GgufWriter* writer : written) report.output_bytes += writer->bytes_written();
    if (written.size() == 1) report.output_sha256 = written.front()->sha256_hex();
    if (request.dry_run) {
      // The exact size of the files a real run writes (header, metadata and padding included): a size budget
      // (--target-size) is checked against it.
      for (const ShardReport& shard : shard_reports(target)) report.output_bytes += shard.file_bytes;
    }
    const auto first_file = std::find(target.files.selected.begin(), target.files.selected.end(), true);
    report.output = target.files.paths[size_t(first_file - target.files.selected.begin())];
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (Target& target : targets) {
    target.report.wall_seconds = wall;
    target.report.cpu_seconds = process_cpu_seconds() - cpu_started;
    target.report.peak_rss_bytes = peak_rss_bytes();
    reports.push_back(std::move(target.report));
  }
  return reports;
}

}  // namespace quant
