// The text of an evaluation, read and tokenized as llama-perplexity does (common/arg.cpp `-f`, common_tokenize with
// add_special = true, parse_special = false).
#include <fmt/format.h>

#include "quant/eval.h"
#include "quant/tokenizer.h"

namespace quant {

Result<EvalText> read_eval_text(const ModelSource& model, const std::string& path) {
  QUANT_ASSIGN_OR_RETURN(Vocabulary vocabulary, load_vocabulary(model.metadata(), model.path()));
  QUANT_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::create(std::move(vocabulary)));
  if (tokenizer.add_eos()) {
    return Error(impossible("the vocabulary adds EOS after a text, which llama-perplexity refuses to score"))
        .in_file(model.path());
  }
  EvalText out;
  if (!path.empty()) {
    QUANT_ASSIGN_OR_RETURN(std::string text, read_text_file(path, TextFileMode::prompt));
    QUANT_ASSIGN_OR_RETURN(out.tokens, tokenizer.tokenize(text, /*add_special=*/true, /*parse_special=*/false));
  }
  out.add_bos = tokenizer.add_bos();
  out.bos = tokenizer.bos();
  return out;
}

}  // namespace quant
