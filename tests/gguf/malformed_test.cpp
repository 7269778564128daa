// GgufFile on hostile and damaged files: one hand-made file per class of damage, each asserting the exact
// reason and byte offset; truncation of a real file at every header offset and a sample of data offsets; and a
// file truncated underneath an open GgufFile.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "quant/gguf.h"
#include "test_data.h"
#include "test_files.h"

namespace quant {
namespace {

namespace fs = std::filesystem;
using testing::TempFile;

// Little-endian GGUF bytes, built piece by piece; at() is the offset the next piece will have.
class Bytes {
 public:
  Bytes& raw(std::string_view s) { bytes_.insert(bytes_.end(), s.begin(), s.end()); return *this; }
  Bytes& u8(uint8_t v) { return put(v); }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& i64(int64_t v) { return put(v); }
  Bytes& str(std::string_view s) { u64(s.size()); return raw(s); }
  // "GGUF", version 3, the two counts.
  Bytes& header(int64_t n_tensors, int64_t n_kv) { raw("GGUF"); u32(3); i64(n_tensors); return i64(n_kv); }
  Bytes& kv_u32(std::string_view key, uint32_t v) { str(key); u32(4); return u32(v); }
  Bytes& tensor(std::string_view name, std::vector<int64_t> shape, uint32_t type, uint64_t offset) {
    str(name);
    u32(uint32_t(shape.size()));
    for (int64_t ne : shape) i64(ne);
    u32(type);
    return u64(offset);
  }
  Bytes& pad(size_t alignment) { bytes_.resize((bytes_.size() + alignment - 1) / alignment * alignment, 0); return *this; }
  Bytes& zeros(size_t n) { bytes_.resize(bytes_.size() + n, 0); return *this; }
  uint64_t at() const { return bytes_.size(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  template <typename T>
  Bytes& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
    return *this;
  }
  std::vector<uint8_t> bytes_;
};

struct Case {
  std::string name;
  // Builds the file and sets the expected offset (and tensor, when the error names one).
  std::function<void(Bytes&, uint64_t& offset, std::string& tensor)> build;
  std::string reason;
  GgufLimits limits = {};
};

// A complete one-tensor file after `b` has the header and metadata: tensor "t" f32 [4] at 0, then its data.
void finish_with_one_tensor(Bytes& b) {
  b.tensor("t", {4}, 0, 0).pad(32).zeros(16).pad(32);
}

std::vector<Case> cases() {
  std::vector<Case> c;
  c.push_back({"bad magic", [](Bytes& b, uint64_t& at, std::string&) { b.raw("GGUX").u32(3).i64(0).i64(0); at = 0; },
               "bad magic 'GGUX' (not a GGUF file; expected 'GGUF')"});
  c.push_back({"binary magic", [](Bytes& b, uint64_t& at, std::string&) { b.u32(0x00ff0a7f).u32(3).i64(0).i64(0); at = 0; },
               "bad magic '\\x7f\\x0a\\xff\\x00' (not a GGUF file; expected 'GGUF')"});
  c.push_back({"version 4", [](Bytes& b, uint64_t& at, std::string&) { b.raw("GGUF").u32(4).i64(0).i64(0); at = 4; },
               "unsupported GGUF version 4 (supported: 1, 2, 3)"});
  c.push_back({"version 0", [](Bytes& b, uint64_t& at, std::string&) { b.raw("GGUF").u32(0).i64(0).i64(0); at = 4; },
               "unsupported GGUF version 0 (supported: 1, 2, 3)"});
  c.push_back({"big-endian", [](Bytes& b, uint64_t& at, std::string&) { b.raw("GGUF").u32(0x03000000).i64(0).i64(0); at = 4; },
               "version field 0x03000000 is a byte-swapped small number: this is a big-endian GGUF file, and only "
               "little-endian files are supported"});
  c.push_back({"FUGG beyond v1", [](Bytes& b, uint64_t& at, std::string&) { b.raw("FUGG").u32(3).i64(0).i64(0); at = 0; },
               "bad magic 'FUGG': the byte-swapped magic is only known from GGUF v1 files"});
  c.push_back({"negative tensor count", [](Bytes& b, uint64_t& at, std::string&) { b.header(-1, 0); at = 8; },
               "tensor count -1 is negative"});
  c.push_back({"negative kv count", [](Bytes& b, uint64_t& at, std::string&) { b.header(0, -5); at = 16; },
               "key-value count -5 is negative"});
  c.push_back({"kv count larger than the file", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, int64_t(1) << 30).kv_u32("a", 1); at = 8; },
               "0 tensors and 1073741824 key-value pairs cannot fit in the 17 bytes left in the file"});
  c.push_back({"tensor count overflowing the size check", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(INT64_MAX, 0); at = 8; },
               "9223372036854775807 tensors and 0 key-value pairs cannot fit in the 0 bytes left in the file"});
  c.push_back({"kv count over the cap", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 3).kv_u32("a", 1).kv_u32("b", 1).kv_u32("c", 1); at = 8; },
               "3 key-value pairs exceed the limit of 2", GgufLimits{.max_kv_count = 2}});
  c.push_back({"key longer than the file", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1); at = b.at(); b.u64(1000).raw("abc").u32(4).u32(0); },
               "key length 1000 runs past the end of the file (11 bytes left)"});
  c.push_back({"empty key", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1); at = b.at(); b.kv_u32("", 1); },
               "key-value pair 0 has an empty key"});
  c.push_back({"duplicate key", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 2).kv_u32("k", 1); at = b.at(); b.kv_u32("k", 2); },
               "duplicate key 'k'"});
  c.push_back({"unknown value type", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1).str("k"); at = b.at(); b.u32(13).u32(0); },
               "key 'k': unknown value type 13"});
  c.push_back({"unknown array element type", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1).str("k").u32(9); at = b.at(); b.u32(42).u64(0); },
               "key 'k': array of unknown value type 42"});
  c.push_back({"string longer than the file", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1).str("k").u32(8); at = b.at(); b.u64(uint64_t(1) << 40).raw("xy"); },
               "key 'k': string length 1099511627776 runs past the end of the file (2 bytes left)"});
  c.push_back({"array count x size overflowing", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1).str("k").u32(9).u32(4); at = b.at(); b.u64(uint64_t(1) << 62).u32(0); },
               "key 'k': array count 4611686018427387904 times element size 4 overflows"});
  c.push_back({"array past the end", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1).str("k").u32(9).u32(4); at = b.at(); b.u64(1000).u32(0).u32(0); },
               "key 'k': array of 1000 u32 (4000 bytes) runs past the end of the file (8 bytes left)"});
  c.push_back({"string array count past the end", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1).str("k").u32(9).u32(8); at = b.at(); b.u64(1000).str("a").str("b"); },
               "key 'k': array of 1000 strings cannot fit in the 18 bytes left"});
  c.push_back({"string element past the end", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1).str("k").u32(9).u32(8).u64(2).str("a"); at = b.at(); b.u64(50).raw("bc"); },
               "key 'k': element 1: string length 50 runs past the end of the file (2 bytes left)"});
  c.push_back({"arrays nested too deep", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1).str("k").u32(9);
                 for (int i = 0; i < 3; ++i) b.u32(9).u64(1);
                 at = b.at();
                 b.u32(4).u64(0); },
               "key 'k': arrays nested deeper than 3 levels", GgufLimits{.max_array_depth = 3}});
  c.push_back({"too many nested arrays", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1).str("k").u32(9).u32(9); at = b.at(); b.u64(3);
                 for (int i = 0; i < 3; ++i) b.u32(0).u64(0); },
               "key 'k': arrays of arrays hold more than 2 arrays in all", GgufLimits{.max_nested_values = 2}});
  c.push_back({"alignment of the wrong type", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1); at = b.at(); b.str("general.alignment").u32(10).u64(32); },
               "general.alignment is u64, expected u32"});
  c.push_back({"alignment zero", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1); at = b.at(); b.kv_u32("general.alignment", 0); },
               "general.alignment 0 is not a power of two"});
  c.push_back({"alignment not a power of two", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1); at = b.at(); b.kv_u32("general.alignment", 48); },
               "general.alignment 48 is not a power of two"});
  c.push_back({"tensor name of 64 bytes", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(1, 0); at = b.at(); b.tensor(std::string(64, 'x'), {4}, 0, 0).pad(32).zeros(32); },
               "tensor name of 64 bytes is too long (at most 63)"});
  c.push_back({"duplicate tensor name", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(2, 0).tensor("t", {8}, 0, 0); at = b.at(); b.tensor("t", {8}, 0, 32).pad(32).zeros(64); },
               "duplicate tensor name 't'"});
  c.push_back({"five dimensions", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).str("t"); at = b.at(); t = "t"; b.u32(5);
                 for (int i = 0; i < 5; ++i) b.i64(1);
                 b.u32(0).u64(0).pad(32).zeros(32); },
               "5 dimensions (at most 4)"});
  c.push_back({"negative dimension", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).str("t").u32(2).i64(4); at = b.at(); t = "t"; b.i64(-3).u32(0).u64(0).pad(32).zeros(32); },
               "dimension 1 is negative (-3)"});
  c.push_back({"element count overflow", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).str("t").u32(2).i64(int64_t(1) << 32); at = b.at(); t = "t";
                 b.i64(int64_t(1) << 31).u32(0).u64(0).pad(32).zeros(32); },
               "element count overflows 64 bits"});
  // Zero elements in all, but ne1 * ne2 (the row count) overflows: found by fuzz/gguf_fuzzer
  // (tests/data/fuzz-regressions/gguf/zero-ne0-rows-overflow.gguf).
  c.push_back({"zero dimension beside overflowing ones", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).str("t").u32(3).i64(0).i64(int64_t(1) << 32); at = b.at(); t = "t";
                 b.i64(int64_t(1) << 31).u32(0).u64(0).pad(32).zeros(32); },
               "product of the non-zero dimensions overflows 64 bits"});
  // Zero elements in all, but the row of 2^62 + 1 f32 values (the non-zero dimensions) takes more than 2^64 bytes: a
  // writer computing the row size overflowed. Found by fuzz/split_fuzzer (merge planning of the set refused it;
  // tests/data/fuzz-regressions/split/zero-ne1-row-bytes-overflow).
  c.push_back({"zero dimension beside a row whose bytes overflow", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).str("t"); at = b.at(); t = "t";
                 b.u32(2).i64((int64_t(1) << 62) + 1).i64(0).u32(0).u64(0).pad(32); },
               "byte size of the non-zero dimensions overflows 64 bits"});
  // 2^61 f64 values fit int64 as a count, but their 2^64 bytes do not fit 64 bits.
  c.push_back({"byte size overflow", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).str("t"); at = b.at(); t = "t"; b.u32(1).i64(int64_t(1) << 61).u32(28).u64(0).pad(32).zeros(32); },
               "byte size overflows 64 bits"});
  c.push_back({"unknown tensor type", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).str("t").u32(1).i64(4); at = b.at(); t = "t"; b.u32(99).u64(0).pad(32).zeros(32); },
               "unknown tensor type 99"});
  c.push_back({"removed tensor type", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).str("t").u32(1).i64(32); at = b.at(); t = "t"; b.u32(4).u64(0).pad(32).zeros(32); },
               "tensor type 4 was removed from ggml"});
  c.push_back({"row length not a multiple of the block", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).str("t"); at = b.at(); t = "t"; b.u32(2).i64(48).i64(2).u32(2).u64(0).pad(32).zeros(64); },
               "row length 48 is not a multiple of q4_0's block size 32"});
  c.push_back({"gap before the first tensor", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).str("t").u32(1).i64(4).u32(0); at = b.at(); t = "t"; b.u64(32).pad(32).zeros(64); },
               "data offset 0x20 is not where the previous tensors end (0x0): tensors must be contiguous and in order"});
  c.push_back({"overlapping tensors", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(2, 0).tensor("a", {16}, 0, 0).str("b").u32(1).i64(4).u32(0); at = b.at(); t = "b";
                 b.u64(32).pad(32).zeros(96); },
               "data offset 0x20 is not where the previous tensors end (0x40): tensors must be contiguous and in order"});
  c.push_back({"tensors out of order", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(2, 0).tensor("a", {4}, 0, 32).pad(1); at = 24 + 9 + 4 + 8 + 4; t = "a";
                 b.tensor("b", {4}, 0, 0).pad(32).zeros(64); },
               "data offset 0x20 is not where the previous tensors end (0x0): tensors must be contiguous and in order"});
  c.push_back({"data section past the end", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(1, 0).tensor("t", {4}, 0, 0); at = b.at(); },
               "data section starts at 0x40, past the end of the file (57 bytes)"});
  c.push_back({"tensor past the end", [](Bytes& b, uint64_t& at, std::string& t) {
                 b.header(1, 0).tensor("t", {4}, 0, 0).pad(32).zeros(10); at = 64; t = "t"; },
               "data runs past end of file (needs 16 bytes, 10 left)"});
  c.push_back({"truncated in a tensor info", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(1, 0).str(std::string(20, 't')).u32(1); at = b.at(); b.u32(4); },
               "file truncated: needs 8 bytes here but only 4 are left (file is 60 bytes)"});
  c.push_back({"header over the size cap", [](Bytes& b, uint64_t& at, std::string&) {
                 b.header(0, 1).str("k").u32(8); at = b.at() + 8; b.str(std::string(2 << 20, 'x')); },
               "metadata and tensor infos exceed the 1 MiB limit for headers", GgufLimits{.max_header_bytes = 1 << 20}});
  return c;
}

TEST(GgufMalformed, EachClassOfDamageIsRejectedWithItsReasonAndOffset) {
  TempFile file;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Bytes bytes;
    uint64_t offset = 0;
    std::string tensor;
    c.build(bytes, offset, tensor);
    file.write(bytes.bytes());
    Result<GgufFile> result = GgufFile::open(file.path(), c.limits);
    ASSERT_FALSE(result) << "accepted";
    const Error& error = result.error();
    EXPECT_EQ(error.reason(), c.reason);
    EXPECT_EQ(error.offset(), std::optional<uint64_t>(offset));
    EXPECT_EQ(error.tensor(), tensor);
    EXPECT_EQ(error.file(), file.path());
    EXPECT_EQ(error.kind(), ErrorKind::invalid_input);
  }
}

TEST(GgufMalformed, TheBaseFileOfTheTableIsValid) {
  // The same builder, undamaged: proves the rows fail for the damage they add and nothing else.
  TempFile file;
  Bytes b;
  b.header(1, 2).kv_u32("general.alignment", 32).kv_u32("k", 7);
  finish_with_one_tensor(b);
  file.write(b.bytes());
  Result<GgufFile> result = GgufFile::open(file.path());
  ASSERT_TRUE(result) << result.error().message();
  EXPECT_EQ(*result->get<uint32_t>("k"), 7u);
  EXPECT_EQ(result->tensors()[0].size_bytes, 16u);

  Bytes nested;  // arrays of arrays are valid GGUF (ggml refuses them; we read them)
  nested.header(0, 1).str("k").u32(9).u32(9).u64(2).u32(4).u64(1).u32(5).u32(8).u64(1).str("s");
  file.write(nested.bytes());
  result = GgufFile::open(file.path());
  ASSERT_TRUE(result) << result.error().message();
  EXPECT_EQ(result->find("k")->array_at(0).scalar_at<uint32_t>(0), 5u);
  EXPECT_EQ(result->find("k")->array_at(1).string_at(0), "s");
}

TEST(GgufMalformed, TruncationAtEveryHeaderOffsetAndSampledDataOffsetsIsAnError) {
  const std::vector<uint8_t> whole = testing::read_bytes(testing::data_path("gguf/stories260K.gguf"));
  TempFile file;
  file.write(whole);
  const uint64_t data_offset = 14176;  // dump_gguf.py
  std::vector<uint64_t> sizes;
  for (uint64_t n = 0; n <= data_offset; ++n) sizes.push_back(n);
  for (uint64_t n = data_offset + 1; n < whole.size(); n += 997) sizes.push_back(n);
  sizes.push_back(whole.size() - 1);
  // Truncate from the longest down, so one file serves every size.
  for (auto it = sizes.rbegin(); it != sizes.rend(); ++it) {
    ASSERT_EQ(::truncate(file.path().c_str(), off_t(*it)), 0);
    Result<GgufFile> result = GgufFile::open(file.path());
    ASSERT_FALSE(result) << "accepted at size " << *it;
    ASSERT_EQ(result.error().kind(), ErrorKind::invalid_input) << result.error().message();
  }
}

TEST(GgufMalformed, FileTruncatedUnderneathAnOpenReaderGivesAnErrorNotSigbus) {
  const std::vector<uint8_t> whole = testing::read_bytes(testing::data_path("gguf/stories260K.gguf"));
  TempFile file;
  file.write(whole);
  Result<GgufFile> opened = GgufFile::open(file.path());
  ASSERT_TRUE(opened);
  ASSERT_EQ(::truncate(file.path().c_str(), 20000), 0);
  const TensorInfo& first = opened->tensors().front();  // bytes 14176 .. 145248
  std::vector<uint8_t> buffer(first.size_bytes);
  Status status = opened->read_tensor(first, 0, buffer);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().kind(), ErrorKind::io);
  EXPECT_EQ(status.error().offset(), std::optional<uint64_t>(20000));
  EXPECT_EQ(status.error().tensor(), "token_embd.weight");
  const TensorInfo& last = opened->tensors().back();
  EXPECT_FALSE(opened->read_tensor_data(last));
  // Bytes before the cut are still readable.
  std::vector<uint8_t> head(64);
  EXPECT_TRUE(opened->read_tensor(first, 0, head));
}

TEST(GgufMalformed, RandomHeaderCorruptionNeverCrashes) {
  // Flip a few random header bytes of a real file, thousands of times (a fixed seed, so failures reproduce):
  // every open must either fail with an error or give a file whose every tensor reads back.
  const std::vector<uint8_t> whole = testing::read_bytes(testing::data_path("gguf/stories260K.gguf"));
  TempFile file;
  file.write(whole);
  const int fd = ::open(file.path().c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  std::mt19937 random(12345);
  std::uniform_int_distribution<size_t> position(0, 14176 - 1);
  std::uniform_int_distribution<int> byte(0, 255), flips(1, 4);
  int accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<size_t> touched;
    for (int i = flips(random); i > 0; --i) {
      const size_t at = position(random);
      const uint8_t value = uint8_t(byte(random));
      ASSERT_EQ(::pwrite(fd, &value, 1, off_t(at)), 1);
      touched.push_back(at);
    }
    Result<GgufFile> opened = GgufFile::open(file.path());
    if (opened) {
      ++accepted;
      for (const TensorInfo& tensor : opened->tensors()) ASSERT_TRUE(opened->read_tensor_data(tensor));
    }
    for (size_t at : touched) ASSERT_EQ(::pwrite(fd, &whole[at], 1, off_t(at)), 1);
  }
  ::close(fd);
  // Most flips land in token strings or float values and leave a valid file; the rest must be errors.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 3000);
}

}  // namespace
}  // namespace quant
