// The SHA-256 compression kernel on the x86 SHA extensions (SHA-NI), compiled for those instructions with a
// target attribute only, so the rest of the program stays baseline x86-64 and this code runs only after CPUID
// said it may (sha256_kernel_supported).
//
// Facts used (Intel SDM, SHA256RNDS2 / SHA256MSG1 / SHA256MSG2):
//  - SHA256RNDS2 does two rounds on a state split across two registers, one holding (A, B, E, F) and the other
//    (C, D, G, H), highest lane first; it takes W[t] + K[t] for its two rounds from the two low lanes of a third
//    register and returns the new (A, B, E, F). The old (A, B, E, F) is then the new (C, D, G, H).
//  - SHA256MSG1(W[t-16..t-13], W[t-12..t-9]) gives W[t-16+i] + sigma0(W[t-15+i]) for the four lanes i.
//  - SHA256MSG2(x, W[t-4..t-1]) adds sigma1 of the two words before each lane, giving W[t..t+3] when x holds the
//    rest of the schedule sum, i.e. MSG1's result plus W[t-7..t-4].
#include "core/sha256_kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <cpuid.h>
#include <immintrin.h>

namespace quant::sha256_internal {
namespace {

// CPUID leaf 7 (sub-leaf 0) EBX bit 29 is SHA; leaf 1 ECX bit 9 is SSSE3 and bit 19 SSE4.1. Asked directly:
// g++ 12 and clang 14 (the fuzz build) do not both accept __builtin_cpu_supports("sha").
constexpr unsigned kLeaf7EbxSha = 1u << 29;
constexpr unsigned kLeaf1EcxSsse3 = 1u << 9;
constexpr unsigned kLeaf1EcxSse41 = 1u << 19;

#define QUANT_SHA_NI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

// The four words of w (lowest lane first) as they sit in the message: big-endian words, so each lane's bytes
// are reversed.
QUANT_SHA_NI_TARGET inline __m128i load_message_words(const uint8_t* bytes) {
  const __m128i reverse_each_word = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
  return _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)), reverse_each_word);
}

// The next four schedule words W[t..t+3] from the previous sixteen, four to a register (oldest first).
QUANT_SHA_NI_TARGET inline __m128i next_message_words(__m128i w16, __m128i w12, __m128i w8, __m128i w4) {
  const __m128i w7 = _mm_alignr_epi8(w4, w8, 4);  // W[t-7..t-4]
  return _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w16, w12), w7), w4);
}

// Four rounds with the schedule words w (W[t..t+3]) and round constants from `constants`.
QUANT_SHA_NI_TARGET inline void four_rounds(__m128i& abef, __m128i& cdgh, __m128i w, const uint32_t* constants) {
  __m128i wk = _mm_add_epi32(w, _mm_loadu_si128(reinterpret_cast<const __m128i*>(constants)));
  cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);  // rounds t, t+1: cdgh now holds (A, B, E, F)
  wk = _mm_shuffle_epi32(wk, 0x0e);              // lanes 2, 3 down to 0, 1
  abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);  // rounds t+2, t+3: back in place
}

}  // namespace

bool cpu_has_sha_ni() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  if ((ecx & kLeaf1EcxSsse3) == 0 || (ecx & kLeaf1EcxSse41) == 0) return false;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  return (ebx & kLeaf7EbxSha) != 0;
}

QUANT_SHA_NI_TARGET void compress_blocks_sha_ni(uint32_t* state, const uint8_t* blocks, size_t count) {
  // state is a..h in memory; the instructions want (A, B, E, F) and (C, D, G, H) with A and C in the highest
  // lane. Local names list lanes lowest first.
  const __m128i abcd = _mm_loadu_si128(reinterpret_cast<const __m128i*>(state));
  const __m128i efgh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(state + 4));
  const __m128i badc = _mm_shuffle_epi32(abcd, 0xb1);
  const __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1b);
  __m128i abef = _mm_alignr_epi8(badc, hgfe, 8);     // lanes f e b a
  __m128i cdgh = _mm_blend_epi16(hgfe, badc, 0xf0);  // lanes h g d c

  for (size_t block = 0; block < count; ++block, blocks += 64) {
    const __m128i abef_before = abef;
    const __m128i cdgh_before = cdgh;
    __m128i w0 = load_message_words(blocks);
    __m128i w1 = load_message_words(blocks + 16);
    __m128i w2 = load_message_words(blocks + 32);
    __m128i w3 = load_message_words(blocks + 48);
    // Sixteen groups of four rounds; w0..w3 slide along the schedule, w0 always the group's own words.
#pragma GCC unroll 16
    for (int group = 0; group < 16; ++group) {
      four_rounds(abef, cdgh, w0, kRoundConstants + 4 * group);
      const __m128i next = group < 12 ? next_message_words(w0, w1, w2, w3) : w0;
      w0 = w1;
      w1 = w2;
      w2 = w3;
      w3 = next;
    }
    abef = _mm_add_epi32(abef, abef_before);
    cdgh = _mm_add_epi32(cdgh, cdgh_before);
  }

  const __m128i abef_out = _mm_shuffle_epi32(abef, 0x1b);  // lanes a b e f
  const __m128i ghcd_out = _mm_shuffle_epi32(cdgh, 0xb1);  // lanes g h c d
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state), _mm_blend_epi16(abef_out, ghcd_out, 0xf0));  // a b c d
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state + 4), _mm_alignr_epi8(ghcd_out, abef_out, 8));  // e f g h
}

}  // namespace quant::sha256_internal

#else  // not x86: no SHA-NI; Sha256 never selects this kernel.

namespace quant::sha256_internal {

bool cpu_has_sha_ni() { return false; }

void compress_blocks_sha_ni(uint32_t* state, const uint8_t* blocks, size_t count) {
  compress_blocks_portable(state, blocks, count);
}

}  // namespace quant::sha256_internal

#endif
