// The main job's options (`quantize INPUT --to TYPE ...`), parsed by convert_command.cpp. An automatic mix
// (`--target-size`, automix_command.cpp) is the same command line with a budget instead of --to: it reads the
// options it shares from here.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "quant/convert.h"

namespace quant::cli {

// The request, bound to the options directly, and the values the library parses from text.
struct ConvertArgs {
  ConvertRequest request;
  std::string to;
  std::vector<std::string> outputs;
  std::string output_tensor_type, token_embedding_type;
  std::vector<std::string> tensor_types;
  std::string tensor_type_file;
  std::vector<std::string> override_kv;
  CLI::Option* output_option = nullptr;
  CLI::Option* to_option = nullptr;
  CLI::Option* calibration_ctx_option = nullptr;  // given or not: an automatic mix picks its own otherwise
  // --calibration-text: the importance matrix computed in this run (docs/imatrix.md).
  std::string calibration_text;
  int64_t calibration_ctx = 512, calibration_chunks = -1;
  std::string split_max_size, shard;  // parsed into request.split
  // Scoring the outputs against the input (docs/eval.md).
  std::string eval_text;
  int64_t eval_ctx = 0, eval_chunks = -1;
  std::optional<double> max_kld;
};

}  // namespace quant::cli
