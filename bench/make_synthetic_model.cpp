// make_synthetic_model: writes a llama-shaped f16 GGUF model, and optionally a matching importance matrix, so
// anyone can reproduce the whole-conversion benchmark without downloading a model.
//
// The model carries every metadata key llama.cpp's loader reads for the llama architecture and a small synthetic
// SentencePiece-style vocabulary, so llama-quantize accepts it as it accepts a converted model. Weights are f16,
// Student-t distributed (nu = 5: heavier tails than a gaussian, like trained weights) with a per-row scale, and a
// few input columns (the same ones in every tensor reading the residual stream) carry 8x larger values, like the
// outlier features of trained transformers. Norm weights are f32 near 1. Every value is a function of the seed,
// the tensor and the row, so the file is identical for any thread count.
// The importance matrix is in llama-imatrix's GGUF format: per block weight, in_sum2 = tokens x mean square
// activation (log-normal across columns, large on the outlier columns) and counts = tokens.
//
//   make_synthetic_model -o model.gguf [--imatrix model.imatrix.gguf] [--params-size 861M] [shape options]
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "quant/gguf.h"
#include "quant/half.h"
#include "quant/imatrix.h"

namespace {

using quant::Status;
using quant::Value;

struct Shape {
  int64_t n_embd = 2048;
  int64_t n_ff = 8192;
  int64_t n_layer = 12;
  int64_t n_vocab = 32000;
  std::string vocab_from;  // a GGUF whose tokenizer.* keys (a real vocabulary) replace the synthetic one
  int64_t n_head = 32;
  int64_t n_head_kv = 8;
  int64_t n_ctx = 2048;

  int64_t head_dim() const { return n_embd / n_head; }
  int64_t n_embd_kv() const { return head_dim() * n_head_kv; }
  int64_t params_per_layer() const {
    return 2 * n_embd * n_embd + 2 * n_embd * n_embd_kv() + 3 * n_embd * n_ff + 2 * n_embd;
  }
  // token_embd, output and output_norm.
  int64_t params_outside_layers() const { return 2 * n_vocab * n_embd + n_embd; }
  int64_t params() const { return params_outside_layers() + n_layer * params_per_layer(); }
};

struct TensorSpec {
  std::string name;
  int64_t row_length;  // ne0
  int64_t rows;        // ne1 (1 for the norm vectors)
  bool is_norm;
};

std::vector<TensorSpec> tensor_specs(const Shape& s) {
  std::vector<TensorSpec> specs;
  specs.push_back({"token_embd.weight", s.n_embd, s.n_vocab, false});
  for (int64_t layer = 0; layer < s.n_layer; ++layer) {
    const std::string blk = fmt::format("blk.{}.", layer);
    specs.push_back({blk + "attn_norm.weight", s.n_embd, 1, true});
    specs.push_back({blk + "attn_q.weight", s.n_embd, s.n_embd, false});
    specs.push_back({blk + "attn_k.weight", s.n_embd, s.n_embd_kv(), false});
    specs.push_back({blk + "attn_v.weight", s.n_embd, s.n_embd_kv(), false});
    specs.push_back({blk + "attn_output.weight", s.n_embd, s.n_embd, false});
    specs.push_back({blk + "ffn_norm.weight", s.n_embd, 1, true});
    specs.push_back({blk + "ffn_gate.weight", s.n_embd, s.n_ff, false});
    specs.push_back({blk + "ffn_up.weight", s.n_embd, s.n_ff, false});
    specs.push_back({blk + "ffn_down.weight", s.n_ff, s.n_embd, false});
  }
  specs.push_back({"output_norm.weight", s.n_embd, 1, true});
  specs.push_back({"output.weight", s.n_embd, s.n_vocab, false});
  return specs;
}

// splitmix64: a small, fast generator with good statistical quality; one stream per (seed, tensor, row).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

uint64_t stream_seed(uint64_t seed, uint64_t a, uint64_t b) {
  SplitMix64 mix{seed ^ (a * 0x9e3779b97f4a7c15ull) ^ (b * 0xc2b2ae3d27d4eb4full)};
  mix.next();
  return mix.next();
}

// Student-t with nu degrees of freedom by Bailey's polar method (two uniforms, one pow, one sqrt).
double student_t(SplitMix64& rng, double nu) {
  for (;;) {
    const double u = 2.0 * rng.uniform() - 1.0;
    const double v = 2.0 * rng.uniform() - 1.0;
    const double w = u * u + v * v;
    if (w >= 1.0 || w == 0.0) continue;
    return u * std::sqrt(nu * (std::pow(w, -2.0 / nu) - 1.0) / w);
  }
}

constexpr double kNu = 5.0;
constexpr int kOutlierColumns = 6;
constexpr double kOutlierGain = 8.0;

// The outlier columns of a row length: fixed by the seed, so every tensor reading the same input shares them.
std::vector<int64_t> outlier_columns(uint64_t seed, int64_t row_length) {
  SplitMix64 rng{stream_seed(seed, 0xfeed, uint64_t(row_length))};
  std::vector<int64_t> columns;
  while (int64_t(columns.size()) < std::min<int64_t>(kOutlierColumns, row_length)) {
    const int64_t c = int64_t(rng.next() % uint64_t(row_length));
    if (std::find(columns.begin(), columns.end(), c) == columns.end()) columns.push_back(c);
  }
  return columns;
}

// Fills `count` rows starting at `first_row` of tensor `index` with f16 weights.
void fill_weight_rows(uint64_t seed, size_t index, const TensorSpec& spec, const std::vector<double>& column_gain,
                      int64_t first_row, int64_t count, uint16_t* out) {
  // A unit-variance t5 value times 0.02 / sqrt(5/3) gives weights of standard deviation ~0.02 on average.
  const double base = 0.02 / std::sqrt(kNu / (kNu - 2.0));
  for (int64_t r = 0; r < count; ++r) {
    SplitMix64 rng{stream_seed(seed, index + 1, uint64_t(first_row + r))};
    const double row_scale = base * (0.5 + rng.uniform());
    uint16_t* row = out + r * spec.row_length;
    for (int64_t c = 0; c < spec.row_length; ++c) {
      row[c] = quant::fp32_to_fp16(float(column_gain[size_t(c)] * row_scale * student_t(rng, kNu)));
    }
  }
}

void fill_norm(uint64_t seed, size_t index, int64_t length, float* out) {
  SplitMix64 rng{stream_seed(seed, index + 1, 0)};
  for (int64_t c = 0; c < length; ++c) out[c] = float(1.0 + 0.1 * (rng.uniform() - 0.5));
}

// A SentencePiece-like vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then distinct made-up words.
struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

Vocabulary make_vocabulary(int64_t n_vocab) {
  enum : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kByte = 6 };
  Vocabulary v;
  auto add = [&](std::string text, float score, int32_t type) {
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0.0f, kUnknown);
  add("<s>", 0.0f, kControl);
  add("</s>", 0.0f, kControl);
  for (int byte = 0; byte < 256; ++byte) add(fmt::format("<0x{:02X}>", byte), 0.0f, kByte);
  for (int64_t id = int64_t(v.tokens.size()), word = 0; id < n_vocab; ++id, ++word) {
    std::string text = "\xe2\x96\x81";  // U+2581, SentencePiece's word-start mark
    for (int64_t w = word;; w = w / 26 - 1) {  // bijective base 26: a..z, aa..zz, ...
      text.insert(3, 1, char('a' + w % 26));
      if (w < 26) break;
    }
    add(std::move(text), -float(word), kNormal);
  }
  return v;
}

Status add_model_metadata(quant::GgufWriter& writer, const Shape& s) {
  const Vocabulary vocab = make_vocabulary(s.vocab_from.empty() ? s.n_vocab : 260);
  const auto u32 = [](int64_t v) { return Value::u32(uint32_t(v)); };
  const std::pair<const char*, Value> keys[] = {
      {"general.architecture", Value::string("llama")},
      {"general.type", Value::string("model")},
      {"general.name", Value::string("synthetic llama")},
      {"general.size_label", Value::string(fmt::format("{}M", (s.params() + 500000) / 1000000))},
      {"llama.block_count", u32(s.n_layer)},
      {"llama.context_length", u32(s.n_ctx)},
      {"llama.embedding_length", u32(s.n_embd)},
      {"llama.feed_forward_length", u32(s.n_ff)},
      {"llama.attention.head_count", u32(s.n_head)},
      {"llama.attention.head_count_kv", u32(s.n_head_kv)},
      {"llama.rope.freq_base", Value::f32(10000.0f)},
      {"llama.attention.layer_norm_rms_epsilon", Value::f32(1e-5f)},
      {"llama.attention.key_length", u32(s.head_dim())},
      {"llama.attention.value_length", u32(s.head_dim())},
      {"general.file_type", Value::u32(1)},  // LLAMA_FTYPE_MOSTLY_F16
      {"llama.vocab_size", u32(s.n_vocab)},
      {"llama.rope.dimension_count", u32(s.head_dim())},
      {"general.quantization_version", Value::u32(2)},
      {"tokenizer.ggml.model", Value::string("llama")},
      {"tokenizer.ggml.pre", Value::string("default")},
      {"tokenizer.ggml.tokens", Value::array_of_strings(std::span<const std::string>(vocab.tokens))},
      {"tokenizer.ggml.scores", Value::array_of<float>(vocab.scores)},
      {"tokenizer.ggml.token_type", Value::array_of<int32_t>(vocab.types)},
      {"tokenizer.ggml.bos_token_id", Value::u32(1)},
      {"tokenizer.ggml.eos_token_id", Value::u32(2)},
      {"tokenizer.ggml.unknown_token_id", Value::u32(0)},
      {"tokenizer.ggml.add_bos_token", Value::boolean(true)},
      {"tokenizer.ggml.add_eos_token", Value::boolean(false)},
  };
  if (!s.vocab_from.empty()) {
    // A real vocabulary: every key but the synthetic tokenizer's, then the file's tokenizer.* keys.
    for (const auto& [key, value] : keys) {
      if (std::string_view(key).rfind("tokenizer.", 0) != 0) QUANT_TRY(writer.add_metadata(key, value));
    }
    QUANT_ASSIGN_OR_RETURN(quant::GgufFile vocab_file, quant::GgufFile::open(s.vocab_from));
    for (const quant::KeyValue& kv : vocab_file.metadata()) {
      if (kv.key.rfind("tokenizer.", 0) == 0) QUANT_TRY(writer.add_metadata(kv.key, kv.value));
    }
    return Status::success();
  }
  for (const auto& [key, value] : keys) QUANT_TRY(writer.add_metadata(key, value));
  return Status::success();
}

// Streams the model: header first, then each tensor a chunk of rows at a time, rows generated in parallel.
Status write_model(const std::string& path, const Shape& shape, uint64_t seed, int threads) {
  QUANT_ASSIGN_OR_RETURN(quant::GgufWriter writer, quant::GgufWriter::create(path));
  QUANT_TRY(add_model_metadata(writer, shape));
  const std::vector<TensorSpec> specs = tensor_specs(shape);
  for (const TensorSpec& t : specs) {
    std::vector<int64_t> dims = t.is_norm ? std::vector<int64_t>{t.row_length} : std::vector<int64_t>{t.row_length, t.rows};
    QUANT_TRY(writer.add_tensor(t.name, t.is_norm ? quant::TypeId::f32 : quant::TypeId::f16, std::move(dims)));
  }
  QUANT_TRY(writer.begin());

  std::vector<uint16_t> chunk;
  for (size_t index = 0; index < specs.size(); ++index) {
    const TensorSpec& t = specs[index];
    QUANT_TRY(writer.begin_tensor(t.name));
    if (t.is_norm) {
      std::vector<float> norm(size_t(t.row_length));
      fill_norm(seed, index, t.row_length, norm.data());
      QUANT_TRY(writer.write_tensor_data({reinterpret_cast<const uint8_t*>(norm.data()), norm.size() * sizeof(float)}));
      continue;
    }
    std::vector<double> column_gain(size_t(t.row_length), 1.0);
    for (int64_t c : outlier_columns(seed, t.row_length)) column_gain[size_t(c)] = kOutlierGain;
    const int64_t chunk_rows = std::max<int64_t>(1, (int64_t(8) << 20) / (t.row_length * 2));
    for (int64_t row = 0; row < t.rows; row += chunk_rows) {
      const int64_t count = std::min(chunk_rows, t.rows - row);
      chunk.resize(size_t(count * t.row_length));
      std::vector<std::thread> workers;
      const int64_t per_thread = (count + threads - 1) / threads;
      for (int w = 0; w < threads && int64_t(w) * per_thread < count; ++w) {
        const int64_t first = int64_t(w) * per_thread;
        const int64_t n = std::min(per_thread, count - first);
        workers.emplace_back(fill_weight_rows, seed, index, std::cref(t), std::cref(column_gain), row + first, n,
                             chunk.data() + first * t.row_length);
      }
      for (std::thread& worker : workers) worker.join();
      QUANT_TRY(writer.write_tensor_data({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size() * 2}));
    }
    std::fprintf(stderr, "\r%zu/%zu tensors", index + 1, specs.size());
  }
  std::fprintf(stderr, "\n");
  quant::OutputPolicy replace;
  replace.overwrite = true;  // a benchmark input is made again on every run
  return writer.commit(replace);
}

// Mean squares of the activations feeding a weight: log-normal across columns, the outlier columns far above.
std::vector<float> activation_mean_squares(uint64_t seed, uint64_t input_id, int64_t columns) {
  SplitMix64 rng{stream_seed(seed, 0xa11ce, input_id)};
  std::vector<float> ms(static_cast<size_t>(columns));
  for (float& m : ms) {
    // exp of a gaussian (Box-Muller) with sigma 1: spread over about two orders of magnitude.
    const double g = std::sqrt(-2.0 * std::log(1.0 - rng.uniform())) * std::cos(6.283185307179586 * rng.uniform());
    m = float(std::exp(g));
  }
  for (int64_t c : outlier_columns(seed, columns)) ms[size_t(c)] *= float(kOutlierGain * kOutlierGain);
  return ms;
}

Status write_imatrix(const std::string& path, const Shape& shape, uint64_t seed) {
  constexpr int64_t kChunks = 128, kChunkSize = 512;
  std::map<std::string, quant::ImatrixAccumulator::Sums> sums;
  const auto add = [&](const std::string& weight, const std::vector<float>& ms) {
    quant::ImatrixAccumulator::Sums s;
    s.counts = {kChunks * kChunkSize};
    s.batches = kChunks;
    s.in_sum2.resize(ms.size());
    for (size_t c = 0; c < ms.size(); ++c) s.in_sum2[c] = ms[c] * float(s.counts[0]);
    sums[weight] = std::move(s);
  };
  for (int64_t layer = 0; layer < shape.n_layer; ++layer) {
    const std::string blk = fmt::format("blk.{}.", layer);
    // q, k and v read the same normalised input, as do gate and up; each input gets its own profile.
    const std::vector<float> attn_in = activation_mean_squares(seed, uint64_t(layer) * 4 + 0, shape.n_embd);
    const std::vector<float> attn_out = activation_mean_squares(seed, uint64_t(layer) * 4 + 1, shape.n_embd);
    const std::vector<float> ffn_in = activation_mean_squares(seed, uint64_t(layer) * 4 + 2, shape.n_embd);
    const std::vector<float> ffn_mid = activation_mean_squares(seed, uint64_t(layer) * 4 + 3, shape.n_ff);
    for (const char* w : {"attn_q", "attn_k", "attn_v"}) add(blk + w + ".weight", attn_in);
    add(blk + "attn_output.weight", attn_out);
    for (const char* w : {"ffn_gate", "ffn_up"}) add(blk + w + ".weight", ffn_in);
    add(blk + "ffn_down.weight", ffn_mid);
  }
  quant::ImatrixMetadata metadata;
  metadata.datasets = {"synthetic"};
  metadata.chunk_count = kChunks;
  metadata.chunk_size = kChunkSize;
  quant::OutputPolicy replace;
  replace.overwrite = true;
  return quant::write_imatrix_gguf(path, sums, metadata, replace);
}

// "861M", "1.5G", "300000000": a parameter count.
bool parse_count(const std::string& text, int64_t* out) {
  try {
    size_t used = 0;
    double value = std::stod(text, &used);
    const std::string suffix = text.substr(used);
    if (suffix == "K" || suffix == "k") value *= 1e3;
    else if (suffix == "M" || suffix == "m") value *= 1e6;
    else if (suffix == "G" || suffix == "g" || suffix == "B" || suffix == "b") value *= 1e9;
    else if (!suffix.empty()) return false;
    if (!(value > 0 && value < 1e13)) return false;
    *out = int64_t(value);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string check_shape(const Shape& s) {
  if (s.n_embd <= 0 || s.n_ff <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ctx <= 0) {
    return "every dimension must be positive";
  }
  if (s.n_embd % 256 != 0 || s.n_ff % 256 != 0) return "n_embd and n_ff must be multiples of 256 (k-quant blocks)";
  if (s.n_embd % s.n_head != 0 || s.n_head % s.n_head_kv != 0) return "n_head must divide n_embd, n_head_kv n_head";
  if (s.n_embd_kv() % 256 != 0) return "n_embd / n_head * n_head_kv must be a multiple of 256";
  if (s.n_vocab < 260) return "n_vocab must be at least 260 (3 special and 256 byte tokens)";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a synthetic llama-shaped f16 GGUF model (and importance matrix) for benchmarks"};
  Shape shape;
  std::string output, imatrix, params_size;
  uint64_t seed = 1;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  bool force = false;
  app.add_option("-o,--output", output, "Model to write (GGUF, f16 weights)");
  app.add_option("--imatrix", imatrix, "Also write a matching importance matrix here (llama-imatrix GGUF format)");
  app.add_option("--params-size", params_size,
                 "Approximate parameter count (e.g. 861M, 1.5G): sets the number of layers for the other dimensions");
  app.add_option("--n-embd", shape.n_embd, "Embedding width")->capture_default_str();
  app.add_option("--n-ff", shape.n_ff, "Feed-forward width")->capture_default_str();
  app.add_option("--n-layer", shape.n_layer, "Layers (ignored with --params-size)")->capture_default_str();
  app.add_option("--n-vocab", shape.n_vocab, "Vocabulary size")->capture_default_str();
  app.add_option("--vocab-from", shape.vocab_from,
                 "Take the vocabulary (tokenizer.* keys, and n_vocab) from this GGUF, e.g. a llama.cpp vocab file, so "
                 "text tokenizes as with a real model");
  app.add_option("--n-head", shape.n_head, "Attention heads")->capture_default_str();
  app.add_option("--n-head-kv", shape.n_head_kv, "Key/value heads")->capture_default_str();
  app.add_option("--seed", seed, "Seed: the same seed and shape give the same bytes")->capture_default_str();
  app.add_option("-t,--threads", threads, "Generator threads (the output does not depend on it)");
  app.add_flag("-f,--force", force, "Replace existing outputs");
  CLI11_PARSE(app, argc, argv);

  if (output.empty() && imatrix.empty()) {
    std::fprintf(stderr, "error: nothing to do: give -o MODEL and/or --imatrix FILE\n");
    return 2;
  }
  if (!shape.vocab_from.empty()) {
    auto vocab_file = quant::GgufFile::open(shape.vocab_from);
    const quant::Value* tokens = vocab_file ? vocab_file->find("tokenizer.ggml.tokens") : nullptr;
    if (tokens == nullptr || !tokens->is_array()) {
      std::fprintf(stderr, "error: --vocab-from %s: no tokenizer.ggml.tokens array\n", shape.vocab_from.c_str());
      return 2;
    }
    shape.n_vocab = int64_t(tokens->size());
  }
  if (!params_size.empty()) {
    int64_t wanted = 0;
    if (!parse_count(params_size, &wanted)) {
      std::fprintf(stderr, "error: --params-size '%s' is not a count like 861M\n", params_size.c_str());
      return 2;
    }
    const double layers = double(wanted - shape.params_outside_layers()) / double(shape.params_per_layer());
    shape.n_layer = std::max<int64_t>(1, std::llround(layers));
  }
  if (const std::string why = check_shape(shape); !why.empty()) {
    std::fprintf(stderr, "error: %s\n", why.c_str());
    return 2;
  }
  threads = std::max(1, threads);
  for (const std::string& path : {output, imatrix}) {
    if (!path.empty() && !force && std::filesystem::exists(path)) {
      std::fprintf(stderr, "error: %s exists (use --force to replace it)\n", path.c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "shape: n_embd %lld, n_ff %lld, %lld layers, vocab %lld, %lld heads (%lld kv): %lld parameters\n",
               (long long)shape.n_embd, (long long)shape.n_ff, (long long)shape.n_layer, (long long)shape.n_vocab,
               (long long)shape.n_head, (long long)shape.n_head_kv, (long long)shape.params());
  if (!output.empty()) {
    if (Status status = write_model(output, shape, seed, threads); !status) {
      std::fprintf(stderr, "error: %s\n", status.error().message().c_str());
      return 1;
    }
  }
  if (!imatrix.empty()) {
    if (Status status = write_imatrix(imatrix, shape, seed); !status) {
      std::fprintf(stderr, "error: %s\n", status.error().message().c_str());
      return 1;
    }
  }
  return 0;
}
