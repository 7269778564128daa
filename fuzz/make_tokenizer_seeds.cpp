// Writes small seeds for the tokenizer fuzzer from real vocabulary files: the first few hundred tokens (and the
// merges, scores and types that go with them) of each vocabulary, for each tokenizer model and for a spread of
// BPE pre-tokenizers, each behind a short text (the fuzzer's input layout: u16 text length | text | GGUF).
// Real vocabularies are megabytes; libFuzzer explores far better from kilobyte seeds that still load.
//   make_tokenizer_seeds OUT_DIR VOCAB.gguf...
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unordered_set>
#include <vector>

#include "quant/gguf.h"
#include "quant/tokenizer.h"

namespace {

constexpr size_t kKeptTokens = 400;

// The vocabulary cut to its first kKeptTokens tokens; merges kept when both halves and the result survive.
quant::Vocabulary cut(const quant::Vocabulary& full) {
  quant::Vocabulary v = full;
  const size_t n = std::min(full.tokens.size(), kKeptTokens);
  v.tokens.resize(n);
  if (!v.scores.empty()) v.scores.resize(n);
  if (!v.token_types.empty()) v.token_types.resize(n);
  const std::unordered_set<std::string> kept(v.tokens.begin(), v.tokens.end());
  v.merges.clear();
  for (const std::string& merge : full.merges) {
    const size_t space = merge.find(' ', 1);
    if (space == std::string::npos) continue;
    const std::string left = merge.substr(0, space), right = merge.substr(space + 1);
    if (kept.count(left) && kept.count(right) && kept.count(left + right)) v.merges.push_back(merge);
  }
  for (std::optional<uint32_t>* id : {&v.special.bos, &v.special.eos, &v.special.eot, &v.special.eom, &v.special.unk,
                                      &v.special.sep, &v.special.pad, &v.special.mask, &v.special.fim_pre,
                                      &v.special.fim_suf, &v.special.fim_mid, &v.special.fim_pad, &v.special.fim_rep,
                                      &v.special.fim_sep}) {
    if (*id && **id >= n) id->reset();
  }
  return v;
}

bool write_seed(const quant::Vocabulary& vocab, const std::string& text, const std::string& path) {
  const std::string gguf = path + ".gguf-part";
  auto writer = quant::GgufWriter::create(gguf);
  if (!writer) return false;
  for (const quant::KeyValue& kv : quant::vocabulary_metadata(vocab)) {
    if (!writer->add_metadata(kv.key, kv.value)) return false;
  }
  if (!writer->begin() || !writer->commit()) return false;
  std::ifstream in(gguf, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(gguf);
  std::ofstream out(path, std::ios::binary);
  const uint16_t length = uint16_t(text.size());
  out.put(char(length & 0xFF)).put(char(length >> 8));
  out << text << bytes;
  return bool(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: make_tokenizer_seeds OUT_DIR VOCAB.gguf...\n");
    return 2;
  }
  const std::string out_dir = argv[1];
  const std::vector<std::string> texts = {
      "Hello world! It's 2024: 12345 apples, 3.14 pies.\n\n  indented\ttab",
      "\xC3\x9C" "ber \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x9A\x80 caf\xC3\xA9 \xD0\x9F\xD1\x80\xD0\xB8",
      "<s>[CLS]<|endoftext|></s> <unk> tokens", "bad \xFF\xC3 utf8 \xED\xA0\x80 \xE2\x82",
  };
  const std::vector<std::string> bpe_pres = {"gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder",
                                             "falcon", "tekken", "gpt-4o", "chameleon", "superbpe", "kimi-k2",
                                             "bloom", "default", "afmoe", "exaone-moe", "seed-coder"};
  int written = 0;
  for (int i = 2; i < argc; ++i) {
    auto file = quant::GgufFile::open(argv[i]);
    if (!file) continue;
    auto vocab = quant::load_vocabulary(*file);
    if (!vocab) continue;
    const quant::Vocabulary small = cut(*vocab);
    std::vector<quant::Vocabulary> variants = {small};
    if (small.model == "gpt2") {
      for (const std::string& pre : bpe_pres) {
        variants.push_back(small);
        variants.back().pre = pre;
      }
    } else if (small.model == "llama") {
      for (const std::string model : {"t5", "rwkv"}) {
        variants.push_back(small);
        variants.back().model = model;
      }
    }
    const std::string stem = std::filesystem::path(argv[i]).stem().string();
    for (size_t v = 0; v < variants.size(); ++v) {
      const std::string path = out_dir + "/" + stem + "-" + std::to_string(v);
      if (write_seed(variants[v], texts[v % texts.size()], path)) ++written;
    }
  }
  std::printf("make_tokenizer_seeds: %d seeds\n", written);
  return written > 0 ? 0 : 1;
}
