// gguf-py's SpecialVocab merges (load_merges=True): tokenizer.json's pair format joined with a space, spaces
// inside a part written as U+0120; merges.txt as the fallback when tokenizer.json has none (a '#' header line,
// Python's universal newlines and str.split() whitespace, malformed lines skipped). Expected lists are what
// llama.cpp's gguf-py (34af94c) gives for the same files.
#include "hf/special_vocab.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace quant::hf {
namespace {

class Folder {
 public:
  Folder() {
    std::string pattern = (std::filesystem::temp_directory_path() / "special-vocab-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = pattern;
  }
  ~Folder() { std::filesystem::remove_all(path_); }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path_ + "/" + name, std::ios::binary) << bytes;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> merges_of(const std::string& dir) {
  auto vocab = SpecialVocab::load(dir, SpecialVocab::default_types(), std::nullopt, /*with_merges=*/true);
  EXPECT_TRUE(vocab) << vocab.error().message();
  MetadataList out;
  vocab->add_to(out);
  std::vector<std::string> merges;
  for (const KeyValue& kv : out.items()) {
    if (kv.key != "tokenizer.ggml.merges") continue;
    for (uint64_t i = 0; i < kv.value.size(); ++i) merges.emplace_back(kv.value.string_at(i));
  }
  return merges;
}

TEST(SpecialVocabMerges, PairFormatJoinsWithSpacesEncoded) {
  Folder dir;
  dir.write("tokenizer.json",
            R"({"model": {"type": "BPE", "vocab": {}, "merges": [["a b", "c"], ["\u0120x", "y z"]]}, "added_tokens": []})");
  EXPECT_EQ(merges_of(dir.path()), (std::vector<std::string>{"a\xc4\xa0" "b c", "\xc4\xa0x y\xc4\xa0z"}));
}

TEST(SpecialVocabMerges, MergesTxtIsTheFallback) {
  Folder dir;
  dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": []})");
  dir.write("merges.txt",
            "#version: 0.2\r\na b\r\n\r\n  c   d  \nbad\nx y z\n\xe3\x80\x80" "e\xe3\x80\x80" "f\xe3\x80\x80\rg\th\n");
  EXPECT_EQ(merges_of(dir.path()), (std::vector<std::string>{"a b", "c d", "e f", "g h"}));
}

TEST(SpecialVocabMerges, NoMergesWithoutLoadMerges) {
  Folder dir;
  dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {}, "merges": ["a b"]}, "added_tokens": []})");
  auto vocab = SpecialVocab::load(dir.path(), SpecialVocab::default_types(), std::nullopt);
  ASSERT_TRUE(vocab);
  MetadataList out;
  vocab->add_to(out);
  EXPECT_FALSE(out.contains("tokenizer.ggml.merges"));
}

}  // namespace
}  // namespace quant::hf
