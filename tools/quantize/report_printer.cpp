#include "report_printer.h"

#include "shard_printer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace quant::cli {
namespace {

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = double(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) { value /= 1024; ++unit; }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", value, units[unit]);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? " x " : "") + std::to_string(shape[i]);
  return out;
}

// A tensor's SQNR column: the figure, or "exact" when every value came back unchanged (SQNR is then infinite).
std::string sqnr_text(const ErrorStats& e) {
  return std::isinf(e.sqnr_db()) ? std::string("exact") : fmt::format("{:.2f}", e.sqnr_db());
}

// The report's error line, in words a reader can act on when there is no loss to quote.
std::string error_line(const ErrorStats& total, size_t converted, size_t tensors) {
  if (converted == 0) return fmt::format("none: every tensor was copied unchanged ({} tensors)", tensors);
  if (total.count() == 0) {
    return fmt::format("not measured: the output types cannot be read back ({} of {} tensors converted)", converted,
                       tensors);
  }
  if (std::isinf(total.sqnr_db())) {
    return fmt::format("none: every converted value reads back exactly ({} of {} tensors converted)", converted,
                       tensors);
  }
  return fmt::format("RMSE {:.3g}, max |error| {:.3g}, SQNR {:.2f} dB, cosine {:.6f} ({} of {} tensors converted)",
                     total.rmse(), total.max_abs_error(), total.sqnr_db(), total.cosine(), converted, tensors);
}

}  // namespace

void print_report(std::ostream& out, const ConversionReport& r, bool all_tensors) {
  const char* verb = r.dry_run ? "would write" : "wrote";
  out << fmt::format("{} -> {} ({}) {}\n", r.input, r.dry_run ? "(dry run)" : r.output, r.target, verb);
  out << fmt::format("  size        {} -> {}  (ratio {:.2f}, {:.3f} bits per weight)\n", human_bytes(r.input_bytes),
                     human_bytes(r.output_bytes), r.ratio(), r.bits_per_weight());

  // Error over every converted value, weighted by tensor size.
  ErrorStats total;
  size_t converted = 0;
  for (const TensorReport& t : r.tensors) {
    if (!t.converted) continue;
    total.merge(t.error);
    ++converted;
  }
  if (!r.dry_run) {
    out << fmt::format("  error       {}\n", error_line(total, converted, r.tensors.size()));
    out << fmt::format("  time        {:.2f} s wall, {:.2f} s CPU, {} threads: {:.1f} MB/s, {:.3g} parameters/s\n",
                       r.wall_seconds, r.cpu_seconds, r.threads, r.input_mb_per_second(), r.parameters_per_second());
    out << fmt::format("  memory      peak RSS {}\n", human_bytes(r.peak_rss_bytes));
    if (!r.output_sha256.empty()) out << fmt::format("  sha256      {}\n", r.output_sha256);
  }
  if (!r.shards.empty()) {
    // A split output: the files this run wrote (or would write), of all the output's shards.
    out << fmt::format("  shards      {} {} of {} file{}\n", verb, r.shards.size(), r.shard_count,
                       r.shard_count == 1 ? "" : "s");
    print_shards(out, r.shards, r.dry_run);
  }
  if (r.imatrix_from_text) {
    const TextImatrixSummary& m = *r.imatrix_from_text;
    out << fmt::format("  imatrix     {} weights from {} chunks of {} tokens of {}{} in {:.2f} s\n", m.entries, m.chunks,
                       m.n_ctx, m.text, m.perplexity ? fmt::format(" (PPL {:.4f})", *m.perplexity) : std::string(),
                       m.seconds);
  }
  if (r.quality) {
    const ModelQuality& q = *r.quality;
    out << fmt::format("  model       PPL {:.4f} ± {:.4f} (input {:.4f}), KLD {:.6f} ± {:.6f} (99% {:.4f}, max {:.4f}), "
                       "same top {:.2f} %  [{} chunks of {} of {}]\n",
                       q.perplexity, q.perplexity_uncertainty, q.base_perplexity, q.kld_mean, q.kld_uncertainty,
                       q.kld_p99, q.kld_max, 100 * q.same_top, q.chunks, q.n_ctx, q.text);
  }

  // Tensors: worst SQNR first, so the ones that lost most are on screen.
  std::vector<const TensorReport*> rows;
  for (const TensorReport& t : r.tensors) rows.push_back(&t);
  std::stable_sort(rows.begin(), rows.end(), [](const TensorReport* a, const TensorReport* b) {
    if (a->converted != b->converted) return a->converted;
    return a->error.sqnr_db() < b->error.sqnr_db();
  });
  const size_t shown = all_tensors || r.dry_run ? rows.size() : std::min(rows.size(), kCompactTensorRows);
  if (r.dry_run) {
    // The plan: which rule chose each type.
    out << fmt::format("\n  {:<32} {:>13} {:>7} {:>7} {:>11} {:>11}  {}\n", "tensor", "shape", "in", "out", "bytes in",
                       "bytes out", "why");
  } else {
    out << fmt::format("\n  {:<32} {:>13} {:>7} {:>7} {:>11} {:>11} {:>10} {:>10} {:>9}\n", "tensor", "shape", "in",
                       "out", "bytes in", "bytes out", "RMSE", "SQNR dB", "cosine");
  }
  for (size_t i = 0; i < shown; ++i) {
    const TensorReport& t = *rows[i];
    const std::string common = fmt::format("  {:<32} {:>13} {:>7} {:>7} {:>11} {:>11}", t.name, shape_text(t.shape),
                                           format_of(t.type_in).name, format_of(t.type_out).name,
                                           human_bytes(t.bytes_in), human_bytes(t.bytes_out));
    if (r.dry_run) {
      out << common << "  " << t.reason << "\n";
      continue;
    }
    const bool measured = t.converted && t.error.count() > 0;
    out << common
        << fmt::format(" {:>10} {:>10} {:>9}\n", measured ? fmt::format("{:.3g}", t.error.rmse()) : "-",
                       measured ? sqnr_text(t.error) : "-", measured ? fmt::format("{:.5f}", t.error.cosine()) : "-");
  }
  if (shown < rows.size()) {
    out << fmt::format("  ... {} more tensors (-v lists all; --json gives every tensor)\n", rows.size() - shown);
  }
  out << "\n";
}

}  // namespace quant::cli
