// The multiple-choice knapsack: one option per item, least total cost within the capacity.
//
// Two solutions are computed and the better kept, then both are finished the same way:
//   - a dynamic programme over weights above each item's lightest option, rounded UP to units of
//     capacity / exact_units (exact when the capacity is at most exact_units bytes: units of one byte). Rounding up
//     keeps every solution it finds within the capacity;
//   - the convex-hull greedy of the Lagrangian relaxation: every item starts at its lightest option and the
//     upgrades along each item's lower convex hull are taken in order of cost saved per byte while they fit. Its
//     gap to the optimum is at most one upgrade, small when there are many items, where the programme's rounding
//     loses most.
// Finishing: while some single item can move to an option that fits in what is left and costs less, make the best
// such move.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "quant/automix.h"

namespace quant {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
// The programme's choice table holds one byte per item and unit; cap it (a model with thousands of tensors gets
// coarser units, and the greedy covers it).
constexpr uint64_t kMaxTableBytes = uint64_t(96) << 20;

struct Problem {
  std::span<const std::vector<KnapsackOption>> items;
  uint64_t capacity;
  std::vector<size_t> lightest;  // per item, the index of its lightest option (cheapest among equal weights)
};

uint64_t total_weight(const Problem& problem, const std::vector<size_t>& choice) {
  uint64_t weight = 0;
  for (size_t i = 0; i < choice.size(); ++i) weight += problem.items[i][choice[i]].weight;
  return weight;
}

double total_cost(const Problem& problem, const std::vector<size_t>& choice) {
  double cost = 0;
  for (size_t i = 0; i < choice.size(); ++i) cost += problem.items[i][choice[i]].cost;
  return cost;
}

// Options no other option beats (lighter or as light, and cheaper or as cheap), by increasing weight.
std::vector<size_t> undominated(const std::vector<KnapsackOption>& options) {
  std::vector<size_t> order(options.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (options[a].weight != options[b].weight) return options[a].weight < options[b].weight;
    return options[a].cost < options[b].cost;
  });
  std::vector<size_t> kept;
  double best = kInfinity;
  for (size_t index : order) {
    if (options[index].cost < best) {
      kept.push_back(index);
      best = options[index].cost;
    }
  }
  return kept;
}

std::vector<size_t> solve_by_programme(const Problem& problem, uint64_t exact_units) {
  const size_t n = problem.items.size();
  uint64_t base = 0;
  for (size_t i = 0; i < n; ++i) base += problem.items[i][problem.lightest[i]].weight;
  const uint64_t spare = problem.capacity - base;
  uint64_t units = std::min<uint64_t>(exact_units, spare);
  units = std::min<uint64_t>(units, std::max<uint64_t>(1, kMaxTableBytes / std::max<size_t>(n, 1)) - 1);
  // Unit size g: weights above the lightest are rounded up to multiples of g, the spare budget down.
  const uint64_t unit = units == 0 ? 1 : (spare + units - 1) / units;
  const uint64_t slots = spare / unit;  // 0..slots units may be spent

  std::vector<double> best(slots + 1, 0.0), next(slots + 1);
  std::vector<uint8_t> table(n * (slots + 1));  // option index (into the undominated list) per item and budget
  std::vector<std::vector<size_t>> kept(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& options = problem.items[i];
    kept[i] = undominated(options);
    if (kept[i].size() > 255) kept[i].resize(255);  // the table holds a byte; more options than that never occur
    const uint64_t lightest_weight = options[problem.lightest[i]].weight;
    std::fill(next.begin(), next.end(), kInfinity);
    for (size_t k = 0; k < kept[i].size(); ++k) {
      const KnapsackOption& option = options[kept[i][k]];
      const uint64_t extra = option.weight - lightest_weight;
      const uint64_t need = (extra + unit - 1) / unit;
      if (need > slots) continue;
      for (uint64_t u = need; u <= slots; ++u) {
        const double cost = best[u - need] + option.cost;
        if (cost < next[u]) {
          next[u] = cost;
          table[i * (slots + 1) + u] = uint8_t(k);
        }
      }
    }
    best.swap(next);
  }
  // Walk back from the full budget.
  std::vector<size_t> choice(n);
  uint64_t u = slots;
  for (size_t i = n; i-- > 0;) {
    const size_t k = table[i * (slots + 1) + u];
    choice[i] = kept[i][k];
    const uint64_t extra = problem.items[i][choice[i]].weight - problem.items[i][problem.lightest[i]].weight;
    u -= (extra + unit - 1) / unit;
  }
  return choice;
}

std::vector<size_t> solve_by_hull_greedy(const Problem& problem) {
  struct Upgrade {
    size_t item;
    size_t step;     // position along the item's hull
    double saving_per_byte;
  };
  const size_t n = problem.items.size();
  std::vector<std::vector<size_t>> hulls(n);
  std::vector<Upgrade> upgrades;
  for (size_t i = 0; i < n; ++i) {
    const auto& options = problem.items[i];
    // Lower convex hull of the undominated options (by weight): each next point saves less per byte.
    std::vector<size_t> hull;
    for (size_t index : undominated(options)) {
      while (hull.size() >= 2) {
        const KnapsackOption& a = options[hull[hull.size() - 2]];
        const KnapsackOption& b = options[hull.back()];
        const KnapsackOption& c = options[index];
        // b is above the segment a-c when the slope a->b is no steeper than a->c.
        const double slope_ab = (b.cost - a.cost) / double(b.weight - a.weight);
        const double slope_ac = (c.cost - a.cost) / double(c.weight - a.weight);
        if (slope_ab >= slope_ac) {
          hull.pop_back();
        } else {
          break;
        }
      }
      hull.push_back(index);
    }
    for (size_t step = 1; step < hull.size(); ++step) {
      const KnapsackOption& from = options[hull[step - 1]];
      const KnapsackOption& to = options[hull[step]];
      upgrades.push_back({i, step, (from.cost - to.cost) / double(to.weight - from.weight)});
    }
    hulls[i] = std::move(hull);
  }
  std::stable_sort(upgrades.begin(), upgrades.end(),
                   [](const Upgrade& a, const Upgrade& b) { return a.saving_per_byte > b.saving_per_byte; });
  std::vector<size_t> position(n, 0);
  std::vector<size_t> choice(n);
  for (size_t i = 0; i < n; ++i) choice[i] = hulls[i].front();
  uint64_t weight = total_weight(problem, choice);
  for (const Upgrade& upgrade : upgrades) {
    if (position[upgrade.item] + 1 != upgrade.step) continue;  // an earlier step of this item did not fit
    const auto& options = problem.items[upgrade.item];
    const uint64_t added = options[hulls[upgrade.item][upgrade.step]].weight - options[choice[upgrade.item]].weight;
    if (weight + added > problem.capacity) continue;
    weight += added;
    choice[upgrade.item] = hulls[upgrade.item][upgrade.step];
    position[upgrade.item] = upgrade.step;
  }
  return choice;
}

// Spends what is left: the best single-item move that fits and saves cost, repeated.
void improve(const Problem& problem, std::vector<size_t>& choice) {
  uint64_t weight = total_weight(problem, choice);
  for (;;) {
    size_t best_item = 0, best_option = 0;
    double best_saving = 0;
    for (size_t i = 0; i < choice.size(); ++i) {
      const KnapsackOption& current = problem.items[i][choice[i]];
      for (size_t k = 0; k < problem.items[i].size(); ++k) {
        const KnapsackOption& option = problem.items[i][k];
        if (weight - current.weight + option.weight > problem.capacity) continue;
        const double saving = current.cost - option.cost;
        if (saving > best_saving) {
          best_saving = saving;
          best_item = i;
          best_option = k;
        }
      }
    }
    if (best_saving <= 0) return;
    weight = weight - problem.items[best_item][choice[best_item]].weight + problem.items[best_item][best_option].weight;
    choice[best_item] = best_option;
  }
}

}  // namespace

Result<KnapsackSolution> solve_knapsack(std::span<const std::vector<KnapsackOption>> items, uint64_t capacity,
                                        uint64_t exact_units) {
  Problem problem{items, capacity, {}};
  uint64_t lightest_total = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].empty()) return usage_error(fmt::format("knapsack item {} has no options", i));
    size_t lightest = 0;
    for (size_t k = 1; k < items[i].size(); ++k) {
      const KnapsackOption& a = items[i][k];
      const KnapsackOption& b = items[i][lightest];
      if (a.weight < b.weight || (a.weight == b.weight && a.cost < b.cost)) lightest = k;
    }
    problem.lightest.push_back(lightest);
    if (lightest_total > UINT64_MAX - items[i][lightest].weight) return impossible("the lightest choices overflow");
    lightest_total += items[i][lightest].weight;
  }
  if (lightest_total > capacity) {
    return impossible(fmt::format("the lightest choices weigh {} bytes, more than the {} available", lightest_total,
                                  capacity));
  }
  std::vector<size_t> by_programme = solve_by_programme(problem, std::max<uint64_t>(exact_units, 1));
  std::vector<size_t> by_greedy = solve_by_hull_greedy(problem);
  improve(problem, by_programme);
  improve(problem, by_greedy);
  KnapsackSolution solution;
  solution.choice = total_cost(problem, by_greedy) < total_cost(problem, by_programme) ? by_greedy : by_programme;
  solution.weight = total_weight(problem, solution.choice);
  solution.cost = total_cost(problem, solution.choice);
  return solution;
}

}  // namespace quant
