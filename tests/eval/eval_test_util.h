// Helpers shared by the eval tests: llama-tokenize's id lists and the tiny-llama model.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <memory>
#include <string>
#include <vector>

#include "quant/model.h"
#include "quant/model_source.h"
#include "test_data.h"

namespace quant::testing {

// Parses "[1, 2, 3]" as llama-tokenize --ids prints it.
inline std::vector<int32_t> read_ids(const std::string& path) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  std::vector<int32_t> ids;
  int64_t value = -1;
  for (uint8_t c : bytes) {
    if (std::isdigit(c)) {
      value = (value < 0 ? 0 : value * 10) + (c - '0');
    } else if (value >= 0) {
      ids.push_back(int32_t(value));
      value = -1;
    }
  }
  return ids;
}

inline std::unique_ptr<Model> open_test_model(const std::string& path, ModelOptions options = {}) {
  auto source = open_model(path);
  if (!source) throw std::runtime_error(source.error().message());
  auto model = Model::open(std::shared_ptr<const ModelSource>(std::move(*source)), options);
  if (!model) throw std::runtime_error(model.error().message());
  return std::move(*model);
}

}  // namespace quant::testing
