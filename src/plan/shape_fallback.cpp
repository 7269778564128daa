// Fallback types for rows that do not fill whole blocks (facts of tensor_type_fallback in llama.cpp's
// src/llama-quant.cpp): 256-value i-quants go to iq4_nl (blocks of 32), the low-bit k-quants and ternaries to
// q4_0, q4_K to q5_0, q5_K to q5_1, q6_K to q8_0. Every other type has none.
#include "plan/shape_fallback.h"

#include <fmt/format.h>

namespace quant::plan_detail {
namespace {

std::optional<TypeId> fallback_type(TypeId type) {
  switch (type) {
    case TypeId::iq1_s:
    case TypeId::iq1_m:
    case TypeId::iq2_xxs:
    case TypeId::iq2_xs:
    case TypeId::iq2_s:
    case TypeId::iq3_xxs:
    case TypeId::iq3_s:
    case TypeId::iq4_xs: return TypeId::iq4_nl;
    case TypeId::q2_0:
    case TypeId::q2_K:
    case TypeId::q3_K:
    case TypeId::tq1_0:
    case TypeId::tq2_0: return TypeId::q4_0;
    case TypeId::q4_K: return TypeId::q5_0;
    case TypeId::q5_K: return TypeId::q5_1;
    case TypeId::q6_K: return TypeId::q8_0;
    default: return std::nullopt;
  }
}

}  // namespace

Result<TypeId> fall_back_for_shape(const PlanTensor& tensor, TypeId target) {
  const int64_t row_length = tensor.shape.empty() ? 0 : tensor.shape[0];
  const FormatInfo& format = format_of(target);
  if (row_length % format.block_size == 0) return target;
  const std::optional<TypeId> fallback = fallback_type(target);
  if (!fallback) {
    return Error(impossible(fmt::format("rows of {} values are not a multiple of {}'s block of {} and {} has no "
                                        "fallback type",
                                        row_length, format.name, format.block_size, format.name)))
        .in_tensor(tensor.name);
  }
  // A row length that is not even a multiple of 32 is rare; llama.cpp then keeps the weights in f16.
  if (row_length % format_of(*fallback).block_size != 0) return TypeId::f16;
  return *fallback;
}

}  // namespace quant::plan_detail
