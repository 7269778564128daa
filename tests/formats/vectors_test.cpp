// Walks every entry of ggml's reference vectors (tests/data/ggml-vectors/MANIFEST.tsv): our quantized bytes
// must hash to ggml's, and our dequantization of them must hash to ggml's floats, at every kernel level this CPU
// supports (quant/kernel_level.h).
#include <gtest/gtest.h>

#include <map>

#include "quant/formats.h"
#include "quant/kernel_level.h"
#include "quant/sha256.h"
#include "test_data.h"

namespace quant {
namespace {

struct VectorCase {
  std::string type, input, imatrix;
  int64_t nrows = 0, n_per_row = 0;
  uint64_t quant_bytes = 0;
  std::string quant_sha256, dequant_sha256;
};

std::vector<VectorCase> load_manifest() {
  const auto rows = testing::read_tsv(testing::data_path("ggml-vectors/MANIFEST.tsv"));
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < rows.at(0).size(); ++i) column[rows[0][i]] = i;
  std::vector<VectorCase> cases;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    VectorCase c;
    c.type = row.at(column.at("type"));
    c.input = row.at(column.at("case"));
    c.imatrix = row.at(column.at("imatrix"));
    c.nrows = std::stoll(row.at(column.at("nrows")));
    c.n_per_row = std::stoll(row.at(column.at("n_per_row")));
    c.quant_bytes = std::stoull(row.at(column.at("quant_bytes")));
    c.quant_sha256 = row.at(column.at("quant_sha256"));
    c.dequant_sha256 = row.at(column.at("dequant_sha256"));
    cases.push_back(c);
  }
  return cases;
}

// Keeps gtest from dumping the struct's bytes in test listings.
void PrintTo(const VectorCase& c, std::ostream* os) { *os << c.type << "/" << c.input << "/" << c.imatrix; }

class GgmlVectors : public ::testing::TestWithParam<std::tuple<VectorCase, KernelLevel>> {
 protected:
  void SetUp() override { ASSERT_TRUE(set_kernel_level(std::get<1>(GetParam())).ok()); }
  void TearDown() override { (void)set_kernel_level(best_supported_level()); }
};

TEST_P(GgmlVectors, QuantizeAndDequantizeMatchGgml) {
  const VectorCase& c = std::get<0>(GetParam());
  const FormatInfo* format = find_format(c.type);
  ASSERT_NE(format, nullptr) << c.type;
  if (format->quantize == nullptr) GTEST_SKIP() << c.type << " is not implemented yet";
  const std::vector<float> input = testing::read_floats(testing::data_path("ggml-vectors/inputs/" + c.input + ".f32"));
  ASSERT_EQ(input.size(), static_cast<size_t>(c.nrows * c.n_per_row));
  std::vector<float> importance;
  if (c.imatrix != "none") {
    importance = testing::read_floats(testing::data_path("ggml-vectors/imatrix/" + c.imatrix + ".f32"));
    ASSERT_EQ(importance.size(), static_cast<size_t>(c.n_per_row));
  }
  const auto bytes_per_row = row_bytes(*format, c.n_per_row);
  ASSERT_TRUE(bytes_per_row.has_value());
  ASSERT_EQ(*bytes_per_row * c.nrows, c.quant_bytes);

  std::vector<uint8_t> quantized(c.quant_bytes);
  const Status status = quantize_rows(*format, input.data(), quantized.data(), c.nrows, c.n_per_row,
                                      importance.empty() ? nullptr : importance.data());
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_EQ(sha256_hex(quantized.data(), quantized.size()), c.quant_sha256) << "quantized bytes differ from ggml's";

  std::vector<float> dequantized(input.size());
  const Status deq = dequantize_values(*format, quantized.data(), dequantized.data(), c.nrows * c.n_per_row);
  ASSERT_TRUE(deq.ok()) << deq.error().message();
  EXPECT_EQ(sha256_hex(dequantized.data(), dequantized.size() * sizeof(float)), c.dequant_sha256)
      << "dequantized floats differ from ggml's";
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<VectorCase, KernelLevel>>& info) {
  const VectorCase& c = std::get<0>(info.param);
  return c.type + "_" + c.input + "_" + c.imatrix + "_" + std::string(kernel_level_name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Manifest, GgmlVectors,
                         ::testing::Combine(::testing::ValuesIn(load_manifest()),
                                            ::testing::ValuesIn(supported_kernel_levels())),
                         case_name);

}  // namespace
}  // namespace quant
