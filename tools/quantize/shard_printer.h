// The files of a split output, as a table on stdout (split, merge and conversions with split outputs) or as the
// JSON of `quantize split` and `quantize merge`.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <span>

#include "command.h"
#include "quant/report.h"
#include "quant/split.h"

namespace quant::cli {

void print_shards(std::ostream& out, std::span<const ShardReport> files, bool dry_run);

// Prints a split or merge job's report (text or JSON per `globals`) and returns kExitOk.
int print_split_job(const SplitJobReport& report, bool dry_run, const GlobalOptions& globals);

}  // namespace quant::cli
