// libFuzzer target: the dataset readers (safetensors, .npy, .npz stored or deflated) on arbitrary bytes. The
// reader picks the kind from the first bytes, so one target covers all three. A file that opens is read to the
// end, batch by batch, as `quantize imatrix` and `quantize calibrate` read it.
#include <cstdint>

#include "memory_file.h"
#include "quant/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static quant::fuzz::MemoryFile memory("dataset-fuzz");
  quant::DatasetOptions options;
  // A deflated .npz member may legitimately expand ~1000x; keep one batch well inside the fuzzer's malloc
  // limit (the default cap, 1 GiB, is tested by the dataset unit tests).
  options.limits.max_batch_bytes = uint64_t(64) << 20;
  auto reader = quant::open_dataset({memory.hold(data, size)}, options);
  if (!reader) {
    (void)reader.error().message();
    return 0;
  }
  quant::Batch batch;
  for (;;) {
    auto more = reader->next(batch);
    if (!more) {
      (void)more.error().message();
      break;
    }
    if (!*more) break;
    if (batch.values.size() != size_t(batch.tokens * batch.features)) __builtin_trap();
  }
  return 0;
}
