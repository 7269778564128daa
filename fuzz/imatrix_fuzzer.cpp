// libFuzzer target: the importance-matrix readers on arbitrary bytes (GGUF imatrix first, then legacy .dat, as
// llama-quantize tries them), then the --include-weights filter and the recorded keys on what was read.
#include <cstdint>

#include "memory_file.h"
#include "quant/imatrix.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static quant::fuzz::MemoryFile memory("imatrix-fuzz");
  auto imatrix = quant::read_imatrix(memory.hold(data, size));
  if (!imatrix) {
    (void)imatrix.error().message();
    return 0;
  }
  for (const auto& [name, entry] : imatrix->entries) {
    if (entry.values.size() != size_t(entry.n_per_row * entry.n_expert)) __builtin_trap();
  }
  (void)quant::imatrix_record(*imatrix, "fuzz.imatrix");
  (void)quant::filter_imatrix(*imatrix, {"blk.0"}, {});
  return 0;
}
