// Internal: building the GGUF metadata the way gguf-py's GGUFWriter holds it (a Python dict: setting a key again
// keeps its first position and takes the new value), and reading config values as the converter packs them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hf/checkpoint_files.h"
#include "quant/error.h"
#include "quant/gguf_values.h"

namespace quant::hf {

class MetadataList {
 public:
  void set(std::string key, Value value);
  void remove(std::string_view key);
  bool contains(std::string_view key) const;
  const std::vector<KeyValue>& items() const { return items_; }
  std::vector<KeyValue>& items() { return items_; }

 private:
  std::vector<KeyValue> items_;
};

// The value as struct.pack("I") takes it: an integer in [0, 2^32). `what` names it in the error (file and key).
Result<Value> u32_value(const Json& value, const std::string& what);
// An integer for struct.pack("i").
Result<Value> i32_value(const Json& value, const std::string& what);
// A number as struct.pack("f") takes it (rounded to float; finite numbers that overflow float are refused).
Result<Value> f32_value(const Json& value, const std::string& what);
// A number as a double (Python int or float).
Result<double> number_value(const Json& value, const std::string& what);
// An int as the converter's add_uint32, or a list of ints as its add_array (an array of i32).
Result<Value> u32_or_array_value(const Json& value, const std::string& what);

}  // namespace quant::hf
