// The format table: type metadata from ggml's type traits (ids, block sizes, bytes per block, which quantizers
// read importance weights), joined with the kernels each family file lists.
#include <algorithm>
#include <array>
#include <cctype>
#include <vector>

#include <fmt/format.h>

#include "core/checked_math.h"
#include "formats/kernels.h"
#include "formats/simd_kernels.h"

namespace quant {
namespace {

struct TypeMetadata {
  TypeId id;
  std::string_view name;
  int64_t block_size;
  size_t block_bytes;
  bool quantized;
  bool reads_importance;
  bool requires_importance;
};

// Facts of the ggml format (ggml-types.tsv in the reference data): id, name, block, bytes, quantized,
// reads importance weights, requires them. ggml refuses to quantize iq2_xxs, iq2_xs and iq1_s without
// importance weights; iq1_m is marked too because llama-quantize refuses it (its ggml quantizer would fall
// back to x² weights). llama-quantize's wider policy (iq2_s, iq3_xxs) lives in the plan. q1_0 and q2_0
// accept importance weights but ignore them.
constexpr TypeMetadata kTypes[] = {
    {TypeId::f32, "f32", 1, 4, false, false, false},
    {TypeId::f16, "f16", 1, 2, false, false, false},
    {TypeId::q4_0, "q4_0", 32, 18, true, true, false},
    {TypeId::q4_1, "q4_1", 32, 20, true, true, false},
    {TypeId::q5_0, "q5_0", 32, 22, true, true, false},
    {TypeId::q5_1, "q5_1", 32, 24, true, true, false},
    {TypeId::q8_0, "q8_0", 32, 34, true, false, false},
    {TypeId::q8_1, "q8_1", 32, 36, true, false, false},
    {TypeId::q2_K, "q2_K", 256, 84, true, true, false},
    {TypeId::q3_K, "q3_K", 256, 110, true, true, false},
    {TypeId::q4_K, "q4_K", 256, 144, true, true, false},
    {TypeId::q5_K, "q5_K", 256, 176, true, true, false},
    {TypeId::q6_K, "q6_K", 256, 210, true, true, false},
    {TypeId::q8_K, "q8_K", 256, 292, true, false, false},
    {TypeId::iq2_xxs, "iq2_xxs", 256, 66, true, true, true},
    {TypeId::iq2_xs, "iq2_xs", 256, 74, true, true, true},
    {TypeId::iq3_xxs, "iq3_xxs", 256, 98, true, true, false},
    {TypeId::iq1_s, "iq1_s", 256, 50, true, true, true},
    {TypeId::iq4_nl, "iq4_nl", 32, 18, true, true, false},
    {TypeId::iq3_s, "iq3_s", 256, 110, true, true, false},
    {TypeId::iq2_s, "iq2_s", 256, 82, true, true, false},
    {TypeId::iq4_xs, "iq4_xs", 256, 136, true, true, false},
    {TypeId::i8, "i8", 1, 1, false, false, false},
    {TypeId::i16, "i16", 1, 2, false, false, false},
    {TypeId::i32, "i32", 1, 4, false, false, false},
    {TypeId::i64, "i64", 1, 8, false, false, false},
    {TypeId::f64, "f64", 1, 8, false, false, false},
    {TypeId::iq1_m, "iq1_m", 256, 56, true, true, true},
    {TypeId::bf16, "bf16", 1, 2, false, false, false},
    {TypeId::tq1_0, "tq1_0", 256, 54, true, false, false},
    {TypeId::tq2_0, "tq2_0", 256, 66, true, false, false},
    {TypeId::mxfp4, "mxfp4", 32, 17, true, false, false},
    {TypeId::nvfp4, "nvfp4", 64, 36, true, false, false},
    {TypeId::q1_0, "q1_0", 128, 18, true, false, false},
    {TypeId::q2_0, "q2_0", 64, 18, true, false, false},
};

struct Table {
  std::vector<FormatInfo> formats;
  std::array<int, kTypeIdCount> index_by_id;
};

Table build_table() {
  Table table;
  table.index_by_id.fill(-1);
  std::span<const formats::FormatKernels> families[] = {
      formats::float_kernels(),   formats::legacy_kernels(),     formats::kquant_kernels(),
      formats::nonlinear_kernels(), formats::ternary_kernels(), formats::microfloat_kernels(),
      formats::lowbit_kernels(),  formats::iq1_iq2_kernels(), formats::iq3_kernels(),
  };
  for (const TypeMetadata& meta : kTypes) {
    FormatInfo info{meta.id, meta.name, meta.block_size, meta.block_bytes, meta.quantized,
                    meta.reads_importance, meta.requires_importance, nullptr, nullptr, nullptr};
    for (auto family : families) {
      for (const auto& kernels : family) {
        if (kernels.id != meta.id) continue;
        info.quantize = kernels.quantize;
        info.dequantize = kernels.dequantize;
        info.validate = kernels.validate;
      }
    }
    // Types with SIMD kernels get a trampoline that runs the kernel of the active level (quant/kernel_level.h).
    info.quantize = formats::dispatched_quantize(meta.id, info.quantize);
    info.dequantize = formats::dispatched_dequantize(meta.id, info.dequantize);
    table.index_by_id[static_cast<uint32_t>(meta.id)] = static_cast<int>(table.formats.size());
    table.formats.push_back(info);
  }
  return table;
}

const Table& table() {
  static const Table instance = build_table();  // thread-safe one-time initialisation
  return instance;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::span<const FormatInfo> all_formats() { return table().formats; }

const FormatInfo* find_format_by_id(uint32_t id) {
  if (id >= kTypeIdCount) return nullptr;
  const int index = table().index_by_id[id];
  return index < 0 ? nullptr : &table().formats[static_cast<size_t>(index)];
}

const FormatInfo* find_format(TypeId id) { return find_format_by_id(static_cast<uint32_t>(id)); }

const FormatInfo* find_format(std::string_view name) {
  for (const FormatInfo& info : table().formats) {
    if (equal_ignoring_case(info.name, name)) return &info;
  }
  return nullptr;
}

const FormatInfo& format_of(TypeId id) { return *find_format(id); }

std::optional<uint64_t> row_bytes(const FormatInfo& format, int64_t n_per_row) {
  if (n_per_row < 0 || n_per_row % format.block_size != 0) return std::nullopt;
  return checked_mul(static_cast<uint64_t>(n_per_row / format.block_size), format.block_bytes);
}

Status quantize_rows(const FormatInfo& format, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                     const float* importance) {
  if (format.quantize == nullptr) {
    return impossible(fmt::format("cannot write type {}: no quantizer for it", format.name));
  }
  if (n_per_row <= 0 || n_per_row % format.block_size != 0) {
    return impossible(fmt::format("row length {} is not a multiple of {}'s block size {}", n_per_row,
                                  format.name, format.block_size));
  }
  if (format.requires_importance && importance == nullptr) {
    return impossible(fmt::format("type {} requires an importance matrix (--imatrix)", format.name));
  }
  format.quantize(src, dst, nrows, n_per_row, importance);
  if (format.validate == nullptr) return Status::success();
  const int64_t blocks_per_row = n_per_row / format.block_size;
  int64_t bad_block = 0;
  std::string why;
  if (!format.validate(dst, nrows * blocks_per_row, &bad_block, &why)) {
    return impossible(fmt::format("row {} (block {}): quantized {} data is invalid: {}", bad_block / blocks_per_row,
                                  bad_block % blocks_per_row, format.name, why));
  }
  return Status::success();
}

Status dequantize_values(const FormatInfo& format, const void* src, float* dst, int64_t n) {
  if (format.dequantize == nullptr) {
    return impossible(fmt::format("type {} has no float form", format.name));
  }
  if (n < 0 || n % format.block_size != 0) {
    return impossible(fmt::format("{} values are not a whole number of {} blocks", n, format.name));
  }
  format.dequantize(src, dst, n);
  return Status::success();
}

Status validate_blocks(const FormatInfo& format, const void* data, int64_t nblocks) {
  if (format.validate == nullptr) return Status::success();
  int64_t bad_block = 0;
  std::string why;
  if (!format.validate(data, nblocks, &bad_block, &why)) {
    return invalid_input(fmt::format("block {} of {} data is invalid: {}", bad_block, format.name, why));
  }
  return Status::success();
}

}  // namespace quant
