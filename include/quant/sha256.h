// SHA-256 (FIPS 180-4), streaming: the report pins every output file by its digest, and the tests compare
// our bytes with reference files through digests so the repository need not carry the references.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace quant {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::array<uint8_t, 32> finish();
  std::string finish_hex();  // lower-case hex, 64 characters

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// Digest of one buffer, as lower-case hex.
std::string sha256_hex(const void* data, size_t size);

}  // namespace quant
