#include "shard_printer.h"

#include <fmt/format.h>

#include <iostream>

namespace quant::cli {

void print_shards(std::ostream& out, std::span<const ShardReport> files, bool dry_run) {
  size_t path_width = 4;
  for (const ShardReport& f : files) path_width = std::max(path_width, f.path.size());
  out << fmt::format("  {:<{}}  {:>7} {:>14} {:>14}  {}\n", "file", path_width, "tensors", "tensor bytes",
                     "file bytes", dry_run ? "" : "sha256");
  for (const ShardReport& f : files) {
    out << fmt::format("  {:<{}}  {:>7} {:>14} {:>14}  {}\n", f.path, path_width, f.tensors, f.tensor_bytes,
                       f.file_bytes, f.sha256);
  }
}

int print_split_job(const SplitJobReport& report, bool dry_run, const GlobalOptions& globals) {
  if (globals.json) {
    nlohmann::json files = nlohmann::json::array();
    for (const ShardReport& f : report.files) files.push_back(to_json(f));
    nlohmann::json out = {{"input", report.input},        {"dry_run", dry_run},
                          {"files", std::move(files)},    {"tensors", report.total_tensors},
                          {"input_bytes", report.input_bytes}, {"wall_seconds", report.wall_seconds}};
    std::cout << out.dump(2) << "\n";
  } else if (!globals.quiet) {
    std::cout << fmt::format("{} ({} tensors) -> {} file{}{}\n", report.input, report.total_tensors,
                             report.files.size(), report.files.size() == 1 ? "" : "s",
                             dry_run ? " (dry run: nothing written)" : "");
    print_shards(std::cout, report.files, dry_run);
  }
  return kExitOk;
}

}  // namespace quant::cli
