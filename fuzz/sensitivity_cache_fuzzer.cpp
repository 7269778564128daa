// libFuzzer target: the sensitivity cache reader (--sensitivity-cache) on arbitrary bytes. The expected
// fingerprint is the seeds' own, so inputs get past the fingerprint check to the tensor tables.
#include <cmath>
#include <cstdint>

#include "memory_file.h"
#include "quant/automix.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static quant::fuzz::MemoryFile memory("sensitivity-cache-fuzz");
  static const quant::SensitivityFingerprint expected{"aa11", "bb22", "none", "weighted-error/1 values=131072"};
  auto table = quant::read_sensitivity_cache(memory.hold(data, size), expected);
  if (!table) {
    (void)table.error().message();
    return 0;
  }
  for (const quant::TensorSensitivity& tensor : table->tensors) {
    for (const quant::TypeCost& entry : tensor.costs) {
      if (!std::isfinite(entry.cost) || entry.cost < 0 || quant::find_format(entry.type) == nullptr) __builtin_trap();
    }
    (void)table->find(tensor.name);
  }
  return 0;
}
