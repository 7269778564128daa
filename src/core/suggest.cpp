#include "quant/suggest.h"

#include <algorithm>
#include <cctype>
#include <limits>

namespace quant {
namespace {

// Lower case, without the separators people drop or mistype ('_', '-').
std::string folded(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '_' || c == '-') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Levenshtein distance, with a swap of two neighbours counting as one edit (optimal string alignment).
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::vector<std::string_view> closest_names(std::string_view typed, std::span<const std::string_view> known,
                                            size_t at_most) {
  const std::string want = folded(typed);
  std::vector<size_t> distances;
  size_t best = std::numeric_limits<size_t>::max();
  for (std::string_view name : known) {
    distances.push_back(edit_distance(want, folded(name)));
    best = std::min(best, distances.back());
  }
  // A typo is one or two edits; a third of the word at most, so "x" does not suggest "Q8_0".
  const size_t allowed = std::min<size_t>(2, std::max<size_t>(1, want.size() / 3));
  std::vector<std::string_view> out;
  if (best > allowed) return out;
  for (size_t i = 0; i < known.size() && out.size() < at_most; ++i) {
    if (distances[i] == best) out.push_back(known[i]);
  }
  return out;
}

std::string did_you_mean(std::string_view typed, std::span<const std::string_view> known) {
  const std::vector<std::string_view> names = closest_names(typed, known);
  if (names.empty()) return "";
  std::string out = "did you mean ";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out + "?";
}

}  // namespace quant
