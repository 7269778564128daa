// The calibration table a conversion embeds (`quantize INPUT --to TYPE --calibration table.json`): the JSON table
// `quantize calibrate -o` writes, turned into the output's quantize.calibration.* keys
// (calibration_table_to_gguf_metadata(), docs/calibration.md). The keys come after every standard key and
// override; keys of that prefix inherited from the input are dropped first, so an output never mixes two tables.
#pragma once

#include <string_view>
#include <vector>

#include "quant/convert.h"
#include "quant/gguf.h"

namespace quant::convert_internal {

inline constexpr std::string_view kCalibrationKeyPrefix = "quantize.calibration.";

// Reads request.calibration_table and returns its quantize.calibration.* keys, in the order the library lists
// them. Errors: the file cannot be read (io), is not a valid table or holds values GGUF cannot carry
// (invalid_input, naming the file), or an --override-kv sets a key of the table's prefix (usage).
Result<std::vector<KeyValue>> load_calibration_metadata(const ConvertRequest& request);

// When `calibration` is not empty: removes every quantize.calibration.* key from `metadata`, then appends
// `calibration`. When it is empty the metadata is left as it is (inherited keys pass through, as any key does).
void append_calibration_metadata(std::vector<KeyValue>& metadata, const std::vector<KeyValue>& calibration);

}  // namespace quant::convert_internal
