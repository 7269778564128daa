// libFuzzer target: every format's dequantizer and validator on arbitrary block bytes, then its quantizer on
// the values that came out. Byte 0 picks the format (modulo the number of formats), the rest are whole blocks
// (a trailing partial block is ignored). Block data from a file is untrusted: no bit pattern may make a kernel
// read or write out of bounds or hit undefined behaviour, and re-quantizing whatever floats come out (NaN, Inf,
// subnormals) must not either.
#include <cmath>
#include <cstdint>
#include <vector>

#include "quant/formats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto formats = quant::all_formats();
  const quant::FormatInfo& format = formats[data[0] % formats.size()];
  const uint8_t* blocks = data + 1;
  const int64_t block_count = int64_t((size - 1) / format.block_bytes);
  if (block_count == 0) return 0;

  (void)quant::validate_blocks(format, blocks, block_count);
  if (format.dequantize == nullptr) return 0;
  // A copy of exactly the whole blocks, so AddressSanitizer sees any read past them.
  const std::vector<uint8_t> exact(blocks, blocks + size_t(block_count) * format.block_bytes);
  const int64_t n = block_count * format.block_size;
  std::vector<float> values(static_cast<size_t>(n));
  if (!quant::dequantize_values(format, exact.data(), values.data(), n)) return 0;

  // Re-quantize as one row (importance from the same values, so importance-requiring types run too).
  if (format.quantize == nullptr || n > 1024) return 0;
  std::vector<float> importance(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) importance[size_t(i)] = std::fabs(values[size_t(i)]);
  std::vector<uint8_t> out(size_t(block_count) * format.block_bytes);
  (void)quant::quantize_rows(format, values.data(), out.data(), 1, n, importance.data());
  return 0;
}
