// Calibration datasets: activations keyed by the name of the weight they feed, read one batch at a time.
//
// A dataset is a list of files, read in the order given. Each file holds arrays named after a weight
// (`blk.0.attn_q.weight`): safetensors (F32, F16, BF16, F64 tensors), NumPy `.npy` (one array, named by the file
// name without `.npy`) or `.npz` (a zip of `.npy` members, stored or deflated; each member named by its path
// without `.npy`). The kind of file is told by its first bytes, never by its extension.
//   - a 2-D array [tokens, features] is one batch;
//   - a 3-D array [batches, tokens, features] is one batch per slice along the first axis.
// Batches of a weight are numbered in the order they are met: files in the order given, then slices in order.
// Every batch of a weight has the same number of features.
// Reading streams: open_dataset() reads only headers (and, for deflated members, the first bytes of each member);
// values are read when next() asks for them and only one batch of one array is in memory at a time.
// Damaged or hostile files give an Error of kind invalid_input naming the file, the tensor and, where meaningful,
// the byte offset. Caps are in DatasetLimits; docs/datasets.md lists every rule and check.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quant/error.h"

namespace quant {

// Resource caps for hostile-but-valid files; sizes are also always checked against the bytes in the file.
struct DatasetLimits {
  uint64_t max_header_bytes = uint64_t(100) << 20;  // a safetensors JSON header (the safetensors library's cap)
  uint64_t max_npy_header_bytes = uint64_t(1) << 16;  // a .npy header dictionary
  uint64_t max_tensors_per_file = uint64_t(1) << 16;  // arrays in one safetensors file or members in one .npz
  uint64_t max_name_bytes = 4096;                     // a tensor or member name
  uint64_t max_batch_bytes = uint64_t(1) << 30;       // float32 values of one batch, held in memory
};

struct DatasetOptions {
  // When not empty: the number of input features (columns) of each weight. Every array must name a listed
  // weight and have that many features.
  std::map<std::string, int64_t> weight_features;
  DatasetLimits limits;
};

// One array as found in one file, before any values are read.
struct DatasetArray {
  std::string file;     // path as given
  std::string tensor;   // the weight it feeds
  std::string dtype;    // as the file names it: "F32", "BF16", "<f4", "<f2"...
  int64_t batches = 0;  // 1 for a 2-D array
  int64_t tokens = 0;   // rows of each batch
  int64_t features = 0; // columns
};

// What a dataset holds for one weight, over every file.
struct DatasetTensor {
  std::string name;
  int64_t features = 0;
  int64_t batches = 0;
  int64_t tokens = 0;  // over every batch
};

// One batch: tokens x features float32 values, row-major (a token's features are contiguous).
struct Batch {
  std::string tensor;     // the weight it feeds
  std::string file;       // the file it came from
  int64_t index = 0;      // 0-based among this weight's batches, over the whole dataset
  int64_t tokens = 0;
  int64_t features = 0;
  std::vector<float> values;
};

class DatasetReader {
 public:
  DatasetReader(DatasetReader&& other) noexcept;
  DatasetReader& operator=(DatasetReader&& other) noexcept;
  ~DatasetReader();

  // Reads the next batch into `batch` (reusing its storage). Returns false once every batch has been read.
  // Batches come file by file; within a file, array by array in file order, then slice by slice.
  Result<bool> next(Batch& batch);

  const std::vector<std::string>& files() const;
  // Every array of every file, in reading order.
  const std::vector<DatasetArray>& arrays() const;
  // One entry per weight, sorted by name.
  const std::vector<DatasetTensor>& tensors() const;

 private:
  struct State;
  explicit DatasetReader(std::unique_ptr<State> state);
  friend Result<DatasetReader> open_dataset(const std::vector<std::string>& paths, const DatasetOptions& options);
  std::unique_ptr<State> state_;
};

// Opens every file and validates its header (and the dataset's consistency: features per weight, and
// options.weight_features when given). No values are read yet.
Result<DatasetReader> open_dataset(const std::vector<std::string>& paths, const DatasetOptions& options = {});

}  // namespace quant
