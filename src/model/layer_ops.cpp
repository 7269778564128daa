#include "model/layer_ops.h"

#include <algorithm>
#include <cmath>

namespace quant::model {
namespace {

// ggml_rope_yarn_corr_dim / ggml_rope_yarn_corr_dims (ggml.c).
float yarn_corr_dim(int64_t n_dims, int64_t n_ctx_orig, float n_rot, float base) {
  return float(n_dims) * logf(float(n_ctx_orig) / (n_rot * 2 * float(M_PI))) / (2 * logf(base));
}

float yarn_ramp(float low, float high, int64_t i0) {
  const float y = (float(i0 / 2) - low) / std::max(0.001f, high - low);
  return 1 - std::min(1.0f, std::max(0.0f, y));
}

}  // namespace

void rms_norm_row(const float* in, float* out, int64_t n, float eps, const float* weight) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += double(in[i] * in[i]);
  const float mean = float(sum / double(n));
  const float scale = 1.0f / sqrtf(mean + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = (in[i] * scale) * weight[i];
}

std::vector<float> rope_table(const ModelHyperparameters& hp, const float* freq_factors, int64_t n_positions) {
  const int64_t n_dims = hp.n_rot;
  std::vector<float> table(size_t(n_positions * n_dims));
  const float theta_scale = powf(hp.rope_freq_base, -2.0f / float(n_dims));
  float corr_dims[2];
  {
    const float start = floorf(yarn_corr_dim(n_dims, hp.rope_original_context, hp.yarn_beta_fast, hp.rope_freq_base));
    const float end = ceilf(yarn_corr_dim(n_dims, hp.rope_original_context, hp.yarn_beta_slow, hp.rope_freq_base));
    corr_dims[0] = std::max(0.0f, start);
    corr_dims[1] = std::min(float(n_dims - 1), end);
  }
  for (int64_t p = 0; p < n_positions; ++p) {
    float theta = float(p);
    float* entry = table.data() + p * n_dims;
    for (int64_t i0 = 0; i0 < n_dims; i0 += 2) {
      const float ff = freq_factors != nullptr ? freq_factors[i0 / 2] : 1.0f;
      // rope_yarn(theta / ff, ...)
      const float theta_extrap = theta / ff;
      const float theta_interp = hp.rope_freq_scale * theta_extrap;
      float angle = theta_interp;
      float mscale = hp.yarn_attn_factor;
      if (hp.yarn_ext_factor != 0.0f) {
        const float ramp_mix = yarn_ramp(corr_dims[0], corr_dims[1], i0) * hp.yarn_ext_factor;
        angle = theta_interp * (1 - ramp_mix) + theta_extrap * ramp_mix;
        mscale *= 1.0f + 0.1f * logf(1.0f / hp.rope_freq_scale);
      }
      entry[i0] = cosf(angle) * mscale;
      entry[i0 + 1] = sinf(angle) * mscale;
      theta *= theta_scale;
    }
  }
  return table;
}

void rope_row(float* head, const float* table_entry, int64_t n_rot, RopeKind kind) {
  const int64_t offset = kind == RopeKind::normal ? 1 : n_rot / 2;
  for (int64_t i0 = 0; i0 < n_rot; i0 += 2) {
    const int64_t ic = kind == RopeKind::normal ? i0 : i0 / 2;
    const float cos_theta = table_entry[i0];
    const float sin_theta = table_entry[i0 + 1];
    const float x0 = head[ic];
    const float x1 = head[ic + offset];
    head[ic] = x0 * cos_theta - x1 * sin_theta;
    head[ic + offset] = x0 * sin_theta + x1 * cos_theta;
  }
}

void swiglu_row(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + expf(-g))) * up[i];
  }
}

}  // namespace quant::model
