// Tokenizer micro-benchmarks: building the tokenizer from a vocabulary, and tokenizing code-calib.txt (60 KB of
// code and docs) with each vocabulary model. The whole-command comparison with llama-tokenize is
// bench/run_tokenize.sh; results in docs/performance.md.
#include <benchmark/benchmark.h>

#include <fstream>
#include <iterator>
#include <string>

#include "quant/gguf.h"
#include "quant/tokenizer.h"

namespace {

const std::string kData = QUANT_BENCH_DATA_DIR;

std::string vocab_path(const std::string& name) {
  if (name == "llama-spm" || name == "bert-bge") return kData + "/gguf/vocab/ggml-vocab-" + name + ".gguf";
  return kData + "/tokenizer/ggml-vocab-" + name + ".gguf";
}

quant::Vocabulary vocabulary(const std::string& name) {
  auto file = quant::GgufFile::open(vocab_path(name));
  auto vocab = quant::load_vocabulary(*file);
  return std::move(vocab).value();
}

void BM_Create(benchmark::State& state, const std::string& name) {
  const quant::Vocabulary vocab = vocabulary(name);
  for (auto _ : state) benchmark::DoNotOptimize(quant::Tokenizer::create(vocab));
}

void BM_Tokenize(benchmark::State& state, const std::string& name) {
  const quant::Tokenizer tokenizer = quant::Tokenizer::create(vocabulary(name)).value();
  std::ifstream in(kData + "/tokenizer/texts/code-calib.txt", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = tokenizer.tokenize(text, true, false);
    tokens = ids->size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(int64_t(state.iterations() * text.size()));
  state.counters["tokens"] = double(tokens);
}

BENCHMARK_CAPTURE(BM_Create, gpt2, std::string("gpt-2"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Create, llama_spm, std::string("llama-spm"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Create, bert_bge, std::string("bert-bge"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Tokenize, gpt2, std::string("gpt-2"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Tokenize, gpt_neox_default_pre, std::string("gpt-neox"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Tokenize, llama_spm, std::string("llama-spm"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Tokenize, phi3, std::string("phi-3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Tokenize, bert_bge, std::string("bert-bge"))->Unit(benchmark::kMillisecond);

}  // namespace
