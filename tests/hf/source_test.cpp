// The checkpoint as a ModelSource: any byte range of a tensor (odd offsets, partial rows, across the permuted
// q/k rows) reads the same bytes as the whole tensor, for every type a plan may ask for; the presented metadata
// and tensor list are those of the converter's --outtype auto file (tests/data/hf/*.auto.gguf, written by
// convert_hf_to_gguf.py).
#include <gtest/gtest.h>

#include <cstring>

#include "quant/gguf.h"
#include "quant/hf.h"
#include "test_data.h"

namespace quant {
namespace {

using testing::data_path;

TEST(HfSource, AnyByteRangeReadsTheSameBytesAsTheWholeTensor) {
  auto source = open_hf_checkpoint(data_path("hf/llama-bf16-shards"));
  ASSERT_TRUE(source) << source.error().message();
  std::vector<TensorInfo> views = (*source)->tensors();
  auto plan = (*source)->source_plan(0);  // f32: tensors read as f32
  ASSERT_TRUE(plan && *plan);
  for (const SourcePlanTensor& t : (**plan).tensors) views.push_back(t.source);
  for (const TensorInfo& tensor : views) {
    SCOPED_TRACE(tensor.name);
    auto whole = (*source)->read_tensor_data(tensor);
    ASSERT_TRUE(whole) << whole.error().message();
    for (uint64_t offset : {uint64_t(0), uint64_t(1), uint64_t(3), tensor.size_bytes / 3, tensor.size_bytes - 5}) {
      for (uint64_t length : {uint64_t(1), uint64_t(7), uint64_t(130), uint64_t(999)}) {
        if (offset + length > tensor.size_bytes) continue;
        std::vector<uint8_t> part(length);
        ASSERT_TRUE((*source)->read_tensor(tensor, offset, part));
        ASSERT_EQ(std::memcmp(part.data(), whole->data() + offset, length), 0) << offset << " " << length;
      }
    }
    std::vector<uint8_t> past(2);
    EXPECT_FALSE((*source)->read_tensor(tensor, tensor.size_bytes - 1, past));
  }
}

TEST(HfSource, PresentsTheConvertersAutoFile) {
  for (const char* name : {"gemma-f16", "qwen3-bf16", "llama-bf16-shards"}) {
    SCOPED_TRACE(name);
    auto source = open_hf_checkpoint(data_path(std::string("hf/") + name));
    ASSERT_TRUE(source) << source.error().message();
    auto reference = GgufFile::open(data_path(std::string("hf/") + name + ".auto.gguf"));
    ASSERT_TRUE(reference);
    ASSERT_EQ((*source)->metadata().size(), reference->metadata().size());
    for (size_t i = 0; i < reference->metadata().size(); ++i) {
      EXPECT_EQ((*source)->metadata()[i].key, reference->metadata()[i].key);
      EXPECT_TRUE((*source)->metadata()[i].value == reference->metadata()[i].value) << reference->metadata()[i].key;
    }
    ASSERT_EQ((*source)->tensors().size(), reference->tensors().size());
    for (size_t i = 0; i < reference->tensors().size(); ++i) {
      const TensorInfo& ours = (*source)->tensors()[i];
      const TensorInfo& theirs = reference->tensors()[i];
      EXPECT_EQ(ours.name, theirs.name);
      EXPECT_EQ(ours.type, theirs.type) << theirs.name;
      EXPECT_EQ(ours.shape, theirs.shape) << theirs.name;
      auto a = (*source)->read_tensor_data(ours);
      auto b = reference->read_tensor_data(theirs);
      ASSERT_TRUE(a && b);
      EXPECT_TRUE(*a == *b) << theirs.name;
    }
  }
}

}  // namespace
}  // namespace quant
