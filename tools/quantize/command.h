// How the CLI is put together: main.cpp builds the CLI11 app, each subcommand file registers its options and
// returns a runner. Runners call the library, print, and return the process exit code (see exit_code()).
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "quant/error.h"

namespace quant::cli {

// Exit codes shared by every subcommand (docs/cli.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitIo = 1,
  kExitUsage = 2,
  kExitInvalidInput = 3,
  kExitImpossible = 4,
  kExitQualityGate = 5,  // outputs written, but a quality gate (--max-kld) failed
  kExitInterrupted = 130,
};

int exit_code(ErrorKind kind);

// Prints "quantize: error: <message>" on stderr and returns the matching exit code.
int fail(const Error& error);

// A usage error when `output` is one of `inputs` (the same file, or a symlink or hard link to it): a command
// never writes over what it reads.
Status refuse_output_over_inputs(const std::string& output, const std::vector<std::string>& inputs);

// Options every subcommand shares.
struct GlobalOptions {
  bool json = false;     // one JSON document on stdout
  bool quiet = false;    // errors only on stderr
  bool verbose = false;  // debug logs on stderr
};

struct Command {
  CLI::App* app = nullptr;       // the parsed subcommand (test with `if (*app)`), or null for the main job
  std::function<int()> run;
};

// An automatic mix (`quantize INPUT --target-size SIZE`, automix_command.cpp) takes these main-job options as
// the main job parsed them.
struct SharedConvertValues {
  std::string input, to;
  std::vector<std::string> outputs;
  std::string imatrix;
  std::vector<std::string> tensor_types;
  std::string tensor_type_file;
  bool dry_run = false, force = false;
  int threads = 0;
  std::string calibration_text;  // the automatic mix measures on it
  int64_t calibration_ctx = 0;   // 0: not given (the automatic mix then picks it)
  std::vector<std::string> unsupported;  // main-job options given that an automatic mix does not take
  const std::atomic<bool>* cancel = nullptr;
};
struct AutomixOptions;
std::shared_ptr<AutomixOptions> add_automix_options(CLI::App& app);
bool automix_requested(const AutomixOptions& options);
int run_automix(const AutomixOptions& options, const SharedConvertValues& shared, const GlobalOptions& globals);

// The main job's options live on the top-level app: `quantize INPUT --to TYPE`.
Command add_convert_options(CLI::App& app, GlobalOptions& globals);
Command add_info_command(CLI::App& parent, GlobalOptions& globals);
Command add_imatrix_command(CLI::App& parent, GlobalOptions& globals);
Command add_calibrate_command(CLI::App& parent, GlobalOptions& globals);
Command add_split_command(CLI::App& parent, GlobalOptions& globals);
Command add_merge_command(CLI::App& parent, GlobalOptions& globals);
Command add_eval_command(CLI::App& parent, GlobalOptions& globals);
Command add_tokenize_command(CLI::App& parent, GlobalOptions& globals);

}  // namespace quant::cli
