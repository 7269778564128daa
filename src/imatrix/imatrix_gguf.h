// Interpreting an already parsed GGUF file as an importance matrix (read_imatrix parses first, so that a file
// that is not GGUF at all can fall back to the legacy reader, while a GGUF file that is a bad imatrix cannot).
#pragma once

#include "quant/gguf.h"
#include "quant/imatrix.h"

namespace quant::imatrix {

Result<ImportanceMatrix> imatrix_from_gguf(const GgufFile& file, const ImatrixLimits& limits);

}  // namespace quant::imatrix
