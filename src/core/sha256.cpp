// quant::Sha256: message buffering and padding, kernel choice, and the portable compression kernel. The SHA-NI
// kernel is in sha256_x86.cpp.
#include "quant/sha256.h"

#include <algorithm>
#include <cstring>

#include "core/sha256_kernels.h"

namespace quant {
namespace sha256_internal {
namespace {

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline uint32_t load_big_endian(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void compress_one_block(uint32_t* state, const uint8_t* block) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) w[i] = load_big_endian(block + 4 * i);
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kRoundConstants[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  state[0] += a; state[1] += b; state[2] += c; state[3] += d;
  state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

}  // namespace

void compress_blocks_portable(uint32_t* state, const uint8_t* blocks, size_t count) {
  for (size_t i = 0; i < count; ++i) compress_one_block(state, blocks + 64 * i);
}

}  // namespace sha256_internal

namespace {

// FIPS 180-4 section 5.3.3: the first 32 bits of the fractional parts of the square roots of the first 8 primes.
constexpr std::array<uint32_t, 8> kInitialState = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

Sha256BlocksFn blocks_function(Sha256Kernel kernel) {
  return kernel == Sha256Kernel::sha_ni ? &sha256_internal::compress_blocks_sha_ni
                                        : &sha256_internal::compress_blocks_portable;
}

}  // namespace

std::string_view sha256_kernel_name(Sha256Kernel kernel) {
  return kernel == Sha256Kernel::sha_ni ? "sha_ni" : "portable";
}

bool sha256_kernel_supported(Sha256Kernel kernel) {
  if (kernel == Sha256Kernel::portable) return true;
  // CPUID does not change while the process runs: ask once.
  static const bool has_sha_ni = sha256_internal::cpu_has_sha_ni();
  return has_sha_ni;
}

Sha256Kernel fastest_sha256_kernel() {
  return sha256_kernel_supported(Sha256Kernel::sha_ni) ? Sha256Kernel::sha_ni : Sha256Kernel::portable;
}

Sha256Kernel sha256_kernel_for(KernelLevel level) {
  return level == KernelLevel::scalar ? Sha256Kernel::portable : fastest_sha256_kernel();
}

Sha256::Sha256() : Sha256(fastest_sha256_kernel()) {}

Sha256::Sha256(Sha256Kernel kernel)
    : kernel_(sha256_kernel_supported(kernel) ? kernel : Sha256Kernel::portable),
      compress_blocks_(blocks_function(kernel_)),
      state_(kInitialState) {}

void Sha256::update(const void* data, size_t size) {
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  total_bytes_ += size;
  if (buffered_ > 0) {
    const size_t take = std::min(size, buffer_.size() - buffered_);
    std::memcpy(buffer_.data() + buffered_, bytes, take);
    buffered_ += take;
    bytes += take;
    size -= take;
    if (buffered_ < buffer_.size()) return;
    compress_blocks_(state_.data(), buffer_.data(), 1);
    buffered_ = 0;
  }
  const size_t whole_blocks = size / 64;
  if (whole_blocks > 0) compress_blocks_(state_.data(), bytes, whole_blocks);
  bytes += whole_blocks * 64;
  size -= whole_blocks * 64;
  if (size > 0) std::memcpy(buffer_.data(), bytes, size);
  buffered_ = size;
}

std::array<uint8_t, 32> Sha256::finish() {
  // FIPS 180-4 section 5.1.1: a 1 bit, zeros up to 56 bytes into the last block, then the message length in
  // bits as a 64-bit big-endian number. When fewer than 9 bytes are free, that takes one more block.
  const uint64_t bit_length = total_bytes_ * 8;
  std::array<uint8_t, 128> tail{};
  std::memcpy(tail.data(), buffer_.data(), buffered_);
  tail[buffered_] = 0x80;
  const size_t tail_bytes = buffered_ + 9 <= 64 ? 64 : 128;
  for (int i = 0; i < 8; ++i) tail[tail_bytes - 8 + i] = uint8_t(bit_length >> (56 - 8 * i));
  compress_blocks_(state_.data(), tail.data(), tail_bytes / 64);
  buffered_ = 0;

  std::array<uint8_t, 32> digest;
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 4; ++j) digest[4 * i + j] = uint8_t(state_[i] >> (24 - 8 * j));
  }
  return digest;
}

std::string Sha256::finish_hex() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t byte : finish()) {
    out += kHex[byte >> 4];
    out += kHex[byte & 15];
  }
  return out;
}

std::string sha256_hex(const void* data, size_t size) {
  Sha256 hasher;
  hasher.update(data, size);
  return hasher.finish_hex();
}

}  // namespace quant
