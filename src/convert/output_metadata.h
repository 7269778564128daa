// The metadata of an output file, in llama-quantize's order: the input's keys in file order without the split
// keys; then general.quantization_version and general.file_type (moved to the end); then each override in
// order (the user's --override-kv, then the quantize.imatrix.* keys), each replacing a key of the same name by
// removing it and appending.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/gguf.h"
#include "quant/plan.h"

namespace quant::convert_internal {

inline constexpr uint32_t kQuantizationVersion = 2;  // GGML_QNT_VERSION

std::vector<KeyValue> output_metadata(const ModelSource& input, uint32_t file_type,
                                      const std::vector<KvOverride>& overrides);

// Metadata a source planned itself (SourcePlan), with the overrides applied the same way.
std::vector<KeyValue> with_overrides(std::vector<KeyValue> metadata, const std::vector<KvOverride>& overrides);

// A string override as llama-quantize builds it for its own keys: the value cut to 127 bytes.
KvOverride string_override(std::string key, const std::string& value);
// An integer override (written as u32 of the absolute value).
KvOverride integer_override(std::string key, int64_t value);

}  // namespace quant::convert_internal
