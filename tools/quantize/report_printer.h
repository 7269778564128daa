// The human-readable conversion report on stdout: totals first, then the tensors, worst first when there are
// many (the JSON report, --json, always lists every tensor).
#pragma once

#include <ostream>

#include "quant/report.h"

namespace quant::cli {

// Lists at most `kCompactTensorRows` tensors unless `all_tensors`.
inline constexpr size_t kCompactTensorRows = 12;
void print_report(std::ostream& out, const ConversionReport& report, bool all_tensors);

}  // namespace quant::cli
