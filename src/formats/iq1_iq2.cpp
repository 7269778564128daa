// The grid i-quant family (iq2_xxs, iq2_xs, iq2_s, iq1_s, iq1_m) as table entries: kernels from iq2.cpp and
// iq1.cpp, and validation as ggml_validate_row_data does it (the f16 super-block scale must be finite).
#include <string>

#include "formats/iq1.h"
#include "formats/iq2.h"
#include "formats/kernels.h"

namespace quant::formats {
namespace {

// Blocks whose f16 scale d sits at the start of the block.
template <int64_t kBlockBytes>
bool validate_leading_scale(const void* data, int64_t nblocks, int64_t* bad_block, std::string* why) {
  const uint8_t* block = static_cast<const uint8_t*>(data);
  for (int64_t b = 0; b < nblocks; ++b, block += kBlockBytes) {
    if (!f16_is_finite(block)) {
      *bad_block = b;
      *why = "scale d is not finite (inf or nan)";
      return false;
    }
  }
  return true;
}

// iq1_m keeps its f16 scale in the top 4 bits of its four scale words.
bool validate_iq1_m(const void* data, int64_t nblocks, int64_t* bad_block, std::string* why) {
  const uint8_t* block = static_cast<const uint8_t*>(data);
  for (int64_t b = 0; b < nblocks; ++b, block += kIq1MBlockBytes) {
    if ((iq1_m_packed_scale(block) & 0x7c00u) == 0x7c00u) {
      *bad_block = b;
      *why = "scale d (packed in the scale words) is not finite (inf or nan)";
      return false;
    }
  }
  return true;
}

constexpr FormatKernels kKernels[] = {
    {TypeId::iq2_xxs, quantize_rows_iq2_xxs, dequantize_iq2_xxs, validate_leading_scale<kIq2XxsBlockBytes>},
    {TypeId::iq2_xs, quantize_rows_iq2_xs, dequantize_iq2_xs, validate_leading_scale<kIq2XsBlockBytes>},
    {TypeId::iq2_s, quantize_rows_iq2_s, dequantize_iq2_s, validate_leading_scale<kIq2SBlockBytes>},
    {TypeId::iq1_s, quantize_rows_iq1_s, dequantize_iq1_s, validate_leading_scale<kIq1SBlockBytes>},
    {TypeId::iq1_m, quantize_rows_iq1_m, dequantize_iq1_m, validate_iq1_m},
};

}  // namespace

std::span<const FormatKernels> iq1_iq2_kernels() { return kKernels; }

}  // namespace quant::formats
