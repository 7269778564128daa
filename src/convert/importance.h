// The importance matrix a conversion uses: per weight name, ne0 x n_expert weights, after the
// --include-weights / --exclude-weights filters, plus what llama-quantize records about it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "quant/convert.h"

namespace quant::convert_internal {

struct LoadedImportance {
  std::map<std::string, std::vector<float>> weights;
  std::string dataset;      // the first dataset name, for quantize.imatrix.dataset ("" when unknown)
  int64_t chunk_count = 0;  // for quantize.imatrix.chunks_count (0: not recorded)
};

Result<LoadedImportance> load_importance(const ConvertRequest& request);

}  // namespace quant::convert_internal
