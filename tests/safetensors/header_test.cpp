// The safetensors parser: every dtype, any rank, __metadata__, and a table of damaged headers (one row per class
// of damage, each with its exact error); the shard index and the check of shards against it.
#include "quant/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include "test_data.h"

namespace quant {
namespace {

// A whole file: the u64 length, the JSON, then `data_bytes` zero bytes.
std::vector<uint8_t> file_bytes(const std::string& json, size_t data_bytes) {
  std::vector<uint8_t> out(8 + json.size() + data_bytes, 0);
  for (int i = 0; i < 8; ++i) out[i] = uint8_t(uint64_t(json.size()) >> (8 * i));
  std::memcpy(out.data() + 8, json.data(), json.size());
  return out;
}

Result<SafetensorsHeader> parse(const std::vector<uint8_t>& bytes, const SafetensorsLimits& limits = {}) {
  auto read_at = [&bytes](uint64_t offset, std::span<uint8_t> out) -> Status {
    if (offset > bytes.size() || out.size() > bytes.size() - offset) return io_error("short read");
    std::memcpy(out.data(), bytes.data() + offset, out.size());
    return Status::success();
  };
  return read_safetensors_header(read_at, bytes.size(), "t.safetensors", limits);
}

TEST(SafetensorsHeader, EveryDtypeAnyRankAndMetadata) {
  // One tensor of each dtype, ranks 0 to 5, in an order that differs from their names' order.
  std::string json = R"({"__metadata__":{"format":"pt","note":"x"})";
  uint64_t offset = 0;
  std::vector<std::pair<std::string, uint64_t>> expected;  // name, bytes
  int rank = 0;
  for (const SafetensorsDtypeInfo& info : all_safetensors_dtypes()) {
    std::vector<uint64_t> shape;
    for (int d = 0; d < rank % 6; ++d) shape.push_back(2);
    if (info.bits < 8) shape.push_back(8);  // sub-byte dtypes need whole bytes
    uint64_t elements = 1;
    for (uint64_t e : shape) elements *= e;
    const uint64_t bytes = elements * info.bits / 8;
    const std::string name = fmt::format("t{}", 99 - rank);
    json += fmt::format(R"(,"{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})", name, info.name,
                        fmt::join(shape, ","), offset, offset + bytes);
    expected.emplace_back(name, bytes);
    offset += bytes;
    ++rank;
  }
  json += "}   ";  // the Python library pads the header with spaces
  auto header = parse(file_bytes(json, offset));
  ASSERT_TRUE(header) << header.error().message();
  ASSERT_EQ(header->tensors.size(), all_safetensors_dtypes().size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(header->tensors[i].name, expected[i].first);  // data order
    EXPECT_EQ(header->tensors[i].byte_size(), expected[i].second);
    EXPECT_EQ(header->tensors[i].dtype, all_safetensors_dtypes()[i].dtype);
    EXPECT_EQ(header->tensors[i].file_offset, 8 + json.size() + header->tensors[i].begin);
  }
  EXPECT_EQ(header->tensors[0].shape.size(), 0u);  // a scalar
  EXPECT_EQ(header->tensors[0].element_count, 1u);
  ASSERT_EQ(header->metadata.size(), 2u);
  EXPECT_EQ(header->metadata[0], (std::pair<std::string, std::string>("format", "pt")));
  const auto sorted = header->by_name();
  EXPECT_EQ(sorted.front()->name, "t80");
  EXPECT_EQ(header->find("t99")->dtype, SafetensorsDtype::boolean);
  EXPECT_EQ(header->find("nope"), nullptr);
}

TEST(SafetensorsHeader, RealFileFromThePythonLibrary) {
  const std::string path = testing::data_path("safetensors/model2vec-int8.safetensors");
  auto header = parse(testing::read_bytes(path));
  ASSERT_TRUE(header) << header.error().message();
  ASSERT_EQ(header->tensors.size(), 1u);
  EXPECT_EQ(header->tensors[0].name, "embeddings");
  EXPECT_EQ(header->tensors[0].dtype, SafetensorsDtype::i8);
  EXPECT_EQ(header->tensors[0].shape, (std::vector<uint64_t>{29528, 2}));
}

struct Damage {
  const char* what;
  std::vector<uint8_t> bytes;
  std::string tensor;
  std::optional<uint64_t> offset;
  std::string reason;
};

const std::string kA = R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";

std::vector<Damage> damages() {
  std::vector<Damage> cases = {
      {"shorter than the length", {1, 2, 3}, "", 0, "too short for a safetensors header"},
      {"length past the end", [] { auto b = file_bytes("{" + kA + "}", 16); b[1] = 1; return b; }(), "", 8,
       "safetensors header runs past end of file"},
      {"length over the cap", [] { auto b = file_bytes("{}", 0); b[4] = 1; b.resize(64); return b; }(), "", 0,
       "exceeds the cap of 104857600 bytes"},
      {"not starting with a brace", file_bytes(" {" + kA + "}", 16), "", 8, "must start with '{'"},
      {"not JSON", file_bytes(R"({"a":{"dtype":)", 0), "", std::nullopt, "not valid JSON"},
      {"not an object", file_bytes("{}", 0), "", std::nullopt, ""},  // valid: no tensors, no data
      {"unknown dtype", file_bytes(R"({"a":{"dtype":"F12","shape":[1],"data_offsets":[0,2]}})", 2), "a",
       std::nullopt, "unknown dtype \"F12\""},
      {"missing shape", file_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4), "a", std::nullopt,
       "missing or non-array \"shape\""},
      {"negative dimension", file_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "a",
       std::nullopt, "a shape dimension must be a non-negative integer, got -1"},
      {"fractional dimension", file_bytes(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4), "a",
       std::nullopt, "got 1.5"},
      {"shape overflows", file_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4),
       "a", std::nullopt, "overflows 64-bit sizes"},
      {"bytes overflow", file_bytes(R"({"a":{"dtype":"F64","shape":[4294967296,536870912],"data_offsets":[0,4]}})", 4),
       "a", std::nullopt, "overflows 64-bit sizes"},
      {"rank over the cap",
       [] {
         std::string dims = "1";
         for (int i = 0; i < 64; ++i) dims += ",1";
         return file_bytes(R"({"a":{"dtype":"F32","shape":[)" + dims + R"(],"data_offsets":[0,4]}})", 4);
       }(),
       "a", std::nullopt, "shape has 65 dimensions, over the cap of 64"},
      {"offsets backwards", file_bytes(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4), "a",
       std::nullopt, "run backwards"},
      {"offsets past the data", file_bytes("{" + kA + "}", 12), "a", std::nullopt,
       "data_offsets end 16 lies past the data section (12 bytes)"},
      {"size disagrees with the shape", file_bytes(R"({"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}})", 4),
       "a", 8 + 55, "data_offsets hold 4 bytes but shape and dtype need 6"},
      {"sub-byte tensor not filling bytes", file_bytes(R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}})", 1),
       "a", std::nullopt, "do not fill whole bytes"},
      {"overlap", file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
       "b", std::nullopt, "data_offsets [4, 8] overlap those of 'a' [0, 8]"},
      {"gap at the start", file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "a",
       std::nullopt, "after the start of the data section unused"},
      {"trailing bytes", file_bytes("{" + kA + "}", 17), "", 8 + 57 + 16,
       "the data section holds 17 bytes but its tensors cover 16"},
      {"tensor named twice", file_bytes("{" + kA + "," + kA + "}", 16), "a", std::nullopt, "names this tensor twice"},
      {"metadata not strings", file_bytes(R"({"__metadata__":{"k":1}})", 0), "", std::nullopt,
       "__metadata__ value for 'k' is not a string"},
      {"invalid UTF-8 name", file_bytes("{\"\xff\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0), "",
       std::nullopt, "not valid JSON"},
  };
  return cases;
}

TEST(SafetensorsHeader, EachClassOfDamageGivesItsError) {
  for (const Damage& c : damages()) {
    SCOPED_TRACE(c.what);
    auto header = parse(c.bytes);
    if (std::string(c.what) == "not an object") {
      EXPECT_TRUE(header) << header.error().message();  // "{}" is a valid empty file
      continue;
    }
    ASSERT_FALSE(header);
    const Error& error = header.error();
    EXPECT_EQ(error.kind(), ErrorKind::invalid_input) << error.message();
    EXPECT_EQ(error.file(), "t.safetensors");
    EXPECT_EQ(error.tensor(), c.tensor) << error.message();
    if (c.offset) {
      EXPECT_EQ(error.offset(), c.offset) << error.message();
    }
    EXPECT_NE(error.reason().find(c.reason), std::string::npos) << error.message();
  }
}

TEST(SafetensorsHeader, TensorCountCapIsCheckedBeforeTheEntries) {
  SafetensorsLimits limits;
  limits.max_tensors = 1;
  auto header = parse(file_bytes(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"c":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", 0), limits);
  ASSERT_FALSE(header);
  EXPECT_NE(header.error().reason().find("over the cap of 1"), std::string::npos);
}

// --- the shard index ---

TEST(SafetensorsIndex, ParsesTheWeightMapAndShards) {
  auto index = parse_safetensors_index(
      R"({"metadata":{"total_size":24},"weight_map":{"b":"m-2.safetensors","a":"m-1.safetensors","c":"m-2.safetensors"}})",
      "i.json");
  ASSERT_TRUE(index) << index.error().message();
  EXPECT_EQ(index->total_size, 24u);
  ASSERT_EQ(index->shards.size(), 2u);
  EXPECT_EQ(index->shards[0], "m-1.safetensors");
  EXPECT_EQ(index->weight_map[0].first, "b");
}

TEST(SafetensorsIndex, DamagedIndexesAreRefused) {
  const std::pair<const char*, const char*> cases[] = {
      {"[]", "not a JSON object"},
      {R"({"metadata":{}})", "no \"weight_map\""},
      {R"({"weight_map":{}})", "weight_map is empty"},
      {R"({"weight_map":{"a":3}})", "not a file name"},
      {R"({"weight_map":{"a":"../x.safetensors"}})", "not a file name in the checkpoint folder"},
      {R"({"weight_map":{"a":"x.safetensors","a":"y.safetensors"}})", "lists this name twice"},
      {R"({"weight_map":)", "not valid JSON"},
  };
  for (const auto& [json, reason] : cases) {
    SCOPED_TRACE(json);
    auto index = parse_safetensors_index(json, "i.json");
    ASSERT_FALSE(index);
    EXPECT_EQ(index.error().file(), "i.json");
    EXPECT_NE(index.error().reason().find(reason), std::string::npos) << index.error().message();
  }
}

SafetensorsHeader header_of(const std::string& json, size_t data) {
  auto header = parse(file_bytes(json, data));
  EXPECT_TRUE(header) << header.error().message();
  return header ? *header : SafetensorsHeader{};
}

TEST(SafetensorsIndex, ShardsAreCheckedAgainstTheIndex) {
  auto index = parse_safetensors_index(R"({"weight_map":{"a":"1.safetensors","b":"2.safetensors"}})", "i.json");
  ASSERT_TRUE(index);
  const std::string paths[] = {"d/1.safetensors", "d/2.safetensors"};
  const SafetensorsHeader a = header_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  const SafetensorsHeader b = header_of(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  const SafetensorsHeader ab = header_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8);
  const SafetensorsHeader empty = header_of("{}", 0);
  {
    const SafetensorsHeader* headers[] = {&a, &b};
    EXPECT_TRUE(check_shards(*index, "i.json", paths, headers));
  }
  {
    const SafetensorsHeader* headers[] = {&ab, &b};
    Status s = check_shards(*index, "i.json", paths, headers);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().tensor(), "b");
    EXPECT_NE(s.error().reason().find("stored in two shards"), std::string::npos) << s.error().message();
  }
  {
    const SafetensorsHeader* headers[] = {&a, &empty};
    Status s = check_shards(*index, "i.json", paths, headers);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().tensor(), "b");
    EXPECT_NE(s.error().reason().find("2.safetensors, which does not hold it"), std::string::npos);
  }
  {
    const SafetensorsHeader* headers[] = {&b, &a};
    Status s = check_shards(*index, "i.json", paths, headers);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().reason().find("but it is stored in 2.safetensors"), std::string::npos) << s.error().message();
  }
  {
    auto small = parse_safetensors_index(R"({"weight_map":{"a":"1.safetensors"}})", "i.json");
    const std::string one[] = {"d/1.safetensors"};
    const SafetensorsHeader* headers[] = {&ab};
    Status s = check_shards(*small, "i.json", one, headers);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().tensor(), "b");
    EXPECT_NE(s.error().reason().find("not listed in the index"), std::string::npos);
  }
}

}  // namespace
}  // namespace quant
