// The shape fallback: a tensor whose rows are not a whole number of the chosen type's blocks gets a related type
// with smaller blocks (llama.cpp's tensor_type_fallback).
#pragma once

#include "quant/error.h"
#include "quant/plan.h"

namespace quant::plan_detail {

// `target` when the row length (ne0) is a multiple of its block; otherwise the fallback type, or f16 when even
// that does not divide. An impossible error when `target` has no fallback.
Result<TypeId> fall_back_for_shape(const PlanTensor& tensor, TypeId target);

}  // namespace quant::plan_detail
