// libFuzzer target: llama-perplexity's base-logits file reader (quant/eval.h KlBaseReader) on arbitrary bytes, then
// every chunk read and each stored row scored as the KL statistics read it.
#include <cstdint>
#include <vector>

#include "memory_file.h"
#include "quant/eval.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static quant::fuzz::MemoryFile memory("kl-base-fuzz");
  auto reader = quant::KlBaseReader::open(memory.hold(data, size));
  if (!reader) {
    (void)reader.error().message();
    return 0;
  }
  const quant::KlBaseHeader& header = reader->header();
  if (header.tokens.size() != size_t(header.n_chunk) * header.n_ctx) __builtin_trap();
  std::vector<uint16_t> rows;
  for (int64_t chunk = 0; chunk < header.n_chunk; ++chunk) {
    if (!reader->read_chunk(chunk, rows)) __builtin_trap();  // the reader checked the whole file's length
    if (int64_t(rows.size()) != header.rows_per_chunk() * quant::kl_row_values(header.n_vocab)) __builtin_trap();
  }
  // Re-compress a row of logits read from the stored values: any bytes must give finite-or-not numbers, no crash.
  if (!rows.empty()) {
    std::vector<float> logits(size_t(header.n_vocab));
    for (int32_t i = 0; i < header.n_vocab; ++i) logits[size_t(i)] = float(rows[size_t(4 + i)]) / 256.0f;
    std::vector<uint16_t> row(size_t(quant::kl_row_values(header.n_vocab)));
    (void)quant::compress_log_probs(logits.data(), header.n_vocab, header.tokens[0], row.data());
  }
  return 0;
}
