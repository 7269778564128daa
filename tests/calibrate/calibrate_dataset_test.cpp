// calibrate_dataset(), the `quantize calibrate` job as a library call, without the binary: a two-pass method
// (ONNX Runtime's entropy histograms the data over the range the first pass found) against onnxruntime 1.30's
// own numbers, the entry order and error pass, the round trip through the table's JSON, and the refusals of
// results nothing can use, which name the file and tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "quant/calibrate.h"
#include "test_data.h"
#include "test_files.h"

namespace quant {
namespace {

using nlohmann::json;
using testing::TempDir;

// A NumPy .npy file (format 1.0, little-endian float32, C order), as numpy.save writes it.
std::string npy(const std::vector<int64_t>& shape, const std::vector<float>& values) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  header += std::string((64 - (10 + header.size() + 1) % 64) % 64, ' ') + "\n";
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes += char(header.size() & 0xff);
  bytes += char(header.size() >> 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return bytes;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
uint32_t hex_bits(const json& j) { return uint32_t(std::stoul(j.get<std::string>(), nullptr, 16)); }

CalibrationRequest request_for(std::vector<std::string> files, std::vector<CalibrationMethod> methods,
                               Convention convention = Convention::quantize) {
  CalibrationRequest request;
  request.data_files = std::move(files);
  request.methods = std::move(methods);
  request.options.convention = convention;
  return request;
}

TEST(CalibrateDataset, TwoPassMethodsMatchOnnxruntime) {
  TempDir dir("quant-calibrate-dataset");
  const std::vector<float> values = testing::read_floats(testing::data_path("calibration/gaussian_small.f32"));
  std::ifstream in(testing::data_path("calibration/gaussian_small.json"));
  const json doc = json::parse(in);
  const auto shapes = doc["batch_shapes"].get<std::vector<std::vector<int64_t>>>();
  const std::string file =
      dir.write("acts.npy", npy({int64_t(shapes.size()), shapes[0][0], shapes[0][1]}, values));
  const Result<CalibrationTable> table = calibrate_dataset(
      request_for({file}, {CalibrationMethod::minmax, CalibrationMethod::entropy}, Convention::onnxruntime));
  ASSERT_TRUE(table) << table.error().message();
  ASSERT_EQ(table->entries.size(), 2u);
  EXPECT_EQ(table->entries[0].method, CalibrationMethod::minmax);
  EXPECT_EQ(table->entries[1].method, CalibrationMethod::entropy);
  const json& ort = doc["expected"]["ort_1_30_actual"];
  const std::pair<size_t, const char*> checks[] = {{0, "minmax"}, {1, "entropy_bins2048_q128"}};
  for (const auto& [index, key] : checks) {
    SCOPED_TRACE(key);
    const CalibrationEntry& e = table->entries[index];
    EXPECT_EQ(e.tensor, "acts");
    EXPECT_EQ(bits(e.result.lo[0]), hex_bits(ort["range_raw"][key]["lo_f32"]));
    EXPECT_EQ(bits(e.result.hi[0]), hex_bits(ort["range_raw"][key]["hi_f32"]));
    EXPECT_EQ(bits(e.result.qparams[0].scale), hex_bits(ort["qparams"][key]["int8_asymmetric"]["scale_f32"]));
    EXPECT_EQ(e.result.qparams[0].zero_point, ort["qparams"][key]["int8_asymmetric"]["zero_point"].get<int64_t>());
    // The error pass ran over the same data.
    ASSERT_TRUE(e.mse && e.sqnr_db);
    EXPECT_GT(*e.mse, 0.0);
    EXPECT_GT(*e.sqnr_db, 20.0);
  }
  EXPECT_EQ(table->sources, std::vector<std::string>{file});
  // What it returns reads back as it was written.
  const Result<CalibrationTable> back = calibration_table_from_json(calibration_table_to_json(*table));
  ASSERT_TRUE(back) << back.error().message();
  ASSERT_EQ(back->entries.size(), 2u);
  for (const CalibrationEntry& read : back->entries) {
    const CalibrationEntry& written = read.method == CalibrationMethod::minmax ? table->entries[0] : table->entries[1];
    EXPECT_EQ(bits(read.result.qparams[0].scale), bits(written.result.qparams[0].scale));
    EXPECT_EQ(read.result.qparams[0].zero_point, written.result.qparams[0].zero_point);
  }
}

TEST(CalibrateDataset, SeveralTensorsKeepTheOrderTheyAreMet) {
  TempDir dir("quant-calibrate-dataset");
  std::vector<float> a(32 * 4), b(16 * 4);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i % 11) - 5.0f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = float(i % 3);
  const std::string zeta = dir.write("zeta.npy", npy({32, 4}, a));
  const std::string alpha = dir.write("alpha.npy", npy({16, 4}, b));
  const Result<CalibrationTable> table =
      calibrate_dataset(request_for({zeta, alpha}, {CalibrationMethod::minmax, CalibrationMethod::mse}));
  ASSERT_TRUE(table) << table.error().message();
  ASSERT_EQ(table->entries.size(), 4u);
  EXPECT_EQ(table->entries[0].tensor, "zeta");
  EXPECT_EQ(table->entries[2].tensor, "alpha");
  EXPECT_EQ(table->entries[0].result.observed_min[0], -5.0f);
  EXPECT_EQ(table->entries[0].result.observed_max[0], 5.0f);
  EXPECT_EQ(table->entries[2].result.observed_max[0], 2.0f);
}

TEST(CalibrateDataset, RefusesWhatNothingCanUseNamingFileAndTensor) {
  TempDir dir("quant-calibrate-dataset");
  std::vector<float> huge(16 * 4);
  for (size_t i = 0; i < huge.size(); ++i) huge[i] = i % 2 ? 3.0e38f : -3.0e38f;
  const std::string wide = dir.write("wide.npy", npy({16, 4}, huge));
  const std::string empty = dir.write("empty.npy", npy({0, 64}, {}));
  const std::string no_batches = dir.write("none.npy", npy({0, 4, 64}, {}));
  const std::string nans =
      dir.write("nans.npy", npy({16, 4}, std::vector<float>(64, std::numeric_limits<float>::quiet_NaN())));
  const struct {
    std::string file, tensor, reason;
  } cases[] = {{wide, "wide", "scale inf"},
               {empty, "empty", "nothing to calibrate"},
               {no_batches, "none", "nothing to calibrate"},
               {nans, "nans", "finite"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const Result<CalibrationTable> table = calibrate_dataset(request_for({c.file}, {CalibrationMethod::minmax}));
    ASSERT_FALSE(table);
    EXPECT_EQ(table.error().kind(), ErrorKind::impossible);
    EXPECT_EQ(table.error().file(), c.file);
    EXPECT_EQ(table.error().tensor(), c.tensor);
    EXPECT_NE(table.error().reason().find(c.reason), std::string::npos) << table.error().reason();
  }
  // A bad combination is a usage error before any data is read, even from a file that does not exist.
  const Result<CalibrationTable> torch_entropy = calibrate_dataset(
      request_for({dir / "missing.npy"}, {CalibrationMethod::entropy}, Convention::torch));
  ASSERT_FALSE(torch_entropy);
  EXPECT_EQ(torch_entropy.error().kind(), ErrorKind::usage);
  CalibrationRequest nan_percentile = request_for({wide}, {CalibrationMethod::percentile});
  nan_percentile.options.percentile = std::numeric_limits<double>::quiet_NaN();
  ASSERT_FALSE(calibrate_dataset(nan_percentile));
  EXPECT_EQ(calibrate_dataset(nan_percentile).error().kind(), ErrorKind::usage);
}

}  // namespace
}  // namespace quant
