// `quantize tokenize MODEL (--file TEXT | --prompt TEXT) [--ids] [--no-bos] [--no-parse-special]`: the token
// ids of a text, as llama.cpp's llama-tokenize prints them (docs/tokenizer.md). With the global --json, ids and
// pieces as one JSON document.
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "command.h"
#include "quant/model_source.h"
#include "quant/tokenizer.h"

namespace quant::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  std::string file;
  std::string prompt;
  bool ids = false;
  bool no_bos = false;
  bool no_parse_special = false;
  bool show_count = false;
  bool from_file = false;  // --file given (else --prompt)
};

int run_tokenize(const TokenizeArgs& args, const GlobalOptions& globals) {
  auto model = open_model(args.model);  // a GGUF file, and split GGUFs and checkpoint folders as they are supported
  if (!model) return fail(model.error());
  auto tokenizer = load_tokenizer(**model);
  if (!tokenizer) return fail(tokenizer.error());
  for (const std::string& warning : tokenizer->warnings()) spdlog::warn("{}: {}", args.model, warning);

  std::string text;
  if (args.from_file) {
    // llama-tokenize -f reads the file's bytes verbatim (a trailing newline is a token too).
    auto content = read_text_file(args.file, TextFileMode::verbatim);
    if (!content) return fail(content.error());
    text = std::move(content).value();
  } else {
    text = args.prompt;
  }
  // llama-tokenize passes add_special = the vocabulary's add_bos (and --no-bos turns it off).
  const bool add_special = tokenizer->add_bos() && !args.no_bos;
  // llama-tokenize (34af94c) matches control tokens written in the text unless --no-parse-special is given;
  // llama-perplexity and llama-imatrix do not match them.
  const bool parse_special = !args.no_parse_special;
  auto ids = tokenizer->tokenize(text, add_special, parse_special);
  if (!ids) {
    Error error = std::move(ids).error();
    if (error.file().empty()) error.in_file(args.from_file ? args.file : std::string("--prompt"));
    return fail(error);
  }

  if (globals.json) {
    nlohmann::json tokens = nlohmann::json::array();
    for (const TokenId id : *ids) tokens.push_back({{"id", id}, {"piece", tokenizer->token_to_piece(id)}});
    const nlohmann::json out = {{"model", args.model},
                                {"tokenizer", tokenizer->kind_name()},
                                {"pre_tokenizer", tokenizer->pre_tokenizer()},
                                {"n_vocab", tokenizer->n_vocab()},
                                {"add_special", add_special},
                                {"parse_special", parse_special},
                                {"count", ids->size()},
                                {"ids", *ids},
                                {"tokens", tokens}};
    // Pieces can be partial UTF-8 (byte tokens): invalid bytes are shown as U+FFFD.
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  std::string out;
  if (args.ids) {
    out += "[";
    for (size_t i = 0; i < ids->size(); ++i) out += fmt::format("{}{}", i > 0 ? ", " : "", (*ids)[i]);
    out += "]\n";
  } else {
    for (const TokenId id : *ids) {
      // llama-tokenize prints the piece's bytes as they are, even when they are not valid UTF-8.
      out += fmt::format("{:6} -> '", id);
      out += tokenizer->token_to_piece(id);
      out += "'\n";
    }
  }
  if (args.show_count) out += fmt::format("Total number of tokens: {}\n", ids->size());
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

}  // namespace

Command add_tokenize_command(CLI::App& parent, GlobalOptions& globals) {
  auto* app = parent.add_subcommand("tokenize", "Print a text's token ids as llama.cpp's llama-tokenize does");
  auto args = std::make_shared<TokenizeArgs>();
  app->add_option("model", args->model, "GGUF model or vocabulary file (its tokenizer.ggml.* metadata)")->required();
  auto* file = app->add_option("-f,--file", args->file, "Text file, read byte for byte (as llama-tokenize -f)");
  auto* prompt = app->add_option("-p,--prompt", args->prompt, "Text given on the command line, used as is (no escapes)");
  file->excludes(prompt);
  app->add_flag("--ids", args->ids, "Print only the ids, as a list: [1, 2, 3] (llama-tokenize --ids)");
  app->add_flag("--no-bos", args->no_bos, "Do not add BOS/EOS even when the vocabulary asks for them");
  app->add_flag("--no-parse-special", args->no_parse_special,
                "Leave control tokens written in the text (e.g. <s>) as text; llama-tokenize matches them by default");
  app->add_flag("--show-count", args->show_count, "Print the number of tokens after them");
  return Command{app, [args, file, prompt, &globals]() -> int {
                   if (file->count() == 0 && prompt->count() == 0) {
                     return fail(usage_error("give the text with --file FILE or --prompt TEXT"));
                   }
                   args->from_file = file->count() > 0;
                   return run_tokenize(*args, globals);
                 }};
}

}  // namespace quant::cli
