// The forward pass: a CPU evaluation of dense llama-family models whose statistics are those of llama.cpp's CPU
// backend running the same file.
//
// Architectures are rows of a table (ArchitectureInfo), not code per model: the tensor names are GGUF's, and a
// row says which optional parts exist (q/k norms, biases, rope kind, Llama 3 `rope_freqs`, tied output). Weights of
// any ggml type are dequantized through the formats table. Numerics follow ggml-cpu at llama.cpp 34af94c:
//   - each matmul's input rows are quantized to the weight type's dot-product type (q8_0, q8_1, q8_K; f16 for f16
//     weights, bf16 for bf16) and dequantized back, then multiplied in float32 (Eigen);
//   - K and V are rounded to f16 as llama.cpp's default KV cache stores them; attention follows llama-perplexity's
//     default (flash attention on CPU: f32 queries and softmax for sequences of 64+ tokens, f16 queries and an
//     f16 accumulator below that, as ggml's tiled and one-row kernels do);
//   - RMS norm sums in double, RoPE angles in float as ggml computes them, SiLU with expf.
// Results agree with llama.cpp to float rounding (accumulation order differs), not bit for bit.
//
// Evaluation is in steps so callers can run parts of the model: embed() → run_layers(first, last) → logits().
// A batch is n_seq independent sequences of seq_len tokens each at positions 0..seq_len-1 (llama-perplexity's
// chunks); rows are sequence-major. Rows at positions >= first_output are outputs: the last layer keeps only them
// after attention, as llama.cpp's graphs do, and logits() reads them.
// Weights are read through the ModelSource a tile of rows at a time, by the thread that multiplies by the tile:
// memory stays bounded by one tile per thread plus the working set, unless every weight fits the resident budget
// (then they are dequantized once and kept).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quant/error.h"
#include "quant/formats.h"
#include "quant/model_source.h"

namespace quant {

// ggml's rope modes: `normal` rotates adjacent pairs (x[2i], x[2i+1]); `neox` rotates halves (x[i], x[i+n/2]).
enum class RopeKind { normal, neox };

// Whether an architecture has a tensor role.
enum class Presence : uint8_t { absent, optional, required };

// One architecture: what llama.cpp's loader for it creates (src/models/<arch>.cpp, create_tensor_qkv).
struct ArchitectureInfo {
  std::string_view name;           // general.architecture
  RopeKind rope;
  Presence qkv_bias;               // blk.N.attn_{q,k,v}.bias (or attn_qkv.bias with a fused attn_qkv)
  Presence qk_norm;                // blk.N.attn_{q,k}_norm.weight: per-head RMS norm before rope (qwen3)
  Presence attn_output_bias;       // blk.N.attn_output.bias
  Presence ffn_bias;               // blk.N.ffn_{gate,up,down}.bias
  Presence output_bias;            // output.bias
  Presence rope_freqs;             // rope_freqs.weight: Llama 3 rope scaling's per-frequency divisors
  bool rope_dims_equal_head_dim;   // llama.cpp refuses n_rot != head size for this architecture
};

// Every supported architecture, and lookup by name (nullptr when unsupported).
std::span<const ArchitectureInfo> supported_architectures();
const ArchitectureInfo* find_architecture(std::string_view name);

enum class RopeScaling { none, linear, yarn };

// Hyper-parameters as llama.cpp resolves them for a context of the model's own settings.
struct ModelHyperparameters {
  const ArchitectureInfo* architecture = nullptr;
  int64_t n_vocab = 0;        // rows of token_embd
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim_k = 0;     // {arch}.attention.key_length, default n_embd / n_head
  int64_t head_dim_v = 0;
  int64_t n_ff = 0;
  int64_t n_rot = 0;          // {arch}.rope.dimension_count, default head_dim_k
  int64_t n_ctx_train = 0;
  float rms_norm_eps = 0;
  float attention_scale = 0;  // multiplies Q·K: 1/sqrt(head_dim_k) for these architectures
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;
  RopeScaling rope_scaling = RopeScaling::linear;
  int64_t rope_original_context = 0;  // YaRN's n_ctx_orig
  float yarn_ext_factor = 0, yarn_attn_factor = 1, yarn_beta_fast = 32, yarn_beta_slow = 1;
  bool fused_qkv = false;     // blk.N.attn_qkv.weight instead of attn_q/k/v
  bool tied_output = false;   // no output.weight: token_embd is the output head
};

// Reads and checks the hyper-parameters and the tensor layout of `source` against its architecture's row:
// unsupported architecture (or MoE) is ErrorKind::impossible naming it; missing or inconsistent metadata, a missing
// tensor, a tensor of the wrong shape or one the architecture does not use is ErrorKind::invalid_input naming the
// file and the key or tensor.
Result<ModelHyperparameters> read_hyperparameters(const ModelSource& source);

// The type ggml-cpu converts a matmul's input to for weights of type `weight` (type_traits_cpu[].vec_dot_type):
// f32, f16, bf16, q8_0, q8_1 or q8_K. nullopt when ggml-cpu cannot multiply by that type.
std::optional<TypeId> activation_type_for(TypeId weight);

// Attention numerics (see the header comment). `automatic` picks llama-perplexity's by sequence length.
enum class AttentionNumerics { automatic, flash_tiled, flash_one_row };

struct ModelOptions {
  int threads = 0;  // 0: every hardware thread
  // Dequantized weights (float32) are kept between evaluations while all of them fit in this many bytes; above
  // it, each layer's weights are read and dequantized tile by tile on every pass.
  uint64_t resident_budget_bytes = uint64_t(1) << 30;
  AttentionNumerics attention = AttentionNumerics::automatic;
};

// One matmul's input as ggml's mul_mat sees src1 before converting it: rows x cols float32, row-major (one row per
// token), with the weight's name. What llama-imatrix's callback accumulates.
struct MatmulInput {
  std::string_view weight;              // the tensor: "blk.3.ffn_down.weight", "output.weight" ("token_embd.weight"
                                        // for a tied output head, as ggml names it)
  int layer = -1;                       // -1 for the output head
  const float* values = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  std::span<const int32_t> expert_ids;  // MoE weights: rows x experts-used ids; empty for dense weights
};
using ActivationHook = std::function<void(const MatmulInput&)>;

// A weight replaced for one evaluation by another type's version of it (same shape): the bytes are dequantized and
// the matmul uses that type's activation numerics.
struct WeightOverride {
  std::string name;
  TypeId type = TypeId::f32;
  std::shared_ptr<const std::vector<uint8_t>> data;  // the tensor in `type`, rows of row_bytes(type, ne0)
};

struct EvalHooks {
  ActivationHook on_matmul_input;              // called on the calling thread, in graph order
  std::span<const WeightOverride> overrides;   // looked up by weight name
};

// Hidden states of a batch between steps. After the last layer only output rows remain (compacted()).
class HiddenStates {
 public:
  int64_t n_seq() const { return n_seq_; }
  int64_t seq_len() const { return seq_len_; }
  int64_t first_output() const { return first_output_; }
  int64_t n_embd() const { return n_embd_; }
  bool compacted() const { return compacted_; }
  int64_t rows() const { return compacted_ ? n_seq_ * (seq_len_ - first_output_) : n_seq_ * seq_len_; }
  int next_layer() const { return next_layer_; }  // the layer whose input these are
  const float* row(int64_t r) const { return values_.data() + r * n_embd_; }
  std::span<const float> values() const { return values_; }

 private:
  friend class Model;
  int64_t n_seq_ = 0, seq_len_ = 0, first_output_ = 0, n_embd_ = 0;
  bool compacted_ = false;
  int next_layer_ = 0;
  std::vector<float> values_;
};

class ModelImpl;

// One evaluation at a time per Model: its methods serialize on an internal lock (the thread pool and buffers are
// shared); open two Models to evaluate in parallel.
class Model {
 public:
  // Reads the hyper-parameters, checks every tensor and loads the small ones (norms, biases, rope_freqs).
  static Result<std::unique_ptr<Model>> open(std::shared_ptr<const ModelSource> source, const ModelOptions& options = {});
  ~Model();

  const ModelHyperparameters& hparams() const;
  const ModelSource& source() const;
  int threads() const;

  // Step 1: the token embeddings of n_seq sequences of seq_len tokens (tokens sequence-major), read from an
  // override of token_embd.weight when the hooks hold one. A token outside the vocabulary is
  // ErrorKind::invalid_input.
  Result<HiddenStates> embed(std::span<const int32_t> tokens, int64_t n_seq, int64_t seq_len, int64_t first_output,
                             const EvalHooks& hooks = {}) const;
  // Step 2: layers states.next_layer() .. last-1, in place. Running the model's last layer compacts the states to
  // the output rows.
  Status run_layers(HiddenStates& states, int last, const EvalHooks& hooks = {}) const;
  // Step 3: output norm and head for `n_rows` rows of compacted states from `first_row`: n_rows x n_vocab logits.
  Status logits(const HiddenStates& states, int64_t first_row, int64_t n_rows, float* out,
                const EvalHooks& hooks = {}) const;

  // Runs task(i) for every i in [0, n) on the model's threads and returns when all are done: a caller's per-row
  // work between steps (scoring logits) then does not run on one thread while the others wait. Neither the tasks
  // nor an EvalHooks callback may call it or any other method of this model (the model's lock is not reentrant).
  void parallel_for(int64_t n, const std::function<void(int64_t index)>& task) const;

  // The weight `name` quantized to `type` as llama-quantize would quantize its float values (with `importance`, one
  // weight per column, when given), for an EvalHooks override.
  Result<WeightOverride> quantized_override(std::string_view name, TypeId type,
                                            std::span<const float> importance = {}) const;

 private:
  explicit Model(std::unique_ptr<ModelImpl> impl);
  std::unique_ptr<ModelImpl> impl_;
};

}  // namespace quant
