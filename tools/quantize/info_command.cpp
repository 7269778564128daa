// `quantize info FILE`: what a person needs to know about a model file.
#include "command.h"

namespace quant::cli {

Command add_info_command(CLI::App& parent, GlobalOptions& globals) {
  auto* app = parent.add_subcommand("info", "Describe a GGUF file: version, metadata, tensors, totals");
  auto file = std::make_shared<std::string>();
  app->add_option("FILE", *file, "GGUF file to describe")->required();
  return Command{app, [file, &globals]() -> int {
                   (void)globals;
                   return fail(impossible("info is not implemented yet").in_file(*file));
                 }};
}

}  // namespace quant::cli
