// The size-against-cost frontier as files: CSV and JSON for tools, SVG for a browser.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "quant/atomic_file.h"
#include "quant/automix.h"

namespace quant {
namespace {

std::string csv_text(const Frontier& frontier) {
  std::string text = "kind,label,file_bytes,bits_per_weight,cost\n";
  auto add = [&](const char* kind, const FrontierPoint& point) {
    text += fmt::format("{},{},{},{:.6f},{:.9g}\n", kind, point.label, point.file_bytes, point.bits_per_weight,
                        point.cost);
  };
  for (const FrontierPoint& point : frontier.ours) add("auto", point);
  for (const FrontierPoint& point : frontier.mixes) add("mix", point);
  return text;
}

nlohmann::json points_json(const std::vector<FrontierPoint>& points) {
  nlohmann::json out = nlohmann::json::array();
  for (const FrontierPoint& point : points) {
    out.push_back({{"label", point.label},
                   {"file_bytes", point.file_bytes},
                   {"bits_per_weight", point.bits_per_weight},
                   {"cost", point.cost}});
  }
  return out;
}

std::string escape_xml(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Bits per weight across, cost down a log scale (costs span orders of magnitude); ours as a line, the named
// mixes as labelled squares.
std::string svg_text(const Frontier& frontier) {
  constexpr double kWidth = 860, kHeight = 520, kLeft = 80, kRight = 30, kTop = 40, kBottom = 60;
  std::vector<const FrontierPoint*> all;
  for (const FrontierPoint& p : frontier.ours) all.push_back(&p);
  for (const FrontierPoint& p : frontier.mixes) all.push_back(&p);
  double x_min = 1e300, x_max = -1e300, y_min = 1e300, y_max = -1e300;
  for (const FrontierPoint* p : all) {
    x_min = std::min(x_min, p->bits_per_weight);
    x_max = std::max(x_max, p->bits_per_weight);
    if (p->cost > 0) {
      y_min = std::min(y_min, p->cost);
      y_max = std::max(y_max, p->cost);
    }
  }
  if (all.empty()) x_min = 0, x_max = 1;
  if (x_max <= x_min) x_max = x_min + 1;
  if (y_max < y_min) y_min = 1e-6, y_max = 1;
  const double log_lo = std::floor(std::log10(y_min)), log_hi = std::max(std::ceil(std::log10(y_max)), log_lo + 1);
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto x_of = [&](double bpw) { return kLeft + (bpw - x_min) / (x_max - x_min) * plot_w; };
  // A zero cost (the unquantized file) sits on the bottom edge.
  auto y_of = [&](double cost) {
    const double l = cost > 0 ? std::max(std::log10(cost), log_lo) : log_lo;
    return kTop + (log_hi - l) / (log_hi - log_lo) * plot_h;
  };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      kWidth, kHeight);
  svg += fmt::format("<text x=\"{}\" y=\"22\" font-size=\"15\">Predicted cost ({}) against bits per weight</text>\n",
                     kLeft, escape_xml(frontier.unit));
  // Axes, decade grid lines and labels.
  for (double l = log_lo; l <= log_hi + 1e-9; l += 1) {
    const double y = y_of(std::pow(10.0, l));
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", kLeft, y,
                       kLeft + plot_w, y);
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">1e{}</text>\n", kLeft - 6, y + 4, int(l));
  }
  const int x_steps = 8;
  for (int i = 0; i <= x_steps; ++i) {
    const double bpw = x_min + (x_max - x_min) * i / x_steps;
    const double x = x_of(bpw);
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#eee\"/>\n", x, kTop, x,
                       kTop + plot_h);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.2f}</text>\n", x, kTop + plot_h + 18, bpw);
  }
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", kLeft,
                     kTop, plot_w, plot_h);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">bits per weight (llama.cpp's BPW)</text>\n",
                     kLeft + plot_w / 2, kHeight - 18);
  // Our frontier.
  std::string path;
  for (const FrontierPoint& p : frontier.ours) {
    path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "" : " ", x_of(p.bits_per_weight), y_of(p.cost));
  }
  svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"#1f6fd1\" stroke-width=\"2\"/>\n", path);
  for (const FrontierPoint& p : frontier.ours) {
    svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"#1f6fd1\"><title>auto {} bytes, {:.3f} "
                       "bpw, cost {:.4g}</title></circle>\n",
                       x_of(p.bits_per_weight), y_of(p.cost), p.file_bytes, p.bits_per_weight, p.cost);
  }
  for (const FrontierPoint& p : frontier.mixes) {
    const double x = x_of(p.bits_per_weight), y = y_of(p.cost);
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"7\" height=\"7\" fill=\"#d1521f\"><title>{} {} "
                       "bytes, {:.3f} bpw, cost {:.4g}</title></rect>\n",
                       x - 3.5, y - 3.5, escape_xml(p.label), p.file_bytes, p.bits_per_weight, p.cost);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#d1521f\" font-size=\"10\">{}</text>\n", x + 6, y - 4,
                       escape_xml(p.label));
  }
  // Legend.
  svg += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"#1f6fd1\"/><text x=\"{}\" y=\"{}\">automatic mix "
                     "(ours)</text>\n",
                     kLeft + plot_w - 170, kTop + 14, kLeft + plot_w - 160, kTop + 18);
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"7\" height=\"7\" fill=\"#d1521f\"/><text x=\"{}\" y=\"{}\">"
                     "llama-quantize mix</text>\n",
                     kLeft + plot_w - 173.5, kTop + 26.5, kLeft + plot_w - 160, kTop + 34);
  svg += "</svg>\n";
  return svg;
}

}  // namespace

Status write_frontier(const Frontier& frontier, const std::string& prefix, const OutputPolicy& policy) {
  const nlohmann::json document = {
      {"unit", frontier.unit},
      {"auto", points_json(frontier.ours)},
      {"mixes", points_json(frontier.mixes)},
  };
  const std::pair<std::string, std::string> contents[] = {{prefix + ".csv", csv_text(frontier)},
                                                          {prefix + ".json", document.dump(2) + "\n"},
                                                          {prefix + ".svg", svg_text(frontier)}};
  // The three files are placed together, or none of them.
  std::vector<AtomicFile> files;
  for (const auto& [path, text] : contents) {
    QUANT_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(path));
    QUANT_TRY(file.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size())));
    files.push_back(std::move(file));
  }
  std::vector<AtomicFile*> placing;
  for (AtomicFile& file : files) placing.push_back(&file);
  QUANT_TRY(commit_files(placing, policy));
  return Status::success();
}

}  // namespace quant
