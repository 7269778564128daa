// Kernel levels (quant/kernel_level.h) and the trampolines through which the format table calls the kernel of the
// active level (simd_kernels.h).
#include <cpuid.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <utility>

#include <fmt/format.h>

#include "formats/kernels.h"
#include "formats/simd_kernels.h"

namespace quant {
namespace {

constexpr int kLevelCount = 3;

// F16C is CPUID leaf 1, ECX bit 29. Asked directly because clang 14 (the fuzz build) does not know
// __builtin_cpu_supports("f16c").
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}

bool cpu_has(KernelLevel level) {
  switch (level) {
    case KernelLevel::scalar:
      return true;
    case KernelLevel::avx2:
      return __builtin_cpu_supports("avx2") && cpu_has_f16c();
    case KernelLevel::avx512:
      // The AVX-512 kernels use only AVX-512F instructions (plus the AVX2 and F16C ones it implies).
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && cpu_has_f16c();
  }
  return false;
}

// The highest supported level not above `wanted`.
KernelLevel clamp_to_supported(KernelLevel wanted) {
  int level = static_cast<int>(wanted);
  while (level > 0 && !cpu_has(static_cast<KernelLevel>(level))) --level;
  return static_cast<KernelLevel>(level);
}

KernelLevel initial_level() {
  const char* requested = std::getenv("QUANT_KERNELS");
  if (requested != nullptr && *requested != '\0') {
    if (auto level = parse_kernel_level(requested)) return clamp_to_supported(*level);
  }
  return best_supported_level();
}

// -1 until first use; then the active level.
std::atomic<int> g_active_level{-1};

int active_level_index() {
  int level = g_active_level.load(std::memory_order_relaxed);
  if (level < 0) {
    int expected = -1;
    g_active_level.compare_exchange_strong(expected, static_cast<int>(initial_level()));
    level = g_active_level.load(std::memory_order_relaxed);
  }
  return level;
}

}  // namespace

std::string_view kernel_level_name(KernelLevel level) {
  switch (level) {
    case KernelLevel::scalar: return "scalar";
    case KernelLevel::avx2: return "avx2";
    case KernelLevel::avx512: return "avx512";
  }
  return "unknown";
}

std::optional<KernelLevel> parse_kernel_level(std::string_view name) {
  for (int i = 0; i < kLevelCount; ++i) {
    const auto level = static_cast<KernelLevel>(i);
    const std::string_view known = kernel_level_name(level);
    if (known.size() == name.size() &&
        std::equal(known.begin(), known.end(), name.begin(), [](char a, char b) {
          return a == std::tolower(static_cast<unsigned char>(b));
        })) {
      return level;
    }
  }
  return std::nullopt;
}

bool kernel_level_supported(KernelLevel level) { return cpu_has(level); }

KernelLevel best_supported_level() { return clamp_to_supported(KernelLevel::avx512); }

std::vector<KernelLevel> supported_kernel_levels() {
  std::vector<KernelLevel> levels;
  for (int i = 0; i < kLevelCount; ++i) {
    if (cpu_has(static_cast<KernelLevel>(i))) levels.push_back(static_cast<KernelLevel>(i));
  }
  return levels;
}

KernelLevel active_kernel_level() { return static_cast<KernelLevel>(active_level_index()); }

Status set_kernel_level(KernelLevel level) {
  if (!cpu_has(level)) {
    return impossible(fmt::format("kernel level {} is not supported by this CPU", kernel_level_name(level)));
  }
  g_active_level.store(static_cast<int>(level), std::memory_order_relaxed);
  return Status::success();
}

namespace formats {
namespace {

// For each type id, the kernel of each level (scalar at index 0; a level without a fast kernel repeats the
// scalar one).
struct LevelKernels {
  std::array<QuantizeRowsFn, kLevelCount> quantize{};
  std::array<DequantizeFn, kLevelCount> dequantize{};
  bool fast_quantize = false;
  bool fast_dequantize = false;
};
using DispatchTable = std::array<LevelKernels, kTypeIdCount>;

void add_family(DispatchTable& table, std::span<const FormatKernels> family) {
  for (const FormatKernels& k : family) {
    LevelKernels& entry = table[static_cast<uint32_t>(k.id)];
    entry.quantize.fill(k.quantize);
    entry.dequantize.fill(k.dequantize);
  }
}

void add_fast(DispatchTable& table, std::span<const SimdKernels> kernels, KernelLevel level) {
  const size_t index = static_cast<size_t>(level);
  for (const SimdKernels& k : kernels) {
    LevelKernels& entry = table[static_cast<uint32_t>(k.id)];
    if (k.quantize != nullptr && entry.quantize[0] != nullptr) {
      // A fast kernel also serves the levels above it unless they have their own.
      for (size_t i = index; i < kLevelCount; ++i) entry.quantize[i] = k.quantize;
      entry.fast_quantize = true;
    }
    if (k.dequantize != nullptr && entry.dequantize[0] != nullptr) {
      for (size_t i = index; i < kLevelCount; ++i) entry.dequantize[i] = k.dequantize;
      entry.fast_dequantize = true;
    }
  }
}

DispatchTable build_dispatch_table() {
  DispatchTable table{};
  for (auto family : {float_kernels(), legacy_kernels(), kquant_kernels(), nonlinear_kernels(), ternary_kernels(),
                      microfloat_kernels(), lowbit_kernels(), iq1_iq2_kernels(), iq3_kernels()}) {
    add_family(table, family);
  }
  // Reading the lists is safe on any CPU: they are plain arrays of pointers.
  add_fast(table, avx2_kernels(), KernelLevel::avx2);
  add_fast(table, avx512_kernels(), KernelLevel::avx512);
  return table;
}

const DispatchTable& dispatch_table() {
  static const DispatchTable table = build_dispatch_table();
  return table;
}

template <uint32_t kId>
void quantize_trampoline(const float* src, void* dst, int64_t nrows, int64_t n_per_row, const float* importance) {
  dispatch_table()[kId].quantize[static_cast<size_t>(active_level_index())](src, dst, nrows, n_per_row, importance);
}

template <uint32_t kId>
void dequantize_trampoline(const void* src, float* dst, int64_t n) {
  dispatch_table()[kId].dequantize[static_cast<size_t>(active_level_index())](src, dst, n);
}

template <size_t... kIds>
constexpr std::array<QuantizeRowsFn, sizeof...(kIds)> quantize_trampolines(std::index_sequence<kIds...>) {
  return {quantize_trampoline<kIds>...};
}

template <size_t... kIds>
constexpr std::array<DequantizeFn, sizeof...(kIds)> dequantize_trampolines(std::index_sequence<kIds...>) {
  return {dequantize_trampoline<kIds>...};
}

constexpr auto kQuantizeTrampolines = quantize_trampolines(std::make_index_sequence<kTypeIdCount>());
constexpr auto kDequantizeTrampolines = dequantize_trampolines(std::make_index_sequence<kTypeIdCount>());

}  // namespace

QuantizeRowsFn dispatched_quantize(TypeId id, QuantizeRowsFn scalar) {
  const uint32_t index = static_cast<uint32_t>(id);
  if (scalar == nullptr || index >= kTypeIdCount || !dispatch_table()[index].fast_quantize) return scalar;
  return kQuantizeTrampolines[index];
}

DequantizeFn dispatched_dequantize(TypeId id, DequantizeFn scalar) {
  const uint32_t index = static_cast<uint32_t>(id);
  if (scalar == nullptr || index >= kTypeIdCount || !dispatch_table()[index].fast_dequantize) return scalar;
  return kDequantizeTrampolines[index];
}

QuantizeRowsFn scalar_quantize(TypeId id) { return dispatch_table()[static_cast<uint32_t>(id)].quantize[0]; }
DequantizeFn scalar_dequantize(TypeId id) { return dispatch_table()[static_cast<uint32_t>(id)].dequantize[0]; }

void error_sums_scalar(const float* reference, const float* reconstructed, int64_t n, ErrorSums* sums) {
  double sq_error[4] = {}, sq_reference[4] = {}, sq_reconstructed[4] = {}, dot[4] = {};
  double max_abs = sums->max_abs;
  for (int64_t i = 0; i < n; ++i) {
    const int lane = static_cast<int>(i & 3);
    const double x = reference[i];
    const double y = reconstructed[i];
    const double d = x - y;
    sq_error[lane] += d * d;
    sq_reference[lane] += x * x;
    sq_reconstructed[lane] += y * y;
    dot[lane] += x * y;
    const double magnitude = std::fabs(d);
    max_abs = max_abs < magnitude ? magnitude : max_abs;  // a NaN difference leaves the maximum unchanged
  }
  sums->sum_sq_error += (sq_error[0] + sq_error[1]) + (sq_error[2] + sq_error[3]);
  sums->sum_sq_reference += (sq_reference[0] + sq_reference[1]) + (sq_reference[2] + sq_reference[3]);
  sums->sum_sq_reconstructed += (sq_reconstructed[0] + sq_reconstructed[1]) + (sq_reconstructed[2] + sq_reconstructed[3]);
  sums->dot += (dot[0] + dot[1]) + (dot[2] + dot[3]);
  sums->max_abs = max_abs;
}

void accumulate_error_sums(const float* reference, const float* reconstructed, int64_t n, ErrorSums* sums) {
  switch (active_kernel_level()) {
    case KernelLevel::avx512: error_sums_avx512(reference, reconstructed, n, sums); return;
    case KernelLevel::avx2: error_sums_avx2(reference, reconstructed, n, sums); return;
    case KernelLevel::scalar: break;
  }
  error_sums_scalar(reference, reconstructed, n, sums);
}

}  // namespace formats
}  // namespace quant
