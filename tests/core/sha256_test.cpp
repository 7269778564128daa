#include <gtest/gtest.h>

#include <string>

#include "quant/sha256.h"

namespace quant {
namespace {

// Known answers from FIPS 180-4's examples.
TEST(Sha256, KnownAnswers) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, StreamingEqualsOneShot) {
  std::string data(1000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  Sha256 streamed;
  for (size_t i = 0; i < data.size(); i += 13) streamed.update(data.data() + i, std::min<size_t>(13, data.size() - i));
  EXPECT_EQ(streamed.finish_hex(), sha256_hex(data.data(), data.size()));
}

}  // namespace
}  // namespace quant
