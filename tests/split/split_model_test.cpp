// SplitModel, the split-set reader: a set of shards read as one model from any of them, and one hand-made set per
// way a set can be wrong, each asserting the error's kind, the shard it names and its reason. The shards are
// written with GgufWriter (split keys as llama-gguf-split writes them; tests/cli/split_test.cpp checks those bytes
// against llama-gguf-split's own).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "quant/model_source.h"
#include "quant/split.h"
#include "split/scratch_folder.h"

namespace quant {
namespace {

namespace fs = std::filesystem;


// Tensor i of the test model: "t<i>", 8 f32 values i*8 .. i*8+7.
std::string tensor_name(int i) {
  std::string name = "t";
  name += std::to_string(i);
  return name;
}

std::vector<float> tensor_values(int i) {
  std::vector<float> values(8);
  for (int k = 0; k < 8; ++k) values[size_t(k)] = float(i * 8 + k);
  return values;
}

// One shard to write: its metadata and the tensors (by number) it holds.
struct ShardSpec {
  std::vector<KeyValue> metadata;
  std::vector<int> tensors;
};

void write_shard(const std::string& path, const ShardSpec& spec) {
  auto writer = GgufWriter::create(path);
  ASSERT_TRUE(writer) << writer.error().message();
  for (const KeyValue& kv : spec.metadata) ASSERT_TRUE(writer->add_metadata(kv.key, kv.value));
  for (int t : spec.tensors) ASSERT_TRUE(writer->add_tensor(tensor_name(t), TypeId::f32, {8}));
  ASSERT_TRUE(writer->begin());
  for (int t : spec.tensors) {
    const std::vector<float> values = tensor_values(t);
    ASSERT_TRUE(writer->write_tensor(tensor_name(t),
                                     std::span(reinterpret_cast<const uint8_t*>(values.data()), 32)));
  }
  ASSERT_TRUE(writer->commit());
}

// A good set: 9 tensors in 4 shards (3, 2, 3, 1), the first with the model's metadata.
std::vector<ShardSpec> good_set() {
  const std::vector<std::vector<int>> groups = {{0, 1, 2}, {3, 4}, {5, 6, 7}, {8}};
  const std::vector<KeyValue> model = {{"general.architecture", Value::string("test")},
                                       {"test.block_count", Value::u32(1)}};
  std::vector<ShardSpec> set;
  for (uint32_t i = 0; i < groups.size(); ++i) {
    set.push_back({shard_metadata(model, i, uint32_t(groups.size()), 9, SplitKeyOrder::gguf_split), groups[i]});
  }
  return set;
}

void set_key(ShardSpec& shard, const std::string& key, Value value) {
  for (KeyValue& kv : shard.metadata) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  shard.metadata.push_back({key, std::move(value)});
}

void remove_key(ShardSpec& shard, const std::string& key) {
  std::erase_if(shard.metadata, [&](const KeyValue& kv) { return kv.key == key; });
}

std::vector<std::string> write_set(const testing::ScratchFolder& dir, const std::vector<ShardSpec>& set,
                                   const std::string& prefix = "model") {
  std::vector<std::string> paths;
  for (uint32_t i = 0; i < set.size(); ++i) {
    paths.push_back(dir / split_path(prefix, i, uint32_t(set.size())));
    write_shard(paths.back(), set[i]);
  }
  return paths;
}

TEST(SplitModel, AnyShardOpensTheWholeModel) {
  testing::ScratchFolder dir;
  const std::vector<std::string> paths = write_set(dir, good_set());
  uint64_t bytes = 0;
  for (const std::string& p : paths) bytes += fs::file_size(p);
  for (const std::string& named : paths) {
    SCOPED_TRACE(named);
    Result<std::unique_ptr<ModelSource>> opened = open_model(named);
    ASSERT_TRUE(opened) << opened.error().message();
    const ModelSource& model = **opened;
    EXPECT_EQ(model.path(), named);
    EXPECT_EQ(model.input_bytes(), bytes);
    EXPECT_EQ(model.split_count(), 4u);
    ASSERT_NE(model.find("general.architecture"), nullptr);  // the first shard's metadata
    EXPECT_EQ(model.find("split.no")->as<uint16_t>(), 0);
    ASSERT_EQ(model.tensors().size(), 9u);
    const uint32_t shard_of[9] = {0, 0, 0, 1, 1, 2, 2, 2, 3};
    for (int t = 0; t < 9; ++t) {
      const TensorInfo& tensor = model.tensors()[size_t(t)];
      EXPECT_EQ(tensor.name, tensor_name(t));
      EXPECT_EQ(model.find_tensor(tensor.name), &tensor);
      EXPECT_EQ(model.split_index_of(tensor), shard_of[t]);
      EXPECT_EQ(model.file_of(tensor), paths[shard_of[t]]);
      Result<std::vector<uint8_t>> data = model.read_tensor_data(tensor);
      ASSERT_TRUE(data);
      const std::vector<float> expected = tensor_values(t);
      EXPECT_EQ(std::memcmp(data->data(), expected.data(), 32), 0) << tensor.name;
      // A part of a tensor, as the converter reads chunks.
      std::vector<uint8_t> part(8);
      ASSERT_TRUE(model.read_tensor(tensor, 12, part));
      EXPECT_EQ(std::memcmp(part.data(), reinterpret_cast<const uint8_t*>(expected.data()) + 12, 8), 0);
    }
    const auto* split = dynamic_cast<const SplitModel*>(&model);
    ASSERT_NE(split, nullptr);
    EXPECT_EQ(split->prefix(), dir / "model");
    EXPECT_EQ(split->shards().size(), 4u);
  }
}

TEST(SplitModel, OneShardSetAndPlainFiles) {
  testing::ScratchFolder dir;
  // A file with split.count 1 is a set of one when opened as a split model, and a plain file for open_model.
  ShardSpec only{shard_metadata({}, 0, 1, 2, SplitKeyOrder::gguf_split), {0, 1}};
  const std::string path = dir / "one-00001-of-00001.gguf";
  write_shard(path, only);
  Result<std::unique_ptr<SplitModel>> set = SplitModel::open(path);
  ASSERT_TRUE(set) << set.error().message();
  EXPECT_EQ((*set)->tensors().size(), 2u);
  Result<std::unique_ptr<ModelSource>> plain = open_model(path);
  ASSERT_TRUE(plain);
  EXPECT_EQ(dynamic_cast<const SplitModel*>(plain->get()), nullptr);
  // A file without split keys is not a shard.
  const std::string lone = dir / "lone.gguf";
  write_shard(lone, ShardSpec{{}, {0}});
  Result<std::unique_ptr<SplitModel>> not_split = SplitModel::open(lone);
  ASSERT_FALSE(not_split);
  EXPECT_EQ(not_split.error().kind(), ErrorKind::invalid_input);
  EXPECT_NE(not_split.error().reason().find("not a shard of a split model"), std::string::npos);
}

// One way a set of shards can be wrong: how to damage the good set, which shard the error names (1-based, as in
// the file name), what kind of error and a part of its reason.
struct Damage {
  std::string name;
  std::function<void(std::vector<ShardSpec>&)> damage;
  uint32_t shard;
  ErrorKind kind;
  std::string reason;
  std::function<void(const testing::ScratchFolder&, std::vector<std::string>&)> after_writing = nullptr;
  uint32_t named = 1;  // the shard given to open_model
};

std::vector<Damage> damages() {
  return {
      {"missing shard", nullptr, 3, ErrorKind::io, "shard 3 of 4: cannot open",
       [](const testing::ScratchFolder&, std::vector<std::string>& paths) { fs::remove(paths[2]); }},
      {"shard count mismatch", [](auto& set) { set_key(set[1], "split.count", Value::u16(3)); }, 2,
       ErrorKind::invalid_input, "its split.count is 3 but"},
      {"shard index mismatch", [](auto& set) { set_key(set[2], "split.no", Value::u16(1)); }, 3,
       ErrorKind::invalid_input, "its split.no is 1 (shard 2) but its name makes it shard 3"},
      {"two different models",
       [](auto& set) { set_key(set[3], "split.tensors.count", Value::i32(48)); }, 4, ErrorKind::invalid_input,
       "its split.tensors.count is 48 but"},
      {"metadata of another model", [](auto& set) { set_key(set[1], "general.architecture", Value::string("x")); }, 2,
       ErrorKind::invalid_input, "metadata key 'general.architecture' differs"},
      {"shards of two sharded runs",
       [](auto& set) {
         for (size_t i = 0; i < set.size(); ++i) {
           set_key(set[i], "quantize.shard.plan", Value::string(i == 2 ? "plan-b" : "plan-a"));
         }
       },
       3, ErrorKind::invalid_input, "metadata key 'quantize.shard.plan' differs"},
      {"overlapping tensor names", [](auto& set) { set[3].tensors = {1}; }, 4, ErrorKind::invalid_input,
       "tensor 't1' is also in shard 1"},
      {"tensors missing", [](auto& set) { set[2].tensors = {5, 6}; }, 1, ErrorKind::invalid_input,
       "the 4 shards hold 8 tensors but split.tensors.count says 9"},
      {"no split.tensors.count in the first shard", [](auto& set) { remove_key(set[0], "split.tensors.count"); }, 1,
       ErrorKind::invalid_input, "'split.tensors.count' is missing"},
      {"split.no missing", [](auto& set) { remove_key(set[1], "split.no"); }, 2, ErrorKind::invalid_input,
       "'split.no' is missing"},
      {"split.count of the wrong type", [](auto& set) { set_key(set[1], "split.count", Value::string("4")); }, 2,
       ErrorKind::invalid_input, "'split.count' is string, expected an integer"},
      {"damaged shard", nullptr, 2, ErrorKind::invalid_input, "shard 2 of 4: ",
       [](const testing::ScratchFolder&, std::vector<std::string>& paths) { fs::resize_file(paths[1], 40); }},
      {"shard renamed off the naming rule", nullptr, 2, ErrorKind::invalid_input, "its name must end in",
       [](const testing::ScratchFolder& dir, std::vector<std::string>& paths) {
         fs::rename(paths[1], dir / "renamed.gguf");
         paths[1] = dir / "renamed.gguf";
       },
       2},
  };
}

TEST(SplitModel, EveryKindOfBadSetIsRefusedNamingTheShard) {
  for (const Damage& d : damages()) {
    SCOPED_TRACE(d.name);
    testing::ScratchFolder dir;
    std::vector<ShardSpec> set = good_set();
    if (d.damage) d.damage(set);
    std::vector<std::string> paths = write_set(dir, set);
    if (d.after_writing) d.after_writing(dir, paths);
    Result<std::unique_ptr<ModelSource>> opened = open_model(paths[d.named - 1]);
    ASSERT_FALSE(opened);
    const Error& error = opened.error();
    EXPECT_EQ(error.kind(), d.kind) << error.message();
    EXPECT_EQ(error.file(), paths[d.shard - 1]) << error.message();
    EXPECT_NE(error.message().find(d.reason), std::string::npos) << error.message();
  }
}

TEST(SplitModel, TheOtherShardsFindTheSameFaults) {
  // Naming a later shard finds the set the same way.
  testing::ScratchFolder dir;
  std::vector<ShardSpec> set = good_set();
  set_key(set[1], "split.count", Value::u16(3));
  const std::vector<std::string> paths = write_set(dir, set);
  Result<std::unique_ptr<ModelSource>> opened = open_model(paths[3]);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().file(), paths[1]);
}

}  // namespace
}  // namespace quant
