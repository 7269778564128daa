// The TYPE names llama-quantize accepts, their llama_ftype ids and default tensor types, and the loader's guess
// of a file's type from its tensors.
#include <algorithm>
#include <cctype>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "plan/tensor_roles.h"
#include "quant/plan.h"
#include "quant/suggest.h"

namespace quant {
namespace {

// Facts of llama-quantize (tools/quantize/quantize.cpp QUANT_OPTIONS and llama_ftype_get_default_type): the
// order matters, because a numeric TYPE resolves to the first entry with that id and --help lists them so.
// The descriptions are ours.
constexpr FileTypeInfo kFileTypes[] = {
    {"Q1_0", FileType::q1_0, TypeId::q1_0, false, "1.125 bpw: 1-bit weights, blocks of 128 with one scale"},
    {"Q2_0", FileType::q2_0, TypeId::q2_0, false, "2.25 bpw: 2-bit weights, blocks of 64 with one scale"},
    {"Q4_0", FileType::q4_0, TypeId::q4_0, false, "4.5 bpw: legacy 4-bit, blocks of 32 with a scale"},
    {"Q4_1", FileType::q4_1, TypeId::q4_1, false, "5.0 bpw: legacy 4-bit, blocks of 32 with a scale and minimum"},
    {"MXFP4_MOE", FileType::mxfp4_moe, TypeId::mxfp4, false,
     "MXFP4 for expert tensors, Q8_0 for everything else"},
    {"Q5_0", FileType::q5_0, TypeId::q5_0, false, "5.5 bpw: legacy 5-bit, blocks of 32 with a scale"},
    {"Q5_1", FileType::q5_1, TypeId::q5_1, false, "6.0 bpw: legacy 5-bit, blocks of 32 with a scale and minimum"},
    {"IQ2_XXS", FileType::iq2_xxs, TypeId::iq2_xxs, false, "2.06 bpw i-quant (needs an imatrix)"},
    {"IQ2_XS", FileType::iq2_xs, TypeId::iq2_xs, false, "2.31 bpw i-quant (needs an imatrix)"},
    {"IQ2_S", FileType::iq2_s, TypeId::iq2_xs, false, "about 2.5 bpw i-quant mix (needs an imatrix)"},
    {"IQ2_M", FileType::iq2_m, TypeId::iq2_s, false, "about 2.7 bpw i-quant mix (needs an imatrix)"},
    {"IQ1_S", FileType::iq1_s, TypeId::iq1_s, false, "1.56 bpw i-quant (needs an imatrix)"},
    {"IQ1_M", FileType::iq1_m, TypeId::iq1_m, false, "1.75 bpw i-quant (needs an imatrix)"},
    {"TQ1_0", FileType::tq1_0, TypeId::tq1_0, false, "1.69 bpw ternary weights"},
    {"TQ2_0", FileType::tq2_0, TypeId::tq2_0, false, "2.06 bpw ternary weights"},
    {"Q2_K", FileType::q2_K, TypeId::q2_K, false, "k-quant mix around 2.6 bpw, attention and ffn_down raised"},
    {"Q2_K_S", FileType::q2_K_S, TypeId::q2_K, false, "smaller Q2_K mix (needs an imatrix)"},
    {"IQ3_XXS", FileType::iq3_xxs, TypeId::iq3_xxs, false, "3.06 bpw i-quant mix (needs an imatrix)"},
    {"IQ3_S", FileType::iq3_s, TypeId::iq3_s, false, "3.44 bpw i-quant"},
    {"IQ3_M", FileType::iq3_m, TypeId::iq3_s, false, "about 3.7 bpw i-quant mix"},
    {"Q3_K", FileType::q3_K_M, TypeId::q3_K, false, "alias for Q3_K_M"},
    {"IQ3_XS", FileType::iq3_xs, TypeId::iq3_s, false, "about 3.3 bpw i-quant mix"},
    {"Q3_K_S", FileType::q3_K_S, TypeId::q3_K, false, "k-quant, q3_K throughout"},
    {"Q3_K_M", FileType::q3_K_M, TypeId::q3_K, false, "k-quant mix: q3_K, attention and ffn_down raised"},
    {"Q3_K_L", FileType::q3_K_L, TypeId::q3_K, false, "k-quant mix: q3_K, attention and ffn_down raised more"},
    {"IQ4_NL", FileType::iq4_nl, TypeId::iq4_nl, false, "4.5 bpw non-linear, blocks of 32"},
    {"IQ4_XS", FileType::iq4_xs, TypeId::iq4_xs, false, "4.25 bpw non-linear, super-blocks of 256"},
    {"Q4_K", FileType::q4_K_M, TypeId::q4_K, false, "alias for Q4_K_M"},
    {"Q4_K_S", FileType::q4_K_S, TypeId::q4_K, false, "k-quant mix: q4_K, the first layers raised"},
    {"Q4_K_M", FileType::q4_K_M, TypeId::q4_K, false, "k-quant mix: q4_K, half of attn_v and ffn_down in q6_K"},
    {"Q5_K", FileType::q5_K_M, TypeId::q5_K, false, "alias for Q5_K_M"},
    {"Q5_K_S", FileType::q5_K_S, TypeId::q5_K, false, "k-quant, q5_K throughout"},
    {"Q5_K_M", FileType::q5_K_M, TypeId::q5_K, false, "k-quant mix: q5_K, half of attn_v and ffn_down in q6_K"},
    {"Q6_K", FileType::q6_K, TypeId::q6_K, false, "6.56 bpw k-quant"},
    {"Q8_0", FileType::q8_0, TypeId::q8_0, false, "8.5 bpw: 8-bit, blocks of 32 with a scale"},
    {"F16", FileType::f16, TypeId::f16, false, "16-bit IEEE half floats"},
    {"BF16", FileType::bf16, TypeId::bf16, false, "16-bit bfloat16"},
    {"F32", FileType::all_f32, TypeId::f32, false, "32-bit floats"},
    // After F32, so that the numeric type 0 means F32.
    {"COPY", FileType::all_f32, TypeId::f32, true, "copy every tensor unchanged, quantize nothing"},
};

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// A whole decimal integer with an optional sign, or nullopt.
std::optional<int64_t> parse_decimal(std::string_view text) {
  size_t pos = 0;
  bool negative = false;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) negative = text[pos++] == '-';
  if (pos == text.size() || text.size() - pos > 9) return std::nullopt;
  int64_t value = 0;
  for (; pos < text.size(); ++pos) {
    if (!std::isdigit(static_cast<unsigned char>(text[pos]))) return std::nullopt;
    value = value * 10 + (text[pos] - '0');
  }
  return negative ? -value : value;
}

// The llama_ftype llama.cpp's loader associates with a file whose most common tensor type is `type`.
FileType file_type_for_tensor_type(TypeId type) {
  switch (type) {
    case TypeId::f16: return FileType::f16;
    case TypeId::bf16: return FileType::bf16;
    case TypeId::q4_0: return FileType::q4_0;
    case TypeId::q4_1: return FileType::q4_1;
    case TypeId::q5_0: return FileType::q5_0;
    case TypeId::q5_1: return FileType::q5_1;
    case TypeId::q8_0: return FileType::q8_0;
    case TypeId::q2_K: return FileType::q2_K;
    case TypeId::q3_K: return FileType::q3_K_M;
    case TypeId::q4_K: return FileType::q4_K_M;
    case TypeId::q5_K: return FileType::q5_K_M;
    case TypeId::q6_K: return FileType::q6_K;
    case TypeId::tq1_0: return FileType::tq1_0;
    case TypeId::tq2_0: return FileType::tq2_0;
    case TypeId::iq2_xxs: return FileType::iq2_xxs;
    case TypeId::iq2_xs: return FileType::iq2_xs;
    case TypeId::iq2_s: return FileType::iq2_s;
    case TypeId::iq3_xxs: return FileType::iq3_xxs;
    case TypeId::iq1_s: return FileType::iq1_s;
    case TypeId::iq1_m: return FileType::iq1_m;
    case TypeId::iq4_nl: return FileType::iq4_nl;
    case TypeId::iq4_xs: return FileType::iq4_xs;
    case TypeId::iq3_s: return FileType::iq3_s;
    case TypeId::q1_0: return FileType::q1_0;
    case TypeId::q2_0: return FileType::q2_0;
    default: return FileType::all_f32;  // f32, and types with no file type of their own
  }
}

}  // namespace

std::span<const FileTypeInfo> all_file_types() { return kFileTypes; }

Result<const FileTypeInfo*> parse_file_type(std::string_view text) {
  for (const FileTypeInfo& info : kFileTypes) {
    if (equals_ignoring_case(info.name, text)) return &info;
  }
  // Unlike std::stoi we want the whole argument to be the number: "15x" is not Q4_K_M.
  if (const std::optional<int64_t> number = parse_decimal(text)) {
    for (const FileTypeInfo& info : kFileTypes) {
      if (static_cast<int64_t>(info.id) == *number) return &info;
    }
  }
  std::vector<std::string_view> names;
  for (const FileTypeInfo& info : kFileTypes) names.push_back(info.name);
  const std::string suggestion = did_you_mean(text, names);
  if (!suggestion.empty()) {
    return usage_error(fmt::format("unknown quantization type '{}': {} (quantize --help lists every type)", text,
                                   suggestion));
  }
  return usage_error(fmt::format("unknown quantization type '{}'; the types are {} (quantize --help describes each)",
                                 text, fmt::join(names, ", ")));
}

const FileTypeInfo* find_file_type(FileType id) {
  for (const FileTypeInfo& info : kFileTypes) {
    const bool alias = info.description.starts_with("alias");
    if (info.id == id && !info.copy_only && !alias) return &info;
  }
  return nullptr;
}

uint32_t guess_file_type(std::span<const PlanTensor> tensors) {
  const std::vector<size_t> order = plan_detail::output_order(tensors);
  std::map<TypeId, uint32_t> counts;
  uint32_t most = 0;
  TypeId most_common = TypeId::f32;
  for (size_t index : order) {
    const uint32_t count = ++counts[tensors[index].type];
    // Strictly more: on a tie the type that got there first stays, as in the loader.
    if (count > most) {
      most = count;
      most_common = tensors[index].type;
    }
  }
  return static_cast<uint32_t>(file_type_for_tensor_type(most_common)) | kFileTypeGuessedFlag;
}

}  // namespace quant
