// Budget sizes as typed: "2200000", "2.2M" (decimal units, as llama-gguf-split reads M and G), "2MiB" (binary).
// Parsed with integer arithmetic so "2.2M" is exactly 2,200,000 bytes, never 2,199,999 from a binary fraction.
#include <algorithm>
#include <cctype>
#include <string>

#include <fmt/format.h>

#include "quant/automix.h"

namespace quant {
namespace {

struct Unit {
  std::string_view name;  // lowercase
  uint64_t bytes;
};

constexpr uint64_t kKilo = 1000, kKibi = 1024;
constexpr Unit kUnits[] = {
    {"", 1},
    {"b", 1},
    {"k", kKilo},
    {"kb", kKilo},
    {"m", kKilo * kKilo},
    {"mb", kKilo * kKilo},
    {"g", kKilo * kKilo * kKilo},
    {"gb", kKilo * kKilo * kKilo},
    {"t", kKilo * kKilo * kKilo * kKilo},
    {"tb", kKilo * kKilo * kKilo * kKilo},
    {"kib", kKibi},
    {"mib", kKibi * kKibi},
    {"gib", kKibi * kKibi * kKibi},
    {"tib", kKibi * kKibi * kKibi * kKibi},
};

Error bad_size(std::string_view text, std::string_view why) {
  return usage_error(fmt::format("invalid size '{}': {} (bytes, or a number with K, M, G, T (x1000^n) or KiB, "
                                 "MiB, GiB, TiB (x1024^n), e.g. 2.2M or 800MiB)",
                                 text, why));
}

}  // namespace

Result<uint64_t> parse_byte_size(std::string_view text) {
  size_t pos = 0;
  // Whole part and fraction digits, kept as an integer numerator over 10^fraction_digits.
  unsigned __int128 numerator = 0;
  uint64_t denominator = 1;
  bool any_digit = false, in_fraction = false;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (c == '.' && !in_fraction) {
      in_fraction = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    any_digit = true;
    if (in_fraction) {
      if (denominator >= uint64_t(1e18)) continue;  // digits beyond 10^-18 cannot change a whole byte count
      denominator *= 10;
    }
    numerator = numerator * 10 + unsigned(c - '0');
    if (numerator > (unsigned __int128)1 << 80) return bad_size(text, "more than 2^64-1 bytes");
  }
  if (!any_digit) return bad_size(text, "no number");
  std::string unit(text.substr(pos));
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  const Unit* found = std::find_if(std::begin(kUnits), std::end(kUnits), [&](const Unit& u) { return u.name == unit; });
  if (found == std::end(kUnits)) return bad_size(text, fmt::format("unknown unit '{}'", text.substr(pos)));
  const unsigned __int128 bytes = numerator * found->bytes / denominator;  // rounds down
  if (bytes > UINT64_MAX) return bad_size(text, "more than 2^64-1 bytes");
  if (bytes == 0) return bad_size(text, "zero bytes");
  return uint64_t(bytes);
}

}  // namespace quant
