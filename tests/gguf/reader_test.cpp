// GgufFile on the real files in tests/data/gguf. Expected counts, keys, shapes, offsets and values were read
// independently with tests/gguf/dump_gguf.py (a standard-library Python parser written for this purpose) and
// Python's struct module on the same files, then recorded here.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "quant/gguf.h"
#include "test_data.h"

namespace quant {
namespace {

using testing::data_path;

GgufFile open_or_die(const std::string& relative) {
  Result<GgufFile> file = GgufFile::open(data_path(relative));
  if (!file) throw std::runtime_error(file.error().message());
  return std::move(file).value();
}

struct Expected {
  std::string path;
  uint32_t version;
  size_t n_tensors;
  size_t n_kv;
  uint64_t header_end;
  uint64_t data_offset;
  uint64_t file_size;
  std::string first_key;
  std::string last_key;
};

// From dump_gguf.py: "magic/version/n_tensors/n_kv", "header_end ... data_offset ... file_size".
const Expected kFiles[] = {
    {"gguf/stories260K.gguf", 3, 48, 19, 14152, 14176, 1185376, "tokenizer.ggml.tokens",
     "llama.attention.layer_norm_rms_epsilon"},
    {"gguf/stories260K-v1.gguf", 1, 48, 18, 11450, 11456, 1182656, "general.architecture",
     "tokenizer.ggml.padding_token_id"},
    {"gguf/stories260K-rows256-F32.gguf", 3, 48, 19, 14152, 14176, 1185376, "tokenizer.ggml.tokens",
     "llama.attention.layer_norm_rms_epsilon"},
    {"gguf/mnist-fc-f32.gguf", 3, 4, 1, 252, 256, 1590336, "general.architecture", "general.architecture"},
    {"gguf/historic/ggml-vocab-llama-v1-FUGG.gguf", 1, 0, 12, 467382, 467392, 467382, "general.architecture",
     "tokenizer.ggml.scores"},
    {"gguf/historic/ggml-vocab-llama-v1.gguf", 1, 0, 13, 595423, 595424, 595423, "general.architecture",
     "tokenizer.ggml.token_type"},
    {"gguf/vocab/ggml-vocab-llama-spm.gguf", 3, 0, 22, 723869, 723872, 723869, "general.architecture",
     "tokenizer.ggml.add_eos_token"},
    {"gguf/vocab/ggml-vocab-bert-bge.gguf", 3, 0, 20, 627549, 627552, 627549, "general.architecture",
     "tokenizer.ggml.mask_token_id"},
};

TEST(GgufReader, EveryRealFileParsesWithIndependentlyReadCounts) {
  for (const Expected& expected : kFiles) {
    SCOPED_TRACE(expected.path);
    Result<GgufFile> file = GgufFile::open(data_path(expected.path));
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_EQ(file->version(), expected.version);
    EXPECT_EQ(file->tensors().size(), expected.n_tensors);
    EXPECT_EQ(file->metadata().size(), expected.n_kv);
    EXPECT_EQ(file->header_size(), expected.header_end);
    EXPECT_EQ(file->data_offset(), expected.data_offset);
    EXPECT_EQ(file->file_size(), expected.file_size);
    EXPECT_EQ(file->alignment(), 32u);
    EXPECT_EQ(file->metadata().front().key, expected.first_key);
    EXPECT_EQ(file->metadata().back().key, expected.last_key);
    EXPECT_EQ(file->byte_swapped_magic(), expected.path.find("FUGG") != std::string::npos);
  }
}

TEST(GgufReader, Stories260KMetadataInFileOrderWithTypes) {
  const GgufFile file = open_or_die("gguf/stories260K.gguf");
  // dump_gguf.py's "kv" lines, in file order.
  const std::vector<std::pair<std::string, ValueType>> expected = {
      {"tokenizer.ggml.tokens", ValueType::array},          {"tokenizer.ggml.scores", ValueType::array},
      {"tokenizer.ggml.token_type", ValueType::array},      {"tokenizer.ggml.model", ValueType::string},
      {"general.architecture", ValueType::string},          {"general.name", ValueType::string},
      {"tokenizer.ggml.unknown_token_id", ValueType::u32},  {"tokenizer.ggml.bos_token_id", ValueType::u32},
      {"tokenizer.ggml.eos_token_id", ValueType::u32},      {"tokenizer.ggml.seperator_token_id", ValueType::u32},
      {"tokenizer.ggml.padding_token_id", ValueType::u32},  {"llama.context_length", ValueType::u32},
      {"llama.embedding_length", ValueType::u32},           {"llama.feed_forward_length", ValueType::u32},
      {"llama.attention.head_count", ValueType::u32},       {"llama.attention.head_count_kv", ValueType::u32},
      {"llama.block_count", ValueType::u32},                {"llama.rope.dimension_count", ValueType::u32},
      {"llama.attention.layer_norm_rms_epsilon", ValueType::f32},
  };
  ASSERT_EQ(file.metadata().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(file.metadata()[i].key, expected[i].first);
    EXPECT_EQ(file.metadata()[i].value.type(), expected[i].second) << expected[i].first;
  }
  EXPECT_EQ(*file.get<uint32_t>("llama.block_count"), 5u);
  EXPECT_EQ(*file.get<uint32_t>("llama.feed_forward_length"), 172u);
  EXPECT_EQ(*file.get<uint32_t>("tokenizer.ggml.padding_token_id"), 4294967295u);
  EXPECT_EQ(*file.get<float>("llama.attention.layer_norm_rms_epsilon"), 9.999999747378752e-06f);
  EXPECT_EQ(*file.get<std::string>("general.architecture"), "llama");
  EXPECT_EQ(*file.get<std::string_view>("tokenizer.ggml.model"), "llama");

  const Value* tokens = file.find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->element_type(), ValueType::string);
  EXPECT_EQ(tokens->size(), 512u);
  EXPECT_EQ(tokens->string_at(0), "<unk>");
  EXPECT_EQ(tokens->string_at(2), "</s>");
  const Value* token_type = file.find("tokenizer.ggml.token_type");
  ASSERT_NE(token_type, nullptr);
  EXPECT_EQ(token_type->element_type(), ValueType::i32);
  EXPECT_EQ(token_type->scalar_at<int32_t>(0), 2);
  EXPECT_EQ(token_type->scalar_at<int32_t>(1), 3);
  EXPECT_EQ(token_type->raw_elements().size(), 512u * 4u);
}

TEST(GgufReader, TypedAccessorsFailClearly) {
  const GgufFile file = open_or_die("gguf/stories260K.gguf");
  Result<uint32_t> missing = file.get<uint32_t>("llama.no_such_key");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(), data_path("gguf/stories260K.gguf") + ": metadata key 'llama.no_such_key' missing");
  Result<uint64_t> wrong = file.get<uint64_t>("llama.block_count");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().reason(), "metadata key 'llama.block_count' is u32, expected u64");
  Result<std::string> not_string = file.get<std::string>("tokenizer.ggml.tokens");
  ASSERT_FALSE(not_string);
  EXPECT_EQ(not_string.error().reason(), "metadata key 'tokenizer.ggml.tokens' is array, expected string");
  EXPECT_EQ(not_string.error().kind(), ErrorKind::invalid_input);
}

TEST(GgufReader, Stories260KTensorsAndData) {
  const GgufFile file = open_or_die("gguf/stories260K.gguf");
  ASSERT_EQ(file.tensors().size(), 48u);
  const TensorInfo& first = file.tensors().front();
  EXPECT_EQ(first.name, "token_embd.weight");
  EXPECT_EQ(first.type, TypeId::f32);
  EXPECT_EQ(first.shape, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(first.offset, 0u);
  EXPECT_EQ(first.size_bytes, 131072u);
  EXPECT_EQ(first.element_count(), 32768);
  EXPECT_EQ(first.rows(), 512);
  const TensorInfo* down = file.find_tensor("blk.4.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<int64_t>{172, 64}));
  EXPECT_EQ(down->offset, 1082880u);
  const TensorInfo& last = file.tensors().back();
  EXPECT_EQ(last.name, "blk.4.ffn_norm.weight");
  EXPECT_EQ(last.shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(last.offset, 1170944u);
  EXPECT_EQ(file.find_tensor("nope"), nullptr);

  // struct.unpack_from('<4f', data, 14176) and ('<2f', data, 14176 + 131072).
  std::vector<uint8_t> bytes(16);
  ASSERT_TRUE(file.read_tensor(first, 0, bytes));
  float values[4];
  std::memcpy(values, bytes.data(), 16);
  EXPECT_EQ(values[0], -0.29474878311157227f);
  EXPECT_EQ(values[1], 0.5618956089019775f);
  EXPECT_EQ(values[2], 0.1754225343465805f);
  EXPECT_EQ(values[3], 0.34057360887527466f);
  Result<std::vector<uint8_t>> norm = file.read_tensor_data(*file.find_tensor("output_norm.weight"));
  ASSERT_TRUE(norm);
  ASSERT_EQ(norm->size(), 256u);
  std::memcpy(values, norm->data(), 8);
  EXPECT_EQ(values[0], 2.4583089351654053f);
  EXPECT_EQ(values[1], 1.3673226833343506f);

  std::vector<uint8_t> too_far(17);
  Status outside = file.read_tensor(*file.find_tensor("output_norm.weight"), 240, too_far);
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().reason(), "read of 17 bytes at 240 is outside the tensor (256 bytes)");
}

TEST(GgufReader, TotalsOfMnist) {
  const GgufFile file = open_or_die("gguf/mnist-fc-f32.gguf");
  // fc1 784x500, fc1.bias 500, fc2 500x10, fc2.bias 10.
  EXPECT_EQ(file.total_elements(), 784u * 500u + 500u + 500u * 10u + 10u);
  EXPECT_EQ(file.total_tensor_bytes(), 4u * (784u * 500u + 500u + 500u * 10u + 10u));
  EXPECT_EQ(file.tensors()[3].offset, 1590016u);
}

TEST(GgufReader, VersionOneFilesReadWith32BitLengths) {
  const GgufFile v1 = open_or_die("gguf/stories260K-v1.gguf");
  EXPECT_EQ(*v1.get<std::string>("general.name"), "tinyllamas-stories-260k");
  EXPECT_EQ(*v1.get<std::string>("llama.tensor_data_layout"), "Meta AI original pth");
  EXPECT_EQ(v1.find_tensor("output.weight")->offset, 1040128u);
  EXPECT_EQ(v1.find_tensor("blk.1.attn_q.weight")->offset, 312832u);
  EXPECT_EQ(v1.find("tokenizer.ggml.tokens")->string_at(1), "<s>");

  for (const char* path : {"gguf/historic/ggml-vocab-llama-v1-FUGG.gguf", "gguf/historic/ggml-vocab-llama-v1.gguf",
                           "gguf/vocab/ggml-vocab-llama-spm.gguf"}) {
    SCOPED_TRACE(path);
    const GgufFile vocab = open_or_die(path);
    const Value* tokens = vocab.find("tokenizer.ggml.tokens");
    ASSERT_NE(tokens, nullptr);
    EXPECT_EQ(tokens->size(), 32000u);
    EXPECT_EQ(tokens->string_at(1000), "ied");
    EXPECT_EQ(tokens->string_at(31999), "给");
    EXPECT_EQ(vocab.find("tokenizer.ggml.scores")->scalar_at<float>(1000), -741.0f);
    EXPECT_EQ(*vocab.get<uint32_t>("llama.block_count"), 32u);
  }
  const GgufFile bert = open_or_die("gguf/vocab/ggml-vocab-bert-bge.gguf");
  EXPECT_EQ(bert.find("tokenizer.ggml.tokens")->size(), 30522u);
  EXPECT_EQ(bert.find("tokenizer.ggml.tokens")->string_at(29999 + 522), "～");
  EXPECT_EQ(*bert.get<bool>("bert.attention.causal"), false);
}

TEST(GgufReader, MissingFileIsAnIoError) {
  Result<GgufFile> file = GgufFile::open(data_path("gguf/does-not-exist.gguf"));
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().kind(), ErrorKind::io);
  EXPECT_EQ(file.error().reason(), "cannot open for reading: No such file or directory");
}

TEST(GgufReader, UnknownValueTypeFileIsRejected) {
  Result<GgufFile> file = GgufFile::open(data_path("gguf/malformed/unknown-value-type-13.gguf"));
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().kind(), ErrorKind::invalid_input);
  // The type field of key "dict1" sits at 0xcc (xxd of the file: the key ends at 0xcb, then 0d 00 00 00).
  EXPECT_EQ(file.error().offset(), std::optional<uint64_t>(0xcc));
  EXPECT_EQ(file.error().reason(), "key 'dict1': unknown value type 13");
}

}  // namespace
}  // namespace quant
