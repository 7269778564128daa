// The README's front matter. Until a YAML reader with PyYAML's typing rules is wired in, a README that opens
// with front matter is refused (exit 4) rather than converted with different general.* keys.
#include "hf/model_card.h"

#include <fmt/format.h>

#include "hf/checkpoint_files.h"

namespace quant::hf {

Result<ModelCard> load_model_card(const std::string& dir, int64_t total_params) {
  (void)total_params;
  QUANT_ASSIGN_OR_RETURN(std::optional<std::string> text, read_small_file(dir, "README.md"));
  ModelCard card;
  if (!text || text->empty()) return card;
  // The converter reads front matter only when the first line is exactly "---" (str.splitlines()).
  const size_t end = text->find_first_of("\r\n");
  const std::string first = text->substr(0, end);
  if (first != "---") return card;
  return Error(impossible("README.md has YAML front matter (model card metadata), which this build does not read "
                          "yet; move README.md aside to convert"))
      .in_file(dir + "/README.md");
}

}  // namespace quant::hf
