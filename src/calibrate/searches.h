// Threshold searches over a finished histogram, one per reference algorithm (SPEC: reference/calibration).
#pragma once

#include <cstdint>
#include <span>
#include <utility>

namespace quant::calibration {

// pytorch-quantization _compute_amax_entropy: the number of kept bins i in [start_bin, n] minimising the KL
// divergence (float64, scipy's normalisation), the last minimum winning. amax is edges[i].
int64_t tensorrt_entropy_bins(std::span<const int64_t> counts, int levels, int64_t start_bin = 128);

// pytorch-quantization _compute_amax_mse: the bin-centre index in [start_bin, n - 1) minimising the
// count-weighted error of narrow-range fake quantization of the centres (first minimum). amax is centres[i].
int64_t tensorrt_mse_center(std::span<const int64_t> counts, std::span<const float> centers, int bits,
                            bool is_unsigned, int64_t start_bin = 128);

// The first index where the cumulative fraction (float64) reaches `fraction` (numpy searchsorted, left).
int64_t cumulative_fraction_index(std::span<const int64_t> counts, double fraction);

// onnxruntime get_entropy_threshold: the (start, end) edge indices of the window centred on the middle bin
// minimising the smoothed float32 KL divergence (first minimum).
std::pair<int64_t, int64_t> onnxruntime_entropy_window(std::span<const int64_t> counts, int quantized_bins);

// torch.ao HistogramObserver._non_linear_param_search: greedy quantile stepping that stops when the L2 error
// rises. Returns the chosen (min, max).
std::pair<float, float> torch_l2_search(std::span<const float> counts, float min, float max, int dst_levels = 256);

}  // namespace quant::calibration
