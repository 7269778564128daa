// The one error type of the library, and a small `expected`-style result.
//
// Every failure says where and why: the file, the byte offset or tensor when known, and the reason, e.g.
//   model.gguf: tensor 'blk.3.ffn_up.weight' at offset 0x1a2b00: data runs past end of file (needs 4718592 bytes,
//   1048576 left)
// Library code returns errors and never exits or prints; the CLI maps ErrorKind to an exit code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace quant {

// What went wrong, in the terms a caller acts on. The CLI's exit codes follow this (docs/cli.md).
enum class ErrorKind {
  io,             // the operating system refused: open, read, write, rename, disk full (exit 1)
  usage,          // the request itself is malformed: bad option value, unknown type name (exit 2)
  invalid_input,  // an input file is damaged, hostile or not what it claims to be (exit 3)
  impossible,     // the input is fine but the requested conversion cannot be done (exit 4)
  interrupted,    // a signal asked us to stop (exit 130)
};

class Error {
 public:
  Error(ErrorKind kind, std::string reason) : kind_(kind), reason_(std::move(reason)) {}

  // Builders that add context as an error travels up; each returns *this for chaining.
  Error& in_file(std::string file) & { file_ = std::move(file); return *this; }
  Error&& in_file(std::string file) && { file_ = std::move(file); return std::move(*this); }
  Error& at_offset(uint64_t offset) & { offset_ = offset; return *this; }
  Error&& at_offset(uint64_t offset) && { offset_ = offset; return std::move(*this); }
  Error& in_tensor(std::string tensor) & { tensor_ = std::move(tensor); return *this; }
  Error&& in_tensor(std::string tensor) && { tensor_ = std::move(tensor); return std::move(*this); }

  ErrorKind kind() const { return kind_; }
  const std::string& file() const { return file_; }
  const std::optional<uint64_t>& offset() const { return offset_; }
  const std::string& tensor() const { return tensor_; }
  const std::string& reason() const { return reason_; }

  // "file: tensor 'name' at offset 0x..: reason", omitting the parts that are unknown.
  std::string message() const;

 private:
  ErrorKind kind_;
  std::string reason_;
  std::string file_;
  std::optional<uint64_t> offset_;
  std::string tensor_;
};

// Shorthands for the common kinds.
Error io_error(std::string reason);
Error usage_error(std::string reason);
Error invalid_input(std::string reason);
Error impossible(std::string reason);

// Either a value or an Error. Test with `if (!r)`, read with `*r` / `r->`, and the error with `r.error()`.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Error error) : state_(std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Error& error() & { return std::get<1>(state_); }
  const Error& error() const& { return std::get<1>(state_); }
  Error&& error() && { return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, Error> state_;
};

// Success or an Error, for operations with no value.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}
  static Status success() { return Status(); }

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  Error& error() & { return *error_; }
  const Error& error() const& { return *error_; }
  Error&& error() && { return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

}  // namespace quant

// Propagate a failed Status/Result from the enclosing function.
#define QUANT_TRY(expr)                                   \
  do {                                                    \
    auto quant_try_result_ = (expr);                      \
    if (!quant_try_result_) return std::move(quant_try_result_).error(); \
  } while (0)

// Evaluate a Result<T>, return its error if it failed, otherwise move its value into `lhs`.
#define QUANT_ASSIGN_OR_RETURN(lhs, expr) QUANT_ASSIGN_OR_RETURN_IMPL_(QUANT_CONCAT_(quant_r_, __LINE__), lhs, expr)
#define QUANT_CONCAT_INNER_(a, b) a##b
#define QUANT_CONCAT_(a, b) QUANT_CONCAT_INNER_(a, b)
#define QUANT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp) return std::move(tmp).error();           \
  lhs = std::move(tmp).value()
