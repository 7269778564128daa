// Internal: the tensors convert_hf_to_gguf.py writes for a checkpoint (prepare_tensors): which checkpoint tensor
// each comes from, its GGUF name and shape, the transform applied to it, and the type rules.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hf/architectures.h"
#include "hf/checkpoint_files.h"
#include "hf/hparams.h"
#include "quant/formats.h"

namespace quant::hf {

enum class Transform {
  none,
  permute_heads,  // LlamaModel.permute: rows reordered within each head (n_heads groups)
  plus_one,       // Gemma: w + 1, in the tensor's own precision (f16 stays f16, others in f32)
};

struct PlannedTensor {
  std::string name;                 // GGUF name
  const CheckpointTensor* source = nullptr;  // nullptr: generated (values below)
  std::vector<float> generated;
  std::vector<int64_t> shape;       // GGUF order: ne0 (the checkpoint's last dimension) first
  int64_t units = 1;                // the checkpoint's first dimension (what permute_heads reorders)
  int64_t unit_elements = 1;        // elements per unit (product of the other dimensions)
  TypeId data_type = TypeId::f32;   // the converter's working dtype: f16 for F16 checkpoint tensors, else f32
  Transform transform = Transform::none;
  int64_t permute_heads = 0;
  bool keeps_f32 = false;           // 1-D, a norm, or not a .weight: always written f32
  bool embedding_or_output = false; // token_embd / output (f16 in the ternary outtypes)

  int64_t elements() const;
  // The converter's output type for this tensor under llama_ftype `file_type` (0, 1, 32, 7, 36, 37).
  TypeId target_type(uint32_t file_type) const;
  // Source element index of output element `e` (permute_heads moves units).
  int64_t source_unit(int64_t unit) const;
};

struct TensorPlanResult {
  std::vector<PlannedTensor> tensors;  // in the converter's order
  uint32_t auto_file_type = 1;         // --outtype auto: 1 (f16) or 32 (bf16)
};

// Plans every tensor: filters, renames, permutations and generated tensors, in the converter's order.
Result<TensorPlanResult> plan_tensors(const Architecture& arch, const HParams& hparams, const CheckpointFiles& files);

}  // namespace quant::hf
