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
#include "convert/tensor_stream.h"
#include "convert/work_pool.h"
#include "quant/gguf.h"
#include "quant/hf.h"

namespace quant {
namespace {

using convert_internal::LoadedImportance;
using convert_internal::TensorOutput;

// One output being produced: its plan, its metadata, its writer and its report.
struct Target {
  const FileTypeInfo* file_type = nullptr;
  std::string type_name;
  std::string output_path;
  Plan plan;
  // Set when the input defines this target's bytes itself (SourcePlan): its metadata, and what each tensor is
  // read as (in plan order).
  std::optional<std::vector<KeyValue>> source_metadata;
  std::vector<TensorInfo> source_tensors;
  std::vector<KeyValue> metadata;
  std::optional<GgufWriter> writer;
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

WriterOptions writer_options(const ModelSource& input, bool fsync) {
  WriterOptions options;
  options.fsync = fsync;  // each file flushed as it is finished, before any is placed
  if (const Value* alignment = input.find("general.alignment"); alignment != nullptr && alignment->holds<uint32_t>()) {
    options.alignment = alignment->as<uint32_t>();
  }
  return options;
}

// The tensors of the output as its writer declares them (name, type, shape), in output order.
std::vector<TensorInfo> declared_tensors(const Plan& plan) {
  std::vector<TensorInfo> tensors(plan.tensors.size());
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    tensors[i].name = plan.tensors[i].name;
    tensors[i].type = plan.tensors[i].target_type;
    tensors[i].shape = plan.tensors[i].shape;
  }
  return tensors;
}

Status open_writer(Target& target, const WriterOptions& options) {
  QUANT_ASSIGN_OR_RETURN(GgufWriter writer, GgufWriter::create(target.output_path, options));
  for (KeyValue& kv : target.metadata) QUANT_TRY(writer.add_metadata(std::move(kv.key), std::move(kv.value)));
  target.metadata.clear();
  for (const TensorPlan& t : target.plan.tensors) QUANT_TRY(writer.add_tensor(t.name, t.target_type, t.shape));
  QUANT_TRY(writer.begin());
  target.writer.emplace(std::move(writer));
  return Status::success();
}

// Two targets may not write one file, however its path is spelled (also in a dry run, which the real run must
// agree with).
Status refuse_shared_outputs(const std::vector<Target>& targets) {
  namespace fs = std::filesystem;
  std::vector<fs::path> seen;
  for (const Target& target : targets) {
    std::error_code ec;
    fs::path resolved = fs::weakly_canonical(target.output_path, ec);
    if (ec) resolved = fs::absolute(target.output_path, ec).lexically_normal();
    if (std::find(seen.begin(), seen.end(), resolved) != seen.end()) {
      return usage_error(fmt::format("two targets write the same output '{}'", target.output_path));
    }
    seen.push_back(resolved);
  }
  return Status::success();
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
  std::string stem = path.stem().string();
  return (path.parent_path() / (stem + "-" + type_name + ".gguf")).string();
}

Result<std::vector<ConversionReport>> convert(const ConvertRequest& request) {
  const auto started = std::chrono::steady_clock::now();
  const double cpu_started = process_cpu_seconds();
  if (request.targets.empty()) return usage_error("no target type given");
  std::vector<std::string> warnings;

  // 1. Open and validate the input; read what the plan needs.
  QUANT_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model(request.input));
  const ModelSource& input = *source;
  QUANT_ASSIGN_OR_RETURN(ModelParams model, convert_internal::read_model_params(input));
  const std::vector<PlanTensor> tensors = convert_internal::plan_tensors(input);

  // 2. The importance matrix, if any.
  if (!request.imatrix.path.empty() && request.imatrix.calibration_text) {
    return usage_error("--imatrix and --calibration-text both give the importance matrix: use one");
  }
  std::optional<LoadedImportance> importance;
  if (!request.imatrix.path.empty()) {
    QUANT_ASSIGN_OR_RETURN(importance, convert_internal::load_importance(request.imatrix));
  }
  // A calibration text is computed after the plans (a bad type name should not wait for it); they are made as
  // if its matrix were there, which it is unless the run fails.
  bool has_imatrix =
      (importance && importance->record.has_value()) || request.imatrix.calibration_text.has_value();

  // 3. Plan every target and check every output path before anything is created. Every file this run reads is
  //    protected from being an output.
  OutputPolicy policy = request.output;
  for (const std::string& read : {request.input, request.imatrix.path, request.calibration_table}) {
    if (!read.empty()) policy.inputs.push_back(read);
  }
  if (const auto& text = request.imatrix.calibration_text) {  // the calibration text and the imatrices it merges
    policy.inputs.push_back(text->text_path);
    for (const std::string& file : text->in_files) policy.inputs.push_back(file);
  }
  for (const TensorInfo& tensor : input.tensors()) {  // a source's own files (shards, safetensors of a folder)
    const std::string& file = input.file_of(tensor);
    if (std::find(policy.inputs.begin(), policy.inputs.end(), file) == policy.inputs.end()) {
      policy.inputs.push_back(file);
    }
  }
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
  QUANT_TRY(refuse_shared_outputs(targets));
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
  for (const Target& target : targets) {
    Status usable = check_output_path(target.output_path, policy);
    if (usable) continue;
    if (!request.dry_run) return std::move(usable).error();
    warnings.push_back(fmt::format("a real run would stop here: {}", usable.error().message()));
  }

  if (request.imatrix.calibration_text && !request.dry_run) {
    // One read of the model for the statistics; the conversion below reads it again. After every output path was
    // checked: a refusal does not wait for the forward passes.
    QUANT_ASSIGN_OR_RETURN(importance, convert_internal::compute_importance(request.imatrix, input));
  }
  has_imatrix = importance && importance->record.has_value();

  // 4. Each output's metadata, then its writer (a dry run only sizes the file it would write).
  std::vector<KvOverride> overrides = request.kv_overrides;
  if (has_imatrix) {
    for (KvOverride& o : convert_internal::imatrix_overrides(*importance->record)) overrides.push_back(std::move(o));
  }
  std::vector<KeyValue> calibration_keys;
  if (!request.calibration_table.empty()) {
    QUANT_ASSIGN_OR_RETURN(calibration_keys, convert_internal::load_calibration_metadata(request));
  }
  const WriterOptions writer_settings = writer_options(input, request.output.fsync);
  for (Target& target : targets) {
    target.metadata = target.source_metadata
                          ? convert_internal::with_overrides(*target.source_metadata, overrides)
                          : convert_internal::output_metadata(input, target.plan.file_type, overrides);
    convert_internal::append_calibration_metadata(target.metadata, calibration_keys);
    if (request.dry_run) {
      auto size = gguf_file_size(target.metadata, declared_tensors(target.plan), writer_settings.alignment);
      if (!size) return std::move(size).error().in_file(target.output_path);
      target.report.output_bytes = *size;
    } else {
      QUANT_TRY(open_writer(target, writer_settings));
    }
  }

  // 5. Stream every tensor, in output order, to every target. All targets share the order (it depends only
  //    on the names), so tensor i of each plan is the same input tensor.
  convert_internal::WorkPool pool(request.threads);
  if (request.threads > pool.size()) {
    warnings.push_back(fmt::format("--threads {}: using {} threads (at most {} per hardware thread, as many as "
                                   "the system would start)", request.threads, pool.size(),
                                   convert_internal::WorkPool::kMaxThreadsPerCore));
  }
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < targets[0].plan.tensors.size(); ++i) total_bytes += source_info(i).size_bytes;
  convert_internal::TensorStreamer streamer(input, pool, request.stream, request.dry_run ? 0 : total_bytes);
  for (size_t i = 0; i < targets[0].plan.tensors.size(); ++i) {
    const TensorInfo& info = source_info(i);
    std::vector<TensorOutput> outputs;
    for (Target& target : targets) {
      target.report.tensors.push_back(start_tensor_report(info, target.plan.tensors[i]));
      TensorOutput output;
      output.format = &format_of(target.plan.tensors[i].target_type);
      output.writer = target.writer ? &*target.writer : nullptr;
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
    if (!request.dry_run) QUANT_TRY(streamer.stream(info, outputs));
  }
  QUANT_TRY(streamer.finish());

  // 6. Commit every output together, all or nothing: every file finished (and synced) first, then placed. A
  //    signal that came after the last chunk still means no output.
  std::vector<bool> replaced(targets.size(), false);
  if (!request.dry_run) {
    std::vector<AtomicFile*> files;
    for (Target& target : targets) {
      QUANT_TRY(target.writer->finish());
      files.push_back(&target.writer->file());
    }
    if (request.stream.cancel != nullptr && request.stream.cancel->load()) {
      return Error(ErrorKind::interrupted, "interrupted");
    }
    QUANT_ASSIGN_OR_RETURN(replaced, commit_files(files, policy));
  }

  // 7. The reports.
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::vector<ConversionReport> reports;
  for (size_t t = 0; t < targets.size(); ++t) {
    Target& target = targets[t];
    ConversionReport& report = target.report;
    report.input = request.input;
    report.output = target.output_path;
    report.target = target.type_name;
    report.dry_run = request.dry_run;
    report.threads = pool.size();
    report.input_bytes = input.input_bytes();
    report.parameters = int64_t(input.total_elements());
    report.replaced_existing = replaced[t];
    report.warnings = warnings;
    if (importance) report.imatrix_from_text = importance->summary;
    if (target.writer) {
      // The writer hashed every byte as it wrote it: no second pass over the file.
      report.output_sha256 = target.writer->sha256_hex();
      report.output_bytes = target.writer->bytes_written();
    }
    report.wall_seconds = wall;
    report.cpu_seconds = process_cpu_seconds() - cpu_started;
    report.peak_rss_bytes = peak_rss_bytes();
    reports.push_back(std::move(report));
  }
  return reports;
}

}  // namespace quant
