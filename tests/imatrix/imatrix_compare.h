// Comparing an importance matrix with llama-imatrix's: the acceptance rule of the text imatrix (issue 13) — the
// same entries, the same counts, and each column's mean square (in_sum2 / count) within 1 % of llama.cpp's for at
// least 99 % of the columns and within 5 % for all of them.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "quant/imatrix.h"

namespace quant::testing {

struct ImatrixComparison {
  int64_t columns = 0;
  int64_t within_1_percent = 0;
  double worst_relative = 0;  // the largest |ours - reference| / reference
  std::string worst_column;   // "weight[expert, column]"
  double fraction_within_1_percent() const { return columns > 0 ? double(within_1_percent) / double(columns) : 0; }
};

// Compares two matrices read from files (or built by importance_matrix()); adds a gtest failure for every
// difference in entries or counts.
inline ImatrixComparison compare_imatrices(const ImportanceMatrix& ours, const ImportanceMatrix& reference) {
  ImatrixComparison result;
  EXPECT_EQ(ours.entries.size(), reference.entries.size());
  for (const auto& [name, expected] : reference.entries) {
    const ImportanceEntry* actual = ours.find(name);
    if (actual == nullptr) {
      ADD_FAILURE() << "missing entry " << name;
      continue;
    }
    EXPECT_EQ(actual->stored_counts, expected.stored_counts) << name;
    if (actual->stored_sums.size() != expected.stored_sums.size() || actual->stored_counts != expected.stored_counts) {
      ADD_FAILURE() << name << ": shapes or counts differ";
      continue;
    }
    const size_t row = size_t(expected.n_per_row);
    for (size_t i = 0; i < expected.stored_sums.size(); ++i) {
      const float count = expected.stored_counts[i / row];
      if (count == 0) continue;
      const double want = double(expected.stored_sums[i]) / count;
      const double got = double(actual->stored_sums[i]) / count;
      const double relative = want != 0 ? std::fabs(got - want) / std::fabs(want) : (got == 0 ? 0.0 : INFINITY);
      ++result.columns;
      if (relative <= 0.01) ++result.within_1_percent;
      if (relative > result.worst_relative) {
        result.worst_relative = relative;
        result.worst_column = name + "[" + std::to_string(i / row) + ", " + std::to_string(i % row) + "]";
      }
    }
  }
  for (const auto& [name, entry] : ours.entries) {
    if (reference.find(name) == nullptr) ADD_FAILURE() << "unexpected entry " << name;
  }
  return result;
}

// The acceptance rule, with the numbers in the message.
inline void expect_matches_llama_imatrix(const ImportanceMatrix& ours, const ImportanceMatrix& reference) {
  const ImatrixComparison c = compare_imatrices(ours, reference);
  EXPECT_GT(c.columns, 0);
  EXPECT_GE(c.fraction_within_1_percent(), 0.99)
      << c.within_1_percent << " of " << c.columns << " columns within 1 %; worst " << c.worst_column;
  EXPECT_LE(c.worst_relative, 0.05) << "worst column " << c.worst_column;
  std::printf("  %lld columns, %.4f %% within 1 %%, worst %.3g %% (%s)\n", static_cast<long long>(c.columns),
              100.0 * c.fraction_within_1_percent(), 100.0 * c.worst_relative, c.worst_column.c_str());
}

}  // namespace quant::testing
