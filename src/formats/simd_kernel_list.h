// The formats with SIMD kernels and the kernels themselves, for one instruction set V: the rows of
// avx2_kernels() / avx512_kernels() (simd_kernels.h). Include after the kernel headers it lists.
#pragma once

#include "formats/simd_float_legacy.h"
#include "formats/simd_iq1.h"
#include "formats/simd_iq2.h"
#include "formats/simd_iq3.h"
#include "formats/simd_iq_grid.h"
#include "formats/simd_nonlinear.h"
#include "formats/simd_kquants.h"
#include "formats/simd_kquants_dequantize.h"
#include "formats/simd_kquants_lowbit.h"
#include "formats/simd_legacy_weighted.h"

namespace quant::formats {
namespace {

template <class V>
constexpr SimdKernels kSimdKernelList[] = {
    {TypeId::f16, quantize_f16_simd<V>, dequantize_f16_simd<V>},
    {TypeId::bf16, quantize_bf16_simd<V>, dequantize_bf16_simd<V>},
    {TypeId::q4_0, quantize_q4_0_any_simd<V>, dequantize_nibble_blocks<V, 18, false, false>},
    {TypeId::q4_1, quantize_q4_1_any_simd<V>, dequantize_nibble_blocks<V, 20, true, false>},
    {TypeId::q5_0, quantize_q5_0_any_simd<V>, dequantize_nibble_blocks<V, 22, false, true>},
    {TypeId::q5_1, quantize_q5_1_any_simd<V>, dequantize_nibble_blocks<V, 24, true, true>},
    {TypeId::q8_0, quantize_q8_0_simd<V>, dequantize_q8_0_simd<V>},
    {TypeId::q2_K, quantize_q2_k_simd<V>, dequantize_q2_k_simd<V>},
    {TypeId::q3_K, quantize_q3_k_simd<V>, dequantize_q3_k_simd<V>},
    {TypeId::q4_K, quantize_q4_k_simd<V>, dequantize_affine_k_simd<V, 144, false>},
    {TypeId::q5_K, quantize_q5_k_simd<V>, dequantize_affine_k_simd<V, 176, true>},
    {TypeId::q6_K, quantize_q6_k_simd<V>, dequantize_q6_k_simd<V>},
    {TypeId::iq2_xxs, quantize_iq2_xxs_simd<V>, dequantize_iq2_simd<V, iq2::Variant::xxs, IqGrid::iq2_xxs>},
    {TypeId::iq2_xs, quantize_iq2_xs_simd<V>, dequantize_iq2_simd<V, iq2::Variant::xs, IqGrid::iq2_xs>},
    {TypeId::iq2_s, quantize_iq2_s_simd<V>, dequantize_iq2_simd<V, iq2::Variant::s, IqGrid::iq2_s>},
    {TypeId::iq1_s, quantize_iq1_s_simd<V>, nullptr},
    {TypeId::iq1_m, quantize_iq1_m_simd<V>, nullptr},
    {TypeId::iq3_xxs, quantize_iq3_xxs_simd<V>, nullptr},
    {TypeId::iq3_s, quantize_iq3_s_simd<V>, nullptr},
    {TypeId::iq4_nl, quantize_iq4_nl_simd<V>, nullptr},
    {TypeId::iq4_xs, quantize_iq4_xs_simd<V>, nullptr},
};

}  // namespace
}  // namespace quant::formats
