// What a sharded run of a 671B-parameter model costs, per job (docs/scale-out.md): the DeepSeek-V3.1 tensor list
// the plan tests rebuild from llama.cpp's quant-type snapshot (tests/plan/schema_moe_models.h; 61 blocks, 256
// experts), stored as BF16 with f32 norms, planned as Q4_K_M, and cut into N shards balanced by output bytes as
// `--shard I/N` cuts it. For each N it prints the largest shard's input bytes (read), output bytes (written) and
// its time at a measured conversion rate per CPU-second and a storage read rate, whichever bounds it.
//   shard_cost_model [--threads 32] [--cpu-mb-per-s 244] [--read-gb-per-s 2]
// The default rate is docs/performance.md's Q4_K_M (1.72 GB of f16 in 7.04 CPU seconds, 2 threads); with an
// importance matrix it was 158 MB per CPU-second.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "plan/schema_models.h"
#include "plan/schema_moe_models.h"
#include "quant/plan.h"
#include "quant/split.h"

int main(int argc, char** argv) {
  double threads = 32, cpu_mb_per_s = 244, read_gb_per_s = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const double value = std::atof(argv[i + 1]);
    if (std::strcmp(argv[i], "--threads") == 0) threads = value;
    if (std::strcmp(argv[i], "--cpu-mb-per-s") == 0) cpu_mb_per_s = value;
    if (std::strcmp(argv[i], "--read-gb-per-s") == 0) read_gb_per_s = value;
  }
  const auto snapshot = quant::testing::read_snapshot(std::string(QUANT_TEST_DATA_DIR) +
                                                      "/quant-type-snapshots/deepseek-v3.1.schema");
  quant::testing::SnapshotModel model = quant::testing::build_deepseek_v3_model(snapshot);
  for (quant::PlanTensor& t : model.tensors) t.type = t.shape.size() > 1 ? quant::TypeId::bf16 : quant::TypeId::f32;
  quant::PlanOptions options;
  options.file_type = quant::FileType::q4_K_M;
  auto plan = quant::make_plan(model.params, model.tensors, options);
  if (!plan) {
    fmt::print(stderr, "{}\n", plan.error().message());
    return 1;
  }
  std::vector<uint64_t> in_bytes, out_bytes;
  uint64_t parameters = 0, total_in = 0, total_out = 0;
  for (const quant::TensorPlan& t : plan->tensors) {
    uint64_t rows = 1;
    for (size_t d = 1; d < t.shape.size(); ++d) rows *= uint64_t(t.shape[d]);
    parameters += rows * uint64_t(t.shape[0]);
    in_bytes.push_back(*quant::row_bytes(quant::format_of(t.source_type), t.shape[0]) * rows);
    out_bytes.push_back(*quant::row_bytes(quant::format_of(t.target_type), t.shape[0]) * rows);
    total_in += in_bytes.back();
    total_out += out_bytes.back();
  }
  fmt::print("DeepSeek-V3.1: {} tensors, {:.1f}B parameters; BF16 input {:.1f} GB, Q4_K_M output {:.1f} GB "
             "({:.2f} bits per weight)\n",
             plan->tensors.size(), parameters / 1e9, total_in / 1e9, total_out / 1e9, 8.0 * total_out / parameters);
  fmt::print("rates: {:.0f} MB of input per CPU-second x {:.0f} threads per job; reads at {:.1f} GB/s per job\n\n",
             cpu_mb_per_s, threads, read_gb_per_s);
  fmt::print("| jobs N | tensors per job | largest job reads GB | writes GB | CPU-bound min | read-bound min |\n");
  fmt::print("|---:|---:|---:|---:|---:|---:|\n");
  for (uint32_t n : {1u, 4u, 8u, 16u, 32u, 64u}) {
    auto cut = quant::cut_balanced(out_bytes, 0, n);
    if (!cut) return 1;
    uint64_t worst_in = 0, worst_out = 0, min_tensors = UINT64_MAX, max_tensors = 0;
    size_t next = 0;
    for (uint64_t count : *cut) {
      uint64_t in = 0, out = 0;
      for (uint64_t k = 0; k < count; ++k, ++next) {
        in += in_bytes[next];
        out += out_bytes[next];
      }
      worst_in = std::max(worst_in, in);
      worst_out = std::max(worst_out, out);
      min_tensors = std::min(min_tensors, count);
      max_tensors = std::max(max_tensors, count);
    }
    const double cpu_minutes = worst_in / (cpu_mb_per_s * 1e6 * threads) / 60;
    const double read_minutes = worst_in / (read_gb_per_s * 1e9) / 60;
    fmt::print("| {} | {}-{} | {:.1f} | {:.1f} | {:.1f} | {:.1f} |\n", n, min_tensors, max_tensors, worst_in / 1e9,
               worst_out / 1e9, cpu_minutes, read_minutes);
  }
  return 0;
}
