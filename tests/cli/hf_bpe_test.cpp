// Hugging Face checkpoints whose only tokenizer is a GPT-2 style BPE tokenizer.json (docs/hf.md, "Tokenizers"),
// run through the built binary:
//  - a checkpoint made by tests/data/hf/make_bpe_checkpoints.py on a real vocabulary (GPT-2's, from the shared
//    reference set, under Qwen2) gives byte-identical files to llama.cpp's unchanged convert_hf_to_gguf.py, whose pre-tokenizer hash ran through the tokenizers library; so does a
//    Mistral checkpoint with a SentencePiece-style tokenizer.json (the converter's LlamaHfVocab path);
//  - pre-tokenizers of models whose vocabularies are not at hand (Llama 3's, Qwen2's, the other Split behaviours,
//    LlamaTokenizerFast's rebuilt post-processor with EOS only) give no known hash: the run is refused as the
//    converter refuses it, naming the converter's own hash;
//  - a table of damaged tokenizer files, one row per class of damage: the documented exit code, a message naming
//    the file, nothing written.
// The checkpoints' weights and the references are stored gzip-compressed (their vocabularies are padded to the
// real models' sizes); they are unpacked into a scratch folder first.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli_harness.h"
#include "test_data.h"

namespace {

namespace fs = std::filesystem;
using quant::testing::data_path;
using quant::testing::ProgramRun;
using quant::testing::read_bytes;
using quant::testing::read_text;
using quant::testing::run_quantize;
using quant::testing::ScratchDir;
using quant::testing::write_text;

std::vector<uint8_t> gunzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw std::runtime_error("cannot open " + path);
  std::vector<uint8_t> out;
  uint8_t buffer[1 << 16];
  int n;
  while ((n = gzread(file, buffer, sizeof buffer)) > 0) out.insert(out.end(), buffer, buffer + n);
  gzclose(file);
  if (n < 0) throw std::runtime_error("cannot gunzip " + path);
  return out;
}

// A copy of tests/data/hf/<name> at dir/<name>, weights unpacked; returns its path.
std::string unpack_checkpoint(const ScratchDir& dir, const std::string& name) {
  const std::string folder = dir / name;
  fs::create_directory(folder);
  for (const auto& entry : fs::directory_iterator(data_path("hf/" + name))) {
    const std::string file = entry.path().filename().string();
    if (file.ends_with(".gz")) {
      const std::vector<uint8_t> bytes = gunzip(entry.path().string());
      std::ofstream(folder + "/" + file.substr(0, file.size() - 3), std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    } else {
      fs::copy_file(entry.path(), folder + "/" + file);
      fs::permissions(folder + "/" + file, fs::perms::owner_write, fs::perm_options::add);
    }
  }
  return folder;
}

struct Reference {
  const char* checkpoint;
  const char* type;
  const char* reference;  // gzip-compressed, under tests/data/hf
};

const Reference kReferences[] = {
    {"bpe-gpt2-qwen2", "BF16", "bpe-gpt2-qwen2.auto.gguf.gz"},
    // The converter's other tokenizer.json path: SentencePiece-style BPE read by gguf-py's LlamaHfVocab.
    {"bpe-llama-hf", "F16", "bpe-llama-hf.f16.gguf.gz"},
};

TEST(HfBpeCheckpoint, ByteIdenticalToTheConverter) {
  for (const Reference& r : kReferences) {
    SCOPED_TRACE(std::string(r.checkpoint) + " " + r.type);
    ScratchDir dir;
    const std::string folder = unpack_checkpoint(dir, r.checkpoint);
    const std::string output = dir / "out.gguf";
    const ProgramRun run = run_quantize({folder, "--to", r.type, "-o", output, "-q"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_TRUE(read_bytes(output) == gunzip(data_path(std::string("hf/") + r.reference)))
        << output << " differs from " << r.reference;
  }
}

// The converter refuses a hash it does not know; so do we, naming the same hash.
TEST(HfBpeCheckpoint, UnknownPreTokenizerIsRefusedWithTheConvertersHash) {
  std::istringstream expected(read_text(data_path("hf/bpe-variants/expected-chkhsh.txt")));
  std::string variant, hash;
  int variants = 0;
  while (expected >> variant >> hash) {
    SCOPED_TRACE(variant);
    ++variants;
    ScratchDir dir;
    const std::string folder = unpack_checkpoint(dir, "bpe-gpt2-qwen2");
    for (const char* file : {"tokenizer.json", "tokenizer_config.json"}) {
      fs::copy_file(data_path("hf/bpe-variants/" + variant + "." + file), folder + "/" + file,
                    fs::copy_options::overwrite_existing);
    }
    const ProgramRun run = run_quantize({folder, "--to", "F16", "-o", dir / "out.gguf"});
    EXPECT_EQ(run.exit_code, 4) << run.err;
    EXPECT_NE(run.err.find("chkhsh " + hash), std::string::npos) << run.err;
    EXPECT_FALSE(fs::exists(dir / "out.gguf"));
  }
  EXPECT_EQ(variants, 4);
}

using JsonEdit = std::function<void(nlohmann::ordered_json&)>;

void edit_json(const std::string& path, const JsonEdit& edit) {
  auto value = nlohmann::ordered_json::parse(read_text(path));
  edit(value);
  write_text(path, value.dump(1));
}

struct Damage {
  const char* what;
  const char* base;
  std::function<void(const std::string&)> damage;
  int exit_code;
  std::vector<std::string> in_message;
};

std::vector<Damage> damages() {
  auto tokenizer = [](JsonEdit edit) {
    return [edit](const std::string& d) { edit_json(d + "/tokenizer.json", edit); };
  };
  return {
      {"tokenizer.json not JSON", "bpe-gpt2-qwen2", [](const std::string& d) { write_text(d + "/tokenizer.json", "{\"model\": "); },
       3, {"tokenizer.json", "not valid JSON"}},
      {"a merge of unknown tokens", "bpe-gpt2-qwen2",
       tokenizer([](auto& j) { j["model"]["merges"].push_back({"\xc4\xa0zz", "qq"}); }), 3,
       {"tokenizer.json", "model.merges", "not in the vocabulary"}},
      {"merges missing", "bpe-gpt2-qwen2", tokenizer([](auto& j) { j["model"].erase("merges"); }), 3,
       {"tokenizer.json", "model.merges is missing"}},
      {"merges of the wrong kind", "bpe-gpt2-qwen2", tokenizer([](auto& j) { j["model"]["merges"] = 7; }), 3,
       {"tokenizer.json", "model.merges is missing or not a list"}},
      {"a merges entry of three tokens", "bpe-gpt2-qwen2",
       tokenizer([](auto& j) { j["model"]["merges"][0] = "a b c"; }), 3, {"model.merges[0]", "not two tokens"}},
      {"a WordPiece model", "bpe-gpt2-qwen2", tokenizer([](auto& j) { j["model"]["type"] = "WordPiece"; }), 4,
       {"tokenizer.json", "WordPiece"}},
      {"an unsupported pre-tokenizer", "bpe-gpt2-qwen2",
       tokenizer([](auto& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}}; }), 4,
       {"tokenizer.json", "pre_tokenizer Metaspace"}},
      {"a regex that does not compile", "bpe-gpt2-qwen2",
       tokenizer([](auto& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers",
                                {{{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}"}}}, {"behavior", "Isolated"},
                                  {"invert", false}},
                                 {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                                  {"use_regex", false}}}}};
       }),
       4, {"tokenizer.json", "cannot be compiled"}},
      {"an added token at a wrong id", "bpe-gpt2-qwen2",
       tokenizer([](auto& j) { j["added_tokens"].back()["id"] = 60000; }), 4, {"tokenizer.json", "stored with id 60000"}},
      {"an added token inside the check text", "bpe-gpt2-qwen2",
       tokenizer([](auto& j) {
         j["added_tokens"].push_back(
             {{"id", 50260}, {"content", "\xe5\xb7\xa5\xe4\xbd\x9c"}, {"special", false}, {"normalized", true}});
         j["model"]["vocab"]["\xe5\xb7\xa5\xe4\xbd\x9c"] = 50260;
       }),
       4, {"tokenizer.json", "\"\xe5\xb7\xa5\xe4\xbd\x9c\"", "check text"}},
      {"a new added token over a vocabulary with gaps", "bpe-gpt2-qwen2",
       tokenizer([](auto& j) {
         j["added_tokens"].push_back({{"id", 50260}, {"content", "<new>"}, {"special", true}, {"normalized", false}});
       }),
       4, {"tokenizer.json", "\"<new>\"", "gaps"}},
      {"an unknown tokenizer class", "bpe-gpt2-qwen2",
       [](const std::string& d) { edit_json(d + "/tokenizer_config.json", [](auto& j) { j["tokenizer_class"] = "T5Tokenizer"; }); },
       4, {"tokenizer_config.json", "T5Tokenizer"}},
      {"vocab_size below the tokenizer's ids", "bpe-gpt2-qwen2",
       [](const std::string& d) { edit_json(d + "/config.json", [](auto& j) { j["vocab_size"] = 50000; }); }, 3,
       {"config.json", "past vocab_size 50000"}},
      {"a SentencePiece-style vocabulary with an id missing", "bpe-llama-hf",
       [](const std::string& d) {
         // Without the tokens past the vocabulary, which would take ids the library numbers by version.
         edit_json(d + "/tokenizer.json", [](auto& j) {
           j["model"]["vocab"]["<0x41>"] = 5000;
           j["added_tokens"].erase(j["added_tokens"].begin() + 3, j["added_tokens"].end());
         });
         edit_json(d + "/tokenizer_config.json", [](auto& j) { j.erase("additional_special_tokens"); });
       },
       3, {"tokenizer.json", "no token has id 68"}},
      {"a SentencePiece-style tokenizer.json without a decoder type", "bpe-llama-hf",
       tokenizer([](auto& j) { j["decoder"] = {{"decoders", nlohmann::ordered_json::array()}}; }), 3,
       {"tokenizer.json", "decoder has no type"}},
      {"no tokenizer at all", "bpe-gpt2-qwen2", [](const std::string& d) { fs::remove(d + "/tokenizer.json"); }, 4,
       {"no tokenizer.model and no tokenizer.json"}},
  };
}

TEST(HfBpeCheckpoint, EachClassOfDamageGivesItsErrorAndWritesNothing) {
  for (const Damage& c : damages()) {
    SCOPED_TRACE(c.what);
    ScratchDir dir;
    const std::string folder = unpack_checkpoint(dir, c.base);
    c.damage(folder);
    const ProgramRun run = run_quantize({folder, "--to", "F16", "-o", dir / "out.gguf"});
    EXPECT_EQ(run.exit_code, c.exit_code) << run.err;
    for (const std::string& part : c.in_message) EXPECT_NE(run.err.find(part), std::string::npos) << run.err;
    EXPECT_EQ(run.err.find("json.exception"), std::string::npos) << "a library's exception tag: " << run.err;
    EXPECT_FALSE(fs::exists(dir / "out.gguf")) << "something was written";
  }
}

}  // namespace
