#include "quant/error.h"

#include <fmt/format.h>

namespace quant {

std::string Error::message() const {
  std::string out;
  if (!file_.empty()) out += file_ + ": ";
  if (!tensor_.empty()) out += fmt::format("tensor '{}'", tensor_);
  if (offset_) out += fmt::format("{}at offset {:#x}", tensor_.empty() ? "" : " ", *offset_);
  if (!tensor_.empty() || offset_) out += ": ";
  out += reason_;
  return out;
}

Error io_error(std::string reason) { return Error(ErrorKind::io, std::move(reason)); }
Error usage_error(std::string reason) { return Error(ErrorKind::usage, std::move(reason)); }
Error invalid_input(std::string reason) { return Error(ErrorKind::invalid_input, std::move(reason)); }
Error impossible(std::string reason) { return Error(ErrorKind::impossible, std::move(reason)); }

}  // namespace quant
