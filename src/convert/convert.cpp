// convert(): the main job, top to bottom. Each step is a call into a file named after it.
#include "quant/convert.h"

#include <fmt/format.h>
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

using convert_internal::LoadedImportance;
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

// The plan of one target. A type that needs an importance matrix when the one given was filtered to nothing
// is explained in those terms (the plan itself only knows there is none).
Result<Target> plan_target(const ConvertRequest& request, const ConvertTarget& wanted, const ModelSource& input,
                           const ModelParams& model, const std::vector<PlanTensor>& tensors,
                           const LoadedImportance* importance) {
  Target target;
  QUANT_ASSIGN_OR_RETURN(target.file_type, parse_file_type(wanted.type_name));
  target.type_name = wanted.type_name;
  target.output_path = wanted.output.empty() ? default_output_path(request.input, std::string(target.file_type->name))
                                             : wanted.output;
  // A source that defines this type's bytes (a Hugging Face checkpoint written as convert_hf_to_gguf.py writes
  // its outtypes) plans it itself, unless per-tensor options ask for llama-quantize's rules.
  const TypeChoices& types = request.types;
  // A calibration text's matrix is computed after the plans: they are made as if it were there.
  const bool has_imatrix =
      (importance != nullptr && importance->record.has_value()) || request.imatrix.calibration_text.has_value();
  const bool per_tensor_options = types.pure || types.leave_output_tensor || types.output_tensor_type ||
                                  types.token_embedding_type || !types.tensor_types.empty() || has_imatrix;
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
  options.has_imatrix = has_imatrix;
  options.dry_run = request.dry_run;
  options.types = request.types;
  options.input_order = request.split.keep_split;
  if (const Value* ft = input.find("general.file_type"); ft != nullptr) {
    uint64_t value = 0;
    if (ft->to_uint64(&value)) options.input_file_type = uint32_t(value);
  }
  auto plan = make_plan(model, tensors, options);
  if (!plan && importance != nullptr && !options.has_imatrix && plan.error().kind() == ErrorKind::impossible) {
    PlanOptions lenient = options;
    lenient.dry_run = true;
    auto would_be = make_plan(model, tensors, lenient);
    for (const TensorPlan& t : would_be ? would_be->tensors : std::vector<TensorPlan>{}) {
      if (t.name == plan.error().tensor() && t.requires_imatrix) {
        return Error(impossible(fmt::format("type {} needs importance data, and {}",
                                            format_of(t.target_type).name,
                                            convert_internal::missing_importance_reason(importance, t.name))))
            .in_file(input.path())
            .in_tensor(t.name);
      }
    }
  }
  if (!plan) return std::move(plan).error().in_file(input.path());
  target.plan = std::move(plan).value();
  return target;
}

// Opens the writer of file `index` of the target: its metadata, its tensors, its header.
Status open_writer(Target& target, uint32_t index, const ModelSource& input, const ConvertRequest& request) {
  WriterOptions options;
  options.fsync = request.output.fsync;  // each file flushed as it is finished, before any is placed
  // Only the file with the model's metadata follows general.alignment; other shards hold no such key.
  const Value* alignment = input.find("general.alignment");
  if (index == 0 && alignment != nullptr && alignment->holds<uint32_t>()) options.alignment = alignment->as<uint32_t>();
  QUANT_ASSIGN_OR_RETURN(GgufWriter writer, GgufWriter::create(target.files.paths[index], options));
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

// No two files of a run may be one file, however their paths are spelled (also in a dry run, which the real run
// must agree with).
Status refuse_shared_outputs(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<fs::path> seen;
  for (const std::string& path : paths) {
    std::error_code ec;
    fs::path resolved = fs::weakly_canonical(path, ec);
    if (ec) resolved = fs::absolute(path, ec).lexically_normal();
    if (std::find(seen.begin(), seen.end(), resolved) != seen.end()) {
      return usage_error(fmt::format("two targets write the same output '{}'", path));
    }
    seen.push_back(resolved);
  }
  return Status::success();
}

// What a split output's report lists: each file written (or planned), with its tensors and sizes.
Result<std::vector<ShardReport>> shard_reports(const Target& target) {
  std::vector<ShardReport> shards;
  for (uint32_t s = 0; s < target.files.count; ++s) {
    if (!target.files.selected[s]) continue;
    ShardReport shard;
    shard.path = target.files.paths[s];
    shard.index = s;
    std::vector<TensorInfo> declared;
    for (size_t i = 0; i < target.plan.tensors.size(); ++i) {
      if (target.files.shard_of[i] != s) continue;
      const TensorPlan& t = target.plan.tensors[i];
      const uint64_t bytes = convert_internal::planned_bytes(t);
      ++shard.tensors;
      shard.tensor_bytes += bytes;
      declared.push_back({.name = t.name, .type = t.target_type, .shape = t.shape});
    }
    if (const std::optional<GgufWriter>& writer = target.writers[s]; writer) {
      shard.file_bytes = writer->bytes_written();
      shard.sha256 = writer->sha256_hex();
    } else {
      QUANT_ASSIGN_OR_RETURN(shard.file_bytes,
                             gguf_file_size(convert_internal::file_metadata(target.files, target.metadata, s), declared));
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
  std::vector<std::string> warnings;
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
  if (int(!request.imatrix.path.empty()) + int(request.imatrix.calibration_text.has_value()) +
          int(request.imatrix.computed != nullptr) > 1) {
    return usage_error("--imatrix and --calibration-text both give the importance matrix: use one");
  }
  std::optional<LoadedImportance> importance;
  if (!request.imatrix.path.empty()) {
    QUANT_ASSIGN_OR_RETURN(importance, convert_internal::load_importance(request.imatrix));
  } else if (request.imatrix.computed) {
    QUANT_ASSIGN_OR_RETURN(importance,
                           convert_internal::computed_importance(*request.imatrix.computed, request.imatrix));
  }
  // A calibration text is computed after the plans (a bad type name should not wait for it); they are made as
  // if its matrix were there, which it is unless the run fails.
  bool has_imatrix =
      (importance && importance->record.has_value()) || request.imatrix.calibration_text.has_value();

  // 3. Plan every target. Every file this run reads is protected from being an output.
  OutputPolicy policy = request.output;
  for (const std::string& read : {request.input, request.imatrix.path, request.calibration_table}) {
    if (!read.empty()) policy.inputs.push_back(read);
  }
  if (const auto& text = request.imatrix.calibration_text) {  // the calibration text and the imatrices it merges
    policy.inputs.push_back(text->text_path);
    for (const std::string& file : text->in_files) policy.inputs.push_back(file);
  }
  if (const auto& computed = request.imatrix.computed; computed && computed->text) {  // the text it was computed from
    policy.inputs.push_back(computed->text->text);
  }
  for (std::string& file : input.files()) policy.inputs.push_back(std::move(file));
  std::vector<Target> targets;
  for (const ConvertTarget& wanted : request.targets) {
    QUANT_ASSIGN_OR_RETURN(Target target, plan_target(request, wanted, input, model, tensors,
                                                      importance ? &*importance : nullptr));
    if (request.dry_run && target.plan.imatrix_required && !has_imatrix) {
      warnings.push_back(
          fmt::format("a real conversion to {} needs an importance matrix (--imatrix)", target.type_name));
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

  // 4. Each output's metadata and files (one, or the shards of a split output), and a check of every path
  //    before anything is created or computed. A calibration text's matrix adds keys to the metadata, which can
  //    move where --split-max-size cuts: the layout is made again, and checked again, once it is computed.
  std::vector<KeyValue> calibration_keys;
  if (!request.calibration_table.empty()) {
    QUANT_ASSIGN_OR_RETURN(calibration_keys, convert_internal::load_calibration_metadata(request));
  }
  // A dry run never computes a calibration text's matrix: its sizes count the keys the record will have.
  std::optional<ImatrixRecord> predicted_record;
  if (request.imatrix.calibration_text && request.dry_run) {
    QUANT_ASSIGN_OR_RETURN(predicted_record, convert_internal::predicted_text_record(request.imatrix));
  }
  auto lay_out = [&]() -> Status {
    std::vector<KvOverride> overrides = request.kv_overrides;
    const bool recorded = importance && importance->record.has_value();
    const ImatrixRecord* record = recorded ? &*importance->record : predicted_record ? &*predicted_record : nullptr;
    if (record != nullptr) {
      for (KvOverride& o : convert_internal::imatrix_overrides(*record)) overrides.push_back(std::move(o));
    }
    std::vector<std::string> paths;
    for (Target& target : targets) {
      target.metadata = target.source_metadata
                            ? convert_internal::with_overrides(*target.source_metadata, overrides)
                            : convert_internal::output_metadata(input, target.plan.file_type, overrides);
      convert_internal::append_calibration_metadata(target.metadata, calibration_keys);
      auto files = convert_internal::lay_out_output(split, input, target.plan, target.output_path, target.metadata,
                                                    recorded ? &importance->matrix : nullptr);
      if (!files) return std::move(files).error().in_file(input.path());
      target.files = std::move(files).value();
      target.writers.resize(target.files.count);
      for (uint32_t s = 0; s < target.files.count; ++s) {
        if (target.files.selected[s]) paths.push_back(target.files.paths[s]);
      }
    }
    QUANT_TRY(refuse_shared_outputs(paths));
    for (const std::string& path : paths) {
      Status usable = check_output_path(path, policy);
      if (usable) continue;
      if (!request.dry_run) return std::move(usable).error();
      warnings.push_back(fmt::format("a real run would stop here: {}", usable.error().message()));
    }
    return Status::success();
  };
  QUANT_TRY(lay_out());
  if (request.imatrix.calibration_text && !request.dry_run) {
    // One read of the model for the statistics; the conversion below reads it again.
    QUANT_ASSIGN_OR_RETURN(importance, convert_internal::compute_importance(request.imatrix, input));
    QUANT_TRY(lay_out());
  }
  has_imatrix = importance && importance->record.has_value();

  // 5. The writers of the files this process writes (a dry run only sizes them).
  if (!request.dry_run) {
    for (Target& target : targets) {
      for (uint32_t s = 0; s < target.files.count; ++s) {
        if (target.files.selected[s]) QUANT_TRY(open_writer(target, s, input, request));
      }
    }
  }

  // 6. Stream every tensor, in output order, to every target that writes it (under --shard, only the tensors of
  //    this job's shard are read). All targets share the order (it depends only on the names, or under
  //    --keep-split on the input's layout), so tensor i of each plan is the same input tensor.
  const auto writes = [&](const Target& target, size_t i) {
    return bool(target.files.selected[target.files.shard_of[i]]);
  };
  convert_internal::WorkPool pool(request.threads);
  if (request.threads > pool.size()) {
    warnings.push_back(fmt::format("--threads {}: using {} threads (at most {} per hardware thread, as many as "
                                   "the system would start)", request.threads, pool.size(),
                                   convert_internal::WorkPool::kMaxThreadsPerCore));
  }
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < targets[0].plan.tensors.size(); ++i) {
    if (std::any_of(targets.begin(), targets.end(), [&](const Target& t) { return writes(t, i); })) {
      total_bytes += source_info(i).size_bytes;
    }
  }
  convert_internal::TensorStreamer streamer(input, pool, request.stream, request.dry_run ? 0 : total_bytes);
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
      // A type that cannot be made without importance data (by llama-quantize's rule for the tensor, or because
      // ggml's quantizer refuses), when an imatrix was given but has nothing for this tensor: say why.
      const bool needs_importance = target.plan.tensors[i].requires_imatrix || output.format->requires_importance;
      if (importance && output.report->converted && output.importance == nullptr && needs_importance) {
        return Error(impossible(fmt::format("type {} needs importance data, and {}",
                                            format_of(target.plan.tensors[i].target_type).name,
                                            convert_internal::missing_importance_reason(&*importance, info.name))))
            .in_file(input.path())
            .in_tensor(info.name);
      }
      outputs.push_back(output);
    }
    if (!request.dry_run && !outputs.empty()) QUANT_TRY(streamer.stream(info, outputs));
  }
  QUANT_TRY(streamer.finish());

  // 7. Commit every file of every output together, all or nothing: every file finished (and synced) first, then
  //    placed. A signal that came after the last chunk was read still means no output.
  std::vector<GgufWriter*> writers;
  std::vector<size_t> writer_target;  // which target each writer belongs to
  for (size_t t = 0; t < targets.size(); ++t) {
    for (std::optional<GgufWriter>& writer : targets[t].writers) {
      if (!writer) continue;
      writers.push_back(&*writer);
      writer_target.push_back(t);
    }
  }
  std::vector<bool> replaced(targets.size(), false);
  if (!request.dry_run) {
    QUANT_ASSIGN_OR_RETURN(std::vector<bool> replaced_files,
                           split_internal::commit_together(writers, policy, request.stream.cancel));
    for (size_t w = 0; w < writers.size(); ++w) {
      if (replaced_files[w]) replaced[writer_target[w]] = true;
    }
  }

  // 8. The reports.
  std::vector<ConversionReport> reports;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (size_t t = 0; t < targets.size(); ++t) {
    Target& target = targets[t];
    ConversionReport& report = target.report;
    report.input = request.input;
    report.target = target.type_name;
    report.dry_run = request.dry_run;
    report.threads = pool.size();
    report.input_bytes = input.input_bytes();
    report.parameters = int64_t(input.total_elements());
    report.replaced_existing = replaced[t];
    report.warnings = warnings;
    if (importance) report.imatrix_from_text = importance->summary;
    if (split.shard) {
      // One shard of the output: its share of the work, so that the rates are this job's.
      report.input_bytes = 0;
      report.parameters = 0;
      for (const TensorReport& tensor : report.tensors) {
        report.input_bytes += tensor.bytes_in;
        int64_t elements = 1;
        for (int64_t ne : tensor.shape) elements *= ne;
        report.parameters += elements;
      }
    }
    if (target.files.shard_names) {
      QUANT_ASSIGN_OR_RETURN(report.shards, shard_reports(target));
      report.shard_count = target.files.count;
    }
    // The writers hashed every byte as they wrote it: no second pass over the files. A dry run reports the exact
    // size of the files a real run writes (header, metadata and padding included): a size budget (--target-size)
    // is checked against it.
    std::vector<const GgufWriter*> written;
    for (const std::optional<GgufWriter>& writer : target.writers) {
      if (writer) written.push_back(&*writer);
    }
    if (written.size() == 1) report.output_sha256 = written.front()->sha256_hex();
    QUANT_ASSIGN_OR_RETURN(const std::vector<ShardReport> shards, shard_reports(target));
    for (const ShardReport& shard : shards) report.output_bytes += shard.file_bytes;
    const auto first_file = std::find(target.files.selected.begin(), target.files.selected.end(), true);
    report.output = target.files.paths[size_t(first_file - target.files.selected.begin())];
    report.wall_seconds = wall;
    report.cpu_seconds = process_cpu_seconds() - cpu_started;
    report.peak_rss_bytes = peak_rss_bytes();
    reports.push_back(std::move(report));
  }
  return reports;
}

}  // namespace quant
