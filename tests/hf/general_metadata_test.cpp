// gguf-py's naming heuristics as src/hf/general_metadata.cpp reproduces them. Every expected value below was
// printed by gguf-py itself (llama.cpp 34af94c: gguf.metadata.Metadata.get_model_id_components, id_to_title,
// gguf.utility.size_label) for the same inputs.
#include "hf/general_metadata.h"

#include <gtest/gtest.h>

#include "quant/hf.h"

namespace quant::hf {
namespace {

struct IdCase {
  const char* id;
  int64_t total_params;
  const char* full_name;
  std::optional<std::string> organization, basename, finetune, version, size_label;
};

TEST(GeneralMetadata, ModelIdComponentsAsGgufPy) {
  const IdCase cases[] = {
      {"hf", 3672320, "hf", {}, {}, {}, {}, {}},
      {"Llama-3.2-1B-Instruct", 1235814400, "Llama-3.2-1B-Instruct", {}, "Llama-3.2", "Instruct", {}, "1B"},
      {"meta-llama/Meta-Llama-3-8B-Instruct", 8030261248, "Meta-Llama-3-8B-Instruct", "meta-llama", "Meta-Llama-3",
       "Instruct", {}, "8B"},
      {"mistralai/Mistral-7B-Instruct-v0.2", 7241732096, "Mistral-7B-Instruct-v0.2", "mistralai", "Mistral",
       "Instruct", "v0.2", "7B"},
      {"bloom-7b1", 7069016064, "bloom-7b1", {}, "bloom", {}, {}, "7.1B"},
      {"Qwen2.5-Coder-32K-Chat", 494032768, "Qwen2.5-Coder-32K-Chat", {}, "Qwen2.5-Coder", "32k-Chat", {}, {}},
      {"Some-Model-7B", 87000, "Some-Model-7B", {}, "Some-Model", "7b", {}, {}},
      {"phi-3-mini-128k-instruct", 3821079552, "phi-3-mini-128k-instruct", {}, "phi-3", "128k-instruct", {}, "mini"},
      {"model with spaces", 0, "model with spaces", {}, {}, {}, {}, {}},
      {"./local-dir", 0, "local-dir", {}, {}, {}, {}, {}},
      {"gemma-2-2b-it-Q4_K_M", 2614341888, "gemma-2-2b-it-Q4_K_M", {}, "gemma-2", "it", {}, "2B"},
  };
  for (const IdCase& c : cases) {
    SCOPED_TRACE(c.id);
    const ModelIdParts parts = model_id_components(c.id, c.total_params);
    EXPECT_EQ(parts.full_name, c.full_name);
    EXPECT_EQ(parts.organization, c.organization);
    EXPECT_EQ(parts.basename, c.basename);
    EXPECT_EQ(parts.finetune, c.finetune);
    EXPECT_EQ(parts.version, c.version);
    EXPECT_EQ(parts.size_label, c.size_label);
  }
}

TEST(GeneralMetadata, SizeLabelAsGgufPy) {
  const std::pair<int64_t, const char*> cases[] = {
      {0, "0.00K"}, {999, "1.0K"}, {86000, "86K"}, {3672320, "3.7M"}, {1235814400, "1.2B"},
      {8030261248, "8.0B"}, {70553706496, "71B"}, {1500000000000, "1.5T"},
  };
  for (const auto& [params, label] : cases) EXPECT_EQ(size_label(params), label) << params;
}

TEST(GeneralMetadata, TitleAsGgufPy) {
  const std::pair<const char*, const char*> cases[] = {
      {"hf", "Hf"}, {"llama-tied-rope3", "Llama Tied Rope3"}, {"ultrachat_200k", "Ultrachat_200K"},
      {"v1.5-beta", "v1.5 Beta"}, {"Meta Llama", "Meta Llama"}, {"GPT-2 xl", "GPT 2 Xl"},
  };
  for (const auto& [text, title] : cases) EXPECT_EQ(id_to_title(text), title) << text;
}

TEST(GeneralMetadata, FolderNameAsPythonsPathName) {
  EXPECT_EQ(checkpoint_folder_name("models/hf"), "hf");
  EXPECT_EQ(checkpoint_folder_name("models/hf/"), "hf");
  EXPECT_EQ(checkpoint_folder_name("models/hf/."), "hf");
  EXPECT_EQ(checkpoint_folder_name("./hf"), "hf");
  EXPECT_EQ(checkpoint_folder_name("."), "");
  EXPECT_EQ(checkpoint_folder_name("a/.."), "..");
}

}  // namespace
}  // namespace quant::hf
