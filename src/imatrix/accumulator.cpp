// The accumulation of squared activations as llama-imatrix's collector does it (IMatrixCollector::collect_imatrix
// and load_imatrix in tools/imatrix/imatrix.cpp at 34af94c): float32 sums, one product and one sum per value,
// rows in the order given; dense batches under 16 tokens skipped; per-expert sums and counts for MUL_MAT_ID.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "quant/imatrix.h"

namespace quant {
namespace {

// acc[j] += x[j] * x[j] for `rows` rows of `features` values, row after row (llama-imatrix's loop).
void add_squares(float* acc, const float* values, int64_t rows, int64_t features) {
  for (int64_t t = 0; t < rows; ++t) {
    const float* x = values + t * features;
    for (int64_t j = 0; j < features; ++j) acc[j] += x[j] * x[j];
  }
}

// The first non-finite column of a slice, or -1.
int64_t first_non_finite(const float* values, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    if (!std::isfinite(values[j])) return j;
  }
  return -1;
}

}  // namespace

int64_t ImatrixAccumulator::Sums::max_count() const {
  return counts.empty() ? 0 : *std::max_element(counts.begin(), counts.end());
}

Result<bool> ImatrixAccumulator::add_batch(const std::string& weight, int64_t tokens, int64_t features,
                                           const float* values) {
  const RowRun run{values, tokens};
  return add_batch(weight, features, std::span<const RowRun>(&run, 1));
}

Result<bool> ImatrixAccumulator::add_batch(const std::string& weight, int64_t features, std::span<const RowRun> runs) {
  int64_t tokens = 0;
  for (const RowRun& run : runs) tokens += run.count;
  if (tokens < kMinTokens) return false;
  if (features < 1) return invalid_input("activations have no features").in_tensor(weight);
  Sums& s = sums_[weight];
  // llama-imatrix keeps one count per dense weight: an entry merged from a file with equal per-expert counts
  // collapses to one.
  if (s.counts.size() > 1 && std::all_of(s.counts.begin(), s.counts.end(), [&](int64_t c) { return c == s.counts[0]; })) {
    s.counts.erase(s.counts.begin() + 1, s.counts.end());
  }
  if (s.in_sum2.empty()) {
    s.in_sum2.assign(size_t(features), 0.0f);
    s.counts.assign(1, 0);
  } else if (int64_t(s.in_sum2.size()) != features || s.counts.size() != 1) {
    return invalid_input(fmt::format("batch has {} features but the sums held for this weight are {} x {} experts",
                                     features, s.n_per_row(), s.n_expert()))
        .in_tensor(weight);
  }
  for (const RowRun& run : runs) add_squares(s.in_sum2.data(), run.values, run.count, features);
  if (const int64_t j = first_non_finite(s.in_sum2.data(), features); j >= 0) {
    return invalid_input(fmt::format("sum of squared activations of column {} is not finite after batch {}", j,
                                     s.batches))
        .in_tensor(weight);
  }
  s.counts[0] += tokens;
  s.batches += 1;
  return true;
}

Status ImatrixAccumulator::add_expert_batch(const std::string& weight, int64_t n_expert, int64_t features,
                                            int64_t tokens, int64_t slots, const float* values, int64_t experts_used,
                                            const int32_t* expert_ids) {
  if (n_expert < 1 || features < 1 || tokens < 0 || slots < 1 || experts_used < 1) {
    return invalid_input(fmt::format("expert batch of shape {} experts, {} features, {} tokens, {} slots, {} used",
                                     n_expert, features, tokens, slots, experts_used))
        .in_tensor(weight);
  }
  Sums& s = sums_[weight];
  if (s.counts.size() == 1 && n_expert > 1) s.counts.resize(size_t(n_expert), s.counts[0]);  // merged dense count
  if (s.in_sum2.empty()) {
    s.in_sum2.assign(size_t(features * n_expert), 0.0f);
    s.counts.assign(size_t(n_expert), 0);
  } else if (int64_t(s.in_sum2.size()) != features * n_expert || s.n_expert() != n_expert) {
    return invalid_input(fmt::format("batch has {} features x {} experts but the sums held for this weight are {} x {}",
                                     features, n_expert, s.n_per_row(), s.n_expert()))
        .in_tensor(weight);
  }
  std::vector<uint8_t> touched(size_t(n_expert), 0);
  // llama-imatrix walks the routing ids slot by slot, then token by token.
  for (int64_t slot = 0; slot < experts_used; ++slot) {
    for (int64_t token = 0; token < tokens; ++token) {
      const int32_t expert = expert_ids[token * experts_used + slot];
      if (expert < 0 || expert >= n_expert) {
        return invalid_input(fmt::format("token {} is routed to expert {}, outside 0..{}", token, expert, n_expert - 1))
            .in_tensor(weight);
      }
      const float* x = values + (token * slots + slot % slots) * features;
      add_squares(s.in_sum2.data() + expert * features, x, 1, features);
      s.counts[size_t(expert)] += 1;
      touched[size_t(expert)] = 1;
    }
  }
  for (int64_t e = 0; e < n_expert; ++e) {
    if (!touched[size_t(e)]) continue;
    if (const int64_t j = first_non_finite(s.in_sum2.data() + e * features, features); j >= 0) {
      return invalid_input(fmt::format("sum of squared activations of expert {}, column {} is not finite", e, j))
          .in_tensor(weight);
    }
  }
  s.batches += 1;
  return Status::success();
}

Status ImatrixAccumulator::merge(const ImportanceMatrix& imatrix, int64_t chunk_size, const std::string& source) {
  if (chunk_size < 1) return usage_error("merging an imatrix needs a chunk size of at least 1");
  for (const auto& item : imatrix.entries) {
    // Plain references, not structured bindings: clang before 16 cannot capture those in a lambda.
    const std::string& name = item.first;
    const auto& entry = item.second;
    auto mismatch = [&](const Sums& s) {
      return invalid_input(fmt::format("{} values in {} counts, but the sums already held are {} x {} experts",
                                       entry.stored_sums.size(), entry.stored_counts.size(), s.n_per_row(),
                                       s.n_expert()))
          .in_file(source)
          .in_tensor(name);
    };
    Sums& s = sums_[name];
    if (imatrix.format == ImatrixFormat::dat) {
      // A .dat entry stores mean squares times ncall: times the chunk size they become sums again, and ncall
      // chunks of chunk_size tokens the count (llama-imatrix's load_imatrix).
      if (s.in_sum2.empty()) {
        s.in_sum2.assign(entry.stored_sums.size(), 0.0f);
        s.counts.assign(1, 0);
      } else if (s.in_sum2.size() != entry.stored_sums.size()) {
        return mismatch(s);
      }
      const float scale = float(chunk_size);
      for (size_t j = 0; j < entry.stored_sums.size(); ++j) s.in_sum2[j] += entry.stored_sums[j] * scale;
      const int64_t ncall = std::llround(entry.stored_counts.at(0));
      for (int64_t& count : s.counts) count += ncall * chunk_size;
      continue;
    }
    const size_t n_counts = entry.stored_counts.size();
    if (s.in_sum2.empty()) {
      s.in_sum2.assign(entry.stored_sums.size(), 0.0f);
    } else if (s.in_sum2.size() != entry.stored_sums.size()) {
      return mismatch(s);
    }
    if (s.counts.empty()) {
      s.counts.assign(n_counts, 0);
    } else if (s.counts.size() == 1 && n_counts > 1) {
      s.counts.resize(n_counts, s.counts[0]);
    } else if (s.counts.size() != n_counts) {
      return mismatch(s);
    }
    for (size_t j = 0; j < entry.stored_sums.size(); ++j) s.in_sum2[j] += entry.stored_sums[j];
    // llama-imatrix rounds the stored float counts to integers (lround).
    for (size_t j = 0; j < n_counts; ++j) s.counts[j] += std::llround(entry.stored_counts[j]);
  }
  return Status::success();
}

int64_t ImatrixAccumulator::max_count() const {
  int64_t most = 0;
  for (const auto& [name, s] : sums_) most = std::max(most, s.max_count());
  return most;
}

int64_t ImatrixAccumulator::chunk_count() const {
  int64_t most = 0;
  for (const auto& [name, s] : sums_) most = std::max(most, s.batches);
  return most;
}

int64_t ImatrixAccumulator::chunk_size() const {
  const int64_t chunks = chunk_count();
  if (chunks == 0) return 0;
  return (max_count() + chunks - 1) / chunks;
}

}  // namespace quant
