// Throughput of Sha256::update with each kernel, in bytes hashed per CPU second, on one thread.
//
//   update/<kernel>/<size>   hashes a <size>-byte buffer per update() call (the writer's calls are one output
//                            chunk of a few MiB, or a header, or up to 256 bytes of padding); 1 MiB stays in L2,
//                            the large size shows the rate on data coming from memory
// <kernel> is portable or sha_ni (skipped when the CPU lacks SHA-NI).
// Run: build/bench/sha256_bench (see docs/performance.md for recorded numbers).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "quant/sha256.h"

namespace {

using quant::Sha256;
using quant::Sha256Kernel;

// 64 MiB of random bytes, made once.
const std::vector<uint8_t>& random_bytes() {
  static const std::vector<uint8_t> bytes = [] {
    std::mt19937_64 random(42);
    std::vector<uint8_t> out(size_t(64) << 20);
    for (uint8_t& b : out) b = uint8_t(random());
    return out;
  }();
  return bytes;
}

void update_benchmark(benchmark::State& state, Sha256Kernel kernel) {
  if (!quant::sha256_kernel_supported(kernel)) {
    state.SkipWithError("this CPU lacks the kernel");
    return;
  }
  const size_t size = size_t(state.range(0));
  const std::vector<uint8_t>& bytes = random_bytes();
  Sha256 hasher(kernel);
  size_t offset = 0;
  for (auto _ : state) {
    // Walk through the 64 MiB buffer so the large sizes do not stay in cache.
    if (offset + size > bytes.size()) offset = 0;
    hasher.update(bytes.data() + offset, size);
    offset += size;
  }
  benchmark::DoNotOptimize(hasher.finish());
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(size));
}

void register_benchmarks() {
  for (Sha256Kernel kernel : {Sha256Kernel::portable, Sha256Kernel::sha_ni}) {
    const std::string name = "update/" + std::string(quant::sha256_kernel_name(kernel));
    benchmark::RegisterBenchmark(name.c_str(), update_benchmark, kernel)
        ->Arg(256)
        ->Arg(1 << 20)
        ->Arg(16 << 20)
        ->MeasureProcessCPUTime();
  }
}

const bool registered = (register_benchmarks(), true);

}  // namespace
