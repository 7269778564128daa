// How the CLI is put together: main.cpp builds the CLI11 app, each subcommand file registers its options and
// returns a runner. Runners call the library, print, and return the process exit code (see exit_code()).
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "quant/atomic_file.h"
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

// Prints one "quantize: error:" line saying what in the command line CLI11 could not parse (an unknown or
// misspelled option with the nearest real one, a value of the wrong kind, an unexpected argument); returns 2.
int report_parse_error(const CLI::App& app, const CLI::ParseError& error, int argc, char** argv);
// Before parsing: what CLI11 would silently misread is refused the same way: a long option written with one dash
// ("-to", "-force": short options with a value) and "--name=" with nothing after the '=' (CLI11 takes the next
// argument as the value). Returns 0 when there is none, else 2 after printing the error.
int refuse_misread_options(const CLI::App& app, int argc, char** argv);

// How every command commits what it writes (quant/atomic_file.h): an existing output is replaced only with
// --force and only when it is a regular file, never one of `inputs`; replaced files are freed in the background.
OutputPolicy output_policy(bool force, std::vector<std::string> inputs);

// For counts where 0 would read as "not given" (--split-max-tensors): refuses 0 and anything but digits ("-3",
// which CLI11 reads into an unsigned count as 2^64 - 3), with a message saying so (CLI11's PositiveNumber prints
// a range up to DBL_MAX).
const CLI::Validator& at_least_one();

// A usage error when a path option was given an empty value (`-o ""`), which would otherwise read as "not given".
Status check_path_given(const CLI::Option* option, const std::string& value);

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

// An automatic mix (`quantize INPUT --target-size SIZE`, automix_command.cpp) takes the main job's options as
// the main job parsed them.
struct ConvertArgs;  // convert_args.h
struct AutomixOptions;
std::shared_ptr<AutomixOptions> add_automix_options(CLI::App& app);
bool automix_requested(const AutomixOptions& options);
int run_automix(const AutomixOptions& options, const ConvertArgs& args, const GlobalOptions& globals);

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
