// libFuzzer target: a checkpoint's tokenizer.json and tokenizer_config.json read on the GPT-2 BPE path
// (src/hf/hf_tokenizer.cpp, tokenizer_pipeline.cpp, bpe_vocabulary.cpp, special_vocab.cpp): the tokenizer
// classes' additions, the normalizer, pre-tokenizer regexes (PCRE2 with match limits), the BPE merges, the
// converter's hash of its fixed text and the GGUF keys. Input: u32 tokenizer.json length | tokenizer.json |
// tokenizer_config.json (the rest; none when empty). The folder's config.json is fixed (model_type qwen2).
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>

#include "fuzz_folder.h"
#include "hf/hparams.h"
#include "hf/metadata_list.h"
#include "hf/vocabulary.h"

namespace {

const std::string& folder() {
  static const std::string dir = [] {
    const std::string made = quant::fuzz::make_fuzz_folder("hf-tokenizer-fuzz");
    std::ofstream(made + "/config.json") << R"({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]})";
    return made;
  }();
  return dir;
}

void put(const std::string& name, const uint8_t* data, size_t size) {
  quant::fuzz::put_file(folder(), name, data, size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t length;
  std::memcpy(&length, data, 4);
  if (length > size - 4) return 0;
  put("tokenizer.json", data + 4, length);
  const size_t rest = size - 4 - length;
  put("tokenizer_config.json", rest > 0 ? data + 4 + length : nullptr, rest);

  quant::hf::HParams hparams;
  hparams.path = folder() + "/config.json";
  hparams.config = quant::hf::Json::object();
  quant::hf::MetadataList metadata;
  quant::Status status = quant::hf::add_gpt2_vocabulary(folder(), hparams, metadata);
  if (!status) (void)status.error().message();
  return 0;
}
