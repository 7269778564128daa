// libFuzzer target: the Hugging Face checkpoint reader (config.json, model.safetensors.index.json, safetensors)
// on arbitrary bytes. Input: u16 config length | u16 index length (0: no index) | config.json | index |
// the rest as model-00001-of-00001.safetensors (named in the index, or found as model*.safetensors). The folder
// also holds a real tokenizer.model, so a checkpoint that parses is opened to the end, and every tensor of it is
// read through the source (first and last bytes, as every type a plan may ask for).
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>

#include "fuzz_folder.h"
#include "quant/hf.h"

namespace {

const std::string& folder() {
  static const std::string dir = [] {
    const std::string made = quant::fuzz::make_fuzz_folder("hf-fuzz");
    std::ifstream in(QUANT_FUZZ_TOKENIZER, std::ios::binary);
    std::ofstream out(made + "/tokenizer.model", std::ios::binary);
    out << in.rdbuf();
    return made;
  }();
  return dir;
}

void put(const std::string& name, const uint8_t* data, size_t size) { quant::fuzz::put_file(folder(), name, data, size); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const size_t config_length = size_t(data[0]) | (size_t(data[1]) << 8);
  const size_t index_length = size_t(data[2]) | (size_t(data[3]) << 8);
  if (4 + config_length + index_length > size) return 0;
  const uint8_t* config = data + 4;
  const uint8_t* index = config + config_length;
  const uint8_t* weights = index + index_length;
  put("config.json", config, config_length);
  put("model.safetensors.index.json", index_length > 0 ? index : nullptr, index_length);
  put("model-00001-of-00001.safetensors", weights, size_t(data + size - weights));

  auto source = quant::open_hf_checkpoint(folder());
  if (!source) {
    (void)source.error().message();
    return 0;
  }
  for (const quant::TensorInfo& tensor : (*source)->tensors()) {
    uint8_t bytes[8];
    const size_t n = std::min<uint64_t>(sizeof bytes, tensor.size_bytes);
    quant::Status first = (*source)->read_tensor(tensor, 0, std::span<uint8_t>(bytes, n));
    quant::Status last = (*source)->read_tensor(tensor, tensor.size_bytes - n, std::span<uint8_t>(bytes, n));
    (void)first;
    (void)last;
  }
  for (uint32_t file_type : {0u, 1u, 7u, 32u, 36u, 37u}) {
    auto plan = (*source)->source_plan(file_type);
    if (!plan || !*plan) continue;
    for (const quant::SourcePlanTensor& t : (**plan).tensors) {
      uint8_t bytes[8];
      const size_t n = std::min<uint64_t>(sizeof bytes, t.source.size_bytes);
      quant::Status read = (*source)->read_tensor(t.source, t.source.size_bytes - n, std::span<uint8_t>(bytes, n));
      (void)read;
    }
  }
  return 0;
}
