// SHA-256 (FIPS 180-4), streaming: the report pins every output file by its digest, and the tests compare
// our bytes with reference files through digests so the repository need not carry the references.
//
// Two compression kernels give the same digests: a portable one, and one on the x86 SHA extensions (SHA-NI,
// about six times faster), used when the CPU has them. A Sha256 picks its kernel when constructed; the GGUF
// writer asks sha256_kernel_for(active_kernel_level()), so QUANT_KERNELS=scalar hashes with the portable code.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "quant/kernel_level.h"

namespace quant {

enum class Sha256Kernel { portable = 0, sha_ni = 1 };

// "portable", "sha_ni".
std::string_view sha256_kernel_name(Sha256Kernel kernel);
// True when this CPU can run that kernel; portable always can.
bool sha256_kernel_supported(Sha256Kernel kernel);
// The fastest kernel this CPU supports.
Sha256Kernel fastest_sha256_kernel();
// The kernel to hash with at a format kernel level: portable at scalar (the level that promises no CPU-specific
// instructions), otherwise the fastest one.
Sha256Kernel sha256_kernel_for(KernelLevel level);

// Compresses `count` whole 64-byte blocks into `state` (a, b, c, d, e, f, g, h), in order.
using Sha256BlocksFn = void (*)(uint32_t* state, const uint8_t* blocks, size_t count);

class Sha256 {
 public:
  Sha256();  // with fastest_sha256_kernel()
  // With `kernel`, or the portable one when this CPU lacks it.
  explicit Sha256(Sha256Kernel kernel);

  // Appends bytes to the message; whole 64-byte blocks go to the kernel in one call.
  void update(const void* data, size_t size);
  // The digest of everything appended. Call once: the hasher is spent afterwards.
  std::array<uint8_t, 32> finish();
  std::string finish_hex();  // lower-case hex, 64 characters

  Sha256Kernel kernel() const { return kernel_; }
  uint64_t total_bytes() const { return total_bytes_; }  // appended so far

 private:
  Sha256Kernel kernel_;
  Sha256BlocksFn compress_blocks_;
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// Digest of one buffer, as lower-case hex.
std::string sha256_hex(const void* data, size_t size);

}  // namespace quant
