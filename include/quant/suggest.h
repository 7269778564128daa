// "Did you mean ...?": the known names closest to what a user typed, for messages that say what to do next
// (an unknown type name, an unknown option). Case, '_' and '-' are ignored, so "q4km" finds Q4_K_M; otherwise the
// closest names by edit distance, when they are close enough to be a typo.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace quant {

// Up to `at_most` names of `known` nearest to `typed`, in the order of `known`; none when nothing is close.
std::vector<std::string_view> closest_names(std::string_view typed, std::span<const std::string_view> known,
                                            size_t at_most = 3);

// "did you mean Q4_K_M?" / "did you mean Q4_K_S, Q4_K_M or Q4_K?", or "" when nothing is close.
std::string did_you_mean(std::string_view typed, std::span<const std::string_view> known);

}  // namespace quant
