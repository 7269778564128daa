// solve_knapsack: optimal against brute force on small tables, never over the capacity on large ones, single-option
// items (pins) kept, and the refusals.
#include <algorithm>
#include <random>

#include <gtest/gtest.h>

#include "quant/automix.h"

namespace quant {
namespace {

using Items = std::vector<std::vector<KnapsackOption>>;

// The least total cost within the capacity by trying every combination (infinity when none fits).
double brute_force(const Items& items, uint64_t capacity) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<size_t> choice(items.size(), 0);
  for (;;) {
    uint64_t weight = 0;
    double cost = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      weight += items[i][choice[i]].weight;
      cost += items[i][choice[i]].cost;
    }
    if (weight <= capacity) best = std::min(best, cost);
    size_t i = 0;
    while (i < items.size() && ++choice[i] == items[i].size()) choice[i++] = 0;
    if (i == items.size()) return best;
  }
}

// Like a sensitivity table: heavier options usually cost less, with noise that makes some dominated.
Items random_items(std::mt19937& rng, size_t count, size_t options, uint64_t max_weight) {
  Items items(count);
  std::uniform_int_distribution<uint64_t> weight(1, max_weight);
  std::uniform_real_distribution<double> noise(0.5, 1.5);
  for (auto& item : items) {
    for (size_t k = 0; k < options; ++k) {
      const uint64_t w = weight(rng);
      item.push_back({w, noise(rng) * 100.0 / double(w)});
    }
  }
  return items;
}

void check_solution(const Items& items, uint64_t capacity, const KnapsackSolution& solution) {
  ASSERT_EQ(solution.choice.size(), items.size());
  uint64_t weight = 0;
  double cost = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    ASSERT_LT(solution.choice[i], items[i].size());
    weight += items[i][solution.choice[i]].weight;
    cost += items[i][solution.choice[i]].cost;
  }
  EXPECT_EQ(solution.weight, weight);
  EXPECT_DOUBLE_EQ(solution.cost, cost);
  EXPECT_LE(weight, capacity);
}

TEST(SolveKnapsack, OptimalOnSmallTablesAgainstBruteForce) {
  std::mt19937 rng(12345);
  for (int trial = 0; trial < 300; ++trial) {
    const Items items = random_items(rng, 1 + trial % 6, 1 + trial % 5, 60);
    uint64_t lightest = 0, heaviest = 0;
    for (const auto& item : items) {
      uint64_t lo = UINT64_MAX, hi = 0;
      for (const auto& option : item) lo = std::min(lo, option.weight), hi = std::max(hi, option.weight);
      lightest += lo;
      heaviest += hi;
    }
    const uint64_t capacity = lightest + (heaviest - lightest) * uint64_t(trial % 7) / 6;
    auto solution = solve_knapsack(items, capacity);
    ASSERT_TRUE(solution.ok()) << solution.error().message();
    check_solution(items, capacity, *solution);
    EXPECT_NEAR(solution->cost, brute_force(items, capacity), 1e-9) << "trial " << trial;
  }
}

TEST(SolveKnapsack, NearOptimalWhenRoundedToUnits) {
  // Capacity far above exact_units: weights are rounded up to units, so the result must still fit, and on these
  // tables it stays within a few percent of the exact optimum.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const Items items = random_items(rng, 5, 4, 1000000);
    uint64_t lightest = 0;
    for (const auto& item : items) {
      lightest += std::min_element(item.begin(), item.end(), [](auto& a, auto& b) { return a.weight < b.weight; })->weight;
    }
    const uint64_t capacity = lightest + 1500000 + uint64_t(trial) * 37;
    auto solution = solve_knapsack(items, capacity, /*exact_units=*/200);
    ASSERT_TRUE(solution.ok());
    check_solution(items, capacity, *solution);
    const double best = brute_force(items, capacity);
    EXPECT_LE(solution->cost, best * 1.05 + 1e-12) << "trial " << trial;
  }
}

TEST(SolveKnapsack, NeverOverTheCapacityOnLargeTables) {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 20; ++trial) {
    const Items items = random_items(rng, 300, 20, uint64_t(1) << 30);
    uint64_t lightest = 0;
    for (const auto& item : items) {
      lightest += std::min_element(item.begin(), item.end(), [](auto& a, auto& b) { return a.weight < b.weight; })->weight;
    }
    const uint64_t capacity = lightest + (uint64_t(trial + 1) << 32);
    auto solution = solve_knapsack(items, capacity);
    ASSERT_TRUE(solution.ok());
    check_solution(items, capacity, *solution);
  }
}

TEST(SolveKnapsack, SingleOptionItemsArePinned) {
  const Items items = {{{100, 0.0}}, {{10, 5.0}, {20, 1.0}, {40, 0.1}}, {{70, 2.0}}};
  auto solution = solve_knapsack(items, 100 + 70 + 20);
  ASSERT_TRUE(solution.ok());
  EXPECT_EQ(solution->choice, (std::vector<size_t>{0, 1, 0}));
  EXPECT_EQ(solution->weight, 190u);
}

TEST(SolveKnapsack, ExactCapacityIsUsable) {
  const Items items = {{{3, 9.0}, {5, 4.0}}, {{2, 8.0}, {7, 1.0}}};
  auto solution = solve_knapsack(items, 12);
  ASSERT_TRUE(solution.ok());
  EXPECT_EQ(solution->weight, 12u);
  EXPECT_DOUBLE_EQ(solution->cost, 5.0);
}

TEST(SolveKnapsack, RefusesWhatCannotFit) {
  const Items items = {{{30, 1.0}, {50, 0.5}}, {{20, 1.0}}};
  auto solution = solve_knapsack(items, 49);
  ASSERT_FALSE(solution.ok());
  EXPECT_EQ(solution.error().kind(), ErrorKind::impossible);
  EXPECT_NE(solution.error().message().find("50 bytes"), std::string::npos) << solution.error().message();

  const Items empty_item = {{{1, 1.0}}, {}};
  auto bad = solve_knapsack(empty_item, 100);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind(), ErrorKind::usage);
}

TEST(SolveKnapsack, NoItemsIsTheEmptyChoice) {
  auto solution = solve_knapsack(Items{}, 0);
  ASSERT_TRUE(solution.ok());
  EXPECT_TRUE(solution->choice.empty());
  EXPECT_EQ(solution->weight, 0u);
}

}  // namespace
}  // namespace quant
