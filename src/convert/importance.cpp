#include "convert/importance.h"

namespace quant::convert_internal {

Result<LoadedImportance> load_importance(const ConvertRequest& request) {
  return Error(impossible("importance matrices are not supported yet")).in_file(request.imatrix_path);
}

}  // namespace quant::convert_internal
