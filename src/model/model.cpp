// Model: the steps of the forward pass (embed, layers, output head) over weights read through a ModelSource.
// The graph is llama.cpp's for llama / qwen2 / qwen3 (src/models/*.cpp, llm_graph_context::build_qkv, build_attn,
// build_ffn): attention block, then the last layer keeps only output rows (inp_out_ids), then the FFN block.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "model/activation.h"
#include "model/attention.h"
#include "model/layer_ops.h"
#include "model/layout.h"
#include "model/matmul.h"
#include "model/thread_pool.h"
#include "quant/model.h"

namespace quant {

using model::WeightView;

namespace {

// Flash attention's tiled kernel needs at least this many query rows per sequence (GGML_FA_TILE_Q).
constexpr int64_t kTiledAttentionMinRows = 64;

struct LayerVectors {
  std::vector<float> attn_norm, ffn_norm, q_norm, k_norm;
  std::vector<float> q_bias, k_bias, v_bias, qkv_bias, output_bias, gate_bias, up_bias, down_bias;
};

// A matmul weight for one evaluation.
struct LoadedWeight {
  std::string name;
  WeightView view;
};

// Buffers of a layer pass, kept between layers and passes: allocating (and zero-filling) megabytes per layer cost
// more than the layer's arithmetic on small models.
struct Workspace {
  GrowBuffer<float> cur, rounded, q, k, v, qkv, attn, attn_out, up, gate, normed;
  TypeId rounded_type = TypeId::f32;  // what `rounded` holds
};

// Makes `buffer` hold at least `size` floats (the contents are overwritten by the caller).
float* sized(GrowBuffer<float>& buffer, int64_t size) { return buffer.at_least(size_t(size)); }

void add_bias_rows(float* rows, int64_t n, int64_t width, const std::vector<float>& bias) {
  if (bias.empty()) return;
  for (int64_t r = 0; r < n; ++r) {
    float* row = rows + r * width;
    for (int64_t i = 0; i < width; ++i) row[i] += bias[size_t(i)];
  }
}

}  // namespace

class ModelImpl {
 public:
  std::shared_ptr<const ModelSource> source;
  ModelHyperparameters hp;
  ModelOptions options;
  std::unique_ptr<model::ThreadPool> pool;
  std::unique_ptr<model::MatmulScratch> scratch;
  mutable std::mutex mutex;  // one evaluation at a time: the pool and scratch are shared

  std::vector<float> output_norm, output_bias, rope_freqs;
  std::vector<LayerVectors> layers;
  std::unordered_map<std::string, std::unique_ptr<float[]>> resident;  // dequantized matmul weights, when they fit
  std::vector<float> rope_table;
  int64_t rope_positions = 0;
  mutable Workspace work;

  std::string output_tensor() const { return hp.tied_output ? "token_embd.weight" : "output.weight"; }

  Result<std::vector<float>> read_vector(const std::string& name) const {
    const TensorInfo* tensor = source->find_tensor(name);
    if (tensor == nullptr) return std::vector<float>();
    QUANT_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, source->read_tensor_data(*tensor));
    std::vector<float> values(size_t(tensor->element_count()));
    QUANT_TRY(dequantize_values(format_of(tensor->type), bytes.data(), values.data(), tensor->element_count()));
    return values;
  }

  Status load_small_tensors() {
    QUANT_ASSIGN_OR_RETURN(output_norm, read_vector("output_norm.weight"));
    QUANT_ASSIGN_OR_RETURN(output_bias, read_vector("output.bias"));
    QUANT_ASSIGN_OR_RETURN(rope_freqs, read_vector("rope_freqs.weight"));
    layers.resize(size_t(hp.n_layer));
    for (int il = 0; il < hp.n_layer; ++il) {
      LayerVectors& l = layers[size_t(il)];
      auto get = [&](std::string_view suffix, std::vector<float>& out) -> Status {
        QUANT_ASSIGN_OR_RETURN(out, read_vector(model::layer_tensor(il, suffix)));
        return Status::success();
      };
      QUANT_TRY(get("attn_norm.weight", l.attn_norm));
      QUANT_TRY(get("ffn_norm.weight", l.ffn_norm));
      QUANT_TRY(get("attn_q_norm.weight", l.q_norm));
      QUANT_TRY(get("attn_k_norm.weight", l.k_norm));
      QUANT_TRY(get("attn_q.bias", l.q_bias));
      QUANT_TRY(get("attn_k.bias", l.k_bias));
      QUANT_TRY(get("attn_v.bias", l.v_bias));
      QUANT_TRY(get("attn_qkv.bias", l.qkv_bias));
      QUANT_TRY(get("attn_output.bias", l.output_bias));
      QUANT_TRY(get("ffn_gate.bias", l.gate_bias));
      QUANT_TRY(get("ffn_up.bias", l.up_bias));
      QUANT_TRY(get("ffn_down.bias", l.down_bias));
    }
    return Status::success();
  }

  // Dequantizes every matmul weight once when all of them fit the budget.
  Status load_resident() {
    uint64_t floats = 0;
    std::vector<const TensorInfo*> weights;
    for (const TensorInfo& tensor : source->tensors()) {
      if (tensor.shape.size() < 2) continue;  // vectors are held already
      weights.push_back(&tensor);
      floats += uint64_t(tensor.element_count());
    }
    if (floats > options.resident_budget_bytes / sizeof(float)) return Status::success();
    for (const TensorInfo* tensor : weights) {
      auto values = std::make_unique_for_overwrite<float[]>(size_t(tensor->element_count()));
      const WeightView view = stored_view(*tensor, nullptr, tensor->type);
      // Each task reads its rows and dequantizes them: the reads are spread over the threads too.
      const int64_t rows_per_task = 64;
      const int64_t tasks = (view.rows + rows_per_task - 1) / rows_per_task;
      model::TaskErrors errors(tasks);
      pool->parallel_for(tasks, [&](int64_t t, int thread) {
        const int64_t first = t * rows_per_task;
        const int64_t count = std::min(rows_per_task, view.rows - first);
        uint8_t* bytes = scratch->bytes(thread, size_t(uint64_t(count) * view.row_bytes));
        errors.record(t, model::dequantize_rows(view, first, count, bytes, values.get() + first * view.cols));
      });
      QUANT_TRY(errors.first());
      resident.emplace(tensor->name, std::move(values));
    }
    return Status::success();
  }

  // A stored weight: its bytes in memory, or (bytes null) read from the source by the tiles that need them.
  WeightView stored_view(const TensorInfo& tensor, const uint8_t* bytes, TypeId type) const {
    WeightView view;
    view.type = type;
    view.raw = bytes;
    if (bytes == nullptr) {
      view.source = source.get();
      view.tensor = &tensor;
    }
    view.cols = tensor.row_length();
    view.rows = tensor.rows();
    view.row_bytes = *row_bytes(format_of(type), view.cols);
    return view;
  }

  // The weight `name` as this evaluation multiplies by it: an override, the resident floats, or its stored rows in
  // the file (read tile by tile by the matmul).
  Result<LoadedWeight> load_weight(const std::string& name, const EvalHooks& hooks) const {
    const TensorInfo* tensor = source->find_tensor(name);
    LoadedWeight loaded;
    loaded.name = name;
    for (const WeightOverride& override : hooks.overrides) {
      if (override.name != name) continue;
      const FormatInfo* format = find_format(override.type);
      const std::optional<TypeId> activation = activation_type_for(override.type);
      if (format == nullptr || format->dequantize == nullptr || !activation) {
        return Error(usage_error(fmt::format("override of '{}': the CPU backend cannot multiply by type id {}", name,
                                             uint32_t(override.type))));
      }
      const std::optional<uint64_t> bytes_per_row = row_bytes(*format, tensor->row_length());
      if (!bytes_per_row || override.data == nullptr ||
          override.data->size() != *bytes_per_row * uint64_t(tensor->rows())) {
        return Error(usage_error(fmt::format("override of '{}' does not hold {} rows of {} {} values", name,
                                             tensor->rows(), tensor->row_length(), format->name)));
      }
      loaded.view = stored_view(*tensor, override.data->data(), override.type);
      return loaded;
    }
    if (const auto it = resident.find(name); it != resident.end()) {
      loaded.view.type = tensor->type;
      loaded.view.dense = it->second.get();
      loaded.view.rows = tensor->rows();
      loaded.view.cols = tensor->row_length();
      return loaded;
    }
    loaded.view = stored_view(*tensor, nullptr, tensor->type);
    return loaded;
  }

  // Runs `task(first_row, count)` over blocks of rows on the pool.
  void for_rows(int64_t rows, const std::function<void(int64_t, int64_t)>& task) const {
    const int64_t block = std::max<int64_t>(1, std::min<int64_t>(64, rows / (4 * pool->threads()) + 1));
    pool->parallel_for((rows + block - 1) / block, [&](int64_t b, int) {
      const int64_t first = b * block;
      task(first, std::min(block, rows - first));
    });
  }

  // y = x · Wᵀ (+ the hook call first): x is rounded to W's activation type into the workspace, then multiplied.
  // `same_input` says x is the previous matmul's input, unchanged: its rounding is reused when the activation type
  // is the same (Q/K/V, up/gate).
  Status matmul(const LoadedWeight& w, int layer, const float* x, int64_t n, float* y, int64_t ldy,
                const EvalHooks& hooks, bool same_input = false) const {
    const TypeId activation = *activation_type_for(w.view.type);
    if (same_input && activation != TypeId::f32 && work.rounded_type == activation) {
      report_input(w, layer, x, n, hooks);
      return model::matmul(*pool, *scratch, w.view, work.rounded.data(), n, y, ldy);
    }
    // What `rounded` holds after this call: nothing to reuse when x needs no rounding.
    work.rounded_type = activation;
    float* rounded = activation == TypeId::f32 ? nullptr : sized(work.rounded, n * w.view.cols);
    return multiply(w, layer, x, rounded, n, y, ldy, hooks);
  }

  // The same for an x nothing reads afterwards (attention's output, SwiGLU's, the normed rows of the head): it is
  // rounded in place, so no n x cols copy is held for it.
  Status matmul_consuming(const LoadedWeight& w, int layer, float* x, int64_t n, float* y, int64_t ldy,
                          const EvalHooks& hooks) const {
    return multiply(w, layer, x, x, n, y, ldy, hooks);
  }

  // Reports x to the hook, rounds it into `rounded` (which may be x; unused for f32 activations) and multiplies.
  Status multiply(const LoadedWeight& w, int layer, const float* x, float* rounded, int64_t n, float* y, int64_t ldy,
                  const EvalHooks& hooks) const {
    report_input(w, layer, x, n, hooks);
    const TypeId activation = *activation_type_for(w.view.type);
    if (activation == TypeId::f32) return model::matmul(*pool, *scratch, w.view, x, n, y, ldy);
    const int64_t cols = w.view.cols;
    for_rows(n, [&](int64_t first, int64_t count) {
      for (int64_t r = first; r < first + count; ++r) {
        model::round_activations(activation, x + r * cols, rounded + r * cols, cols);
      }
    });
    return model::matmul(*pool, *scratch, w.view, rounded, n, y, ldy);
  }

  void report_input(const LoadedWeight& w, int layer, const float* x, int64_t n, const EvalHooks& hooks) const {
    if (hooks.on_matmul_input) {
      MatmulInput input;
      input.weight = w.name;
      input.layer = layer;
      input.values = x;
      input.rows = n;
      input.cols = w.view.cols;
      hooks.on_matmul_input(input);
    }
  }

  const float* rope_entries(int64_t positions) {
    if (rope_positions < positions) {
      rope_table = model::rope_table(hp, rope_freqs.empty() ? nullptr : rope_freqs.data(), positions);
      rope_positions = positions;
    }
    return rope_table.data();
  }

  Status run_layer(HiddenStates& states, int il, std::vector<float>& values, const EvalHooks& hooks);
};

Status ModelImpl::run_layer(HiddenStates& states, int il, std::vector<float>& x, const EvalHooks& hooks) {
  const LayerVectors& lv = layers[size_t(il)];
  const int64_t n_embd = hp.n_embd, dim = hp.head_dim_k;
  const int64_t n_q = hp.n_head * dim, n_kv = hp.n_head_kv * dim;
  const int64_t n = states.n_seq() * states.seq_len();
  float* cur = sized(work.cur, n * n_embd);

  for_rows(n, [&](int64_t first, int64_t count) {
    for (int64_t r = first; r < first + count; ++r) {
      model::rms_norm_row(&x[size_t(r * n_embd)], cur + r * n_embd, n_embd, hp.rms_norm_eps,
                          lv.attn_norm.data());
    }
  });

  // Q, K, V (build_qkv): separate matmuls or one fused attn_qkv split in three, then biases.
  float* q = sized(work.q, n * n_q);
  float* k = sized(work.k, n * n_kv);
  float* v = sized(work.v, n * n_kv);
  if (hp.fused_qkv) {
    QUANT_ASSIGN_OR_RETURN(LoadedWeight wqkv, load_weight(model::layer_tensor(il, "attn_qkv.weight"), hooks));
    const int64_t width = n_q + 2 * n_kv;
    float* qkv = sized(work.qkv, n * width);
    QUANT_TRY(matmul(wqkv, il, cur, n, qkv, width, hooks));
    add_bias_rows(qkv, n, width, lv.qkv_bias);
    for (int64_t r = 0; r < n; ++r) {
      const float* row = qkv + r * width;
      std::memcpy(q + r * n_q, row, size_t(n_q) * sizeof(float));
      std::memcpy(k + r * n_kv, row + n_q, size_t(n_kv) * sizeof(float));
      std::memcpy(v + r * n_kv, row + n_q + n_kv, size_t(n_kv) * sizeof(float));
    }
  } else {
    QUANT_ASSIGN_OR_RETURN(LoadedWeight wq, load_weight(model::layer_tensor(il, "attn_q.weight"), hooks));
    QUANT_TRY(matmul(wq, il, cur, n, q, n_q, hooks));
    add_bias_rows(q, n, n_q, lv.q_bias);
    QUANT_ASSIGN_OR_RETURN(LoadedWeight wk, load_weight(model::layer_tensor(il, "attn_k.weight"), hooks));
    QUANT_TRY(matmul(wk, il, cur, n, k, n_kv, hooks, /*same_input=*/true));
    add_bias_rows(k, n, n_kv, lv.k_bias);
    QUANT_ASSIGN_OR_RETURN(LoadedWeight wv, load_weight(model::layer_tensor(il, "attn_v.weight"), hooks));
    QUANT_TRY(matmul(wv, il, cur, n, v, n_kv, hooks, /*same_input=*/true));
    add_bias_rows(v, n, n_kv, lv.v_bias);
  }

  // Per-head q/k norms (qwen3), rope, and the KV cache's f16 storage of K and V.
  const float* table = rope_entries(states.seq_len());
  const RopeKind rope = hp.architecture->rope;
  for_rows(n, [&](int64_t first, int64_t count) {
    for (int64_t r = first; r < first + count; ++r) {
      const float* entry = table + (r % states.seq_len()) * hp.n_rot;
      for (int64_t h = 0; h < hp.n_head; ++h) {
        float* head = q + r * n_q + h * dim;
        if (!lv.q_norm.empty()) model::rms_norm_row(head, head, dim, hp.rms_norm_eps, lv.q_norm.data());
        model::rope_row(head, entry, hp.n_rot, rope);
      }
      for (int64_t h = 0; h < hp.n_head_kv; ++h) {
        float* head = k + r * n_kv + h * dim;
        if (!lv.k_norm.empty()) model::rms_norm_row(head, head, dim, hp.rms_norm_eps, lv.k_norm.data());
        model::rope_row(head, entry, hp.n_rot, rope);
      }
      model::round_activations(TypeId::f16, k + r * n_kv, k + r * n_kv, n_kv);
      model::round_activations(TypeId::f16, v + r * n_kv, v + r * n_kv, n_kv);
    }
  });

  model::AttentionShape shape;
  shape.n_seq = states.n_seq();
  shape.seq_len = states.seq_len();
  shape.n_head = hp.n_head;
  shape.n_head_kv = hp.n_head_kv;
  shape.head_dim = dim;
  shape.scale = hp.attention_scale;
  shape.f16_accumulator = options.attention == AttentionNumerics::flash_one_row ||
                          (options.attention == AttentionNumerics::automatic && states.seq_len() < kTiledAttentionMinRows);
  float* attn = sized(work.attn, n * n_q);
  model::attention(*pool, *scratch, shape, q, k, v, attn);

  QUANT_ASSIGN_OR_RETURN(LoadedWeight wo, load_weight(model::layer_tensor(il, "attn_output.weight"), hooks));
  float* attn_out = sized(work.attn_out, n * n_embd);
  QUANT_TRY(matmul_consuming(wo, il, attn, n, attn_out, n_embd, hooks));
  add_bias_rows(attn_out, n, n_embd, lv.output_bias);

  // The last layer keeps only the rows that produce logits (llama.cpp's inp_out_ids), before the residual add.
  int64_t rows = n;
  if (il == hp.n_layer - 1) {
    const int64_t per_seq = states.seq_len() - states.first_output();
    // Rows only move towards the front, so the copies can be done in place.
    for (int64_t s = 0; s < states.n_seq(); ++s) {
      const int64_t from = s * states.seq_len() + states.first_output(), to = s * per_seq;
      std::memmove(&x[size_t(to * n_embd)], &x[size_t(from * n_embd)], size_t(per_seq * n_embd) * sizeof(float));
      std::memmove(attn_out + to * n_embd, attn_out + from * n_embd, size_t(per_seq * n_embd) * sizeof(float));
    }
    rows = states.n_seq() * per_seq;
    x.resize(size_t(rows * n_embd));
  }
  for_rows(rows, [&](int64_t first, int64_t count) {
    for (int64_t r = first; r < first + count; ++r) {
      float* residual = &x[size_t(r * n_embd)];
      const float* a = attn_out + r * n_embd;
      for (int64_t i = 0; i < n_embd; ++i) residual[i] = a[i] + residual[i];
      model::rms_norm_row(residual, cur + r * n_embd, n_embd, hp.rms_norm_eps, lv.ffn_norm.data());
    }
  });

  // FFN (build_ffn with LLM_FFN_SILU, LLM_FFN_PAR): up, gate, silu(gate)·up, down.
  float* up = sized(work.up, rows * hp.n_ff);
  float* gate = sized(work.gate, rows * hp.n_ff);
  QUANT_ASSIGN_OR_RETURN(LoadedWeight wup, load_weight(model::layer_tensor(il, "ffn_up.weight"), hooks));
  QUANT_TRY(matmul(wup, il, cur, rows, up, hp.n_ff, hooks));
  add_bias_rows(up, rows, hp.n_ff, lv.up_bias);
  QUANT_ASSIGN_OR_RETURN(LoadedWeight wgate, load_weight(model::layer_tensor(il, "ffn_gate.weight"), hooks));
  QUANT_TRY(matmul(wgate, il, cur, rows, gate, hp.n_ff, hooks, /*same_input=*/true));
  add_bias_rows(gate, rows, hp.n_ff, lv.gate_bias);
  for_rows(rows, [&](int64_t first, int64_t count) {
    for (int64_t r = first; r < first + count; ++r) {
      model::swiglu_row(gate + r * hp.n_ff, up + r * hp.n_ff, gate + r * hp.n_ff, hp.n_ff);
    }
  });
  QUANT_ASSIGN_OR_RETURN(LoadedWeight wdown, load_weight(model::layer_tensor(il, "ffn_down.weight"), hooks));
  QUANT_TRY(matmul_consuming(wdown, il, gate, rows, cur, n_embd, hooks));
  add_bias_rows(cur, rows, n_embd, lv.down_bias);
  for_rows(rows, [&](int64_t first, int64_t count) {
    for (int64_t r = first; r < first + count; ++r) {
      float* residual = &x[size_t(r * n_embd)];
      const float* f = cur + r * n_embd;
      for (int64_t i = 0; i < n_embd; ++i) residual[i] = f[i] + residual[i];
    }
  });
  return Status::success();
}

Model::Model(std::unique_ptr<ModelImpl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

const ModelHyperparameters& Model::hparams() const { return impl_->hp; }
const ModelSource& Model::source() const { return *impl_->source; }
int Model::threads() const { return impl_->pool->threads(); }

Result<std::unique_ptr<Model>> Model::open(std::shared_ptr<const ModelSource> source, const ModelOptions& options) {
  auto impl = std::make_unique<ModelImpl>();
  QUANT_ASSIGN_OR_RETURN(impl->hp, read_hyperparameters(*source));
  impl->source = std::move(source);
  impl->options = options;
  int threads = options.threads > 0 ? options.threads : int(std::thread::hardware_concurrency());
  threads = std::max(1, threads);
  impl->pool = std::make_unique<model::ThreadPool>(threads);
  impl->scratch = std::make_unique<model::MatmulScratch>(threads);
  QUANT_TRY(impl->load_small_tensors());
  QUANT_TRY(impl->load_resident());
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

Result<HiddenStates> Model::embed(std::span<const int32_t> tokens, int64_t n_seq, int64_t seq_len,
                                  int64_t first_output, const EvalHooks& hooks) const {
  const ModelImpl& m = *impl_;
  if (n_seq < 1 || seq_len < 1 || first_output < 0 || first_output >= seq_len ||
      int64_t(tokens.size()) != n_seq * seq_len) {
    return Error(usage_error(fmt::format("embed: {} tokens for {} sequences of {} (first output {})", tokens.size(),
                                         n_seq, seq_len, first_output)));
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= m.hp.n_vocab) {
      return Error(invalid_input(fmt::format("token {} at position {} is outside the vocabulary of {} tokens",
                                             tokens[i], i, m.hp.n_vocab)));
    }
  }
  std::lock_guard lock(m.mutex);
  HiddenStates states;
  states.n_seq_ = n_seq;
  states.seq_len_ = seq_len;
  states.first_output_ = first_output;
  states.n_embd_ = m.hp.n_embd;
  states.values_.resize(tokens.size() * size_t(m.hp.n_embd));
  // ggml_get_rows: each token's row, copied from the resident floats or dequantized from an override's bytes or the
  // file's (read by the task that needs them), in blocks of tokens over the pool.
  QUANT_ASSIGN_OR_RETURN(const LoadedWeight table, m.load_weight("token_embd.weight", hooks));
  const WeightView& view = table.view;
  const int64_t n_embd = m.hp.n_embd;
  const int64_t block = 64;
  const int64_t blocks = (int64_t(tokens.size()) + block - 1) / block;
  model::TaskErrors errors(blocks);
  m.pool->parallel_for(blocks, [&](int64_t b, int thread) {
    for (int64_t i = b * block; i < std::min<int64_t>((b + 1) * block, int64_t(tokens.size())); ++i) {
      float* out = &states.values_[size_t(i * n_embd)];
      const int64_t token = tokens[size_t(i)];
      if (view.dense != nullptr) {
        std::memcpy(out, view.dense + token * n_embd, size_t(n_embd) * sizeof(float));
        continue;
      }
      uint8_t* bytes = view.raw == nullptr ? m.scratch->bytes(thread, view.row_bytes) : nullptr;
      Status read = model::dequantize_rows(view, token, 1, bytes, out);
      if (!read) return errors.record(b, std::move(read));
    }
  });
  QUANT_TRY(errors.first());
  return states;
}

Status Model::run_layers(HiddenStates& states, int last, const EvalHooks& hooks) const {
  ModelImpl& m = *impl_;
  if (last > m.hp.n_layer || last < states.next_layer_ || states.compacted_ || states.n_embd_ != m.hp.n_embd) {
    return Error(usage_error(fmt::format("run_layers: cannot run layers {}..{} of {} on these states",
                                         states.next_layer_, last, m.hp.n_layer)));
  }
  std::lock_guard lock(m.mutex);
  for (int il = states.next_layer_; il < last; ++il) {
    QUANT_TRY(m.run_layer(states, il, states.values_, hooks));
    states.next_layer_ = il + 1;
    if (il == m.hp.n_layer - 1) states.compacted_ = true;
  }
  return Status::success();
}

Status Model::logits(const HiddenStates& states, int64_t first_row, int64_t n_rows, float* out,
                     const EvalHooks& hooks) const {
  const ModelImpl& m = *impl_;
  if (!states.compacted_ || first_row < 0 || n_rows < 0 || first_row + n_rows > states.rows()) {
    return Error(usage_error("logits: the states have not been through every layer, or the rows are out of range"));
  }
  std::lock_guard lock(m.mutex);
  const int64_t n_embd = m.hp.n_embd;
  float* normed = sized(m.work.normed, n_rows * n_embd);
  m.for_rows(n_rows, [&](int64_t first, int64_t count) {
    for (int64_t r = first; r < first + count; ++r) {
      model::rms_norm_row(states.row(first_row + r), normed + r * n_embd, n_embd, m.hp.rms_norm_eps,
                          m.output_norm.data());
    }
  });
  QUANT_ASSIGN_OR_RETURN(LoadedWeight head, m.load_weight(m.output_tensor(), hooks));
  QUANT_TRY(m.matmul_consuming(head, -1, normed, n_rows, out, m.hp.n_vocab, hooks));
  add_bias_rows(out, n_rows, m.hp.n_vocab, m.output_bias);
  return Status::success();
}

void Model::parallel_for(int64_t n, const std::function<void(int64_t)>& task) const {
  std::lock_guard lock(impl_->mutex);
  impl_->pool->parallel_for(n, [&](int64_t index, int) { task(index); });
}

Result<WeightOverride> Model::quantized_override(std::string_view name, TypeId type,
                                                 std::span<const float> importance) const {
  const ModelImpl& m = *impl_;
  const TensorInfo* tensor = m.source->find_tensor(name);
  if (tensor == nullptr || tensor->shape.size() < 2) {
    return Error(usage_error(fmt::format("'{}' is not a weight matrix of this model", name)));
  }
  const FormatInfo& format = format_of(type);
  const std::optional<uint64_t> bytes_per_row = row_bytes(format, tensor->row_length());
  if (!bytes_per_row || format.quantize == nullptr || !activation_type_for(type)) {
    return Error(impossible(fmt::format("'{}' cannot be stored as {}", name, format.name)));
  }
  if (!importance.empty() && int64_t(importance.size()) != tensor->row_length()) {
    return Error(usage_error(fmt::format("importance for '{}' has {} values, expected {}", name, importance.size(),
                                         tensor->row_length())));
  }
  QUANT_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, m.source->read_tensor_data(*tensor));
  std::vector<float> values(size_t(tensor->element_count()));
  QUANT_TRY(dequantize_values(format_of(tensor->type), bytes.data(), values.data(), tensor->element_count()));
  auto data = std::make_shared<std::vector<uint8_t>>(*bytes_per_row * uint64_t(tensor->rows()));
  QUANT_TRY(quantize_rows(format, values.data(), data->data(), tensor->rows(), tensor->row_length(),
                          importance.empty() ? nullptr : importance.data()));
  WeightOverride result;
  result.name = std::string(name);
  result.type = type;
  result.data = std::move(data);
  return result;
}

}  // namespace quant
