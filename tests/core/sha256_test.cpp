// Sha256: the FIPS 180-4 / NIST example digests with every kernel this CPU has, and the portable and SHA-NI
// kernels agreeing on random messages fed through random update() splits.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "quant/sha256.h"

namespace quant {
namespace {

std::vector<Sha256Kernel> supported_kernels() {
  std::vector<Sha256Kernel> kernels;
  for (Sha256Kernel kernel : {Sha256Kernel::portable, Sha256Kernel::sha_ni}) {
    if (sha256_kernel_supported(kernel)) kernels.push_back(kernel);
  }
  return kernels;
}

std::string digest_with(Sha256Kernel kernel, const std::string& message) {
  Sha256 hasher(kernel);
  hasher.update(message.data(), message.size());
  return hasher.finish_hex();
}

// The example messages of NIST's "Cryptographic Standards and Guidelines: Examples with Intermediate Values"
// for SHA-256 and of FIPS 180-2 appendix B, with their published digests.
struct KnownAnswer {
  const char* name;
  std::string message;
  const char* digest;
};

std::vector<KnownAnswer> known_answers() {
  return {
      {"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"448 bits", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"896 bits",
       "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
      {"one million a", std::string(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
}

TEST(Sha256, KnownAnswersWithEveryKernel) {
  for (Sha256Kernel kernel : supported_kernels()) {
    SCOPED_TRACE(std::string(sha256_kernel_name(kernel)));
    for (const KnownAnswer& answer : known_answers()) {
      SCOPED_TRACE(answer.name);
      EXPECT_EQ(digest_with(kernel, answer.message), answer.digest);
    }
    // The million a's again, one byte per update() call: everything goes through the partial-block buffer.
    Sha256 bytewise(kernel);
    for (int i = 0; i < 1000000; ++i) bytewise.update("a", 1);
    EXPECT_EQ(bytewise.finish_hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }
}

TEST(Sha256, OneShotHelperMatchesKnownAnswer) {
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, KernelChoice) {
  EXPECT_TRUE(sha256_kernel_supported(Sha256Kernel::portable));
  EXPECT_EQ(sha256_kernel_for(KernelLevel::scalar), Sha256Kernel::portable);
  EXPECT_EQ(sha256_kernel_for(KernelLevel::avx2), fastest_sha256_kernel());
  EXPECT_EQ(Sha256().kernel(), fastest_sha256_kernel());
  EXPECT_EQ(Sha256(Sha256Kernel::portable).kernel(), Sha256Kernel::portable);
  // Asking for a kernel the CPU lacks gives the portable one rather than an illegal instruction.
  const Sha256Kernel expected =
      sha256_kernel_supported(Sha256Kernel::sha_ni) ? Sha256Kernel::sha_ni : Sha256Kernel::portable;
  EXPECT_EQ(Sha256(Sha256Kernel::sha_ni).kernel(), expected);
}

// Feeds `message` to `hasher` in pieces ending at the sorted `cuts`.
std::string digest_in_pieces(Sha256 hasher, const std::string& message, const std::vector<size_t>& cuts) {
  size_t start = 0;
  for (size_t cut : cuts) {
    hasher.update(message.data() + start, cut - start);
    start = cut;
  }
  hasher.update(message.data() + start, message.size() - start);
  EXPECT_EQ(hasher.total_bytes(), message.size());
  return hasher.finish_hex();
}

TEST(Sha256, KernelsAgreeOnRandomMessagesAndSplits) {
  if (!sha256_kernel_supported(Sha256Kernel::sha_ni)) GTEST_SKIP() << "this CPU has no SHA-NI";
  std::mt19937_64 random(20261123);
  std::uniform_int_distribution<int> byte(0, 255);
  for (size_t length = 0; length <= 1000; ++length) {
    SCOPED_TRACE(length);
    std::string message(length, '\0');
    for (char& c : message) c = static_cast<char>(byte(random));
    std::vector<size_t> cuts(std::uniform_int_distribution<size_t>(0, 6)(random));
    for (size_t& cut : cuts) cut = std::uniform_int_distribution<size_t>(0, length)(random);
    std::sort(cuts.begin(), cuts.end());
    const std::string whole = digest_with(Sha256Kernel::portable, message);
    EXPECT_EQ(digest_with(Sha256Kernel::sha_ni, message), whole);
    EXPECT_EQ(digest_in_pieces(Sha256(Sha256Kernel::portable), message, cuts), whole);
    EXPECT_EQ(digest_in_pieces(Sha256(Sha256Kernel::sha_ni), message, cuts), whole);
  }
}

TEST(Sha256, KernelsAgreeOnLongMessagesHashedManyBlocksAtOnce) {
  if (!sha256_kernel_supported(Sha256Kernel::sha_ni)) GTEST_SKIP() << "this CPU has no SHA-NI";
  std::mt19937_64 random(7);
  std::string message(3 << 20, '\0');
  for (char& c : message) c = static_cast<char>(random());
  // An unaligned start, so the kernels see a partial buffer first and then thousands of blocks in one call.
  EXPECT_EQ(digest_in_pieces(Sha256(Sha256Kernel::sha_ni), message, {5, 5 + (1 << 20) + 3}),
            digest_in_pieces(Sha256(Sha256Kernel::portable), message, {}));
}

}  // namespace
}  // namespace quant
