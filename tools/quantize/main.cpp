// quantize: the command-line front end. It parses arguments, calls the library and prints; nothing else.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <vector>

#include "command.h"

namespace quant::cli {

int exit_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::io: return kExitIo;
    case ErrorKind::usage: return kExitUsage;
    case ErrorKind::invalid_input: return kExitInvalidInput;
    case ErrorKind::impossible: return kExitImpossible;
    case ErrorKind::interrupted: return kExitInterrupted;
  }
  return kExitIo;
}

int fail(const Error& error) {
  spdlog::error("{}", error.message());
  return exit_code(error.kind());
}

OutputPolicy output_policy(bool force, std::vector<std::string> inputs) {
  OutputPolicy policy;
  policy.overwrite = force;
  policy.inputs = std::move(inputs);
  // The process ends right after the commit: a replaced model's blocks are freed without keeping the user waiting.
  policy.release_in_background = true;
  return policy;
}

const CLI::Validator& at_least_one() {
  static const CLI::Validator validator(
      [](std::string& value) -> std::string {
        // Digits only: CLI11 would read "-3" into an unsigned count as 2^64 - 3.
        const bool digits = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
        if (!digits) return "'" + value + "' is not a count; give a whole number, 1 or more";
        if (value.find_first_not_of('0') == std::string::npos) return "0 is not a count; give 1 or more";
        return std::string();
      },
      "N >= 1");
  return validator;
}

Status check_path_given(const CLI::Option* option, const std::string& value) {
  if (option->count() == 0 || !value.empty()) return Status::success();
  return usage_error(fmt::format("{} needs a path (it was given an empty one)", option->get_name()));
}

namespace {

constexpr const char* kExitCodesHelp =
    "Exit codes: 0 success, 1 I/O failure, 2 usage error, 3 invalid input file,\n"
    "            4 requested conversion impossible, 5 quality gate failed (--max-kld), 130 interrupted.";

void configure_logging(const GlobalOptions& globals) {
  auto logger = spdlog::stderr_color_mt("quantize");
  logger->set_pattern("quantize: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(globals.quiet ? spdlog::level::err : globals.verbose ? spdlog::level::debug : spdlog::level::info);
}

int run(int argc, char** argv) {
  CLI::App app{"quantize: convert model weights to ggml's quantized formats, bit-exact with llama-quantize"};
  app.footer(kExitCodesHelp);
  app.set_version_flag("--version", std::string("quantize ") + QUANT_VERSION);
  app.require_subcommand(0, 1);
  GlobalOptions globals;
  app.add_flag("--json", globals.json, "Print one JSON document on stdout")->configurable(false);
  app.add_flag("-q,--quiet", globals.quiet, "Print errors only");
  app.add_flag("-v,--verbose", globals.verbose, "Print debug logs on stderr");

  app.fallthrough();  // global flags (--json, -q, -v) are accepted after a subcommand too
  const Command convert_job = add_convert_options(app, globals);
  std::vector<Command> commands;
  commands.push_back(add_info_command(app, globals));
  commands.push_back(add_imatrix_command(app, globals));
  commands.push_back(add_calibrate_command(app, globals));
  commands.push_back(add_split_command(app, globals));
  commands.push_back(add_merge_command(app, globals));
  commands.push_back(add_eval_command(app, globals));
  commands.push_back(add_tokenize_command(app, globals));

  if (const int refused = refuse_misread_options(app, argc, argv); refused != kExitOk) return refused;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // prints help, exit 0
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report_parse_error(app, e, argc, argv);
  }
  configure_logging(globals);
  for (const Command& command : commands) {
    if (command.app != nullptr && *command.app) return command.run();
  }
  return convert_job.run();
}

}  // namespace
}  // namespace quant::cli

int main(int argc, char** argv) { return quant::cli::run(argc, argv); }
