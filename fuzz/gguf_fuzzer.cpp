// libFuzzer target: the GGUF reader on arbitrary bytes. A file that opens is then walked the way callers walk
// it (every metadata value, every tensor's first and last bytes), and two invariants of the Value encoding are
// checked; a violated invariant traps so libFuzzer keeps the input.
#include <cstdint>
#include <vector>

#include "memory_file.h"
#include "quant/gguf.h"

namespace {

void check(bool invariant) {
  if (!invariant) __builtin_trap();
}

// Visits a value and its elements (and theirs), as `quantize info` and the converter do.
void walk(const quant::Value& value, int depth) {
  std::vector<uint8_t> encoded;
  value.encode_v3(encoded);
  check(encoded.size() == value.encoded_size_v3());
  check(value == value);
  if (!value.is_array()) {
    (void)value.as_string();
    int64_t as_signed = 0;
    uint64_t as_unsigned = 0;
    (void)value.to_int64(&as_signed);
    (void)value.to_uint64(&as_unsigned);
    return;
  }
  const uint64_t count = value.size();
  // The first and last few elements reach both ends of the storage without making the walk quadratic.
  for (uint64_t i = 0; i < count; i = (i == 3 && count > 8) ? count - 4 : i + 1) {
    switch (value.element_type()) {
      case quant::ValueType::string: (void)value.string_at(i); break;
      case quant::ValueType::array: walk(value.array_at(i), depth + 1); break;
      default: (void)value.element(i); break;
    }
  }
  (void)value.raw_elements();
}

void read_ends(const quant::GgufFile& file, const quant::TensorInfo& tensor) {
  std::vector<uint8_t> buffer(size_t(std::min<uint64_t>(tensor.size_bytes, 64)));
  (void)file.read_tensor(tensor, 0, buffer);
  (void)file.read_tensor(tensor, tensor.size_bytes - buffer.size(), buffer);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static quant::fuzz::MemoryFile memory("gguf-fuzz");
  auto file = quant::GgufFile::open(memory.hold(data, size));
  if (!file) {
    (void)file.error().message();
    return 0;
  }
  for (const quant::KeyValue& kv : file->metadata()) {
    check(file->find(kv.key) != nullptr);
    walk(kv.value, 0);
  }
  (void)file->get<std::string>("general.architecture");
  (void)file->get<uint32_t>("general.alignment");
  for (const quant::TensorInfo& tensor : file->tensors()) {
    check(file->find_tensor(tensor.name) != nullptr);
    (void)tensor.element_count();
    (void)tensor.rows();
    read_ends(*file, tensor);
  }
  (void)file->total_tensor_bytes();
  (void)file->total_elements();
  return 0;
}
