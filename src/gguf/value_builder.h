// Internal: builds Values that are views into bytes owned elsewhere (a parsed file's header buffer), for the
// reader. The public factories in gguf.h copy their input instead.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "quant/gguf.h"

namespace quant {

class ValueBuilder {
 public:
  // A scalar of a fixed-size type from its little-endian bytes (value_type_size(type) of them).
  static Value scalar(ValueType type, const uint8_t* bytes);
  // A string viewing `length` bytes at `bytes`.
  static Value string_view(std::shared_ptr<const void> owner, const uint8_t* bytes, uint64_t length);
  // An array of `count` fixed-size elements packed at `bytes`.
  static Value scalar_array_view(std::shared_ptr<const void> owner, ValueType element_type, const uint8_t* bytes,
                                 uint64_t count);
  // An array of strings stored back to back at `bytes` (byte_count bytes), each a length prefix of
  // length_bytes (4 or 8) then the string; offsets[i] is where element i's prefix starts.
  static Value string_array_view(std::shared_ptr<const void> owner, const uint8_t* bytes, uint64_t byte_count,
                                 uint8_t length_bytes, std::vector<uint64_t> offsets);
  // An array of arrays.
  static Value nested_array(std::vector<Value> items);
};

}  // namespace quant
