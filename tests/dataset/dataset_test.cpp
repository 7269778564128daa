// Dataset readers: real safetensors from the Python library, hand-made .npy/.npz (tests/data/npy/make_test_files.py),
// batch order over several files, and a table of damaged files, one row per class of damage.
#include "quant/dataset.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "quant/half.h"
#include "test_data.h"
#include "test_files.h"

namespace quant {
namespace {

using testing::data_path;
using testing::read_bytes;
using testing::TempFile;

// The closed formula the generator script used for every .npy/.npz value.
float formula(int64_t b, int64_t t, int64_t f) { return float(((b * 7 + t * 3 + f) % 23 - 11) * 0.125); }

std::vector<Batch> read_all(const std::vector<std::string>& paths) {
  auto reader = open_dataset(paths);
  EXPECT_TRUE(reader) << (reader ? "" : reader.error().message());
  std::vector<Batch> batches;
  if (!reader) return batches;
  Batch batch;
  for (;;) {
    auto more = reader->next(batch);
    EXPECT_TRUE(more) << (more ? "" : more.error().message());
    if (!more || !*more) break;
    batches.push_back(batch);
  }
  return batches;
}

void expect_formula(const Batch& batch, int64_t slice) {
  ASSERT_EQ(batch.values.size(), size_t(batch.tokens * batch.features));
  for (int64_t t = 0; t < batch.tokens; ++t) {
    for (int64_t f = 0; f < batch.features; ++f) {
      ASSERT_EQ(batch.values[t * batch.features + f], formula(slice, t, f)) << batch.tensor << " t=" << t << " f=" << f;
    }
  }
}

TEST(Safetensors, RealFloat32FileReadsTheStoredFloats) {
  const std::string path = data_path("safetensors/model2vec-float32.safetensors");
  const auto batches = read_all({path});
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].tensor, "embeddings");
  EXPECT_EQ(batches[0].tokens, 29528);
  EXPECT_EQ(batches[0].features, 2);
  // The header is 80 bytes; data starts at 8 + 80.
  const auto bytes = read_bytes(path);
  std::vector<float> stored(29528 * 2);
  std::memcpy(stored.data(), bytes.data() + 88, stored.size() * 4);
  EXPECT_EQ(batches[0].values, stored);
}

TEST(Safetensors, RealFloat16FileIsTheFloat32FileRoundedToHalf) {
  const auto f32 = read_all({data_path("safetensors/model2vec-float32.safetensors")});
  const auto f16 = read_all({data_path("safetensors/model2vec-float16.safetensors")});
  ASSERT_EQ(f32.size(), 1u);
  ASSERT_EQ(f16.size(), 1u);
  ASSERT_EQ(f16[0].values.size(), f32[0].values.size());
  for (size_t i = 0; i < f32[0].values.size(); ++i) {
    ASSERT_EQ(f16[0].values[i], fp16_to_fp32(fp32_to_fp16(f32[0].values[i]))) << i;
  }
}

TEST(Safetensors, RealInt8FileIsRefusedNamingTheTensor) {
  const std::string path = data_path("safetensors/model2vec-int8.safetensors");
  auto reader = open_dataset({path});
  ASSERT_FALSE(reader);
  EXPECT_EQ(reader.error().kind(), ErrorKind::invalid_input);
  EXPECT_EQ(reader.error().message(),
            path + ": tensor 'embeddings': unsupported dtype I8 (activations must be F32, F16, BF16 or F64)");
}

TEST(Npy, TwoDimensionalFloat32IsOneBatchNamedAfterTheFile) {
  const auto batches = read_all({data_path("npy/blk.0.attn_q.weight.npy")});
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].tensor, "blk.0.attn_q.weight");
  EXPECT_EQ(batches[0].index, 0);
  EXPECT_EQ(batches[0].tokens, 20);
  EXPECT_EQ(batches[0].features, 8);
  expect_formula(batches[0], 0);
}

TEST(Npy, ThreeDimensionalFloat16IsOneBatchPerSlice) {
  const auto batches = read_all({data_path("npy/blk.0.ffn_down.weight.npy")});
  ASSERT_EQ(batches.size(), 2u);
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_EQ(batches[b].index, b);
    EXPECT_EQ(batches[b].tokens, 16);
    EXPECT_EQ(batches[b].features, 4);
    expect_formula(batches[b], b);
  }
}

TEST(Npy, Version2HeaderAndFloat64) {
  const auto batches = read_all({data_path("npy/v2.npy")});
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].tensor, "v2");
  expect_formula(batches[0], 0);
}

TEST(Npz, StoredAndDeflatedArchivesGiveTheSameBatches) {
  for (const char* name : {"npy/stored.npz", "npy/deflated.npz"}) {
    SCOPED_TRACE(name);
    auto reader = open_dataset({data_path(name)});
    ASSERT_TRUE(reader) << reader.error().message();
    ASSERT_EQ(reader->tensors().size(), 2u);
    EXPECT_EQ(reader->tensors()[0].name, "blk.1.attn_k.weight");
    EXPECT_EQ(reader->tensors()[0].batches, 3);
    EXPECT_EQ(reader->tensors()[0].tokens, 51);
    EXPECT_EQ(reader->tensors()[1].name, "blk.1.attn_v.weight");
    EXPECT_EQ(reader->tensors()[1].features, 6);
    const auto batches = read_all({data_path(name)});
    ASSERT_EQ(batches.size(), 4u);
    for (int64_t b = 0; b < 3; ++b) {
      EXPECT_EQ(batches[b].tensor, "blk.1.attn_k.weight");
      EXPECT_EQ(batches[b].tokens, 17);
      expect_formula(batches[b], b);
    }
    EXPECT_EQ(batches[3].tensor, "blk.1.attn_v.weight");
    EXPECT_EQ(batches[3].tokens, 18);
    expect_formula(batches[3], 0);
  }
}

TEST(Dataset, FilesGivenInOrderAreBatchesInOrder) {
  const auto batches = read_all({data_path("npy/deflated.npz"), data_path("npy/blk.0.attn_q.weight.npy"),
                                 data_path("npy/stored.npz")});
  ASSERT_EQ(batches.size(), 9u);
  std::vector<int64_t> attn_k_indices;
  for (const Batch& batch : batches) {
    if (batch.tensor == "blk.1.attn_k.weight") attn_k_indices.push_back(batch.index);
  }
  EXPECT_EQ(attn_k_indices, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(batches[0].file, data_path("npy/deflated.npz"));
  EXPECT_EQ(batches[4].tensor, "blk.0.attn_q.weight");
  EXPECT_EQ(batches[5].file, data_path("npy/stored.npz"));
  expect_formula(batches[5], 0);  // slice 0 of the second file's attn_k again
}

TEST(Dataset, FeaturesMustAgreeAcrossFilesAndWithTheWeights) {
  const std::string npy = data_path("npy/blk.0.attn_q.weight.npy");
  const std::string st = data_path("safetensors/imatrix-batch0.safetensors");
  auto mixed = open_dataset({npy, st});
  ASSERT_FALSE(mixed);
  EXPECT_EQ(mixed.error().message(),
            st + ": tensor 'blk.0.attn_q.weight': activations have 64 features but earlier batches of this weight have 8");

  DatasetOptions options;
  options.weight_features["blk.0.attn_q.weight"] = 64;
  auto wrong = open_dataset({npy}, options);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().message(), npy + ": tensor 'blk.0.attn_q.weight': activations have 8 features but the "
                                           "weight takes 64 inputs (its row length)");
  options.weight_features.clear();
  options.weight_features["blk.0.attn_k.weight"] = 8;
  auto unknown = open_dataset({npy}, options);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().reason(), "no weight of the model has this name");
  options.weight_features["blk.0.attn_q.weight"] = 8;
  EXPECT_TRUE(open_dataset({npy}, options));
}

// ---- Damaged files: one row per class of damage ----

std::vector<uint8_t> le64(uint64_t v) {
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[i] = uint8_t(v >> (8 * i));
  return out;
}

// A safetensors file with the given JSON header and `data_bytes` zero bytes of data.
std::vector<uint8_t> safetensors(const std::string& json, size_t data_bytes) {
  // Sized once: growing a vector made from a short list trips g++ 12's false -Warray-bounds.
  std::vector<uint8_t> out(8 + json.size() + data_bytes, 0);
  const std::vector<uint8_t> size = le64(json.size());
  std::memcpy(out.data(), size.data(), 8);
  std::memcpy(out.data() + 8, json.data(), json.size());
  return out;
}

std::vector<uint8_t> npy(const std::string& dict, size_t data_bytes, uint8_t major = 1) {
  const uint8_t magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', major, 0, uint8_t(dict.size()), uint8_t(dict.size() >> 8)};
  std::vector<uint8_t> out(10 + dict.size() + data_bytes, 0);
  std::memcpy(out.data(), magic, 10);
  std::memcpy(out.data() + 10, dict.data(), dict.size());
  return out;
}

struct DamageCase {
  const char* what;
  const char* file_name;
  std::function<std::vector<uint8_t>()> make;
  std::string tensor;            // expected Error::tensor()
  std::optional<uint64_t> offset;  // expected Error::offset() when given
  std::string reason;            // expected to appear in Error::reason()
  bool fails_on_read = false;    // opening succeeds; reading the batches fails
};

std::vector<uint8_t> damaged_copy(const std::string& path, const std::function<void(std::vector<uint8_t>&)>& damage) {
  auto bytes = read_bytes(data_path(path));
  damage(bytes);
  return bytes;
}

const std::string kGoodEntry = R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";

std::vector<DamageCase> damage_cases() {
  return {
      {"header length past end of file", "a.safetensors", [] { auto b = safetensors("{" + kGoodEntry + "}", 16); b[0] = 0xff; b[1] = 0x7f; return b; },
       "", 8, "safetensors header runs past end of file"},
      {"header length over the cap", "a.safetensors", [] { auto b = le64(uint64_t(200) << 20); b.push_back('{'); b.resize(64); return b; },
       "", 0, "exceeds the cap of 104857600 bytes"},
      {"header not JSON", "a.safetensors", [] { return safetensors(R"({"a":{"dtype":"F32",)", 0); }, "", std::nullopt,
       "safetensors header is not valid JSON"},
      {"number beyond double's range", "a.safetensors",
       [] { return safetensors(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"x":1E999})", 16); },
       "", 8, "safetensors header holds a value that cannot be read"},
      {"unsupported dtype", "a.safetensors", [] { return safetensors(R"({"a":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})", 16); },
       "a", std::nullopt, "unsupported dtype I32"},
      {"offsets disagree with shape", "a.safetensors", [] { return safetensors(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", 24); },
       "a", std::nullopt, "data_offsets hold 16 bytes but shape and dtype need 24"},
      {"data past end (truncated)", "a.safetensors", [] { return safetensors("{" + kGoodEntry + "}", 12); },
       "a", std::nullopt, "data_offsets end 16 lies past the data section (12 bytes)"},
      {"overlapping offsets", "a.safetensors",
       [] { return safetensors(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F16","shape":[2,2],"data_offsets":[8,16]}})", 16); },
       "b", std::nullopt, "data_offsets [8, 16] overlap those of 'a' [0, 16]"},
      {"duplicate tensor name", "a.safetensors", [] { return safetensors("{" + kGoodEntry + "," + kGoodEntry + "}", 16); },
       "a", std::nullopt, "names this tensor twice"},
      {"one-dimensional shape", "a.safetensors", [] { return safetensors(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 16); },
       "a", std::nullopt, "shape [4] is not [tokens, features] or [batches, tokens, features]"},
      {"negative dimension", "a.safetensors", [] { return safetensors(R"({"a":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}})", 16); },
       "a", std::nullopt, "a shape dimension must be a non-negative integer, got -2"},
      {"dimensions overflow", "a.safetensors",
       [] { return safetensors(R"({"a":{"dtype":"F32","shape":[1099511627776,8192,8192],"data_offsets":[0,16]}})", 16); },
       "a", std::nullopt, "overflows 64-bit sizes"},
      {"offsets leave a gap", "a.safetensors",
       [] { return safetensors(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F16","shape":[2,2],"data_offsets":[20,28]}})", 28); },
       "b", 8 + 114 + 16, "leave bytes 16..20 after 'a' unused"},
      {"bytes after the last tensor", "a.safetensors", [] { return safetensors("{" + kGoodEntry + "}", 20); },
       "", 8 + 57 + 16, "the data section holds 20 bytes but its tensors cover 16"},
      {"npy truncated", "x.npy", [] { return npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }\n", 60); },
       "x", 70, "shape 4x4 needs 64 bytes of data but the file holds 60"},
      {"npy big-endian", "x.npy", [] { return npy("{'descr': '>f4', 'fortran_order': False, 'shape': (4, 4), }\n", 64); },
       "x", std::nullopt, "unsupported dtype '>f4'"},
      {"npy integer dtype", "x.npy", [] { return npy("{'descr': '<i4', 'fortran_order': False, 'shape': (4, 4), }\n", 64); },
       "x", std::nullopt, "unsupported dtype '<i4'"},
      {"npy Fortran order", "x.npy", [] { return npy("{'descr': '<f4', 'fortran_order': True, 'shape': (4, 4), }\n", 64); },
       "x", std::nullopt, "Fortran-order"},
      {"npy header garbage", "x.npy", [] { return npy("{'descr': '<f4', 'fortran_order': False, 'shape': [4, 4], }\n", 64); },
       "", 10 + 50, ".npy header: 'shape' must be a tuple"},
      {"npy missing key", "x.npy", [] { return npy("{'descr': '<f4', 'shape': (4, 4), }\n", 64); },
       "", std::nullopt, "must have the keys 'descr', 'fortran_order' and 'shape'"},
      {"npy header length over file", "x.npy", [] { auto b = npy("{}", 0); b[8] = 0xff; b[9] = 0x00; return b; },
       "", 10, "data ends early (needs 255 bytes, 2 left)"},
      {"npy unknown version", "x.npy", [] { return npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }\n", 4, 9); },
       "", 6, "unsupported .npy format version 9.0"},
      {"zip truncated (no end record)", "x.npz",
       [] { return damaged_copy("npy/stored.npz", [](std::vector<uint8_t>& b) { b.resize(b.size() - 30); }); },
       "", std::nullopt, "no end-of-central-directory record"},
      {"zip member count over the cap", "x.npz",
       [] { return damaged_copy("npy/stored.npz", [](std::vector<uint8_t>& b) { b[b.size() - 12] = 0xff; b[b.size() - 11] = 0xfe; }); },
       "", std::nullopt, "cannot hold 65279 entries"},
      {"zip stored data corrupted (CRC)", "x.npz",
       [] { return damaged_copy("npy/stored.npz", [](std::vector<uint8_t>& b) { b[300] ^= 0x40; }); },
       "blk.1.attn_k.weight", std::nullopt, "zip member CRC-32 mismatch", true},
      {"zip deflate stream corrupted", "x.npz",
       [] { return damaged_copy("npy/deflated.npz", [](std::vector<uint8_t>& b) { for (int i = 150; i < 190; ++i) b[i] = 0xff; }); },
       "blk.1.attn_k.weight", std::nullopt, "", true},
      {"not a dataset file", "x.bin", [] { return std::vector<uint8_t>(64, 'x'); }, "", 0,
       "not a safetensors, .npy or .npz file"},
  };
}

TEST(DamagedFiles, EachClassOfDamageGivesItsError) {
  for (const DamageCase& c : damage_cases()) {
    SCOPED_TRACE(c.what);
    TempFile file(c.file_name, c.make());
    auto reader = open_dataset({file.path()});
    std::optional<Error> error;
    if (!reader) {
      error = reader.error();
    } else {
      Batch batch;
      for (;;) {
        auto more = reader->next(batch);
        if (!more) {
          error = more.error();
          break;
        }
        if (!*more) break;
      }
      EXPECT_TRUE(c.fails_on_read) << "opened although damaged";
    }
    ASSERT_TRUE(error.has_value()) << "no error";
    EXPECT_EQ(error->kind(), ErrorKind::invalid_input) << error->message();
    EXPECT_EQ(error->file(), file.path());
    EXPECT_EQ(error->tensor(), c.tensor) << error->message();
    if (c.offset) {
      EXPECT_EQ(error->offset(), c.offset) << error->message();
    }
    EXPECT_NE(error->reason().find(c.reason), std::string::npos) << error->message();
  }
}

// A consistent file whose one batch is over the memory cap (the header parser accepts it; the dataset refuses).
TEST(DamagedFiles, BatchOverTheMemoryCapIsRefused) {
  TempFile file("a.safetensors", safetensors("{" + kGoodEntry + "}", 16));
  DatasetOptions options;
  options.limits.max_batch_bytes = 8;
  auto reader = open_dataset({file.path()}, options);
  ASSERT_FALSE(reader);
  EXPECT_EQ(reader.error().tensor(), "a");
  EXPECT_NE(reader.error().reason().find("exceeds the cap of 8 bytes"), std::string::npos) << reader.error().message();
}

TEST(DamagedFiles, MissingFileIsAnIoError) {
  auto reader = open_dataset({"/nonexistent/acts.npy"});
  ASSERT_FALSE(reader);
  EXPECT_EQ(reader.error().kind(), ErrorKind::io);
  EXPECT_EQ(reader.error().file(), "/nonexistent/acts.npy");
}

}  // namespace
}  // namespace quant

namespace quant {
namespace {

// Flips random bytes (and cuts random lengths) of every test file: each must read fully or fail with an
// invalid_input error, never crash or fail another way. Run under -DQUANT_SANITIZE=ON to catch bad reads.
TEST(DamagedFiles, RandomlyMutatedFilesFailCleanly) {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto random = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (const char* name : {"npy/blk.0.attn_q.weight.npy", "npy/v2.npy", "npy/stored.npz", "npy/deflated.npz",
                           "safetensors/imatrix-batch2.safetensors"}) {
    const std::vector<uint8_t> original = read_bytes(data_path(name));
    for (int round = 0; round < 300; ++round) {
      std::vector<uint8_t> bytes = original;
      const int flips = 1 + int(random() % 4);
      for (int k = 0; k < flips; ++k) bytes[random() % bytes.size()] ^= uint8_t(1u << (random() % 8));
      if (round % 5 == 0) bytes.resize(random() % bytes.size());
      TempFile file(std::filesystem::path(name).filename().string(), bytes);
      auto reader = open_dataset({file.path()});
      if (!reader) {
        EXPECT_EQ(reader.error().kind(), ErrorKind::invalid_input) << name << " round " << round << ": " << reader.error().message();
        continue;
      }
      Batch batch;
      for (;;) {
        auto more = reader->next(batch);
        if (!more) {
          EXPECT_EQ(more.error().kind(), ErrorKind::invalid_input) << name << " round " << round << ": " << more.error().message();
          break;
        }
        if (!*more) break;
      }
    }
  }
}

}  // namespace
}  // namespace quant
