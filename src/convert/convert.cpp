// convert(): the main job, top to bottom. Each step is a call into a file named after it.
#include "quant/convert.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

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

namespace quant {
namespace {

using convert_internal::TensorOutput;

// One output being produced: its plan, its writer and its report.
struct Target {
  const FileTypeInfo* file_type = nullptr;
  std::string type_name;
  std::string output_path;
  Plan plan;
  std::optional<GgufWriter> writer;
  ConversionReport report;
};

Status check_output_path(const std::string& input, const std::string& output, bool overwrite) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // equivalent() follows links, so a symlink or hard link to the input is caught too.
  if (fs::exists(output, ec) && fs::equivalent(input, output, ec)) {
    return usage_error(fmt::format("output '{}' is the input file: refusing to overwrite it", output));
  }
  if (fs::is_directory(output, ec)) return io_error(fmt::format("output '{}' is a directory", output));
  if (fs::exists(output, ec) && !overwrite) {
    return io_error(fmt::format("output '{}' exists (use --force to replace it)", output));
  }
  return Status::success();
}

Result<Target> plan_target(const ConvertRequest& request, const ConvertTarget& wanted, const ModelSource& input,
                           const ModelParams& model, const std::vector<PlanTensor>& tensors, bool has_imatrix) {
  Target target;
  QUANT_ASSIGN_OR_RETURN(target.file_type, parse_file_type(wanted.type_name));
  target.type_name = wanted.type_name;
  target.output_path = wanted.output.empty() ? default_output_path(request.input, std::string(target.file_type->name))
                                             : wanted.output;
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
  if (const Value* ft = input.find("general.file_type"); ft != nullptr) {
    uint64_t value = 0;
    if (ft->to_uint64(&value)) options.input_file_type = uint32_t(value);
  }
  auto plan = make_plan(model, tensors, options);
  if (!plan) return std::move(plan).error().in_file(input.path());
  target.plan = std::move(plan).value();
  return target;
}

Status open_writer(Target& target, const ModelSource& input, const std::vector<KvOverride>& overrides,
                   const std::vector<KeyValue>& calibration_keys, const ConvertRequest& request) {
  QUANT_TRY(check_output_path(request.input, target.output_path, request.overwrite));
  auto stale = remove_stale_temp_files(target.output_path);
  if (!stale) return std::move(stale).error();
  WriterOptions options;
  options.fsync = request.fsync;
  if (const Value* alignment = input.find("general.alignment"); alignment != nullptr && alignment->holds<uint32_t>()) {
    options.alignment = alignment->as<uint32_t>();
  }
  QUANT_ASSIGN_OR_RETURN(GgufWriter writer, GgufWriter::create(target.output_path, options));
  std::vector<KeyValue> metadata = convert_internal::output_metadata(input, target.plan.file_type, overrides);
  convert_internal::append_calibration_metadata(metadata, calibration_keys);
  for (KeyValue& kv : metadata) {
    QUANT_TRY(writer.add_metadata(std::move(kv.key), std::move(kv.value)));
  }
  for (const TensorPlan& t : target.plan.tensors) QUANT_TRY(writer.add_tensor(t.name, t.target_type, t.shape));
  QUANT_TRY(writer.begin());
  target.writer.emplace(std::move(writer));
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
  std::string stem = path.stem().string();
  return (path.parent_path() / (stem + "-" + type_name + ".gguf")).string();
}

Result<std::vector<ConversionReport>> convert(const ConvertRequest& request) {
  const auto started = std::chrono::steady_clock::now();
  const double cpu_started = process_cpu_seconds();
  if (request.targets.empty()) return usage_error("no target type given");

  // 1. Open and validate the input; read what the plan needs.
  QUANT_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model(request.input));
  const ModelSource& input = *source;
  QUANT_ASSIGN_OR_RETURN(ModelParams model, convert_internal::read_model_params(input));
  const std::vector<PlanTensor> tensors = convert_internal::plan_tensors(input);

  // 2. The importance matrix, if any.
  std::optional<convert_internal::LoadedImportance> importance;
  if (!request.imatrix_path.empty()) {
    QUANT_ASSIGN_OR_RETURN(importance, convert_internal::load_importance(request));
  }
  const bool has_imatrix = importance && importance->record.has_value();

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
  std::vector<KvOverride> overrides = request.kv_overrides;
  if (has_imatrix) {
    for (KvOverride& o : convert_internal::imatrix_overrides(*importance->record)) overrides.push_back(std::move(o));
  }
  std::vector<KeyValue> calibration_keys;
  if (!request.calibration_table.empty()) {
    QUANT_ASSIGN_OR_RETURN(calibration_keys, convert_internal::load_calibration_metadata(request));
  }
  if (!request.dry_run) {
    for (size_t i = 0; i < targets.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (targets[j].output_path == targets[i].output_path) {
          return usage_error(fmt::format("two targets write the same output '{}'", targets[i].output_path));
        }
      }
      QUANT_TRY(open_writer(targets[i], input, overrides, calibration_keys, request));
    }
  }

  // 4. Stream every tensor, in output order, to every target. All targets share the order (it depends only
  //    on the names), so tensor i of each plan is the same input tensor.
  convert_internal::WorkPool pool(request.threads);
  uint64_t total_bytes = 0;
  for (const TensorPlan& t : targets[0].plan.tensors) total_bytes += input.find_tensor(t.name)->size_bytes;
  convert_internal::TensorStreamer streamer(input, pool, request, request.dry_run ? 0 : total_bytes);
  for (size_t i = 0; i < targets[0].plan.tensors.size(); ++i) {
    const TensorInfo& info = *input.find_tensor(targets[0].plan.tensors[i].name);
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
    if (!request.dry_run) QUANT_TRY(streamer.stream(info, outputs));
  }
  QUANT_TRY(streamer.finish());

  // 5. Publish every output, then fill in the reports.
  std::vector<ConversionReport> reports;
  for (Target& target : targets) {
    ConversionReport& report = target.report;
    report.input = request.input;
    report.output = target.output_path;
    report.target = target.type_name;
    report.dry_run = request.dry_run;
    report.threads = pool.size();
    report.input_bytes = input.input_bytes();
    report.parameters = int64_t(input.total_elements());
    if (target.writer) {
      QUANT_TRY(target.writer->commit());
      // The writer hashed every byte as it wrote it: no second pass over the file.
      report.output_sha256 = target.writer->sha256_hex();
      report.output_bytes = target.writer->bytes_written();
    } else {
      report.output_bytes = 0;
      for (const TensorReport& t : report.tensors) report.output_bytes += t.bytes_out;
    }
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
