// Hugging Face checkpoint folders in (docs/hf.md), run through the built binary:
//  - small random checkpoints of every supported architecture (tests/data/hf/make_checkpoints.py) give
//    byte-identical files to llama.cpp's convert_hf_to_gguf.py for its outtypes, and to llama-quantize run on
//    the converter's f16 output for other types;
//  - tiny-llama-code, rebuilt here as an f16 checkpoint from tests/data/models/tiny-llama-f16.gguf (its values
//    are exactly the f16 ones), gives that file back byte for byte and llama-quantize's Q4_K_M of it;
//  - a table of damaged folders, one row per class of damage: each a clear error naming the file (and tensor),
//    the documented exit code, and nothing written.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cli/cli_harness.h"
#include "quant/gguf.h"
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

struct Reference {
  const char* checkpoint;  // folder under tests/data/hf (its name is part of the output: general.name)
  const char* type;        // our TYPE
  const char* reference;   // file under tests/data/hf
};

// "auto" references are the converter's --outtype auto: f16 for f16/f32 checkpoints, bf16 for bf16 ones.
const Reference kReferences[] = {
    {"llama-tied-rope3", "F16", "llama-tied-rope3.f16.gguf"},
    {"llama-tied-rope3", "Q8_0", "llama-tied-rope3.q8_0.gguf"},
    {"llama-tied-rope3", "Q4_K_M", "llama-tied-rope3.Q4_K_M.gguf"},
    {"llama-bf16-shards", "BF16", "llama-bf16-shards.auto.gguf"},
    {"llama-bf16-shards", "F32", "llama-bf16-shards.f32.gguf"},
    {"llama-bf16-shards", "q8_0", "llama-bf16-shards.q8_0.gguf"},
    {"mistral-f16", "TQ1_0", "mistral-f16.tq1_0.gguf"},
    {"mistral-f16", "TQ2_0", "mistral-f16.tq2_0.gguf"},
    {"qwen2-bias", "F16", "qwen2-bias.f16.gguf"},
    {"qwen2-bias", "BF16", "qwen2-bias.bf16.gguf"},
    {"qwen3-bf16", "BF16", "qwen3-bf16.auto.gguf"},
    {"qwen3-bf16", "Q8_0", "qwen3-bf16.q8_0.gguf"},
    {"gemma-f16", "F16", "gemma-f16.auto.gguf"},
    {"gemma2-f32", "F16", "gemma2-f32.f16.gguf"},
    {"gemma2-f32", "Q8_0", "gemma2-f32.q8_0.gguf"},
    {"phi3-longrope", "F16", "phi3-longrope.f16.gguf"},
    {"Llama-3.2-1B-Instruct", "F16", "Llama-3.2-1B-Instruct.auto.gguf"},
    {"gemma-bf16", "BF16", "gemma-bf16.auto.gguf"},
    {"gemma-bf16", "Q8_0", "gemma-bf16.q8_0.gguf"},
    {"mistral-padvocab", "F16", "mistral-padvocab.f16.gguf"},
};

TEST(HfCheckpoint, EveryArchitectureIsByteIdenticalToTheConverter) {
  ScratchDir out;
  for (const Reference& r : kReferences) {
    SCOPED_TRACE(std::string(r.checkpoint) + " " + r.type);
    const std::string output = out / (std::string(r.reference) + ".ours");
    const ProgramRun run = run_quantize({data_path(std::string("hf/") + r.checkpoint), "--to", r.type, "-o", output, "-q"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_TRUE(read_bytes(output) == read_bytes(data_path(std::string("hf/") + r.reference)))
        << output << " differs from " << r.reference;
  }
}

TEST(HfCheckpoint, SeveralConverterOuttypesInOneRun) {
  ScratchDir out;
  const ProgramRun run = run_quantize({data_path("hf/gemma2-f32"), "--to", "F16,Q8_0", "-o", out / "a.gguf", "-o",
                                       out / "b.gguf", "-q"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(read_bytes(out / "a.gguf") == read_bytes(data_path("hf/gemma2-f32.f16.gguf")));
  EXPECT_TRUE(read_bytes(out / "b.gguf") == read_bytes(data_path("hf/gemma2-f32.q8_0.gguf")));
  // A converter outtype and a llama-quantize type read the checkpoint differently: one run cannot do both.
  const ProgramRun mixed = run_quantize({data_path("hf/gemma2-f32"), "--to", "F16,Q4_K_M", "-o", out / "c.gguf", "-o",
                                         out / "d.gguf", "-q"});
  EXPECT_EQ(mixed.exit_code, 2) << mixed.err;
  EXPECT_FALSE(fs::exists(out / "c.gguf"));
  EXPECT_FALSE(fs::exists(out / "d.gguf"));
}

TEST(HfCheckpoint, DefaultOutputIsBesideTheFolder) {
  ScratchDir dir;
  fs::copy(data_path("hf/gemma-f16"), dir / "My-Model-v1.5");
  const ProgramRun run = run_quantize({dir / "My-Model-v1.5/", "--to", "f16", "-q"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(fs::exists(dir / "My-Model-v1.5-F16.gguf"));
  // info describes GGUF files; on a folder it points to the dry run.
  const ProgramRun info = run_quantize({"info", dir / "My-Model-v1.5"});
  EXPECT_EQ(info.exit_code, 2) << info.err;
  EXPECT_NE(info.err.find("--dry-run"), std::string::npos) << info.err;
  const ProgramRun dry = run_quantize({dir / "My-Model-v1.5", "--to", "Q4_K_M", "--dry-run"});
  EXPECT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("blk.1.ffn_down.weight"), std::string::npos) << dry.out;
}

// The folder is one input: no output of any command replaces one of its files, even with --force (each file
// is a weight, configuration or tokenizer file the conversion reads, or the model card).
TEST(HfCheckpoint, NoOutputReplacesAFileOfTheFolder) {
  ScratchDir dir;
  const std::string folder = dir / "ckpt";
  fs::copy(data_path("hf/gemma-f16"), folder);
  std::vector<std::pair<std::string, std::vector<uint8_t>>> before;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder)) {
    before.emplace_back(entry.path().string(), read_bytes(entry.path().string()));
  }
  ASSERT_GE(before.size(), 5u);
  const std::string text = data_path("text/code-calib.txt");
  for (const auto& [file, bytes] : before) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{folder, "--to", "Q8_0", "-o", file, "--force"},
          std::vector<std::string>{"imatrix", folder, "--text", text, "-o", file, "--force"},
          std::vector<std::string>{"eval", folder, "--text", text, "--save-kl-base", file, "--force"}}) {
      SCOPED_TRACE(args[0] + " -> " + file);
      const ProgramRun run = run_quantize(args);
      EXPECT_EQ(run.exit_code, 2) << run.err;
      EXPECT_NE(run.err.find("is the input file"), std::string::npos) << run.err;
    }
  }
  for (const auto& [file, bytes] : before) EXPECT_EQ(read_bytes(file), bytes) << file;
  EXPECT_EQ(size_t(std::distance(fs::directory_iterator(folder), fs::directory_iterator())), before.size());
}

// A README with front matter: name, license, base model and datasets (ids and URLs), tags, languages (with the
// YAML "no"), and a folder name with a size that is not the model's (a fine-tune tag for gguf-py).
TEST(HfCheckpoint, ModelCardAndFolderNameGiveTheConvertersGeneralKeys) {
  ScratchDir dir;
  const std::string folder = dir / "Some-Model-7B";
  fs::copy(data_path("hf/gemma2-f32"), folder);
  fs::copy_file(data_path("hf/model-card-README.md"), folder + "/README.md");
  const ProgramRun run = run_quantize({folder, "--to", "F16", "-o", dir / "out.gguf", "-q"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(read_bytes(dir / "out.gguf") == read_bytes(data_path("hf/Some-Model-7B-card.f16.gguf")));
  // A value the converter cannot write as text is refused, not guessed at.
  write_text(folder + "/README.md", "---\nlicense: 3\n---\n");
  const ProgramRun refused = run_quantize({folder, "--to", "F16", "-o", dir / "refused.gguf", "-q"});
  EXPECT_EQ(refused.exit_code, 4) << refused.err;
  EXPECT_NE(refused.err.find("README.md"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir / "refused.gguf"));
}

// --- tiny-llama-code, rebuilt as an f16 checkpoint ---

// Writes a safetensors file holding `tensors` (name, dtype, shape outermost first, bytes) in this order.
using CheckpointTensor = std::tuple<std::string, std::string, std::vector<int64_t>, std::vector<uint8_t>>;
void write_safetensors(const std::string& path, const std::vector<CheckpointTensor>& tensors) {
  nlohmann::ordered_json header;
  uint64_t offset = 0;
  for (const auto& [name, dtype, shape, bytes] : tensors) {
    header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {offset, offset + bytes.size()}}};
    offset += bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream file(path, std::ios::binary);
  const uint64_t length = text.size();
  file.write(reinterpret_cast<const char*>(&length), 8);
  file << text;
  for (const auto& [name, dtype, shape, bytes] : tensors) file.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// GGUF name -> the transformers name of tiny-llama-code's checkpoint.
std::string hf_name(const std::string& gguf) {
  static const std::vector<std::pair<std::string, std::string>> kParts = {
      {"attn_norm", "input_layernorm"},      {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},        {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
      {"ffn_gate", "mlp.gate_proj"},         {"ffn_up", "mlp.up_proj"},        {"ffn_down", "mlp.down_proj"},
  };
  if (gguf == "token_embd.weight") return "model.embed_tokens.weight";
  if (gguf == "output.weight") return "lm_head.weight";
  if (gguf == "output_norm.weight") return "model.norm.weight";
  const size_t dot = gguf.find('.', 4);
  const std::string block = gguf.substr(4, dot - 4);
  const std::string part = gguf.substr(dot + 1, gguf.size() - dot - 1 - 7);
  for (const auto& [from, to] : kParts) {
    if (from == part) return "model.layers." + block + "." + to + ".weight";
  }
  throw std::runtime_error("unexpected tensor " + gguf);
}

TEST(HfCheckpoint, TinyLlamaCodeGivesTheConvertersFileAndLlamaQuantizesQ4KM) {
  ScratchDir dir;
  // The converter's output was made from a folder named "hf": general.name is "Hf".
  const std::string folder = dir / "hf";
  fs::create_directory(folder);
  for (const char* file : {"config.json", "generation_config.json", "tokenizer.model", "tokenizer_config.json",
                           "tokenizer.json"}) {
    fs::copy_file(data_path(std::string("hf/tiny-llama-files/") + file), folder + "/" + file);
  }
  auto gguf = quant::GgufFile::open(data_path("models/tiny-llama-f16.gguf"));
  ASSERT_TRUE(gguf) << gguf.error().message();
  const int64_t heads = 4, kv_heads = 2;
  std::vector<CheckpointTensor> tensors;
  for (const quant::TensorInfo& t : gguf->tensors()) {
    auto data = gguf->read_tensor_data(t);
    ASSERT_TRUE(data);
    // Matrices were written f16, norms f32 from the f32 checkpoint: both values are kept exactly as stored.
    std::vector<uint8_t> bytes = *data;
    // Undo llama.cpp's q/k row order: the GGUF's row h*d + 2i + j holds the checkpoint's row h*d + j*d/2 + i.
    const bool q = t.name.find("attn_q") != std::string::npos, k = t.name.find("attn_k") != std::string::npos;
    if (q || k) {
      const int64_t rows = t.shape[1], row_bytes = t.shape[0] * 2, n = q ? heads : kv_heads, d = rows / n;
      std::vector<uint8_t> hf(bytes.size());
      for (int64_t h = 0; h < n; ++h) {
        for (int64_t i = 0; i < d / 2; ++i) {
          for (int64_t j = 0; j < 2; ++j) {
            std::memcpy(hf.data() + (h * d + j * d / 2 + i) * row_bytes, bytes.data() + (h * d + 2 * i + j) * row_bytes,
                        size_t(row_bytes));
          }
        }
      }
      bytes = std::move(hf);
    }
    std::vector<int64_t> shape(t.shape.rbegin(), t.shape.rend());
    tensors.emplace_back(hf_name(t.name), t.type == quant::TypeId::f32 ? "F32" : "F16", shape, std::move(bytes));
  }
  write_safetensors(folder + "/model.safetensors", tensors);

  const ProgramRun f16 = run_quantize({folder, "--to", "F16", "-o", dir / "f16.gguf", "-q"});
  ASSERT_EQ(f16.exit_code, 0) << f16.err;
  EXPECT_TRUE(read_bytes(dir / "f16.gguf") == read_bytes(data_path("models/tiny-llama-f16.gguf")));
  const ProgramRun q4 = run_quantize({folder, "--to", "Q4_K_M", "-o", dir / "q4.gguf", "-q"});
  ASSERT_EQ(q4.exit_code, 0) << q4.err;
  EXPECT_EQ(quant::testing::file_sha256(dir / "q4.gguf"),
            "df42de0f55c1ecf80eb560bac48596027a238506fa4649e9da3d49630f9b0e3a");  // llama-quantize-outputs.tsv
}

// --- damaged folders ---

struct Damage {
  const char* what;
  const char* base;  // checkpoint copied from tests/data/hf
  std::function<void(const std::string& dir)> damage;
  int exit_code;
  std::vector<std::string> in_message;  // each must appear in stderr
};

nlohmann::ordered_json read_json(const std::string& path) { return nlohmann::ordered_json::parse(read_text(path)); }
void write_json(const std::string& path, const nlohmann::ordered_json& json) { write_text(path, json.dump(2)); }
void edit_config(const std::string& dir, const std::function<void(nlohmann::ordered_json&)>& edit) {
  auto config = read_json(dir + "/config.json");
  edit(config);
  write_json(dir + "/config.json", config);
}
void resize_file(const std::string& path, int64_t delta) {
  fs::resize_file(path, uint64_t(int64_t(fs::file_size(path)) + delta));
}
// Rewrites a safetensors header with `edit` (same data section).
void edit_header(const std::string& path, const std::function<void(nlohmann::ordered_json&)>& edit) {
  std::vector<uint8_t> bytes = read_bytes(path);
  uint64_t length;
  std::memcpy(&length, bytes.data(), 8);
  auto header = nlohmann::ordered_json::parse(bytes.begin() + 8, bytes.begin() + 8 + int64_t(length));
  edit(header);
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const uint64_t new_length = text.size();
  out.write(reinterpret_cast<const char*>(&new_length), 8);
  out << text;
  out.write(reinterpret_cast<const char*>(bytes.data() + 8 + length), std::streamsize(bytes.size() - 8 - length));
}

std::vector<Damage> damages() {
  return {
      {"no config.json", "llama-tied-rope3", [](const std::string& d) { fs::remove(d + "/config.json"); }, 3,
       {"has no config.json"}},
      {"config.json not JSON", "llama-tied-rope3", [](const std::string& d) { write_text(d + "/config.json", "{\"a\": "); },
       3, {"config.json", "not valid JSON"}},
      {"unsupported architecture", "llama-tied-rope3",
       [](const std::string& d) { edit_config(d, [](auto& c) { c["architectures"] = {"FalconForCausalLM"}; }); }, 4,
       {"architecture FalconForCausalLM is not supported", "LlamaForCausalLM"}},
      {"no architectures", "llama-tied-rope3", [](const std::string& d) { edit_config(d, [](auto& c) { c.erase("architectures"); }); },
       3, {"no \"architectures\""}},
      {"layer count missing", "llama-tied-rope3",
       [](const std::string& d) { edit_config(d, [](auto& c) { c.erase("num_hidden_layers"); }); }, 3,
       {"config.json", "num_hidden_layers"}},
      {"contradictory config: fewer layers than tensors", "llama-tied-rope3",
       [](const std::string& d) { edit_config(d, [](auto& c) { c["num_hidden_layers"] = 1; }); }, 4,
       {"model.layers.1.", "cannot map"}},
      {"contradictory config: hidden size", "llama-tied-rope3",
       [](const std::string& d) { edit_config(d, [](auto& c) { c["hidden_size"] = 128; }); }, 3,
       {"model.safetensors", "model.embed_tokens.weight", "hidden_size 128"}},
      {"contradictory config: heads", "llama-tied-rope3",
       [](const std::string& d) { edit_config(d, [](auto& c) { c["num_key_value_heads"] = 3; }); }, 3,
       {"self_attn.k_proj.weight", "heads"}},
      {"value of the wrong type", "llama-tied-rope3",
       [](const std::string& d) { edit_config(d, [](auto& c) { c["max_position_embeddings"] = 512.5; }); }, 4,
       {"'max_position_embeddings'", "512.5"}},
      {"shard missing from the index", "llama-bf16-shards",
       [](const std::string& d) { fs::remove(d + "/model-00002-of-00002.safetensors"); }, 3,
       {"model.safetensors.index.json", "model-00002-of-00002.safetensors", "missing"}},
      {"index names a tensor the shard lacks", "llama-bf16-shards",
       [](const std::string& d) {
         auto index = read_json(d + "/model.safetensors.index.json");
         index["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors";
         write_json(d + "/model.safetensors.index.json", index);
       },
       3, {"model.safetensors.index.json", "model.layers.9.mlp.up_proj.weight", "does not hold it"}},
      {"tensor in two shards", "llama-bf16-shards",
       [](const std::string& d) {
         // The second shard gets a copy of the first shard's first tensor (same bytes appended).
         const std::string one = d + "/model-00001-of-00002.safetensors", two = d + "/model-00002-of-00002.safetensors";
         std::vector<uint8_t> first = read_bytes(one);
         uint64_t length;
         std::memcpy(&length, first.data(), 8);
         auto header = nlohmann::ordered_json::parse(first.begin() + 8, first.begin() + 8 + int64_t(length));
         std::string name;
         nlohmann::ordered_json entry;
         for (auto& [key, value] : header.items()) {
           if (key != "__metadata__") { name = key; entry = value; break; }
         }
         const uint64_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
         const uint64_t two_data = fs::file_size(two);
         std::vector<uint8_t> copy(first.begin() + 8 + int64_t(length + begin), first.begin() + 8 + int64_t(length + end));
         edit_header(two, [&](auto& h) {
           uint64_t size = 0;
           for (auto& [key, value] : h.items()) if (key != "__metadata__") size = std::max<uint64_t>(size, value["data_offsets"][1]);
           entry["data_offsets"] = {size, size + copy.size()};
           h[name] = entry;
         });
         (void)two_data;
         std::ofstream(two, std::ios::binary | std::ios::app).write(reinterpret_cast<const char*>(copy.data()), std::streamsize(copy.size()));
       },
       3, {"stored in two shards"}},
      {"truncated safetensors", "llama-tied-rope3", [](const std::string& d) { resize_file(d + "/model.safetensors", -100); },
       3, {"model.safetensors", "lies past the data section"}},
      {"overlapping tensors", "llama-tied-rope3",
       [](const std::string& d) {
         edit_header(d + "/model.safetensors", [](auto& h) {
           for (auto& [key, value] : h.items()) {
             if (key == "model.norm.weight") value["data_offsets"] = {0, 256};
           }
         });
       },
       3, {"model.safetensors", "overlap"}},
      {"tensor of the wrong dtype", "llama-tied-rope3",
       [](const std::string& d) {
         edit_header(d + "/model.safetensors", [](auto& h) { h["model.norm.weight"]["dtype"] = "I32"; });
       },
       4, {"model.norm.weight", "dtype I32"}},
      {"tensor of the wrong shape", "llama-tied-rope3",
       [](const std::string& d) {
         edit_header(d + "/model.safetensors", [](auto& h) { h["model.norm.weight"]["shape"] = {2, 32}; });
       },
       3, {"model.norm.weight", "shape"}},
      {"no tokenizer.model", "llama-tied-rope3", [](const std::string& d) { fs::remove(d + "/tokenizer.model"); }, 4,
       {"tokenizer.model"}},
      {"damaged tokenizer.model", "llama-tied-rope3", [](const std::string& d) { write_text(d + "/tokenizer.model", "xyz"); },
       3, {"tokenizer.model", "not a SentencePiece model"}},
      {"no weights", "llama-tied-rope3", [](const std::string& d) { fs::remove(d + "/model.safetensors"); }, 3,
       {"no model*.safetensors"}},
  };
}

TEST(HfCheckpoint, EachClassOfDamageGivesItsErrorAndWritesNothing) {
  for (const Damage& c : damages()) {
    SCOPED_TRACE(c.what);
    ScratchDir dir;
    const std::string folder = dir / c.base;
    fs::copy(data_path(std::string("hf/") + c.base), folder);
    for (const auto& entry : fs::directory_iterator(folder)) fs::permissions(entry.path(), fs::perms::owner_write, fs::perm_options::add);
    c.damage(folder);
    const ProgramRun run = run_quantize({folder, "--to", "Q8_0", "-o", dir / "out.gguf"});
    EXPECT_EQ(run.exit_code, c.exit_code) << run.err;
    for (const std::string& part : c.in_message) EXPECT_NE(run.err.find(part), std::string::npos) << run.err;
    EXPECT_EQ(run.err.find("json.exception"), std::string::npos) << "a library's exception tag: " << run.err;
    size_t entries = 0;
    for (const auto& entry : fs::directory_iterator(dir.path())) entries += entry.path().filename() != c.base;
    EXPECT_EQ(entries, 0u) << "something was written";
  }
}

}  // namespace
