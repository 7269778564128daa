// The sensitivity cache: round trip, refusal of a cache from other inputs (naming which), malformed files, and
// fingerprints that tell models, importance matrices and texts apart.
#include <gtest/gtest.h>

#include <fstream>

#include "automix/scratch.h"
#include "quant/automix.h"
#include "quant/gguf.h"
#include "test_data.h"

namespace quant {
namespace {

using testing::Scratch;
using testing::data_path;
using testing::write_text_file;

SensitivityTable sample_table() {
  SensitivityTable table;
  table.fingerprint = {"aa11", "bb22", "none", "weighted-error/1 values=131072"};
  table.unit = "relative weighted error";
  table.seconds = 1.25;
  table.tensors.push_back({"blk.0.attn_q.weight", {{TypeId::q4_K, 0.0123}, {TypeId::f16, 0.0}, {TypeId::iq2_xs, 0.5}}});
  table.tensors.push_back({"output.weight", {{TypeId::q8_0, 1.0 / 3.0}}});
  return table;
}

TEST(SensitivityCache, RoundTripsEveryNumberExactly) {
  Scratch dir;
  const SensitivityTable table = sample_table();
  ASSERT_TRUE(write_sensitivity_cache(dir / "cache.json", table, OutputPolicy{}).ok());
  auto read = read_sensitivity_cache(dir / "cache.json", table.fingerprint);
  ASSERT_TRUE(read.ok()) << read.error().message();
  EXPECT_EQ(read->unit, table.unit);
  EXPECT_EQ(read->seconds, table.seconds);
  ASSERT_EQ(read->tensors.size(), 2u);
  EXPECT_EQ(read->tensors[0].name, "blk.0.attn_q.weight");
  EXPECT_EQ(read->tensors[0].cost_of(TypeId::q4_K), 0.0123);
  EXPECT_EQ(read->tensors[0].cost_of(TypeId::iq2_xs), 0.5);
  EXPECT_FALSE(read->tensors[0].cost_of(TypeId::q2_K).has_value());
  EXPECT_EQ(read->find("output.weight")->cost_of(TypeId::q8_0), 1.0 / 3.0);
}

TEST(SensitivityCache, RefusesACacheFromOtherInputsNamingWhy) {
  Scratch dir;
  const SensitivityTable table = sample_table();
  ASSERT_TRUE(write_sensitivity_cache(dir / "cache.json", table, OutputPolicy{}).ok());
  struct Case {
    SensitivityFingerprint expected;
    const char* why;
  };
  const SensitivityFingerprint f = table.fingerprint;
  const Case cases[] = {
      {{"cc33", f.imatrix, f.text, f.measurer}, "measured on another model"},
      {{f.model, "dd44", f.text, f.measurer}, "with another importance matrix"},
      {{f.model, "none", f.text, f.measurer}, "with an importance matrix and none is given now"},
      {{f.model, f.imatrix, "ee55", f.measurer}, "measured without a calibration text"},
      {{f.model, f.imatrix, f.text, "kld/1"}, "measured by 'weighted-error/1 values=131072'"},
  };
  for (const Case& c : cases) {
    auto read = read_sensitivity_cache(dir / "cache.json", c.expected);
    ASSERT_FALSE(read.ok()) << c.why;
    EXPECT_EQ(read.error().kind(), ErrorKind::impossible);
    EXPECT_NE(read.error().message().find(c.why), std::string::npos) << read.error().message();
    EXPECT_NE(read.error().message().find("cache.json"), std::string::npos) << read.error().message();
  }
}

TEST(SensitivityCache, MalformedFilesAreInvalidInput) {
  Scratch dir;
  const SensitivityFingerprint f = sample_table().fingerprint;
  const std::string good_fingerprint =
      R"("fingerprint": {"model": "aa11", "imatrix": "bb22", "text": "none", "measurer": "weighted-error/1 values=131072"})";
  struct Case {
    std::string text;
    const char* why;
  };
  const Case cases[] = {
      {"", "not a JSON object"},
      {"[1, 2]", "not a JSON object"},
      {"{\"format\": \"quantize.sensitivity\"", "not a JSON object"},
      {R"({"format": "something else", "version": 1})", "format is 'something else'"},
      {R"({"format": "quantize.sensitivity", "version": 2})", "version is not 1"},
      {R"({"format": "quantize.sensitivity", "version": 1, "unit": 5})", "'unit' is missing or not a string"},
      {R"({"format": "quantize.sensitivity", "version": 1, "unit": "u"})", "no fingerprint object"},
      {R"({"format": "quantize.sensitivity", "version": 1, "unit": "u", "fingerprint": {"model": "aa11"}})",
       "'imatrix' is missing"},
      {R"({"format": "quantize.sensitivity", "version": 1, "unit": "u", )" + good_fingerprint + "}",
       "no tensors array"},
      {R"({"format": "quantize.sensitivity", "version": 1, "unit": "u", )" + good_fingerprint +
           R"(, "tensors": [5]})",
       "a tensors entry is not an object"},
      {R"({"format": "quantize.sensitivity", "version": 1, "unit": "u", )" + good_fingerprint +
           R"(, "tensors": [{"name": "a"}]})",
       "tensor 'a' has no costs object"},
      {R"({"format": "quantize.sensitivity", "version": 1, "unit": "u", )" + good_fingerprint +
           R"(, "tensors": [{"name": "a", "costs": {"q9_X": 1}}]})",
       "unknown type 'q9_X'"},
      {R"({"format": "quantize.sensitivity", "version": 1, "unit": "u", )" + good_fingerprint +
           R"(, "tensors": [{"name": "a", "costs": {"q4_K": -1}}]})",
       "cost of q4_K is not a finite number >= 0"},
      {R"({"format": "quantize.sensitivity", "version": 1, "unit": "u", )" + good_fingerprint +
           R"(, "tensors": [{"name": "a", "costs": {"q4_K": "x"}}]})",
       "cost of q4_K is not a finite number >= 0"},
  };
  for (const Case& c : cases) {
    write_text_file(dir / "bad.json", c.text);
    auto read = read_sensitivity_cache(dir / "bad.json", f);
    ASSERT_FALSE(read.ok()) << c.text;
    EXPECT_EQ(read.error().kind(), ErrorKind::invalid_input) << c.text;
    EXPECT_NE(read.error().message().find(c.why), std::string::npos) << read.error().message();
  }
  auto missing = read_sensitivity_cache(dir / "absent.json", f);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind(), ErrorKind::io);
}

// A copy of a small model with one tensor value changed in the middle of its data.
std::string changed_copy(const Scratch& dir, const std::string& input) {
  auto file = GgufFile::open(input);
  EXPECT_TRUE(file.ok());
  auto writer = GgufWriter::create(dir / "changed.gguf");
  EXPECT_TRUE(writer.ok());
  for (const KeyValue& kv : file->metadata()) EXPECT_TRUE(writer->add_metadata(kv.key, kv.value).ok());
  for (const TensorInfo& t : file->tensors()) EXPECT_TRUE(writer->add_tensor(t.name, t.type, t.shape).ok());
  EXPECT_TRUE(writer->begin().ok());
  for (const TensorInfo& t : file->tensors()) {
    auto bytes = file->read_tensor_data(t);
    EXPECT_TRUE(bytes.ok());
    if (&t == &file->tensors().back()) (*bytes)[bytes->size() / 2] ^= 1;
    EXPECT_TRUE(writer->write_tensor(t.name, *bytes).ok());
  }
  EXPECT_TRUE(writer->commit().ok());
  return dir / "changed.gguf";
}

TEST(Fingerprints, TellModelsImatricesAndTextsApart) {
  Scratch dir;
  const std::string input = data_path("gguf/stories260K.gguf");
  auto original = GgufFile::open(input);
  auto changed = GgufFile::open(changed_copy(dir, input));
  ASSERT_TRUE(original.ok() && changed.ok());
  auto a = model_fingerprint(*original), b = model_fingerprint(*changed);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 64u);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*a, *model_fingerprint(*original));

  EXPECT_EQ(imatrix_fingerprint(nullptr), "none");
  auto imatrix = read_imatrix(data_path("imatrix/stories260K.imatrix.gguf"));
  ASSERT_TRUE(imatrix.ok());
  const std::string one = imatrix_fingerprint(&*imatrix);
  imatrix->entries.begin()->second.values[0] *= 2;
  EXPECT_NE(imatrix_fingerprint(&*imatrix), one);

  write_text_file(dir / "a.txt", "def f(x):\n    return x\n");
  write_text_file(dir / "b.txt", "def f(x):\n    return y\n");
  EXPECT_NE(*file_fingerprint(dir / "a.txt"), *file_fingerprint(dir / "b.txt"));
  EXPECT_EQ(file_fingerprint(dir / "absent.txt").error().kind(), ErrorKind::io);
}

}  // namespace
}  // namespace quant
