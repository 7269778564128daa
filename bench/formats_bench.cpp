// Throughput of every format's row quantizer and dequantizer, in bytes of float32 values per second.
//
// Each benchmark works on the same realistic block of rows (gaussian values, 4096 per row, as in a 4096-wide
// weight matrix) through the public entry points the conversion uses (quantize_rows, dequantize_values), so
// the numbers include the output validation quantize_rows does. Variants:
//   quantize/<type>            1 thread, no importance weights (skipped when the type requires them); the rate
//                              is per CPU second, so other processes on the machine disturb it little
//   quantize/<type>/imatrix    1 thread, with importance weights (only types that read them)
//   dequantize/<type>          1 thread
//   quantize_mt/<type>[/imatrix], dequantize_mt/<type>: the same over more rows split across the conversion's
//                              work pool with one thread per core (wall-clock rate)
// The kernels run at the active level (best the CPU supports; QUANT_KERNELS=scalar|avx2|avx512 picks one), shown
// as `kernel_level` in the context printed before the results.
// Run: build/bench/formats_bench [--benchmark_filter=q4_K] (see docs/performance.md for recorded numbers).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "convert/work_pool.h"
#include "quant/formats.h"
#include "quant/kernel_level.h"

namespace {

using quant::FormatInfo;

constexpr int64_t kRowLength = 4096;
constexpr int64_t kRowsSingle = 16;       // 256 KiB of float32: stays in L2, measures the kernel
constexpr int64_t kRowsPerTask = 16;      // the multi-threaded runs hand out 16 rows at a time
constexpr int64_t kRowsMultiPerThread = 64;

// Rows of weight-like values: gaussian with a row-dependent scale, fixed seed so every run sees the same data.
std::vector<float> make_rows(int64_t rows) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(size_t(rows * kRowLength));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 0.01f * float(1 + r % 7);
    for (int64_t c = 0; c < kRowLength; ++c) values[size_t(r * kRowLength + c)] = scale * normal(rng);
  }
  return values;
}

// Importance weights shaped like an imatrix: positive mean squares spread over two orders of magnitude.
std::vector<float> make_importance() {
  std::mt19937 rng(99);
  std::lognormal_distribution<float> spread(0.0f, 1.0f);
  std::vector<float> weights(static_cast<size_t>(kRowLength));
  for (float& w : weights) w = spread(rng);
  return weights;
}

const std::vector<float>& shared_rows(int64_t rows) {
  static std::vector<float> single = make_rows(kRowsSingle);
  static std::vector<float> multi = make_rows(kRowsMultiPerThread * int64_t(std::max(1u, std::thread::hardware_concurrency())));
  return rows == kRowsSingle ? single : multi;
}

const std::vector<float>& shared_importance() {
  static std::vector<float> weights = make_importance();
  return weights;
}

int core_count() { return int(std::max(1u, std::thread::hardware_concurrency())); }

quant::convert_internal::WorkPool& shared_pool() {
  static quant::convert_internal::WorkPool pool(core_count());
  return pool;
}

// Quantizes `rows` rows with the pool (threads > 1) or on this thread.
void quantize_block(benchmark::State& state, const FormatInfo& format, const float* src, uint8_t* dst, int64_t rows,
                    const float* importance, bool threaded) {
  const uint64_t out_row = *quant::row_bytes(format, kRowLength);
  if (!threaded) {
    quant::Status status = quant::quantize_rows(format, src, dst, rows, kRowLength, importance);
    if (!status) state.SkipWithError(status.error().message().c_str());
    return;
  }
  const int tasks = int(rows / kRowsPerTask);
  shared_pool().run(tasks, [&](int task) {
    const int64_t first = int64_t(task) * kRowsPerTask;
    // A failure here is reported by the single-threaded variant of the same format.
    (void)quant::quantize_rows(format, src + first * kRowLength, dst + uint64_t(first) * out_row, kRowsPerTask,
                               kRowLength, importance);
  });
}

void dequantize_block(const FormatInfo& format, const uint8_t* src, float* dst, int64_t rows, bool threaded) {
  const uint64_t in_row = *quant::row_bytes(format, kRowLength);
  if (!threaded) {
    (void)quant::dequantize_values(format, src, dst, rows * kRowLength);
    return;
  }
  const int tasks = int(rows / kRowsPerTask);
  shared_pool().run(tasks, [&](int task) {
    const int64_t first = int64_t(task) * kRowsPerTask;
    (void)quant::dequantize_values(format, src + uint64_t(first) * in_row, dst + first * kRowLength,
                                   kRowsPerTask * kRowLength);
  });
}

void bench_quantize(benchmark::State& state, const FormatInfo* format, bool with_importance, bool threaded) {
  const int64_t rows = threaded ? kRowsMultiPerThread * core_count() : kRowsSingle;
  const std::vector<float>& src = shared_rows(rows);
  const float* importance = with_importance ? shared_importance().data() : nullptr;
  std::vector<uint8_t> dst(size_t(uint64_t(rows) * *quant::row_bytes(*format, kRowLength)));
  for (auto _ : state) {
    quantize_block(state, *format, src.data(), dst.data(), rows, importance, threaded);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * rows * kRowLength * int64_t(sizeof(float)));
}

void bench_dequantize(benchmark::State& state, const FormatInfo* format, bool threaded) {
  const int64_t rows = threaded ? kRowsMultiPerThread * core_count() : kRowsSingle;
  const std::vector<float>& src = shared_rows(rows);
  const float* importance = format->requires_importance ? shared_importance().data() : nullptr;
  std::vector<uint8_t> packed(size_t(uint64_t(rows) * *quant::row_bytes(*format, kRowLength)));
  quant::Status status = quant::quantize_rows(*format, src.data(), packed.data(), rows, kRowLength, importance);
  if (!status) {
    state.SkipWithError(status.error().message().c_str());
    return;
  }
  std::vector<float> dst(size_t(rows * kRowLength));
  for (auto _ : state) {
    dequantize_block(*format, packed.data(), dst.data(), rows, threaded);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * rows * kRowLength * int64_t(sizeof(float)));
}

// One registration per format and variant, in the table's order.
int register_all() {
  benchmark::AddCustomContext("kernel_level", std::string(quant::kernel_level_name(quant::active_kernel_level())));
  for (const FormatInfo& format : quant::all_formats()) {
    if (format.quantize == nullptr || !quant::row_bytes(format, kRowLength)) continue;
    const std::string name(format.name);
    for (bool threaded : {false, true}) {
      const std::string prefix = threaded ? "_mt/" : "/";
      // Several threads: the rate is per second of wall time, the only measure of how well they share the work.
      const auto timing = [threaded](benchmark::internal::Benchmark* b) {
        if (threaded) b->UseRealTime();
      };
      if (!format.requires_importance) {
        timing(benchmark::RegisterBenchmark(("quantize" + prefix + name).c_str(), bench_quantize, &format, false,
                                            threaded));
      }
      if (format.reads_importance) {
        timing(benchmark::RegisterBenchmark(("quantize" + prefix + name + "/imatrix").c_str(), bench_quantize, &format,
                                            true, threaded));
      }
      if (format.dequantize != nullptr) {
        timing(benchmark::RegisterBenchmark(("dequantize" + prefix + name).c_str(), bench_dequantize, &format,
                                            threaded));
      }
    }
  }
  return 0;
}

const int registered = register_all();

}  // namespace
