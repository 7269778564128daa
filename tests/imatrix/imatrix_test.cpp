// Importance matrices: llama-imatrix's real files (GGUF and .dat of one run), our writers reproducing them byte
// for byte, the accumulation against the calibration reference, llama-quantize's filters and recorded keys, and
// a table of damaged files.
#include "quant/imatrix.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "quant/dataset.h"
#include "quant/gguf.h"
#include "test_data.h"
#include "test_files.h"

namespace quant {
namespace {

using testing::data_path;
using testing::read_bytes;

// A scratch path for this test process (the folder goes when the process ends).
std::string temp_path(const std::string& name) {
  static const testing::TempDir dir("quant-imatrix-test");
  return dir / name;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

ImportanceMatrix must_read(const std::string& path) {
  auto imatrix = read_imatrix(path);
  EXPECT_TRUE(imatrix) << imatrix.error().message();
  return imatrix ? std::move(imatrix).value() : ImportanceMatrix{};
}

// The raw sums and counts of a matrix read from GGUF, in the accumulator's shape (dense weights only).
std::map<std::string, ImatrixAccumulator::Sums> stored_sums(const ImportanceMatrix& imatrix) {
  std::map<std::string, ImatrixAccumulator::Sums> sums;
  for (const auto& [name, entry] : imatrix.entries) {
    EXPECT_EQ(entry.n_expert, 1);
    sums[name] = {entry.stored_sums, {static_cast<int64_t>(entry.stored_counts.at(0))}, 0};
  }
  return sums;
}

// ---- Reading llama-imatrix's files ----

TEST(ReadImatrix, Stories260KGguf) {
  const ImportanceMatrix m = must_read(data_path("imatrix/stories260K.imatrix.gguf"));
  EXPECT_EQ(m.format, ImatrixFormat::gguf);
  EXPECT_EQ(m.datasets, std::vector<std::string>{"calib.txt"});
  EXPECT_EQ(m.chunk_count, 20);
  EXPECT_EQ(m.chunk_size, 128);
  EXPECT_EQ(m.entries.size(), 35u);
  const ImportanceEntry* q = m.find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->n_per_row, 64);
  EXPECT_EQ(q->n_expert, 1);
  ASSERT_EQ(q->values.size(), 64u);
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(q->values[i], q->stored_sums[i] / q->stored_counts[0]);
  EXPECT_EQ(m.find("output.weight"), nullptr);  // llama-imatrix collects blk.* only by default
  const ImportanceEntry* down = m.find("blk.4.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->n_per_row, 172);
}

TEST(ReadImatrix, DatAndGgufOfTheSameRunGiveTheSameWeights) {
  const ImportanceMatrix gguf = must_read(data_path("imatrix/stories260K.imatrix.gguf"));
  const ImportanceMatrix dat = must_read(data_path("imatrix/stories260K.imatrix.dat"));
  EXPECT_EQ(dat.format, ImatrixFormat::dat);
  EXPECT_EQ(dat.datasets, std::vector<std::string>{"calib.txt"});
  EXPECT_EQ(dat.chunk_count, 20);
  ASSERT_EQ(dat.entries.size(), gguf.entries.size());
  for (const auto& [name, g] : gguf.entries) {
    const ImportanceEntry* d = dat.find(name);
    ASSERT_NE(d, nullptr) << name;
    ASSERT_EQ(d->values.size(), g.values.size()) << name;
    EXPECT_EQ(d->stored_counts, std::vector<float>{20.0f}) << name;  // ncall = 2560 tokens / 128
    for (size_t i = 0; i < g.values.size(); ++i) {
      // .dat stores (sum / count) * ncall and the reader divides by ncall again: two roundings.
      EXPECT_NEAR(d->values[i], g.values[i], 2e-7 * std::fabs(g.values[i])) << name << "[" << i << "]";
    }
  }
}

TEST(ReadImatrix, Rows256AndTinyLlama) {
  const ImportanceMatrix rows = must_read(data_path("imatrix/rows256.imatrix.gguf"));
  EXPECT_EQ(rows.entries.size(), 37u);
  EXPECT_EQ(rows.datasets, std::vector<std::string>{"synthetic"});
  ASSERT_NE(rows.find("output.weight"), nullptr);
  const ImportanceMatrix tiny = must_read(data_path("imatrix/tiny-llama.imatrix.gguf"));
  EXPECT_EQ(tiny.entries.size(), 28u);
  EXPECT_EQ(tiny.chunk_count, 103);
  EXPECT_EQ(tiny.chunk_size, 256);
  for (const auto& [name, entry] : tiny.entries) {
    for (float v : entry.values) ASSERT_TRUE(std::isfinite(v) && v >= 0) << name;
  }
}

// ---- What llama-quantize records, checked against the keys in its outputs (shared/reference/llama-quantize:
// stories260K-Q4_K_M-imat.gguf, stories260K-rows256-*-imat.gguf and tiny-llama-Q4_K_M-imat.gguf) ----

TEST(ImatrixRecord, MatchesWhatLlamaQuantizeWrote) {
  struct Case { const char* file; const char* dataset; uint32_t entries; uint32_t chunks; };
  for (const Case& c : {Case{"stories260K.imatrix.gguf", "calib.txt", 35, 20}, Case{"stories260K.imatrix.dat", "calib.txt", 35, 20},
                        Case{"rows256.imatrix.gguf", "synthetic", 37, 4}, Case{"tiny-llama.imatrix.gguf", "code-calib.txt", 28, 103}}) {
    SCOPED_TRACE(c.file);
    const auto record = imatrix_record(must_read(data_path(std::string("imatrix/") + c.file)), c.file);
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->file, c.file);
    EXPECT_EQ(record->dataset, std::optional<std::string>(c.dataset));
    EXPECT_EQ(record->entries_count, c.entries);
    EXPECT_EQ(record->chunks_count, std::optional<uint32_t>(c.chunks));
  }
}

TEST(ImatrixRecord, LongPathsAreCutTo127BytesAndEmptyMatricesRecordNothing) {
  ImportanceMatrix m = must_read(data_path("imatrix/stories260K.imatrix.dat"));
  const std::string long_path(300, 'p');
  EXPECT_EQ(imatrix_record(m, long_path)->file, std::string(127, 'p'));
  ASSERT_TRUE(filter_imatrix(m, {"no-such-weight"}, {}));
  EXPECT_FALSE(imatrix_record(m, "x").has_value());
}

TEST(FilterImatrix, IncludeKeepsAndExcludeDropsBySubstring) {
  ImportanceMatrix m = must_read(data_path("imatrix/stories260K.imatrix.gguf"));
  ImportanceMatrix included = m;
  ASSERT_TRUE(filter_imatrix(included, {"attn_q", "ffn_up"}, {}));
  EXPECT_EQ(included.entries.size(), 10u);  // 5 layers x 2
  for (const auto& [name, entry] : included.entries) {
    EXPECT_TRUE(name.find("attn_q") != std::string::npos || name.find("ffn_up") != std::string::npos) << name;
  }
  ImportanceMatrix excluded = m;
  ASSERT_TRUE(filter_imatrix(excluded, {}, {"blk.0.", "ffn"}));
  EXPECT_EQ(excluded.entries.size(), 16u);  // layers 1-4, attn_{q,k,v,output}
  EXPECT_EQ(imatrix_record(excluded, "f")->entries_count, 16u);
  const Status both = filter_imatrix(m, {"a"}, {"b"});
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().kind(), ErrorKind::usage);
}

// ---- Writing: our writers reproduce llama-imatrix's bytes ----

TEST(WriteImatrix, GgufRoundTripIsByteIdenticalToLlamaImatrix) {
  for (const char* name : {"stories260K.imatrix.gguf", "rows256.imatrix.gguf", "tiny-llama.imatrix.gguf"}) {
    SCOPED_TRACE(name);
    const ImportanceMatrix m = must_read(data_path(std::string("imatrix/") + name));
    const std::string out = temp_path(name);
    const Status written = write_imatrix_gguf(out, stored_sums(m), {m.datasets, m.chunk_count, m.chunk_size});
    ASSERT_TRUE(written) << written.error().message();
    EXPECT_EQ(read_bytes(out), read_bytes(data_path(std::string("imatrix/") + name)));
    std::filesystem::remove(out);
  }
}

TEST(WriteImatrix, DatFromTheGgufSumsIsByteIdenticalToLlamaImatrixDat) {
  const ImportanceMatrix m = must_read(data_path("imatrix/stories260K.imatrix.gguf"));
  const std::string out = temp_path("stories260K.imatrix.dat");
  const Status written = write_imatrix_dat(out, stored_sums(m), {m.datasets, m.chunk_count, m.chunk_size});
  ASSERT_TRUE(written) << written.error().message();
  EXPECT_EQ(read_bytes(out), read_bytes(data_path("imatrix/stories260K.imatrix.dat")));
  std::filesystem::remove(out);
}

// ---- Accumulation against the calibration reference (reference/calibration/data/imatrix.json) ----

TEST(Accumulate, MatchesTheCalibrationReference) {
  std::ifstream json_file(data_path("imatrix/calibration-imatrix.json"));
  const nlohmann::json reference = nlohmann::json::parse(json_file)["expected"]["llama_cpp_imatrix"];
  std::vector<std::string> files;
  for (int i = 0; i < 4; ++i) files.push_back(data_path("safetensors/imatrix-batch" + std::to_string(i) + ".safetensors"));
  auto reader = open_dataset(files);
  ASSERT_TRUE(reader) << reader.error().message();
  ImatrixAccumulator acc;
  std::vector<int64_t> used;
  Batch batch;
  for (;;) {
    auto more = reader->next(batch);
    ASSERT_TRUE(more) << more.error().message();
    if (!*more) break;
    auto added = acc.add_batch(batch.tensor, batch.tokens, batch.features, batch.values.data());
    ASSERT_TRUE(added) << added.error().message();
    if (*added) used.push_back(batch.index);
  }
  EXPECT_EQ(used, reference["batches_used"].get<std::vector<int64_t>>());
  ASSERT_EQ(acc.sums().size(), 1u);
  const auto& sums = acc.sums().at("blk.0.attn_q.weight");
  EXPECT_EQ(sums.counts, std::vector<int64_t>{reference["counts"].get<int64_t>()});
  const auto sequential = reference["in_sum2_f32_sequential"].get<std::vector<double>>();
  const auto mean_sq = reference["importance_mean_sq(in_sum2/counts)"].get<std::vector<double>>();
  ASSERT_EQ(sums.in_sum2.size(), sequential.size());
  for (size_t j = 0; j < sequential.size(); ++j) {
    EXPECT_EQ(sums.in_sum2[j], static_cast<float>(sequential[j])) << j;  // bit-exact float32 sums
    EXPECT_NEAR(sums.in_sum2[j] / float(sums.counts[0]), mean_sq[j], 1e-5 * mean_sq[j]) << j;
  }
  EXPECT_EQ(acc.chunk_count(), 3);
  EXPECT_EQ(acc.chunk_size(), 38);  // ceil(112 / 3)
}

TEST(Accumulate, SmallBatchesAreSkippedAndFeatureCountsMustAgree) {
  ImatrixAccumulator acc;
  std::vector<float> values(16 * 4, 0.5f);
  auto skipped = acc.add_batch("w", 15, 4, values.data());
  ASSERT_TRUE(skipped);
  EXPECT_FALSE(*skipped);
  EXPECT_TRUE(acc.sums().empty());
  ASSERT_TRUE(acc.add_batch("w", 16, 4, values.data()));
  EXPECT_EQ(acc.sums().at("w").in_sum2, std::vector<float>(4, 4.0f));
  auto mismatch = acc.add_batch("w", 8, 8, values.data());  // too small: skipped before any check
  EXPECT_TRUE(mismatch && !*mismatch);
  auto wrong = acc.add_batch("w", 16, 2, values.data());
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind(), ErrorKind::invalid_input);
  values[5] = 1e30f;
  auto overflow = acc.add_batch("v", 16, 4, values.data());
  ASSERT_FALSE(overflow);
  EXPECT_EQ(overflow.error().tensor(), "v");
}

// ---- Damaged files ----

void put_i32(std::vector<uint8_t>& out, int32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(uint32_t(v) >> (8 * i)));
}

std::vector<uint8_t> dat_file(int32_t n_entries, int32_t name_length, const std::string& name, int32_t ncall, int32_t nval,
                              std::vector<float> values) {
  std::vector<uint8_t> out;
  put_i32(out, n_entries);
  put_i32(out, name_length);
  out.insert(out.end(), name.begin(), name.end());
  put_i32(out, ncall);
  put_i32(out, nval);
  for (float v : values) {
    uint8_t b[4];
    std::memcpy(b, &v, 4);
    out.insert(out.end(), b, b + 4);
  }
  return out;
}

struct DatDamage {
  const char* what;
  std::function<std::vector<uint8_t>()> make;
  std::string tensor;
  std::string reason;
};

TEST(DamagedDat, EachClassOfDamageGivesItsError) {
  const float nan = std::nanf("");
  const std::vector<DatDamage> cases = {
      {"no entries", [] { return dat_file(0, 1, "w", 1, 1, {1}); }, "", "entry count 0"},
      {"entry count beyond the file", [] { return dat_file(1000, 1, "w", 1, 1, {1}); }, "", "does not fit the file"},
      {"name length negative", [] { return dat_file(1, -5, "w", 1, 1, {1}); }, "", "name length -5"},
      {"name past the end", [] { return dat_file(1, 4000, "w", 1, 1, {1}); }, "", "name length 4000"},
      {"no values", [] { return dat_file(1, 1, "w", 1, 0, {1}); }, "w", "value count 0"},
      {"values past the end", [] { return dat_file(1, 1, "w", 1, 3, {1, 2}); }, "w", "value count 3"},
      {"negative ncall", [] { return dat_file(1, 1, "w", -2, 1, {1}); }, "w", "negative call count -2"},
      {"non-finite value", [nan] { return dat_file(1, 1, "w", 1, 2, {1, nan}); }, "w", "value 1 is not finite"},
      {"truncated trailer", [] { auto b = dat_file(1, 1, "w", 1, 1, {1}); b.push_back(3); return b; }, "", "truncated trailer"},
      {"dataset length lies", [] { auto b = dat_file(1, 1, "w", 1, 1, {1}); put_i32(b, 5); put_i32(b, 9); b.push_back('x'); return b; },
       "", "dataset name length 9 does not match the 1 bytes left"},
      {"duplicate entry", [] {
         auto b = dat_file(2, 1, "w", 1, 1, {1});
         auto second = dat_file(0, 1, "w", 1, 1, {2});
         b.insert(b.end(), second.begin() + 4, second.end());
         return b; }, "w", "entry appears twice"},
  };
  for (const DatDamage& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string path = temp_path("damaged.dat");
    write_bytes(path, c.make());
    auto m = read_imatrix(path);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().kind(), ErrorKind::invalid_input) << m.error().message();
    EXPECT_EQ(m.error().file(), path);
    EXPECT_EQ(m.error().tensor(), c.tensor) << m.error().message();
    EXPECT_NE(m.error().reason().find(c.reason), std::string::npos) << m.error().message();
  }
}

// A GGUF file built with our writer from a list of (name, type, shape, float values) and optional metadata.
struct GgufTensor { std::string name; TypeId type; std::vector<int64_t> shape; std::vector<float> values; };

std::string make_gguf(const std::string& file_name, const std::vector<GgufTensor>& tensors, bool with_metadata = true) {
  const std::string path = temp_path(file_name);
  auto writer = GgufWriter::create(path);
  EXPECT_TRUE(writer);
  EXPECT_TRUE(writer->add_metadata("general.type", Value::string("imatrix")));
  if (with_metadata) {
    const std::vector<std::string> datasets = {"d.txt"};
    EXPECT_TRUE(writer->add_metadata("imatrix.datasets", Value::array_of_strings(std::span<const std::string>(datasets))));
    EXPECT_TRUE(writer->add_metadata("imatrix.chunk_count", Value::u32(1)));
    EXPECT_TRUE(writer->add_metadata("imatrix.chunk_size", Value::u32(16)));
  }
  for (const GgufTensor& t : tensors) EXPECT_TRUE(writer->add_tensor(t.name, t.type, t.shape));
  EXPECT_TRUE(writer->begin());
  for (const GgufTensor& t : tensors) {
    if (t.type == TypeId::f32) {
      EXPECT_TRUE(writer->write_tensor(t.name, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(t.values.data()), t.values.size() * 4)));
    } else {  // f16: two bytes a value, zeros are enough here
      std::vector<uint8_t> zeros(t.values.size() * 2, 0);
      EXPECT_TRUE(writer->write_tensor(t.name, zeros));
    }
  }
  OutputPolicy replace;
  replace.overwrite = true;  // every case writes the same scratch file
  EXPECT_TRUE(writer->commit(replace));
  return path;
}

TEST(DamagedGguf, EachClassOfDamageGivesItsError) {
  const float inf = INFINITY;
  struct Case { const char* what; std::vector<GgufTensor> tensors; bool metadata; std::string tensor; std::string reason; };
  const std::vector<Case> cases = {
      {"missing metadata", {{"w.in_sum2", TypeId::f32, {2}, {1, 2}}, {"w.counts", TypeId::f32, {1}, {16}}}, false, "",
       "missing imatrix metadata"},
      {"sums without counts", {{"w.in_sum2", TypeId::f32, {2}, {1, 2}}}, true, "w", "mismatched sums and counts"},
      {"counts without sums", {{"w.counts", TypeId::f32, {1}, {16}}}, true, "w", "mismatched sums and counts"},
      {"sums not F32", {{"w.in_sum2", TypeId::f16, {2}, {1, 2}}, {"w.counts", TypeId::f32, {1}, {16}}}, true, "w.in_sum2",
       "must be F32"},
      {"counts do not match experts", {{"w.in_sum2", TypeId::f32, {2, 2}, {1, 2, 3, 4}}, {"w.counts", TypeId::f32, {1}, {16}}}, true, "w",
       "1 counts for 2 experts"},
      {"non-finite sum", {{"w.in_sum2", TypeId::f32, {2}, {1, inf}}, {"w.counts", TypeId::f32, {1}, {16}}}, true, "w.in_sum2",
       "value 1 is not finite"},
      {"negative count", {{"w.in_sum2", TypeId::f32, {2}, {1, 2}}, {"w.counts", TypeId::f32, {1}, {-16}}}, true, "w",
       "negative count"},
      {"no pairs at all", {{"w.other", TypeId::f32, {2}, {1, 2}}}, true, "", "no W.in_sum2 / W.counts tensor pairs"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string path = make_gguf("damaged.gguf", c.tensors, c.metadata);
    auto m = read_imatrix(path);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().kind(), ErrorKind::invalid_input) << m.error().message();
    EXPECT_EQ(m.error().tensor(), c.tensor) << m.error().message();
    EXPECT_NE(m.error().reason().find(c.reason), std::string::npos) << m.error().message();
  }
}

TEST(DamagedGguf, ZeroCountMeansImportanceOneAndExpertsAreSlices) {
  const std::string path = make_gguf("experts.gguf", {{"w.in_sum2", TypeId::f32, {2, 2}, {4, 8, 3, 5}},
                                                      {"w.counts", TypeId::f32, {1, 2}, {4, 0}}});
  const ImportanceMatrix m = must_read(path);
  const ImportanceEntry* w = m.find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->n_expert, 2);
  EXPECT_EQ(w->values, (std::vector<float>{1, 2, 1, 1}));
}

TEST(DamagedGguf, TruncatedGgufReportsTheGgufError) {
  auto bytes = read_bytes(data_path("imatrix/stories260K.imatrix.gguf"));
  bytes.resize(bytes.size() - 100);
  const std::string path = temp_path("truncated.gguf");
  write_bytes(path, bytes);
  auto m = read_imatrix(path);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind(), ErrorKind::invalid_input);
  EXPECT_EQ(m.error().file(), path);
  EXPECT_EQ(m.error().reason().find("entry count"), std::string::npos) << "reported as .dat: " << m.error().message();
}

}  // namespace
}  // namespace quant

namespace quant {
namespace {

// Flips random bytes (and cuts random lengths) of the real imatrix files: each must read or fail with an
// invalid_input error, never crash. Run under -DQUANT_SANITIZE=ON to catch bad reads.
TEST(DamagedFiles, RandomlyMutatedImatrixFilesFailCleanly) {
  uint64_t state = 0x2545f4914f6cdd1dull;
  auto random = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (const char* name : {"imatrix/stories260K.imatrix.dat", "imatrix/stories260K.imatrix.gguf"}) {
    const std::vector<uint8_t> original = read_bytes(data_path(name));
    for (int round = 0; round < 300; ++round) {
      std::vector<uint8_t> bytes = original;
      const int flips = 1 + int(random() % 4);
      for (int k = 0; k < flips; ++k) {
        // Aim half the flips at the header, where the counts and lengths are.
        const size_t limit = k % 2 == 0 ? std::min<size_t>(bytes.size(), 4500) : bytes.size();
        bytes[random() % limit] ^= uint8_t(1u << (random() % 8));
      }
      if (round % 5 == 0) bytes.resize(random() % bytes.size());
      const std::string path = temp_path("mutated.imatrix");
      write_bytes(path, bytes);
      auto m = read_imatrix(path);
      if (!m) {
        EXPECT_EQ(m.error().kind(), ErrorKind::invalid_input) << name << " round " << round << ": " << m.error().message();
      }
    }
  }
}

}  // namespace
}  // namespace quant
