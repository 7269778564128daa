// What a command line CLI11 could not parse means, said in our words: one `quantize: error:` line that names the
// argument at fault and what to type instead.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "command.h"
#include "quant/suggest.h"

namespace quant::cli {
namespace {

// The app whose options apply to argv: the subcommand named on the command line, if any.
const CLI::App* active_app(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
      if (sub->get_name() == argv[i]) return sub;
    }
  }
  return &app;
}

// Every long option ("--to") and short one ("-t") of `app` and of the top-level app (global options work after
// a subcommand too).
void option_names(const CLI::App& app, std::vector<std::string>& long_names, std::vector<std::string>& short_names) {
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_lnames()) long_names.push_back("--" + name);
    for (const std::string& name : option->get_snames()) short_names.push_back("-" + name);
  }
  if (app.get_parent() != nullptr) option_names(*app.get_parent(), long_names, short_names);
}

bool contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string hint(std::string_view typed, const std::vector<std::string>& names) {
  const std::vector<std::string_view> views(names.begin(), names.end());
  const std::string suggestion = did_you_mean(typed, views);
  return suggestion.empty() ? "" : " (" + suggestion + ")";
}

// "-to" where "--to" was meant: CLI11 reads it as "-t o" (and "-force" as "-f -o rce", writing to "rce"), so a
// single dash before a long option's name is refused. Empty when there is none.
std::string long_option_with_one_dash(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string> long_names, short_names;
  option_names(app, long_names, short_names);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 3 || arg[0] != '-' || arg[1] == '-') continue;
    const std::string_view name = arg.substr(0, arg.find('='));
    if (!contains(long_names, "-" + std::string(name))) continue;
    const std::string single(name.substr(0, 2));
    return fmt::format("'{}' reads as '{} {}': did you mean '-{}'?", arg, single, arg.substr(2), name);
  }
  return "";
}

// An argument that looks like an option and is not one ("--too"), or one of the above. Empty when every
// option-like argument is known.
std::string misspelled_option(const CLI::App& app, int argc, char** argv) {
  if (std::string one_dash = long_option_with_one_dash(app, argc, argv); !one_dash.empty()) return one_dash;
  std::vector<std::string> long_names, short_names;
  option_names(app, long_names, short_names);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-' || (arg[1] >= '0' && arg[1] <= '9')) continue;  // a value, or a number
    const std::string_view name = arg.substr(0, arg.find('='));
    if (arg.starts_with("--")) {
      if (!contains(long_names, name)) return fmt::format("unknown option '{}'{}", name, hint(name, long_names));
    } else if (!contains(short_names, name.substr(0, 2))) {
      return fmt::format("unknown option '{}'{}", name.substr(0, 2), hint(name, long_names));
    }
  }
  return "";
}

// The arguments listed after "...not expected: ", which CLI11 gives in reverse order.
std::vector<std::string> unexpected_arguments(const std::string& message) {
  std::vector<std::string> words;
  const size_t colon = message.find(": ");
  if (colon == std::string::npos) return words;
  std::string rest = message.substr(colon + 2);
  for (size_t start = 0; start < rest.size();) {
    const size_t space = rest.find(' ', start);
    words.push_back(rest.substr(start, space - start));
    if (space == std::string::npos) break;
    start = space + 1;
  }
  std::reverse(words.begin(), words.end());
  return words;
}

std::string describe(const CLI::App& app, const CLI::ParseError& error, int argc, char** argv) {
  const CLI::App* active = active_app(app, argc, argv);
  const std::string command = active == &app ? "" : active->get_name() + ": ";
  if (const std::string misspelled = misspelled_option(*active, argc, argv); !misspelled.empty()) {
    return command + misspelled;
  }
  const std::string what = error.what();
  if (dynamic_cast<const CLI::ExtrasError*>(&error) != nullptr) {
    const std::vector<std::string> extras = unexpected_arguments(what);
    std::string list;
    for (const std::string& word : extras) list += (list.empty() ? "'" : ", '") + word + "'";
    const std::string usage = active == &app ? "the main job takes one INPUT: quantize INPUT --to TYPE"
                                             : "quantize " + active->get_name() + " --help shows its usage";
    return fmt::format("{}unexpected argument{} {} ({})", command, extras.size() == 1 ? "" : "s", list, usage);
  }
  if (dynamic_cast<const CLI::ConversionError*>(&error) != nullptr) {
    // "Could not convert: --threads = o"
    const size_t eq = what.find(" = ");
    const size_t colon = what.find(": ");
    if (eq != std::string::npos && colon != std::string::npos && colon < eq) {
      return fmt::format("{}{} takes a number, not '{}'", command, what.substr(colon + 2, eq - colon - 2),
                         what.substr(eq + 3));
    }
  }
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&error) != nullptr) {
    // "--to: 1 required TEXT missing"
    const size_t colon = what.find(": ");
    if (colon != std::string::npos && what.find("required") != std::string::npos) {
      return fmt::format("{}{} needs a value", command, what.substr(0, colon));
    }
  }
  return command + what;
}

}  // namespace

// "--output=" with nothing after the '=': CLI11 would take the next argument ("--dry-run") as the value.
std::string empty_attached_value(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() > 3 && arg.starts_with("--") && arg.back() == '=' && arg.find('=') == arg.size() - 1) {
      return fmt::format("{} needs a value after the '=' (it was given an empty one)", arg.substr(0, arg.size() - 1));
    }
  }
  return "";
}

int refuse_misread_options(const CLI::App& app, int argc, char** argv) {
  const CLI::App* active = active_app(app, argc, argv);
  std::string problem = long_option_with_one_dash(*active, argc, argv);
  if (problem.empty()) problem = empty_attached_value(argc, argv);
  if (problem.empty()) return kExitOk;
  std::cerr << "quantize: error: " << (active == &app ? "" : active->get_name() + ": ") << problem << "\n";
  return kExitUsage;
}

int report_parse_error(const CLI::App& app, const CLI::ParseError& error, int argc, char** argv) {
  std::cerr << "quantize: error: " << describe(app, error, argc, argv) << "\n";
  return kExitUsage;
}

}  // namespace quant::cli
